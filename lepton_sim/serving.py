"""``lepton-sim serve``: any :class:`~lepton_sim.policy.Policy` behind HTTP (FastAPI on uvicorn, imported lazily:
``lepton-sim[serve]``).

``POST /act`` takes ``{"observation": ...}`` (one) or ``{"observations": [...]}`` (a batch), optionally with
``"session"`` (a client's id: the policy's episode state is kept for it between requests) and ``"episode_start"``
(a flag, or one per row), and answers ``{"action": ...}`` or ``{"actions": [...]}``. Observations are checked
against the policy's declared observation space first (lepton_sim.space_validation): anything wrong is a 422 with
the reason, a body or batch over the limits a 413; a request never reaches the policy unchecked. ``GET /spec``
gives the spaces, the scenario and the model's configuration and versions; ``GET /health`` answers ``ok``. With a
token, every route but ``/health`` needs ``Authorization: Bearer <token>`` (401 otherwise).

Requests are served one at a time on the event loop (a policy's ``act`` and the session store need no locks;
small policy networks answer in well under a millisecond). No ``from __future__ import annotations`` here:
FastAPI reads the route functions' annotations (``Request``, imported lazily inside :func:`make_app`) at runtime.
"""

import hmac
import ipaddress
import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.export_format import is_export, read_spec
from lepton_sim.loading import load_policy
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.runs import META, RunFolder
from lepton_sim.sessions import SessionMismatch, Sessions
from lepton_sim.space_json import space_to_json
from lepton_sim.space_validation import InvalidObservation, action_to_json, check_supported, parse_batch, parse_single

if TYPE_CHECKING:
    from fastapi import FastAPI

REQUEST_FIELDS = ("observation", "observations", "session", "episode_start")
MAX_SESSION_ID = 256
DRAIN_FACTOR = 16  # an oversized body is read (and dropped) up to this many times the limit, so the 413 arrives


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 << 20  # 8 MiB: 64 camera images of 84x84x3 as JSON fit
    max_batch: int = 1024
    max_sessions: int = 1024


@dataclass
class ServedPolicy:
    """A policy with the spaces it is served for and what ``GET /spec`` says about it."""

    policy: Policy
    observation_space: gymnasium.Space | None
    action_space: gymnasium.Space | None
    description: dict[str, Any] = field(default_factory=dict)
    context: PolicyContext | None = None


# ---------------------------------------------------------------------------------------------- what to serve
def served_policy(source: str | Path, device: str = "cpu") -> ServedPolicy:
    """A run folder, a model file inside one, or an export folder, ready to serve (the policy reset once for a
    single env of the run's scenario)."""
    from lepton_sim.scenario import scenario_from_dict

    path = Path(source).expanduser()
    if not path.exists():
        raise LeptonError(f"{path}: no such run folder, model file or export folder")
    obs_space: gymnasium.Space | None = None
    act_space: gymnasium.Space | None = None
    if is_export(path):
        spec = read_spec(path)
        obs_space, act_space = spec.observation_space, spec.action_space
        scenario_data = spec.scenario
        description = {
            "source": {"export": str(path.resolve()), **spec.data.get("source", {})},
            "scenario": scenario_data,
            "model": {
                "graph": {k: spec.data["graph"][k] for k in ("format", "file", "includes", "details")},
                "training_config": spec.data.get("training_config"),
                "versions": spec.data.get("versions"),
                "multi_agent": spec.data.get("multi_agent"),
            },
        }
    else:
        run = path if RunFolder.is_run(path) else RunFolder.containing(path)
        if run is None:
            raise LeptonError(f"{path}: serve takes a run folder, a model file inside one, or an export folder")
        run_folder = run if isinstance(run, RunFolder) else RunFolder(run)
        config = run_folder.read_config()
        scenario_data = config.scenario
        description = {
            "source": {"run": str(run_folder.path.resolve()), "model": str(path.resolve())},
            "scenario": scenario_data,
            "model": {"training_config": config.to_file_data(), "versions": _meta_versions(run_folder)},
        }
    scenario = scenario_from_dict(scenario_data, source=f"{path}: scenario")
    policy = load_policy(path, scenario, device=device)
    if obs_space is None or act_space is None:
        obs_space, act_space = policy.observation_space, policy.action_space
    if obs_space is None or act_space is None:  # a shared multi-agent policy: the joint env's spaces
        obs_space, act_space = _env_spaces(scenario)
    context = PolicyContext(
        obs_space,
        act_space,
        seeds=[scenario.seed],
        env_id=scenario.env,
        scenario=scenario.name,
        params=dict(scenario.params),
    )
    return ServedPolicy(policy, obs_space, act_space, description, context)


