"""``tune()``: an Optuna study over a back end's search space, each trial an ordinary run folder.

Every trial samples the searched hyperparameters (the rest come from the hyperparameter file, as for ``train``),
trains into ``DIR/trials/<number>/`` with the same seed and budget as every other trial, reports each periodic
evaluation to Optuna, whose pruner may stop it early (the run is then saved as at its end and marked pruned), and
is scored by :func:`lepton_sim.evaluate` on the scenario's held-out seeds, the same episodes for every trial. A
trial that fails (a combination the back end refuses) is recorded with its reason and the study goes on.

The study lives in an Optuna storage (default ``DIR/study.db``, SQLite; any RDB URL works), so several processes,
on one machine or several, work on one study at once (``load_if_exists``), each running its own ``trials``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna

from lepton_sim.backends import get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.evaluation import evaluate
from lepton_sim.io import write_json_atomic
from lepton_sim.periodic_evaluation import StopTraining, evaluation_hook
from lepton_sim.report import one_line
from lepton_sim.scenario import Scenario, load_scenario
from lepton_sim.search_space import SearchSpace, nested
from lepton_sim.training import ENV_PREFIX, train
from lepton_sim.tuning_report import STATES, TrialRow, write_results

OBJECTIVES = {"success": "success_rate", "return": "mean_return"}  # objective -> evaluations.csv column
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
STUDY_FILE = "study.json"  # which study a tuning folder belongs to
SETTINGS_ATTR = "lepton_sim"  # the study's user attribute holding what every trial shares
OPEN_ATTEMPTS = 6


@dataclass
class TuneResult:
    out: Path
    study_name: str
    storage: str
    trials: list[TrialRow]  # ranked, the study's trials from every process
    best: TrialRow | None  # None until a trial completes
    table: Path  # trials.md (trials.csv beside it)
    best_hyperparams: Path | None


def tune(
    scenario: str | Path | Scenario,
    algo: str = "ppo",
    trials: int = 10,
    sampler: str | optuna.samplers.BaseSampler = "tpe",
    pruner: str | optuna.pruners.BasePruner = "median",
    storage: str | None = None,
    study_name: str | None = None,
    space: str | Path | None = None,
    objective: str = "success",
    steps: int | None = None,
    eval_freq: int | None = None,
    eval_episodes: int = 5,
    episodes: int = 20,
    seed: int | None = None,
    n_envs: int | None = None,
    device: str = "auto",
    overrides: Mapping[str, Any] | None = None,
    hyperparams_file: str | Path | None = None,
    out: str | Path | None = None,
    backend: str = "sb3",
    sampler_seed: int | None = None,
    runs_root: str | Path = "runs",
    progress: Callable[[str], None] | None = print,
) -> TuneResult:
    """Run ``trials`` trials of a study (created, or continued where it exists) and write the ranked table
    (``trials.md``, ``trials.csv``) and ``best_hyperparams.yaml`` into ``out``.

    Args:
        sampler / pruner: a name (``tpe``, ``random``, ``grid``; ``median``, ``none``) or an Optuna object.
        space: a search-space YAML file (default: the back end's for ``algo``).
        objective: ``success`` (held-out success rate) or ``return`` (held-out mean return), on ``episodes``
            episodes from the scenario's test seed; the pruner sees the same quantity from periodic evaluations.
        steps / eval_freq: each trial's budget and evaluation period (default: n_timesteps, steps/5; 0: none, so
            no pruning). overrides / hyperparams_file / seed / n_envs / device: as for ``train``, for every trial.
        progress: called with one line per finished trial (None: quiet).
    """
    _check_choice("objective", objective, tuple(OBJECTIVES))
    for name, value, low in (("trials", trials, 1), ("episodes", episodes, 1), ("eval_episodes", eval_episodes, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise LeptonError(f"{name} must be a whole number >= {low}, got {value!r}")
    be = get_backend(backend)
    if algo not in be.algorithms:
        raise LeptonError(f"unknown algorithm {algo!r} for the {backend} back end; allowed: {', '.join(be.algorithms)}")
    overrides = dict(overrides or {})
    env_overrides = {k: v for k, v in overrides.items() if k.startswith(ENV_PREFIX)}
    fixed = {k: v for k, v in overrides.items() if not k.startswith(ENV_PREFIX)}
    sc = load_scenario(scenario, **{k[len(ENV_PREFIX) :]: v for k, v in env_overrides.items()})
    search = be.search_space(algo, space)
    base = {**be.hyperparameters(algo, sc.name, hyperparams_file), **fixed}
    if n_envs is not None:
        fixed["n_envs"] = base["n_envs"] = n_envs
    searched_and_fixed = [p.name for p in search.params if _is_set(p.name, fixed)]
    if searched_and_fixed:
        raise LeptonError(
            f"{', '.join(searched_and_fixed)}: both searched by {search.source} and set for every trial "
            "(--set/--num-envs); drop one"
        )
    steps = steps if steps is not None else int(base.get("n_timesteps", 100_000))
    eval_freq = eval_freq if eval_freq is not None else max(steps // 5, 1)
    seed = seed if seed is not None else int(base.get("seed", sc.seed))
    out = Path(out) if out else Path(runs_root) / sc.name.replace("/", "-") / f"tune-{algo}"
    study_name = study_name or f"{sc.name}-{algo}"
    settings = _jsonable(
        {
            "backend": backend,
            "algo": algo,
            "scenario": sc.model_dump(),
            "objective": objective,
            "episodes": episodes,
            "steps": steps,
            "seed": seed,
            "eval_freq": eval_freq,
            "eval_episodes": eval_episodes,
            "hyperparams": base,
            "space": search.to_data(),
        }
    )
    chosen_sampler, chosen_pruner = _sampler(sampler, search, sampler_seed), _pruner(pruner, steps)
    _check_folder(out, study_name)
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    with _optuna_quiet():
        study = _open_study(url, study_name, chosen_sampler, chosen_pruner)
        _check_settings(study, settings, url)
        if not (out / STUDY_FILE).is_file():
            write_json_atomic(out / STUDY_FILE, {"study_name": study_name, "storage": _safe_url(url)})
        run_trial = _Trial(
            scenario=scenario,
            resolved=sc,
            algo=algo,
            space=search,
            base=base,
            overrides={**env_overrides, **fixed},
            objective=objective,
            episodes=episodes,
            steps=steps,
            seed=seed,
            eval_freq=eval_freq,
            eval_episodes=eval_episodes,
            device=device,
            hyperparams_file=hyperparams_file,
            backend=backend,
            trials_dir=out / "trials",
        )

        def save(study: optuna.Study) -> tuple[list[TrialRow], TrialRow | None, Path, Path | None]:
            return write_results(study, out, sc.name, algo, objective, steps, episodes)

        def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if progress is not None:
                progress(_trial_line(trial, objective))
            save(study)

        try:
            study.optimize(run_trial, n_trials=trials, catch=(Exception,), callbacks=[finished], gc_after_trial=False)
        finally:  # an interrupted study still leaves its table
            rows, best, table, best_file = save(study)
    return TuneResult(out, study_name, _safe_url(url), rows, best, table, best_file)


# --------------------------------------------------------------------------------------------- one trial
@dataclass
class _Trial:
    """Optuna's objective: one trial = one run folder, scored on the held-out seeds."""

    scenario: str | Path | Scenario
    resolved: Scenario
    algo: str
    space: SearchSpace
    base: dict[str, Any]
    overrides: dict[str, Any]
    objective: str
    episodes: int
    steps: int
    seed: int
    eval_freq: int
    eval_episodes: int
    device: str
    hyperparams_file: str | Path | None
    backend: str
    trials_dir: Path

    def __call__(self, trial: optuna.Trial) -> float:
        run_dir = self.trials_dir / str(trial.number)
        sampled = nested(self.space.suggest(trial), self.base)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        trial.set_user_attr("hyperparams", _jsonable({**self.base, **sampled}))
        pruning = _Pruning(trial, OBJECTIVES[self.objective])
        try:
            with evaluation_hook(pruning):
                train(
                    self.scenario,
                    algo=self.algo,
                    steps=self.steps,
                    seed=self.seed,
                    device=self.device,
                    out=run_dir,
                    overrides={**self.overrides, **sampled},
                    hyperparams_file=self.hyperparams_file,
                    eval_freq=self.eval_freq,
                    eval_episodes=self.eval_episodes,
                    checkpoint_freq=self.steps,  # one checkpoint, at the end (or where the trial was pruned)
                    progress_bar=False,
                    backend=self.backend,
                )
            if pruning.reason is not None:
                trial.set_user_attr("note", pruning.reason)
                raise optuna.TrialPruned(pruning.reason)
            report = evaluate(
                str(run_dir),
                scenario=self.resolved,
                episodes=self.episodes,
                device=self.device,
                out=run_dir / "eval" / "objective",
                progress=False,
            )
            row = report.rows[0]
            value = row.success_rate if self.objective == "success" else row.return_mean
            if not math.isfinite(value):
                raise LeptonError(f"the held-out evaluation gave no {self.objective}: {row.failed or row.skipped}")
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("note", "interrupted")
            raise
        except Exception as err:
            trial.set_user_attr("note", _reason(err))
            raise
        return float(value)


