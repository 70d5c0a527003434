"""Training callbacks: atomic checkpoints and best model, and a CSV of periodic evaluations for learning curves."""
from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Any, Callable

from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from lepton_sim.io import write_atomic

CHECKPOINT_RE = re.compile(r"ckpt_(\d+)_steps\.zip$")


def normalizer_path(model_path: Path) -> Path:
    """Where the VecNormalize statistics that belong to a model file live: ``<stem>_vecnormalize.pkl``."""
    return model_path.with_name(f"{model_path.stem}_vecnormalize.pkl")


def save_model_atomic(model, path: Path) -> None:  # noqa: ANN001
    """Save the model and, if training normalises observations, the matching statistics beside it."""
    write_atomic(path, lambda tmp: model.save(tmp))
    normalizer = model.get_vec_normalize_env()
    if normalizer is not None:
        write_atomic(normalizer_path(path), lambda tmp: normalizer.save(tmp))


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's checkpoints as (timesteps, path), oldest first."""
    return sorted((int(m.group(1)), p) for p in (run_dir / "checkpoints").glob("ckpt_*_steps.zip")
                  if (m := CHECKPOINT_RE.search(p.name)))


def latest_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    found = checkpoints(run_dir)
    return (found[-1][1], found[-1][0]) if found else None


class CheckpointCallback(BaseCallback):
    """Every ``save_freq`` timesteps: model (with its VecNormalize stats) and replay buffer (off-policy, latest)."""

    def __init__(self, run_dir: Path, save_freq: int) -> None:
        super().__init__()
        self.dir = run_dir / "checkpoints"
        self.save_freq = save_freq
        self._next = save_freq

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.save_freq
            self.save()
        return True

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        save_model_atomic(self.model, self.dir / f"ckpt_{self.num_timesteps}_steps.zip")
        if hasattr(self.model, "replay_buffer") and self.model.replay_buffer is not None:
            for old in self.dir.glob("replay_buffer*.pkl"):
                old.unlink()
            write_atomic(self.dir / f"replay_buffer_{self.num_timesteps}.pkl",
                         lambda tmp: self.model.save_replay_buffer(tmp))


class SaveBestCallback(BaseCallback):
    """Called by EvalCallback on a new best mean return: saves best_model.zip atomically."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.path = run_dir / "best_model.zip"

    def _on_step(self) -> bool:
        save_model_atomic(self.model, self.path)
        return True


class EvalCsvCallback(BaseCallback):
    """Called by EvalCallback after each evaluation: appends a row to evaluations.csv (survives resumes)."""

    FIELDS = ["timesteps", "mean_return", "std_return", "success_rate", "mean_length", "wall_time_s"]

    def __init__(self, run_dir: Path, start_wall_time: float = 0.0) -> None:
        super().__init__()
        self.path = run_dir / "evaluations.csv"
        self.start = time.time() - start_wall_time

    def _on_step(self) -> bool:
        parent: EvalCallback = self.parent  # type: ignore[assignment]
        successes = parent._is_success_buffer  # this evaluation's episodes (SB3 keeps it until the next one)
        append_evaluation(self.path, self.num_timesteps, list(parent.evaluations_results[-1]),
                          list(parent.evaluations_length[-1]), successes, time.time() - self.start)
        return True


def append_evaluation(path: Path, timesteps: int, returns: list[float], lengths: list[float],
                      successes: list[bool], wall_time: float) -> None:
    """One row of evaluations.csv (the learning curve that `lepton-sim plot` reads)."""
    row = {
        "timesteps": timesteps,
        "mean_return": float(sum(returns) / len(returns)),
        "std_return": float(_std(returns)),
        "success_rate": float(sum(successes) / len(successes)) if successes else "",
        "mean_length": float(sum(lengths) / len(lengths)),
        "wall_time_s": round(wall_time, 2),
    }
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EvalCsvCallback.FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


class PolicyEvalCallback(BaseCallback):
    """Periodic evaluation through lepton-sim's evaluation loop, which runs the episodes in fresh worker
    processes. For training envs that hold the process's only simulation (a parameter-shared traffic run on
    libsumo), where SB3's EvalCallback would need a second simulation beside it. Writes the same
    evaluations.csv rows and best_model.zip as the EvalCallback path."""

    def __init__(self, run_dir: Path, scenario: Any, make_policy: Callable[[Any], Any], eval_freq: int,
                 seeds: list[int], start_wall_time: float = 0.0) -> None:
        super().__init__()
        self.run_dir, self.scenario, self.make_policy = run_dir, scenario, make_policy
        self.eval_freq, self.seeds = eval_freq, seeds
        self.start = time.time() - start_wall_time
        self.last_eval = 0
        self.best = -float("inf")

    def _on_training_start(self) -> None:
        self.last_eval = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_eval < self.eval_freq:
            return True
        from lepton_sim.evaluation import run_episodes

        self.last_eval = self.num_timesteps
        episodes = run_episodes(self.make_policy(self.model), self.scenario, self.seeds, isolate=True)
        returns = [e.episode_return for e in episodes]
        append_evaluation(self.run_dir / "evaluations.csv", self.num_timesteps, returns,
                          [e.length for e in episodes], [e.success for e in episodes], time.time() - self.start)
        mean = sum(returns) / len(returns)
        if mean > self.best:
            self.best = mean
            save_model_atomic(self.model, self.run_dir / "best_model.zip")
        return True


class StopAfterWallTime(BaseCallback):
    """Ends training after ``seconds`` of wall-clock time (learning benchmarks and time-boxed runs)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.start = time.time()

    def _on_training_start(self) -> None:
        self.start = time.time()

    def _on_step(self) -> bool:
        return time.time() - self.start < self.seconds


def _std(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5