def _meta_versions(run: RunFolder) -> dict[str, Any]:
    try:
        return dict(json.loads((run.path / META).read_text()).get("versions", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def _env_spaces(scenario: Any) -> tuple[gymnasium.Space, gymnasium.Space]:
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


# ---------------------------------------------------------------------------------------------- the app
def make_app(
    policy: Policy | ServedPolicy,
    *,
    observation_space: gymnasium.Space | None = None,
    action_space: gymnasium.Space | None = None,
    description: Mapping[str, Any] | None = None,
    token: str | None = None,
    limits: Limits = Limits(),
) -> "FastAPI":
    """The FastAPI app serving ``policy`` (what ``lepton-sim serve`` runs). Spaces default to the policy's
    declared ones; a policy that declares none needs them given. The policy is reset once before serving."""
    try:
        from fastapi import FastAPI, HTTPException, Request, Response
        from fastapi.responses import JSONResponse
    except ImportError as err:
        raise LeptonError(f"serving needs FastAPI and uvicorn ({err}); pip install 'lepton-sim[serve]'") from None

    served = policy if isinstance(policy, ServedPolicy) else ServedPolicy(policy, None, None)
    obs_space = observation_space or served.observation_space or served.policy.observation_space
    act_space = action_space or served.action_space or served.policy.action_space
    if obs_space is None or act_space is None:
        raise LeptonError(f"policy {served.policy.name!r} declares no observation or action space; pass them")
    check_supported(obs_space)
    about = {**served.description, **(description or {})}
    agent = served.policy
    agent.reset(served.context or PolicyContext(obs_space, act_space, seeds=[0]))
    sessions = Sessions(limits.max_sessions)
    expected = f"Bearer {token}".encode() if token else None

    app = FastAPI(title="lepton-sim policy server", docs_url=None, redoc_url=None, openapi_url=None)

    def authorize(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> Response:
        return JSONResponse({"detail": f"internal error: {type(err).__name__}: {err}"[:500]}, status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "policy": agent.name}

    @app.get("/spec")
    async def spec(request: Request) -> dict[str, Any]:
        authorize(request)
        return {
            "policy": agent.name,
            "observation_space": space_to_json(obs_space),
            "action_space": space_to_json(act_space),
            "request": {
                "observation": "one observation of observation_space (answer: action)",
                "observations": f"a list of at most {limits.max_batch} observations (answer: actions)",
                "session": "optional client id: the policy's episode state is kept for it between requests",
                "episode_start": "optional: true where an episode starts with this observation (one flag, or one "
                "per observation); default true for a new or no session, false for a known one",
            },
            "limits": asdict(limits),
            **about,
        }

    @app.delete("/sessions/{session}")
    async def end_session(session: str, request: Request) -> Response:
        authorize(request)
        if not sessions.drop(session):
            raise HTTPException(404, f"no session {session!r}")
        return Response(status_code=204)

    @app.post("/act")
    async def act(request: Request) -> Response:
        authorize(request)
        data = _parse_json(await _read_body(request, limits.max_body_bytes))
        try:
            body = _act(agent, obs_space, sessions, data, limits)
        except _TooLarge as err:
            raise HTTPException(413, str(err)) from None
        except (InvalidObservation, SessionMismatch) as err:
            raise HTTPException(422, str(err)) from None
        return Response(json.dumps(body), media_type="application/json")

    return app


def _act(policy: Policy, space: gymnasium.Space, sessions: Sessions, data: Any, limits: Limits) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidObservation("the request must be a JSON object with 'observation' or 'observations'")
    unknown = [k for k in data if k not in REQUEST_FIELDS]
    if unknown:
        raise InvalidObservation(f"unknown field(s) {unknown}; allowed: {', '.join(REQUEST_FIELDS)}")
    single = "observation" in data
    if single == ("observations" in data):
        raise InvalidObservation("give exactly one of 'observation' (one) or 'observations' (a batch)")
    if single:
        obs, rows = parse_single(space, data["observation"]), 1
    else:
        values = data["observations"]
        if isinstance(values, list) and len(values) > limits.max_batch:
            raise _TooLarge(f"a batch of {len(values)} observations is over the limit of {limits.max_batch}")
        obs, rows = parse_batch(space, values), len(values)
    session = data.get("session")
    if session is not None and not (isinstance(session, str) and 0 < len(session) <= MAX_SESSION_ID):
        raise InvalidObservation(f"session: expected a string of 1 to {MAX_SESSION_ID} characters")
    state, starts = sessions.begin(session, rows, _flags(data.get("episode_start"), rows, single))
    action, state = policy.act(obs, state, starts)
    sessions.end(session, state, rows)
    action = np.asarray(action)
    return {"action": action_to_json(action[0])} if single else {"actions": action_to_json(action)}


def _flags(value: Any, rows: int, single: bool) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return np.full(rows, value)
    if not single and isinstance(value, list) and len(value) == rows and all(isinstance(v, bool) for v in value):
        return np.asarray(value, bool)
    wanted = "true or false" if single else f"true, false or a list of {rows} of them"
    raise InvalidObservation(f"episode_start: expected {wanted}")


class _TooLarge(InvalidObservation):
    pass


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body, or a 413 once it is over ``limit`` bytes (read on, and dropped, up to DRAIN_FACTOR times
    the limit, so the client that is still sending gets the answer instead of a reset connection)."""
    from fastapi import HTTPException

    too_large = HTTPException(413, f"request body over the limit of {limit} bytes")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit * DRAIN_FACTOR:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit * DRAIN_FACTOR:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_large
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    from fastapi import HTTPException

    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise HTTPException(422, "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise HTTPException(422, f"the request body is not valid JSON: {err}") from None
    except (RecursionError, ValueError) as err:  # nesting too deep; an integer with too many digits
        raise HTTPException(422, f"the request body is not usable JSON: {type(err).__name__}: {err}"[:300]) from None


# ---------------------------------------------------------------------------------------------- running
def listen(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); one LeptonError line if it cannot be had."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a host name
        family = socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # every response waits ~40 ms for the client's delayed ACK (Nagle's algorithm)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise LeptonError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(app: "FastAPI", sock: socket.socket) -> None:
    """Run ``app`` on the listening socket until SIGINT or SIGTERM (uvicorn shuts down gracefully)."""
    try:
        import uvicorn
    except ImportError as err:
        raise LeptonError(f"serving needs FastAPI and uvicorn ({err}); pip install 'lepton-sim[serve]'") from None
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