class _Pruning:
    """The evaluation hook: each periodic evaluation is an intermediate value; a prune stops training."""

    def __init__(self, trial: optuna.Trial, column: str) -> None:
        self.trial, self.column = trial, column
        self.reason: str | None = None

    def __call__(self, timesteps: int, row: dict[str, Any]) -> None:
        value = float(row[self.column])
        self.trial.report(value, timesteps)
        if self.trial.should_prune():
            self.reason = f"pruned at {timesteps} steps ({self.column} {value:.3g})"
            raise StopTraining(self.reason)


# --------------------------------------------------------------------------------------------- the study
def _open_study(
    url: str, name: str, sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner
) -> optuna.Study:
    """Create or load the study. Processes starting together on a new database race to create its tables; the
    loser's error is retried (the tables are there by then)."""
    from sqlalchemy.exc import DBAPIError

    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats (a dead process's trials marked failed) are "experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=60, grace_period=180)
            return optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction="maximize",
                load_if_exists=True,
            )
        except DBAPIError as err:
            if attempt + 1 == OPEN_ATTEMPTS:
                raise LeptonError(f"--storage {_safe_url(url)}: cannot open study {name!r}: {_reason(err)}") from None
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
        except Exception as err:  # noqa: BLE001  (SQLAlchemy's and the drivers' errors, all one line to the user)
            raise LeptonError(f"--storage {_safe_url(url)}: cannot open study {name!r}: {_reason(err)}") from None
    raise AssertionError("unreachable")


