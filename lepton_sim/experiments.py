"""Experiments: one ordinary run per training seed in one folder, trained, resumed and evaluated together.

One seed is an anecdote; an experiment is the unit the statistics of lepton_sim.aggregate need. This module is
the only one that spells the experiment-folder layout (lepton_sim.runs spells each run's)::

    EXP/
        experiment.yaml          kind: experiment, scenario, algo, backend, seeds, runs {<seed>: s<seed>}, steps,
                                 created, command, train_config (the checked configuration every seed's run
                                 shares, seed left out: what starts a seed an interrupted experiment never began)
        s<seed>/                 an ordinary run folder per training seed
        eval/<target>[-<split>]/ report.json + report.md: the aggregate over training seeds (``evaluate EXP``)
            seeds/s<seed>/       report.json + report.md: that seed's ordinary report, on the same episodes

Runs go one after another, or ``workers`` at a time in spawned processes; a run is the same either way (same
seed, same model: training builds MLP networks with one torch thread). Every check runs for every seed before
anything is written. Ctrl-C or SIGTERM stops every run the way it stops one (each saves a checkpoint at its
current step); seeds not begun yet have no folder, and ``resume_experiment`` continues the stopped ones and
starts those, from ``train_config``.
"""

from __future__ import annotations

import datetime as _dt
import multiprocessing
import os
import re
import shlex
import signal
import sys
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from lepton_sim.aggregate import ExperimentReport
from lepton_sim.backends import get_backend
from lepton_sim.errors import LeptonError
from lepton_sim.io import uninterrupted, write_text_atomic
from lepton_sim.report import Report
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import MAX_SEED, Scenario, SuiteSplit, scenario_from_dict
from lepton_sim.training_config import TrainConfig

EXPERIMENT = "experiment.yaml"
KIND = "experiment"
EVAL = "eval"
SEEDS = "seeds"
REPORT = "report.json"
_SEED_DIR = re.compile(r"^s(\d+)$")


def seed_dir(seed: int) -> str:
    """The folder name of a training seed's run (and of its report under ``eval/<target>/seeds``)."""
    return f"s{int(seed)}"


def is_experiment(path: str | Path) -> bool:
    """A folder is an experiment when it holds experiment.yaml (its seed runs are ordinary run folders)."""
    return (Path(path) / EXPERIMENT).is_file()


