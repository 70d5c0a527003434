"""Train an RLlib agent (new API stack) on a scenario into a run folder (lepton_sim.runs owns the layout).

One iteration is one ``algo.train()``; steps are env steps sampled (all runners and sub-envs together). After
each iteration: a training-progress row (``logs/part<k>/progress.csv``, and ``monitor.csv`` in SB3's format with
one row per iteration: the mean return of the episodes that ended in it, so ``lepton-sim plot`` draws RLlib and
SB3 runs alike), a checkpoint when ``checkpoint_freq`` steps have passed, and the periodic evaluation
(lepton_sim.periodic_evaluation: the same evaluator, seeds and evaluations.csv as every back end).

Checkpoints are RLlib algorithm checkpoints (``algo.save_to_path`` with an absolute path: relative ones fail),
written to a temporary folder beside their place and renamed into it, each with the lepton-sim record
(lepton_sim.agents.rllib.record). ``--resume`` restores the latest into a freshly built algorithm
(``restore_from_path``), so the runner layout may differ; with ``normalize: true`` that includes the
MeanStdFilter's statistics, which the record also holds (frozen, for evaluation): training continues with them.

An iteration that samples nothing (every runner crashed and is restarting) is counted; ``max_empty_iterations``
in a row stop training with an error that quotes the env's own exception. Ctrl-C / SIGTERM save a checkpoint
and the model, as the SB3 back end does.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from lepton_sim.agents.rllib.algo_config import (
    build_algo_config,
    needs_flattening,
    normalizes_observations,
    register_env,
)
from lepton_sim.agents.rllib.cluster import ray_session
from lepton_sim.agents.rllib.envs import FAIL_AFTER_KEY, is_uint8_image, read_env_error
from lepton_sim.agents.rllib.hyperparams import fault_settings, layout
from lepton_sim.agents.rllib.policy import ModuleActor, build_module, policy_from_actors
from lepton_sim.agents.rllib.record import (
    CheckpointRecord,
    ModuleRecord,
    ObsNormalization,
    class_path,
    has_record,
    write_record,
)
from lepton_sim.errors import LeptonError
from lepton_sim.io import uninterrupted
from lepton_sim.multi_agent import SharedPolicy
from lepton_sim.periodic_evaluation import PeriodicEvaluator
from lepton_sim.policy import Policy
from lepton_sim.runs import MONITOR, RunFolder
from lepton_sim.scenario import Scenario
from lepton_sim.training_config import TrainConfig

PROGRESS = "progress.csv"
PROGRESS_FIELDS = [
    "iteration",
    "timesteps",
    "env_steps_this_iter",
    "episodes_this_iter",
    "episode_return_mean",
    "episode_len_mean",
    "time_this_iter_s",
    "wall_time_s",
    "env_runner_restarts",
    "healthy_env_runners",
]
FAIL_AFTER_ENV = "LEPTON_SIM_RLLIB_FAIL_AFTER"  # tests: make every training env raise after N steps


def check_resume(run: RunFolder, config: TrainConfig) -> None:
    latest = run.latest_checkpoint()
    if latest is None:
        raise LeptonError(f"{run.path}: nothing to resume from (no checkpoints in {run.checkpoints_dir})")
    if not has_record(latest[1]) or not (latest[1] / "rllib_checkpoint.json").is_file():
        raise LeptonError(f"{latest[1]}: not a complete RLlib checkpoint of a lepton-sim run (no lepton.json)")


def env_to_module_state(algo: Any) -> dict[str, Any]:
    """The (merged) env-to-module connector state RLlib keeps in the driver: the local env runner's pipeline, or
    the algorithm's own copy where there is no local runner; RLlib syncs it with the runners every iteration."""
    from ray.rllib.core import COMPONENT_ENV_TO_MODULE_CONNECTOR

    if algo.env_runner is not None:
        state = algo.env_runner.get_state(components=[COMPONENT_ENV_TO_MODULE_CONNECTOR])
        return dict(state.get(COMPONENT_ENV_TO_MODULE_CONNECTOR) or {})
    return dict(algo.env_to_module_connector.get_state() if algo.env_to_module_connector is not None else {})


