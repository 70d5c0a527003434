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
from typing import Any, Iterator, Mapping, Sequence

import yaml
from pydantic import ValidationError

from lepton_sim.backends import Backend, get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario, load_scenario, load_suite, scenario_from_dict
from lepton_sim.suite_training import plan_suite_rows, plan_validation, train_rows, with_train_params
from lepton_sim.training_config import MULTI_AGENT_MODES, TrainConfig

ENV_PREFIX = "params."  # overrides starting with this set env params, e.g. params.lanes=3
TRAIN_ENV_PARAMS = "train_env_params"  # env params of the training envs only, e.g. train_env_params.time_to_teleport
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
    suite: str | Path | None = None,
    split: str = "train",
    rows: Sequence[str] | Mapping[str, float] | None = None,
) -> Path:
    """Train ``algo`` on ``scenario`` (or on a ``suite``'s ``split``) with ``backend`` and return the run folder
    (final and best model, checkpoints, evaluations.csv, logs).

    Args:
        suite / split / rows: train on the rows of a suite split in one vector env instead of one scenario:
            every row (or those ``rows`` names, ``"label"`` or ``"label=weight"``), the envs shared among them by
            weight; periodic evaluation on the suite's validation rows (lepton_sim.suite_training).
        overrides: hyperparameters (``learning_rate``, ``n_steps``...), env params as ``params.<name>`` and env
            params of the training envs only as ``train_env_params.<name>`` (evaluation keeps the scenario's).
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
    if scenario is None and suite is None:
        raise LeptonError("train needs a scenario or a suite (or resume=RUN_DIR)")
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
        suite=suite,
        split=split,
        rows=rows,
    )
    path = Path(out) if out else RunFolder.default_path(run_name(config), algo, config.seed, runs_root)
    return start_run(config, sc, path, progress_bar)


def run_name(config: TrainConfig) -> str:
    """What a run trains on, for folder names: the suite's name, else the scenario's."""
    return config.suite or str(config.scenario.get("name", "")) or "run"


def plan_training(
    scenario: str | Path | Scenario | None,
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
    suite: str | Path | None = None,
    split: str = "train",
    rows: Sequence[str] | Mapping[str, float] | None = None,
) -> tuple[TrainConfig, Scenario]:
    """The checked training configuration and scenario of a new run, writing nothing: everything that can be
    wrong with the settings fails here (an experiment checks every seed's run before any starts). For a suite
    the scenario is its first row's (every row has the same spaces)."""
    be = get_backend(backend)
    if algo not in be.algorithms:
        raise LeptonError(f"unknown algorithm {algo!r} for the {backend} back end; allowed: {', '.join(be.algorithms)}")
    overrides = dict(overrides or {})
    env_overrides = {k[len(ENV_PREFIX) :]: v for k, v in overrides.items() if k.startswith(ENV_PREFIX)}
    if suite is None:
        if scenario is None:
            raise LeptonError("train needs a scenario or a suite")
        sc = load_scenario(scenario, **env_overrides)
        name = sc.name
        file_hp = be.hyperparameters(algo, name, hyperparams_file)
        train_params = _train_env_params(file_hp, overrides)
    else:
        if scenario is not None:
            raise LeptonError("train takes a scenario or a suite, not both")
        if env_overrides:
            raise LeptonError(
                "params.<name> sets a param of one scenario; a suite's rows set their own (train_env_params.<name> "
                "sets one for every training env)"
            )
        if "suite" not in be.train_features:
            raise LeptonError(f"the {backend} back end cannot train on a suite; use --backend sb3")
        name = load_suite(suite).name
        file_hp = be.hyperparameters(algo, name, hyperparams_file)
        train_params = _train_env_params(file_hp, overrides)
        suite_obj, chosen, spaces = plan_suite_rows(suite, split, rows, train_params)
        sc = chosen[0][0].scenario
    if train_params and "train_env_params" not in be.train_features:
        raise LeptonError(f"train_env_params: the {backend} back end cannot give training envs params of their own")
    hp = be.observation_hyperparameters(algo, file_hp, sc)
    hp.update({k: v for k, v in overrides.items() if not _is_env_key(k)})
    own = {key: hp.pop(key) for key in CONFIG_KEYS if key in hp}
    seed = _one_of("seed", seed, own.get("seed"), sc.seed)
    device = _one_of("device", None if device == "auto" else device, own.get("device"), "auto")
    mode = _multi_agent_mode(sc, be, multi_agent if multi_agent is not None else hp.pop("multi_agent", None))
    hp.pop("multi_agent", None)
    steps = steps if steps is not None else hp.get("n_timesteps", 100_000)
    n_envs = 1 if mode == "shared" else (n_envs if n_envs is not None else hp.get("n_envs", 1))
    suite_fields: dict[str, Any] = {}
    if suite is not None:
        if mode == "shared":
            raise LeptonError(
                f"{name}: a suite run trains one agent per env; multi_agent shared (every signal of one network "
                "sharing a policy) trains on one scenario"
            )
        recorded = train_rows(chosen, _int(n_envs) or 1)
        suite_fields = dict(
            suite=name,
            split=split,
            rows=recorded,
            validation=plan_validation(suite_obj, split, recorded, spaces),
        )
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
        train_env_params=train_params,
        **suite_fields,
    )
    config = be.check(config, sc)  # unknown or invalid hyperparameters fail here, before a run folder exists
    if suite is None:
        _check_env_builds(sc)  # a suite's rows were built above
        if train_params:
            _check_env_builds(with_train_params(sc, train_params, sc.name))
    return config, sc


def _is_env_key(key: str) -> bool:
    return key.startswith(ENV_PREFIX) or key == TRAIN_ENV_PARAMS or key.startswith(TRAIN_ENV_PARAMS + ".")


def _train_env_params(file_hp: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The training envs' own params: the hyperparameter file's ``train_env_params`` (taken out of ``file_hp``),
    replaced by ``--set train_env_params={...}``, then ``--set train_env_params.<name>=value`` one by one."""
    params = file_hp.pop(TRAIN_ENV_PARAMS, None)
    params = overrides.get(TRAIN_ENV_PARAMS, params)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise LeptonError(
            f"{TRAIN_ENV_PARAMS}: expected a mapping of env params (e.g. {{time_to_teleport: 300}}), got {params!r}"
        )
    params = dict(params)
    prefix = TRAIN_ENV_PARAMS + "."
    params.update({k[len(prefix) :]: v for k, v in overrides.items() if k.startswith(prefix)})
    return params


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
