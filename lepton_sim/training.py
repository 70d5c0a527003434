"""``train()``: scenario + back end + algorithm -> a run folder.

The core resolves the scenario, the hyperparameters (the back end's files plus ``--set`` overrides), seeds and
the multi-agent mode into a :class:`TrainConfig`, has the back end check it against the algorithm's real
constructor, and only then creates the run folder and hands over. Nothing is written for a bad configuration.

While training, SIGTERM (a batch scheduler, ``kill``) raises KeyboardInterrupt like Ctrl-C, so both end a run
the same way: the back end saves a checkpoint at the current step and the CLI exits with 130.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, Mapping

import yaml
from pydantic import ValidationError

from lepton_sim.backends import Backend, get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario, load_scenario, scenario_from_dict
from lepton_sim.training_config import MULTI_AGENT_MODES, TrainConfig

ENV_PREFIX = "params."  # overrides starting with this set env params, e.g. params.lanes=3
CONFIG_KEYS = ("seed", "device")  # accepted in --set and hyperparameter files too; they are the run's own fields


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (numbers, lists, mappings, booleans)."""
    if "=" not in text:
        raise LeptonError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def train(
    scenario: str | Path | Scenario | None = None,
    algo: str = "ppo",
    steps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    hyperparams_file: str | Path | None = None,
    resume: str | Path | None = None,
    eval_freq: int | None = None,
    eval_episodes: int = 10,
    checkpoint_freq: int | None = None,
    time_limit: float | None = None,
    progress_bar: bool = True,
    runs_root: str | Path = "runs",
    backend: str = "sb3",
    multi_agent: str | None = None,
) -> Path:
    """Train ``algo`` on ``scenario`` with ``backend`` and return the run folder (final and best model,
    checkpoints, evaluations.csv, logs).

    Args:
        overrides: hyperparameters (``learning_rate``, ``n_steps``...) and env params as ``params.<name>``.
        steps: total env steps (default: the hyperparameter file's ``n_timesteps``).
        eval_freq / checkpoint_freq: in env steps over all envs (default: steps/10 and steps/5).
        time_limit: stop after this many seconds of wall-clock time (the model is saved as usual).
        multi_agent: for envs with several agents: ``joint`` (one agent acting for all), ``shared`` (one policy
            shared by every agent; the default) or ``independent`` (back ends that support it).
        resume: a run folder; training continues from its latest checkpoint up to ``steps`` (default: the
            run's own total). Everything else comes from the run's config.yaml.

    Ctrl-C or SIGTERM during training saves a checkpoint and the current model, then raises KeyboardInterrupt.
    """
    if resume is not None:
        return _resume(Path(resume), steps, device, progress_bar)
    if scenario is None:
        raise LeptonError("train needs a scenario (or resume=RUN_DIR)")
    config, sc = plan_training(
        scenario,
        algo=algo,
        steps=steps,
        seed=seed,
        n_envs=n_envs,
        device=device,
        overrides=overrides,
        hyperparams_file=hyperparams_file,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        checkpoint_freq=checkpoint_freq,
        time_limit=time_limit,
        backend=backend,
        multi_agent=multi_agent,
    )
    path = Path(out) if out else RunFolder.default_path(sc.name, algo, config.seed, runs_root)
    return start_run(config, sc, path, progress_bar)