def normalization_from_state(state: dict[str, Any], keys: list[str | None]) -> ObsNormalization:
    """The MeanStdFilter's statistics (per filter key) as the filter itself would apply them now."""
    from ray.rllib.connectors.env_to_module import MeanStdFilter
    from ray.rllib.utils.filter import RunningStat
    from ray.rllib.utils.numpy import SMALL_NUMBER

    filters = state.get(MeanStdFilter.__name__)
    if not filters:
        raise LeptonError("normalize: true, but RLlib's env-to-module pipeline holds no MeanStdFilter state")
    clips = set()
    means, stds, counts = {}, {}, {}
    for key in keys:
        entry = filters[key]
        if not (entry["de_mean_to_zero"] and entry["de_std_to_one"]) or len(entry["running_stats"]) != 1:
            raise LeptonError(f"unexpected MeanStdFilter settings for {key!r} (one Box, de-meaned and de-std'ed)")
        stat = RunningStat.from_state(entry["running_stats"][0])
        means[key], stds[key], counts[key] = np.array(stat.mean), np.array(stat.std), int(stat.n)
        clips.add(entry["clip_by_value"])
    (clip,) = clips
    return ObsNormalization(
        clip=float(clip or 0.0), epsilon=float(SMALL_NUMBER), keys=list(keys), means=means, stds=stds, counts=counts
    )


def _env_spaces(scenario: Scenario) -> tuple[Any, Any]:
    from lepton_sim.make import make

    env = make(scenario)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


class _Trainer:
    def __init__(self, run: RunFolder, config: TrainConfig, scenario: Scenario, algo: Any, run_id: str) -> None:
        self.run, self.config, self.scenario, self.algo, self.run_id = run, config, scenario, algo, run_id
        self.observation_space, self.action_space = _env_spaces(scenario)
        self.steps = 0
        self.last_saved: int | None = None
        self._record: CheckpointRecord | None = None
        self._actors: dict[str, ModuleActor] | None = None

    # ------------------------------------------------------------------ the record and the live policy
    def record(self) -> CheckpointRecord:
        """The record as of now (the normalisation statistics are the ones the runners use next)."""
        if self._record is None:
            self._record = self._make_record()
        self._record.timesteps = self.steps
        if self._record.obs_normalization is not None:
            keys = self._record.obs_normalization.keys
            self._record.obs_normalization = normalization_from_state(env_to_module_state(self.algo), keys)
        return self._record

    def _module_ids(self) -> list[str]:
        weights = self.algo.learner_group.get_weights()
        return sorted(weights)

    def _make_record(self) -> CheckpointRecord:
        import ray

        mode = self.config.multi_agent if self.config.multi_agent in ("shared", "independent") else None
        modules: dict[str, ModuleRecord] = {}
        spec = self.algo.config.get_multi_rl_module_spec(spaces=self.algo.env_runner_group.get_spaces())
        for k, mid in enumerate(self._module_ids()):
            sub = spec.rl_module_specs[mid]
            built = sub.build()
            modules[mid] = ModuleRecord(
                module_id=mid,
                module_class=class_path(built),
                catalog_class=class_path(built.catalog) if getattr(built, "catalog", None) is not None else "",
                observation_space=built.observation_space,
                action_space=built.action_space,
                model_config=dict(built.model_config or {}),
                weights=f"module_{k}.npz",
            )
        agents: list[str] = []
        agent_to_module: dict[str, str] = {}
        if mode is not None:
            from lepton_sim.agents.rllib.algo_config import SHARED_MODULE, agent_ids

            agents = agent_ids(self.scenario)
            agent_to_module = {a: SHARED_MODULE if mode == "shared" else a for a in agents}
        cfg = self.algo.config
        normalization = None
        if normalizes_observations(self.config.hyperparams, self.observation_space, mode):
            normalization = ObsNormalization(clip=0.0, epsilon=0.0, keys=list(agents) if mode else [None])
        return CheckpointRecord(
            algo=self.config.algo,
            scenario=self.scenario.name,
            env_id=self.scenario.env,
            observation_space=self.observation_space,
            action_space=self.action_space,
            flatten_observations=mode is None and needs_flattening(self.observation_space),
            scale_images=mode is None and is_uint8_image(self.observation_space),
            normalize_actions=bool(cfg.normalize_actions),
            clip_actions=bool(cfg.clip_actions),
            multi_agent=mode,
            modules=modules,
            agents=agents,
            agent_to_module=agent_to_module,
            timesteps=self.steps,
            ray_version=ray.__version__,
            obs_normalization=normalization,
        )

    def live_policy(self) -> Policy:
        """The model being trained as a Policy (the learner's current weights in inference-only modules)."""
        record = self.record()
        if self._actors is None:
            self._actors = {mid: ModuleActor(build_module(m)) for mid, m in record.modules.items()}
        for mid, state in self.algo.learner_group.get_weights().items():
            self._actors[mid].set_weights(state)
        policy = policy_from_actors(record, self._actors)
        return SharedPolicy(policy) if record.multi_agent == "shared" else policy

    # ------------------------------------------------------------------ saving
    def save(self, target: Path) -> Path:
        """Checkpoint + record into ``target``, atomically (a temporary folder renamed into place)."""
        target = Path(target).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with uninterrupted():
            shutil.rmtree(tmp, ignore_errors=True)
            self.algo.save_to_path(str(tmp))
            write_record(tmp, self.record(), self.algo.learner_group.get_weights())
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def checkpoint(self) -> Path:
        path = self.save(self.run.checkpoint(self.steps))
        self.last_saved = self.steps
        return path