@dataclass
class Experiment:
    """experiment.yaml, read or about to be written."""

    path: Path
    scenario: str
    algo: str
    backend: str
    seeds: list[int]
    runs: dict[int, str]
    steps: int
    train_config: dict[str, Any] = field(repr=False)
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))
    command: str = field(default_factory=lambda: shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        path = Path(path)
        source = path / EXPERIMENT
        if not source.is_file():
            raise LeptonError(f"{path} is not an experiment folder (no {EXPERIMENT})")
        try:
            data = yaml.safe_load(source.read_text())
            if not isinstance(data, dict) or data.get("kind") != KIND:
                raise ValueError(f"kind is not {KIND!r}")
            runs = {int(seed): str(name) for seed, name in data["runs"].items()}
            seeds = [int(seed) for seed in data["seeds"]]
            if sorted(runs) != sorted(seeds):
                raise ValueError("seeds and runs do not name the same seeds")
            return cls(
                path=path,
                scenario=str(data["scenario"]),
                algo=str(data["algo"]),
                backend=str(data["backend"]),
                seeds=seeds,
                runs=runs,
                steps=int(data["steps"]),
                train_config=dict(data["train_config"]),
                created=str(data.get("created", "")),
                command=str(data.get("command", "")),
            )
        except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise LeptonError(f"{source}: not a lepton-sim experiment ({type(err).__name__}: {err})") from None

    def save(self) -> None:
        data = {
            "kind": KIND,
            "scenario": self.scenario,
            "algo": self.algo,
            "backend": self.backend,
            "seeds": self.seeds,
            "runs": self.runs,
            "steps": self.steps,
            "created": self.created,
            "command": self.command,
            "train_config": self.train_config,
        }
        write_text_atomic(self.path / EXPERIMENT, yaml.safe_dump(data, sort_keys=False))

    def run_path(self, seed: int) -> Path:
        return self.path / self.runs[seed]

    def config_for(self, seed: int, steps: int | None = None, device: str = "auto") -> TrainConfig:
        """The configuration of ``seed``'s run (for a seed whose run never began)."""
        data = {**self.train_config, "seed": seed}
        if steps is not None:
            data["steps"] = steps
        if device != "auto":
            data["device"] = device
        return TrainConfig.from_file_data(data, str(self.path / EXPERIMENT))


def seed_runs(path: str | Path) -> dict[int, Path]:
    """Each training seed's run folder, in the experiment's seed order."""
    exp = Experiment.load(path)
    return {seed: exp.run_path(seed) for seed in exp.seeds}


def seed_reports(eval_dir: str | Path) -> dict[int, Report]:
    """Each training seed's ordinary report under an experiment evaluation folder (``seeds/s<seed>``), by seed."""
    folder = Path(eval_dir) / SEEDS
    found = sorted(
        (int(match.group(1)), path)
        for path in (folder.iterdir() if folder.is_dir() else [])
        if (match := _SEED_DIR.match(path.name)) and (path / REPORT).is_file()
    )
    if not found:
        raise LeptonError(f"{eval_dir}: no per-seed reports ({SEEDS}/s<seed>/{REPORT}); run lepton-sim evaluate EXP")
    return {seed: Report.load(path / REPORT) for seed, path in found}


def default_path(scenario_name: str, algo: str, root: str | Path = "runs") -> Path:
    """``<root>/<scenario>/<algo>-seeds-<time>``, made unique with a suffix."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / scenario_name.replace("/", "-") / f"{algo}-seeds-{stamp}"
    suffix = 1
    while path.exists():
        path = path.with_name(f"{algo}-seeds-{stamp}-{suffix}")
        suffix += 1
    return path


# ------------------------------------------------------------------------------------------------ training
def check_seeds(seeds: Sequence[int]) -> list[int]:
    """The training seeds as given, refused when empty, repeated or out of range (one line, nothing written)."""
    seeds = list(seeds)
    if not seeds:
        raise LeptonError("--seeds needs at least one seed")
    for seed in seeds:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            raise LeptonError(f"--seeds: each seed must be a whole number in [0, {MAX_SEED}], got {seed!r}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise LeptonError(f"--seeds: {', '.join(map(str, repeated))} given more than once; give each seed once")
    return seeds


def _check_workers(workers: int) -> int:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise LeptonError(f"workers must be a whole number >= 1, got {workers!r}")
    return workers


def train_experiment(
    scenario: str | Path | Scenario | None,
    seeds: Sequence[int],
    algo: str = "ppo",
    steps: int | None = None,
    n_envs: int | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    hyperparams_file: str | Path | None = None,
    eval_freq: int | None = None,
    eval_episodes: int = 10,
    checkpoint_freq: int | None = None,
    time_limit: float | None = None,
    progress_bar: bool = True,
    runs_root: str | Path = "runs",
    backend: str = "sb3",
    multi_agent: str | None = None,
    workers: int = 1,
    suite: str | Path | None = None,
    split: str = "train",
    rows: Sequence[str] | Mapping[str, float] | None = None,
) -> Path:
    """Train one run per seed of ``seeds`` into one experiment folder and return it (the other arguments are
    :func:`lepton_sim.train`'s). ``workers`` > 1 trains that many runs at a time, each in its own process.

    Ctrl-C or SIGTERM stops every run, each saving a checkpoint, and raises KeyboardInterrupt; a run that fails
    stops the experiment once the running ones end (LeptonError). Either way ``resume_experiment`` continues.
    ``suite`` (with ``split`` and ``rows``) trains every seed on a suite split instead of one scenario."""
    from lepton_sim.training import plan_training

    seeds = check_seeds(seeds)
    workers = _check_workers(workers)
    if "seed" in (overrides or {}):
        raise LeptonError("--seeds gives the training seeds; drop --set seed=...")
    if out is not None:
        _check_new(Path(out), seeds)
    settings: dict[str, Any] = dict(
        algo=algo,
        steps=steps,
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
    configs = {seed: plan_training(scenario, seed=seed, **settings)[0] for seed in seeds}  # every seed, first
    first = configs[seeds[0]]
    name = first.suite or str(first.scenario.get("name", "")) or Path(str(scenario)).stem
    path = Path(out) if out is not None else default_path(name, algo, runs_root)
    template = first.to_file_data()
    del template["seed"]
    exp = Experiment(
        path=path,
        scenario=name,
        algo=algo,
        backend=backend,
        seeds=seeds,
        runs={seed: seed_dir(seed) for seed in seeds},
        steps=first.steps,
        train_config=template,
    )
    path.mkdir(parents=True, exist_ok=True)
    exp.save()
    jobs = [_Job(seed, "start", exp.run_path(seed), configs[seed].to_file_data()) for seed in seeds]
    _run_jobs(exp, jobs, workers, progress_bar)
    return path


def resume_experiment(
    path: str | Path, steps: int | None = None, device: str = "auto", progress_bar: bool = True, workers: int = 1
) -> Path:
    """Continue every seed's run of an experiment from its latest checkpoint (up to ``steps``, default each run's
    own), start the seeds it never began, and leave finished runs alone. Every run is checked first."""
    workers = _check_workers(workers)
    exp = Experiment.load(path)
    jobs: list[_Job] = []
    for seed in exp.seeds:
        run_path = exp.run_path(seed)
        if not RunFolder.is_run(run_path):
            jobs.append(_Job(seed, "start", run_path, exp.config_for(seed, steps, device).to_file_data()))
            continue
        config = RunFolder(run_path).read_config()
        be = get_backend(config.backend)
        run = be.run_folder(run_path)
        done = be.checkpoints(run)
        if done and done[-1][0] >= (steps or config.steps) and run.final_model.is_file():
            continue  # finished: resuming it would only write a new log part
        try:
            be.check_resume(run, config)  # nothing to resume from: fails here, before any run is touched
        except LeptonError as err:
            raise LeptonError(
                f"{err}; to train seed {seed} from the start, delete {run_path} and resume the experiment"
            ) from None
        jobs.append(_Job(seed, "resume", run_path, {"steps": steps, "device": device}))
    if steps is not None and steps != exp.steps:  # seeds started from here on train to the new total too
        exp.steps, exp.train_config = steps, {**exp.train_config, "steps": steps}
        exp.save()
    if not jobs:
        print(f"{exp.path}: every seed's run is finished; nothing to resume", file=sys.stderr)
        return exp.path
    _run_jobs(exp, jobs, workers, progress_bar)
    return exp.path


@dataclass
class _Job:
    """One seed's run to train: ``start`` a new run folder from a configuration, or ``resume`` one."""

    seed: int
    kind: Literal["start", "resume"]
    path: Path
    settings: dict[str, Any]

    def run(self, progress_bar: bool) -> None:
        from lepton_sim.training import start_run, train

        if self.kind == "resume":
            train(resume=self.path, progress_bar=progress_bar, **self.settings)
            return
        config = TrainConfig.from_file_data(self.settings, str(self.path))
        scenario = scenario_from_dict(config.scenario, source=config.scenario_source or str(self.path))
        start_run(config, scenario, self.path, progress_bar)


def _run_jobs(exp: Experiment, jobs: list[_Job], workers: int, progress_bar: bool) -> None:
    from lepton_sim.training import terminate_as_interrupt

    with terminate_as_interrupt():
        if workers == 1:
            _run_in_sequence(exp, jobs, progress_bar)
        else:
            _run_in_parallel(exp, jobs, workers, progress_bar)


def _run_in_sequence(exp: Experiment, jobs: list[_Job], progress_bar: bool) -> None:
    for k, job in enumerate(jobs):
        if progress_bar:
            print(f"seed {job.seed} ({k + 1} of {len(jobs)}): {job.path}", file=sys.stderr, flush=True)
        try:
            job.run(progress_bar)
        except KeyboardInterrupt:
            _say_stopped(exp, "interrupted", [j.seed for j in jobs[k + 1 :]])
            raise
        except LeptonError as err:
            _say_stopped(exp, f"seed {job.seed} failed", [j.seed for j in jobs[k + 1 :]])
            raise LeptonError(f"seed {job.seed}: {err}") from None


def _run_in_parallel(exp: Experiment, jobs: list[_Job], workers: int, progress_bar: bool) -> None:
    """``workers`` runs at a time, each in a spawned process of its own process group: a Ctrl-C at the terminal
    reaches this process only, which passes one SIGINT to every running run (each then saves, as alone)."""
    context = multiprocessing.get_context("spawn")
    pending = list(jobs)
    live: dict[int, tuple[Any, Connection]] = {}
    failures: dict[int, str] = {}
    try:
        while pending or live:
            while pending and len(live) < workers and not failures:
                job = pending.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(job, send), name=f"lepton-sim seed {job.seed}")
                with uninterrupted():  # a started process is always in ``live``, so an interrupt reaches it
                    process.start()
                    live[job.seed] = (process, receive)
                send.close()
                if progress_bar:
                    print(f"seed {job.seed}: training in process {process.pid}: {job.path}", file=sys.stderr)
            if not live:
                break
            ended = wait([process.sentinel for process, _ in live.values()])
            for seed, (process, receive) in list(live.items()):
                if process.sentinel not in ended:
                    continue
                process.join()
                status, message = receive.recv() if receive.poll() else ("error", f"exit code {process.exitcode}")
                receive.close()
                del live[seed]
                if status != "ok":
                    failures[seed] = message
                elif progress_bar:
                    print(f"seed {seed}: finished: {exp.run_path(seed)}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        with uninterrupted():  # a second Ctrl-C waits until every run has saved
            for process, _ in live.values():
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGINT)
            for process, _ in live.values():
                process.join()
            _say_stopped(exp, "interrupted", [job.seed for job in pending])
        raise
    if failures:
        _say_stopped(exp, "a run failed", [job.seed for job in pending])
        raise LeptonError("; ".join(f"seed {seed}: {message}" for seed, message in sorted(failures.items())))