def _check_settings(study: optuna.Study, settings: dict[str, Any], url: str) -> None:
    """A study's trials compare only if they share scenario, budget, seed, objective and space: the first
    process records them, later ones must match."""
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise LeptonError(f"study {study.study_name!r} in {_safe_url(url)} minimises; lepton-sim tune maximises")
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, settings)
        return
    differ = [key for key in sorted(set(settings) | set(stored)) if settings.get(key) != stored.get(key)]
    if differ:
        raise LeptonError(
            f"study {study.study_name!r} in {_safe_url(url)} was set up with another {', '.join(differ)}; its "
            "trials would not compare with these: use the same settings, or another --study-name"
        )


def _check_folder(out: Path, study_name: str) -> None:
    """A tuning folder holds one study's trials (their run folders are numbered by trial): refuse another's."""
    marker = out / STUDY_FILE
    if not marker.is_file():
        return
    try:
        owner = json.loads(marker.read_text()).get("study_name")
    except (OSError, ValueError, AttributeError):
        owner = None
    if owner is not None and owner != study_name:
        raise LeptonError(
            f"{out} holds the trials of study {owner!r}; continue it with --study-name {owner}, or use another --out"
        )


def _sampler(
    sampler: str | optuna.samplers.BaseSampler, space: SearchSpace, seed: int | None
) -> optuna.samplers.BaseSampler:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    _check_choice("sampler", sampler, SAMPLERS)
    if sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(pruner: str | optuna.pruners.BasePruner, steps: int) -> optuna.pruners.BasePruner:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    _check_choice("pruner", pruner, PRUNERS)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=steps // 3)  # rl-zoo3's settings


# --------------------------------------------------------------------------------------------- helpers
def _trial_line(trial: optuna.trial.FrozenTrial, objective: str) -> str:
    state = STATES.get(trial.state.name, trial.state.name.lower())
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    if trial.state == optuna.trial.TrialState.COMPLETE:
        what = f"{objective} {trial.value:.3g}"
    else:
        what = trial.user_attrs.get("note", "")
    seconds = trial.duration.total_seconds() if trial.duration else math.nan
    return f"trial {trial.number}: {state}, {what} ({seconds:.1f} s; {params})"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _reason(err: BaseException) -> str:
    text = str(err) if isinstance(err, LeptonError) else f"{type(err).__name__}: {err}"
    text = one_line(text)
    return text if len(text) <= 300 else text[:297] + "..."


def _is_set(name: str, fixed: Mapping[str, Any]) -> bool:
    """Whether ``fixed`` sets the (possibly dotted) hyperparameter ``name``."""
    top, _, key = name.partition(".")
    inner = fixed.get(top)
    return (not key and top in fixed) or (bool(key) and isinstance(inner, dict) and key in inner)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LeptonError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _jsonable(value: Any) -> Any:
    """As stored in an Optuna storage (JSON), so what a process writes and what another reads compare."""
    return json.loads(json.dumps(value, default=str))


def _safe_url(url: str) -> str:
    """The storage URL without its password, for messages and records."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (a URL SQLAlchemy cannot read is shown as given)
        return url


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's own log lines (a traceback per failed trial) off: tune reports each trial in one line."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