def _number(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _count(value: Any) -> int:
    """A sampled-steps or episodes figure of RLlib's results; 0 where it is missing or NaN (an iteration whose
    runners returned nothing within ``sample_timeout_s`` after earlier ones did: an empty iteration)."""
    number = _number(value)
    return 0 if math.isnan(number) else int(number)


class _Logs:
    """progress.csv (one row per iteration) and monitor.csv (SB3's format: one row per iteration that ended
    episodes, r = their mean return, l = env steps since the previous row)."""

    def __init__(self, log_dir: Path, scenario: Scenario) -> None:
        self.progress = (log_dir / PROGRESS).open("w", newline="")
        self.writer = csv.DictWriter(self.progress, fieldnames=PROGRESS_FIELDS)
        self.writer.writeheader()
        self.monitor = (log_dir / MONITOR).open("w", newline="")
        self.monitor.write("#" + json.dumps({"t_start": time.time(), "env_id": scenario.env}) + "\n")
        self.monitor.write("r,l,t\n")
        self.start = time.time()
        self.pending_steps = 0

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.progress.flush()
        self.pending_steps += int(row["env_steps_this_iter"])
        ret = row["episode_return_mean"]
        if row["episodes_this_iter"] and not math.isnan(ret):
            self.monitor.write(f"{ret:.6g},{self.pending_steps},{time.time() - self.start:.3f}\n")
            self.monitor.flush()
            self.pending_steps = 0

    def close(self) -> None:
        self.progress.close()
        self.monitor.close()


def train_rllib(
    run: RunFolder, config: TrainConfig, scenario: Scenario, resume: bool = False, progress_bar: bool = True
) -> None:
    """Train (or, with ``resume``, continue from the latest checkpoint) and save the final model in ``run``."""
    if resume:
        check_resume(run, config)
    checkpoint = run.latest_checkpoint() if resume else None
    done_steps = checkpoint[0] if checkpoint else 0
    if checkpoint:
        run.truncate_evaluations(done_steps)
    hp = config.hyperparams
    faults = fault_settings(hp)
    run_id = f"{run.path.name}-{uuid.uuid4().hex[:8]}"
    fail_after = int(os.environ[FAIL_AFTER_ENV]) if os.environ.get(FAIL_AFTER_ENV) else None
    observation_space, _ = _env_spaces(scenario)
    import torch

    threads = torch.get_num_threads()
    if not layout(hp)["learners"] and not layout(hp)["gpus_per_learner"]:
        # the local learner's small MLPs: one thread is faster than several competing with the env runners
        # (Ray gives each runner one), as for SB3; the caller's process gets its own count back
        torch.set_num_threads(1)
    try:
        _train_on_ray(
            run, config, scenario, checkpoint, done_steps, run_id, fail_after, observation_space, faults, progress_bar
        )
    finally:
        torch.set_num_threads(threads)


def _train_on_ray(
    run: RunFolder,
    config: TrainConfig,
    scenario: Scenario,
    checkpoint: tuple[int, Path] | None,
    done_steps: int,
    run_id: str,
    fail_after: int | None,
    observation_space: Any,
    faults: dict[str, Any],
    progress_bar: bool = True,
) -> None:
    hp = config.hyperparams
    from lepton_sim.training import terminate_as_interrupt

    # ray.init replaces the driver's SIGTERM handler with its own sys.exit: SIGTERM is made an interrupt again
    # inside the session, so a killed run saves a checkpoint and the model as Ctrl-C does
    with ray_session(), terminate_as_interrupt():
        register_env()
        algo_config = build_algo_config(
            config, scenario, observation_space, run_id, seed=config.seed + done_steps, fail_after=fail_after
        )
        try:
            algo = algo_config.build_algo()
        except Exception as err:  # noqa: BLE001  (an env that cannot start in a runner, a bad setting)
            raise LeptonError(f"{run.path}: RLlib could not build the algorithm: {_cause(err, run_id)}") from None
        error: BaseException | None = None
        try:
            trainer = _Trainer(run, config, scenario, algo, run_id)
            if checkpoint is not None:
                algo.restore_from_path(str(checkpoint[1].resolve()))
            trainer.steps = done_steps
            trainer.last_saved = done_steps if checkpoint else None
            trainer.record()  # while every runner is healthy: the modules' spaces come from them
            gpus = float(layout(hp)["gpus_per_learner"])
            run.record_device("cuda" if gpus > 0 else "cpu")
            _loop(trainer, config, faults, progress_bar)
        except BaseException as err:  # noqa: BLE001  (raised again below, once the algorithm is stopped)
            error = err
        _stop_quietly(algo)  # outside the except block: Ray's shutdown logging must not print our traceback
        if error is not None:
            raise error


def _stop_quietly(algo: Any) -> None:
    try:
        algo.stop()
    except Exception:  # noqa: BLE001  (the run's own outcome matters, not a second failure)
        pass


def _loop(trainer: _Trainer, config: TrainConfig, faults: dict[str, Any], progress_bar: bool) -> None:
    run, algo = trainer.run, trainer.algo
    log_dir = run.new_log_dir()
    logs = _Logs(log_dir, trainer.scenario)
    evaluator = (
        PeriodicEvaluator(run, trainer.scenario, config.seed, config.eval_episodes) if config.eval_freq > 0 else None
    )
    next_eval = (trainer.steps // config.eval_freq + 1) * config.eval_freq if evaluator else math.inf
    next_ckpt = (trainer.steps // config.checkpoint_freq + 1) * config.checkpoint_freq
    empty, iteration, start = 0, 0, time.time()
    bar = _progress(progress_bar, config.steps, trainer.steps)
    try:
        while trainer.steps < config.steps:
            try:
                result = algo.train()
            except (KeyboardInterrupt, LeptonError):
                raise
            except Exception as err:  # noqa: BLE001  (an env runner died and was not restarted)
                _save_interrupted(trainer, why="an env runner failed")
                saved = "; what was learnt is saved (see above)" if trainer.steps else ""
                raise LeptonError(
                    f"{run.path}: training stopped: an env runner failed: {_cause(err, trainer.run_id)}{saved}"
                ) from None
            iteration += 1
            runners = result.get("env_runners", {}) or {}
            sampled = _count(runners.get("num_env_steps_sampled"))
            trainer.steps += sampled
            ft = result.get("fault_tolerance", {}) or {}
            logs.write(
                {
                    "iteration": result.get("training_iteration", iteration),
                    "timesteps": trainer.steps,
                    "env_steps_this_iter": sampled,
                    "episodes_this_iter": _count(runners.get("num_episodes")),
                    "episode_return_mean": _number(runners.get("episode_return_mean")),
                    "episode_len_mean": _number(runners.get("episode_len_mean")),
                    "time_this_iter_s": round(_number(result.get("time_this_iter_s")), 3),
                    "wall_time_s": round(time.time() - start, 2),
                    "env_runner_restarts": ft.get("num_remote_worker_restarts", 0),
                    "healthy_env_runners": ft.get("num_healthy_workers", ""),
                }
            )
            if bar is not None:
                bar.update(sampled)
            if sampled == 0:
                empty += 1
                if empty >= int(faults["max_empty_iterations"]):
                    _save_interrupted(trainer, why=f"{empty} iterations in a row sampled nothing")
                    cause = read_env_error(trainer.run_id)
                    raise LeptonError(
                        f"{run.path}: training stopped: {empty} iterations in a row sampled no env steps (every "
                        "env runner failed or timed out; restarts: "
                        f"{ft.get('num_remote_worker_restarts', 0)} of at most {faults['max_restarts']})"
                        + (f"; the env raised {cause}" if cause else "; the env runners' own error is above")
                    )
                continue
            empty = 0
            if trainer.steps >= next_ckpt:
                next_ckpt = (trainer.steps // config.checkpoint_freq + 1) * config.checkpoint_freq
                trainer.checkpoint()
            if evaluator is not None and trainer.steps >= next_eval:
                next_eval = (trainer.steps // config.eval_freq + 1) * config.eval_freq
                if evaluator.evaluate(trainer.live_policy(), trainer.steps):
                    trainer.save(run.best_model)
                if evaluator.stop_reason is not None:
                    break
            if config.time_limit and time.time() - start >= config.time_limit:
                break
    except KeyboardInterrupt:
        _save_interrupted(trainer)
        raise
    finally:
        logs.close()
        if bar is not None:
            bar.close()
    with uninterrupted():
        trainer.save(run.final_model)
        if trainer.last_saved != trainer.steps:
            trainer.checkpoint()  # a final checkpoint, so a later --resume with more --steps continues from here


def _progress(enabled: bool, total: int, done: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="step", desc="training (rllib)")


def _save_interrupted(trainer: _Trainer, why: str = "interrupted") -> None:
    run, steps = trainer.run, trainer.steps
    if steps == 0 or steps == trainer.last_saved and run.final_model.is_dir():
        return  # nothing learnt since the last save
    with uninterrupted():
        try:
            checkpoint = run.checkpoint(steps)
            if trainer.last_saved != steps or not checkpoint.is_dir():
                checkpoint = trainer.checkpoint()
            trainer.save(run.final_model)
        except Exception as err:  # noqa: BLE001 - the interrupt still ends the run; say what is left
            last = run.latest_checkpoint()
            kept = f"the latest checkpoint is {last[1]}" if last else "there is no checkpoint to resume from"
            print(f"{why} at {steps} steps; saving failed ({err}); {kept}", file=sys.stderr)
            return
    print(
        f"{why} at {steps} steps: saved checkpoint {checkpoint} and model {run.final_model}; "
        f"continue with: lepton-sim train --resume {run.path}",
        file=sys.stderr,
        flush=True,
    )


def _cause(err: BaseException, run_id: str) -> str:
    """One line: the env's own error where a runner recorded it, else the exception (Ray's are long)."""
    recorded = read_env_error(run_id)
    text = " ".join(str(err).split()) or type(err).__name__
    if len(text) > 400:
        text = text[:397] + "..."
    return f"the env raised {recorded}" if recorded else f"{type(err).__name__}: {text}"


__all__ = ["FAIL_AFTER_ENV", "FAIL_AFTER_KEY", "check_resume", "train_rllib"]