def plan_training(
    scenario: str | Path | Scenario,
    algo: str = "ppo",
    steps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    hyperparams_file: str | Path | None = None,
    eval_freq: int | None = None,
    eval_episodes: int = 10,
    checkpoint_freq: int | None = None,
    time_limit: float | None = None,
    backend: str = "sb3",
    multi_agent: str | None = None,
) -> tuple[TrainConfig, Scenario]:
    """The checked training configuration and scenario of a new run, writing nothing: everything that can be
    wrong with the settings fails here (an experiment checks every seed's run before any starts)."""
    be = get_backend(backend)
    if algo not in be.algorithms:
        raise LeptonError(f"unknown algorithm {algo!r} for the {backend} back end; allowed: {', '.join(be.algorithms)}")
    overrides = dict(overrides or {})
    env_overrides = {k[len(ENV_PREFIX) :]: v for k, v in overrides.items() if k.startswith(ENV_PREFIX)}
    sc = load_scenario(scenario, **env_overrides)
    hp = be.observation_hyperparameters(algo, be.hyperparameters(algo, sc.name, hyperparams_file), sc)
    hp.update({k: v for k, v in overrides.items() if not k.startswith(ENV_PREFIX)})
    own = {key: hp.pop(key) for key in CONFIG_KEYS if key in hp}
    seed = _one_of("seed", seed, own.get("seed"), sc.seed)
    device = _one_of("device", None if device == "auto" else device, own.get("device"), "auto")
    mode = _multi_agent_mode(sc, be, multi_agent if multi_agent is not None else hp.pop("multi_agent", None))
    hp.pop("multi_agent", None)
    steps = steps if steps is not None else hp.get("n_timesteps", 100_000)
    n_envs = 1 if mode == "shared" else (n_envs if n_envs is not None else hp.get("n_envs", 1))
    config = _config(
        backend=backend,
        algo=algo,
        scenario=sc.model_dump(),
        scenario_source=sc.source,
        hyperparams=hp,
        steps=steps,
        seed=seed,
        n_envs=n_envs,
        device=device,
        multi_agent=mode,
        eval_freq=eval_freq if eval_freq is not None else max(_int(steps) // 10, 1),
        eval_episodes=eval_episodes,
        checkpoint_freq=checkpoint_freq if checkpoint_freq is not None else max(_int(steps) // 5, 1),
        time_limit=time_limit,
    )
    config = be.check(config, sc)  # unknown or invalid hyperparameters fail here, before a run folder exists
    _check_env_builds(sc)
    return config, sc


def start_run(config: TrainConfig, scenario: Scenario, path: str | Path, progress_bar: bool = True) -> Path:
    """Create the run folder ``path`` for a configuration from :func:`plan_training` and train it."""
    be = get_backend(config.backend)
    run = RunFolder.create(path, be.model_suffix)
    run.write_record(config)
    with terminate_as_interrupt():
        be.train(run, config, scenario, resume=False, progress_bar=progress_bar)
    return run.path


def _resume(path: Path, steps: int | None, device: str, progress_bar: bool) -> Path:
    if not RunFolder.is_run(path):
        raise LeptonError(f"cannot resume {path}: not a run folder (no config.yaml)")
    config = RunFolder(path).read_config()
    be = get_backend(config.backend)
    run = be.run_folder(path)
    if steps is not None:
        config = _config(**{**config.model_dump(), "steps": steps})
    if device != "auto":
        config = _config(**{**config.model_dump(), "device": device})
    sc = scenario_from_dict(config.scenario, source=config.scenario_source or str(run.config_path))
    be.check_resume(run, config)  # fail before the run record is touched
    run.write_record(config, resumed=True)
    with terminate_as_interrupt():
        be.train(run, config, sc, resume=True, progress_bar=progress_bar)
    return run.path


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, so the back end saves what it has as it does for
    Ctrl-C. Left alone outside the main thread, and where SIGTERM is ignored or handled outside Python."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (None, signal.SIG_IGN):
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_env_builds(scenario: Scenario) -> None:
    """Build (and close) one env, so a scenario its env refuses fails here and not in a training worker."""
    from lepton_sim.make import make

    make(scenario).close()


def _config(**fields: Any) -> TrainConfig:
    try:
        return TrainConfig(**fields)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()
        )
        raise LeptonError(f"invalid training settings: {problems}") from None


def _one_of(name: str, option: Any, from_hyperparams: Any, default: Any) -> Any:
    """A run field given as an option or as a hyperparameter (``--set seed=3``), not both differently."""
    if option is not None and from_hyperparams is not None and option != from_hyperparams:
        raise LeptonError(
            f"{name} is given twice: --{name} {option} and {name}={from_hyperparams} in the "
            "hyperparameters; give it once"
        )
    return next(v for v in (option, from_hyperparams, default) if v is not None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _multi_agent_mode(scenario: Scenario, backend: Backend, requested: str | None) -> str | None:
    """The multi-agent mode of a run: None for single-agent envs; for envs that declare a PettingZoo parallel
    entry point, ``requested`` or ``shared``."""
    multi = scenario.spec.parallel_entry_point is not None
    if requested is None:
        return "shared" if multi else None
    if requested not in MULTI_AGENT_MODES:
        raise LeptonError(f"multi_agent: unknown mode {requested!r}; allowed: {', '.join(MULTI_AGENT_MODES)}")
    if not multi:
        raise LeptonError(
            f"multi_agent: {scenario.env} ({scenario.name}) has a single agent; multi-agent modes "
            "apply to envs with several agents (e.g. lepton/TrafficNetwork-v0)"
        )
    if requested not in backend.multi_agent_modes:
        raise LeptonError(
            f"multi_agent: the {backend.name} back end supports "
            f"{', '.join(backend.multi_agent_modes)}, not {requested!r}"
        )
    return requested
