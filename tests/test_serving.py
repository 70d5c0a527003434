"""``lepton-sim serve`` (issue 13), tested as a client sees it: the real server process on a free loopback port,
called with a real HTTP client (httpx). Served actions equal the policy's own; every malformed request (bad JSON,
wrong shape, NaN, out-of-bounds values, oversized body or batch, missing token) is a 4xx with its reason, never a
500; a recurrent policy's episode state is kept per client session (a small stateful Policy served through the
same ``make_app`` the command uses)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import httpx
import numpy as np
import pytest
from export_runs import GRID, LANE_KEEP, trained_run
from gymnasium import spaces

import lepton_sim
from lepton_sim.cli import main
from lepton_sim.exporting import export_policy, sample_observations
from lepton_sim.loading import load_policy
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.space_json import space_from_json

TOKEN = "test-token-13"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BATCH, MAX_BODY = 64, 200_000
CLI = [sys.executable, "-m", "lepton_sim.cli"]
TESTS = Path(__file__).resolve().parent


class StepCounter(Policy):
    """A recurrent stand-in: each row's action is the number of steps its episode has had before this one, kept
    in the state that ``act`` returns (reset where ``episode_start`` is set)."""

    name = "step-counter"
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(1000)

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        counts = np.zeros(len(observation), np.int64) if state is None else np.array(state, np.int64)
        if episode_start is not None:
            counts[np.asarray(episode_start, bool)] = 0
        return counts.copy(), counts + 1


STATEFUL_SERVER = """
import sys
sys.path.insert(0, {tests!r})
from test_serving import StepCounter
from lepton_sim.serving import listen, make_app, serve
sock = listen("127.0.0.1", 0)
print(f"serving step-counter on http://127.0.0.1:{{sock.getsockname()[1]}}", flush=True)
serve(make_app(StepCounter()), sock)
"""


class Server:
    """A server process; its URL is read from the line it prints once it listens (``--port 0``: no race)."""

    def __init__(self, argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        with open(log, "w") as err:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=err, text=True, env=None if env is None else {**os.environ, **env}
            )
        self.url = self._wait_for_url(timeout=120)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        assert self.client.get("/health").status_code == 200

    def _wait_for_url(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
            if ready:
                line = self.proc.stdout.readline()
                if " on http://" in line:
                    return line.split(" on ")[1].split()[0]
            if self.proc.poll() is not None:
                break
        self.stop()
        pytest.fail(f"the server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_run(tmp_path_factory, LANE_KEEP)


@pytest.fixture(scope="module")
def export(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_policy(run, "onnx", tmp_path_factory.mktemp("export") / "onnx")


@pytest.fixture(scope="module")
def server(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    argv = [*CLI, "serve", str(export), "--port", "0", "--token", TOKEN]
    srv = Server(
        [*argv, "--max-batch", str(MAX_BATCH), "--max-body-bytes", str(MAX_BODY)], tmp_path_factory.mktemp("log") / "e"
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stateful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    code = STATEFUL_SERVER.format(tests=str(TESTS))
    srv = Server([sys.executable, "-c", code], tmp_path_factory.mktemp("log") / "s")
    yield srv
    srv.stop()


def env_observations(n: int) -> np.ndarray:
    """Real observations of lane-keep (episode starts of seeds 0..n-1)."""
    venv = lepton_sim.make_vec(LANE_KEEP, n)
    try:
        obs, _ = venv.reset(seed=0)
    finally:
        venv.close()
    return np.asarray(obs, np.float32)


# ---------------------------------------------------------------------------------------------- actions
def test_served_actions_equal_the_policys(server: Server, run: Path) -> None:
    policy = load_policy(str(run), lepton_sim.load_scenario(LANE_KEEP))
    batch = np.concatenate([env_observations(8), sample_observations(policy.observation_space, 56)])
    expected = policy.act(batch)[0]
    for i in (0, 3, 9):
        reply = server.client.post("/act", json={"observation": batch[i].tolist()}, headers=AUTH)
        assert reply.status_code == 200, reply.text
        np.testing.assert_allclose(reply.json()["action"], expected[i], rtol=0, atol=1e-5)
    reply = server.client.post("/act", json={"observations": batch.tolist()}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    actions = np.asarray(reply.json()["actions"], np.float32)
    assert actions.shape == (64, 2)
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-5)


def test_spec_and_health(server: Server, run: Path) -> None:
    health = server.client.get("/health")  # open: a load balancer needs no token
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert server.client.get("/spec").status_code == 401
    spec = server.client.get("/spec", headers=AUTH).json()
    env = lepton_sim.make(LANE_KEEP)
    assert space_from_json(spec["observation_space"]) == env.observation_space
    assert space_from_json(spec["action_space"]) == env.action_space
    env.close()
    assert spec["scenario"]["name"] == LANE_KEEP
    assert spec["model"]["training_config"]["algo"] == "ppo"
    assert spec["model"]["graph"]["format"] == "onnx"
    assert "torch" in spec["model"]["versions"]["training"]
    assert spec["limits"]["max_batch"] == MAX_BATCH and spec["limits"]["max_body_bytes"] == MAX_BODY


def test_serving_a_run_folder_answers_as_its_export(run: Path, server: Server, tmp_path: Path) -> None:
    """The run folder itself (SB3 in the server), with the token from the environment (kept out of ``ps``)."""
    direct = Server([*CLI, "serve", str(run), "--port", "0"], tmp_path / "log", env={"LEPTON_SIM_TOKEN": "from-env"})
    try:
        assert direct.url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
        env_auth = {"Authorization": "Bearer from-env"}
        obs = env_observations(4).tolist()
        assert direct.client.post("/act", json={"observations": obs}).status_code == 401
        mine = direct.client.post("/act", json={"observations": obs}, headers=env_auth).json()["actions"]
        theirs = server.client.post("/act", json={"observations": obs}, headers=AUTH).json()["actions"]
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-5)
        assert direct.client.get("/spec", headers=env_auth).json()["source"]["run"] == str(run.resolve())
    finally:
        direct.stop()


def test_a_shared_traffic_export_serves_the_joint_env(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """A parameter-shared policy is served for the joint env: (agents, features) observations, one action each."""
    run = trained_run(tmp_path_factory, GRID)
    folder = export_policy(run, "onnx", tmp_path / "export")
    srv = Server([*CLI, "serve", str(folder), "--port", "0"], tmp_path / "log")
    try:
        spec = srv.client.get("/spec").json()
        obs_space, act_space = space_from_json(spec["observation_space"]), space_from_json(spec["action_space"])
        assert obs_space.shape == (4, 21) and isinstance(act_space, spaces.MultiDiscrete)
        assert spec["model"]["multi_agent"]["mode"] == "shared"
        policy = load_policy(str(run), lepton_sim.load_scenario(GRID))
        policy.reset(PolicyContext(obs_space, act_space, seeds=[0]))
        obs = sample_observations(obs_space, 8)
        reply = srv.client.post("/act", json={"observations": obs.tolist()})
        assert reply.status_code == 200, reply.text
        assert reply.json()["actions"] == policy.act(obs)[0].tolist()
        assert srv.client.post("/act", json={"observation": obs[0, :3].tolist()}).status_code == 422
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------- bad requests
def _obs(**changes: Any) -> list[Any]:
    obs: list[Any] = env_observations(1)[0].tolist()
    for index, value in changes.items():
        obs[int(index[1:])] = value
    return obs


BAD_REQUESTS: list[tuple[str, Any, int, str]] = [
    # (what, body: bytes as is or JSON, status, fragment of the reason)
    ("truncated JSON", b'{"observation": [1, 2', 422, "not valid JSON"),
    ("not UTF-8", b"\xff\xfe\xfa", 422, "request body"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, 422, "not usable JSON"),
    ("a list", [1, 2, 3], 422, "must be a JSON object"),
    ("no observation", {"session": "x"}, 422, "exactly one of 'observation'"),
    ("both", {"observation": _obs(), "observations": [_obs()]}, 422, "exactly one of"),
    ("unknown field", {"observation": _obs(), "obs": 1}, 422, "unknown field(s) ['obs']"),
    ("short", {"observation": _obs()[:-1]}, 422, "expected shape (87,), got shape (86,)"),
    ("ragged batch", {"observations": [_obs(), _obs()[:5]]}, 422, "observations[1]: expected shape (87,)"),
    ("NaN", b'{"observation": [NaN' + b", 0.5" * 86 + b"]}", 422, "observation[0]: nan"),
    ("infinity", b'{"observation": [0.5, -Infinity' + b", 0.5" * 85 + b"]}", 422, "observation[1]: -inf"),
    ("a string", {"observation": _obs(x3="0.1")}, 422, "observation[3]: expected a number, got a string"),
    ("a boolean", {"observation": _obs(x3=True)}, 422, "observation[3]: expected a number, got true"),
    ("null", {"observation": _obs(x3=None)}, 422, "got null"),
    ("out of bounds", {"observation": _obs(x0=100.0)}, 422, "observation[0]: 100.0 is outside the space's bounds"),
    ("empty batch", {"observations": []}, 422, "the batch is empty"),
    ("bad episode_start", {"observation": _obs(), "episode_start": "yes"}, 422, "episode_start: expected"),
    ("bad session", {"observation": _obs(), "session": 7}, 422, "session: expected a string"),
    ("batch too large", {"observations": [_obs()] * (MAX_BATCH + 1)}, 413, f"over the limit of {MAX_BATCH}"),
    ("body too large", b'{"observations": [' + b" " * (MAX_BODY + 1) + b"]}", 413, f"over the limit of {MAX_BODY}"),
]


def test_bad_requests_get_the_reason_never_a_500(server: Server) -> None:
    for what, body, status, fragment in BAD_REQUESTS:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = server.client.post("/act", content=content, headers={**AUTH, "Content-Type": "application/json"})
        assert reply.status_code == status, (what, reply.status_code, reply.text)
        assert fragment in reply.json()["detail"], (what, reply.json())
    good = {"observation": _obs()}
    assert server.client.post("/act", json=good).status_code == 401  # no token
    wrong = server.client.post("/act", json=good, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert server.client.get("/act", headers=AUTH).status_code == 405
    assert server.client.post("/act", json=good, headers=AUTH).status_code == 200  # and it still serves


# ---------------------------------------------------------------------------------------------- episode state
def test_episode_state_is_kept_per_session(stateful: Server) -> None:
    def act(observations: list | None = None, **fields: Any) -> Any:
        body = {"observation": [0.0, 0.0]} if observations is None else {"observations": observations}
        reply = stateful.client.post("/act", json={**body, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()["action" if observations is None else "actions"]

    assert [act(), act()] == [0, 0]  # no session: every request is an episode's first step
    assert [act(session="a"), act(session="a"), act(session="b"), act(session="a"), act(session="b")] == [0, 1, 0, 2, 1]
    assert [act(session="a", episode_start=True), act(session="a")] == [0, 1]
    rows = [[0.0, 0.0]] * 3
    assert act(observations=rows, session="c") == [0, 0, 0]
    assert act(observations=rows, session="c") == [1, 1, 1]
    assert act(observations=rows, session="c", episode_start=[False, True, False]) == [2, 0, 2]
    mismatch = stateful.client.post("/act", json={"observations": rows[:2], "session": "c"})
    assert mismatch.status_code == 422 and "holds state for 3 observation(s)" in mismatch.json()["detail"]
    assert act(observations=rows[:2], session="c", episode_start=True) == [0, 0]
    assert stateful.client.delete("/sessions/a").status_code == 204
    assert act(session="a") == 0
    assert stateful.client.delete("/sessions/nobody").status_code == 404


# ---------------------------------------------------------------------------------------------- the command
def test_serve_refuses_in_one_line(export: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert "no such run folder, model file or export folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "plain").mkdir()
    assert main(["serve", str(tmp_path / "plain")]) == 1
    assert "serve takes a run folder" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        assert main(["serve", str(export), "--port", str(taken.getsockname()[1])]) == 1
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as usage:
        main(["serve", str(export), "--port", "70000"])
    assert usage.value.code == 2