def _child(job: _Job, send: Connection) -> None:
    """A spawned run: reports ``(status, message)`` through the pipe and exits as ``lepton-sim train`` would."""
    os.setpgrp()
    try:
        job.run(progress_bar=False)
        send.send(("ok", ""))
    except KeyboardInterrupt:
        send.send(("interrupted", "interrupted"))
        sys.exit(130)
    except LeptonError as err:
        send.send(("error", str(err)))
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the parent reports it in one line with the seed
        send.send(("error", f"{type(err).__name__}: {err}"))
        sys.exit(1)


def _say_stopped(exp: Experiment, why: str, not_started: list[int]) -> None:
    seeds = f"seed{'s' if len(not_started) > 1 else ''} {', '.join(map(str, not_started))}"
    later = f"; not begun: {seeds}" if not_started else ""
    print(
        f"experiment {why}{later}; every run keeps what it saved; continue with: lepton-sim train --resume {exp.path}",
        file=sys.stderr,
        flush=True,
    )


def _check_new(path: Path, seeds: list[int]) -> None:
    if is_experiment(path):
        raise LeptonError(f"{path} already holds an experiment; choose another --out or --resume it")
    if RunFolder.is_run(path):
        raise LeptonError(f"{path} is a run folder; choose another --out for an experiment")
    taken = [seed for seed in seeds if (path / seed_dir(seed)).exists()]
    if taken:
        raise LeptonError(f"{path / seed_dir(taken[0])} already exists; choose another --out")


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate_experiment(
    experiment: str | Path,
    suite: str | Path | None = None,
    scenario: str | Path | Scenario | None = None,
    split: SuiteSplit = "test",
    episodes: int | None = None,
    seed: int | None = None,
    num_envs: int | None = None,
    out: str | Path | None = None,
    device: str = "auto",
    progress: bool = True,
    trust_pickle: bool = False,
) -> ExperimentReport:
    """Evaluate every seed's final model on the same episodes (:func:`lepton_sim.evaluate`'s arguments) and sum
    the reports up over training seeds. ``out`` saves the aggregate there and each seed's report in
    ``out/seeds/s<seed>``."""
    from lepton_sim.evaluation import evaluate

    exp = Experiment.load(experiment)
    runs = {s: get_backend(exp.backend).run_folder(path) for s, path in seed_runs(experiment).items()}
    unfinished = [s for s, run in runs.items() if not run.final_model.exists()]
    if unfinished:
        raise LeptonError(
            f"{exp.path}: seed {unfinished[0]}'s run has no {runs[unfinished[0]].final_model.name} (training "
            f"unfinished?); continue the experiment with lepton-sim train --resume {exp.path}"
        )
    reports = {}
    for s, run in runs.items():
        reports[s] = evaluate(
            str(run.path),
            suite=suite,
            scenario=scenario,
            split=split,
            episodes=episodes,
            seed=seed,
            num_envs=num_envs,
            out=Path(out) / SEEDS / seed_dir(s) if out is not None else None,
            device=device,
            progress=progress,
            trust_pickle=trust_pickle,
        )
    report = ExperimentReport.of(reports, policy=str(experiment), algo=exp.algo)
    if out is not None:
        report.save(out)
    return report
