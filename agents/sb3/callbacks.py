"""Training callbacks: atomic checkpoints, periodic evaluation through lepton-sim's own evaluator (which also
decides the best model), and a wall-clock limit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from stable_baselines3.common.callbacks import BaseCallback

from lepton_sim.agents.sb3.model_files import save_model
from lepton_sim.io import uninterrupted, write_atomic
from lepton_sim.periodic_evaluation import PeriodicEvaluator
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder


class CheckpointCallback(BaseCallback):
    """Every ``save_freq`` timesteps: model (with its VecNormalize stats) and replay buffer (off-policy, latest)."""

    def __init__(self, run: RunFolder, save_freq: int) -> None:
        super().__init__()
        self.run = run
        self.save_freq = save_freq
        self._next = save_freq
        self.last_saved: int | None = None  # timesteps of the last checkpoint this callback wrote

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.save_freq
            self.save()
        return True

    def save(self) -> Path:
        """A checkpoint at the model's current step (also called on interrupt, between callback calls). A
        Ctrl-C waits until all its files are written; the older replay buffer goes only once the new one is."""
        steps = self.model.num_timesteps
        path = self.run.checkpoint(steps)
        with uninterrupted():
            self.run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            save_model(self.model, path)
            if getattr(self.model, "replay_buffer", None) is not None:
                buffer = self.run.replay_buffer(steps)
                write_atomic(buffer, lambda tmp: self.model.save_replay_buffer(tmp))
                for old in self.run.replay_buffers():
                    if old != buffer:
                        old.unlink()
            self.last_saved = steps
        return path


class PeriodicEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps (over all training envs): evaluate the current model with lepton-sim's
    evaluator (evaluations.csv) and save best_model when it is the best so far. ``make_policy`` wraps the
    model being trained as a Policy (with its live normalisation statistics). Evaluations fall on multiples
    of the period in total timesteps, so a resumed run continues on the same grid. Training ends early when the
    evaluator's hook asks it to (lepton_sim.periodic_evaluation.StopTraining)."""

    def __init__(
        self, evaluator: PeriodicEvaluator, make_policy: Callable[[Any], Policy], eval_freq: int, n_envs: int
    ) -> None:
        super().__init__()
        self.evaluator, self.make_policy = evaluator, make_policy
        self.period = max(eval_freq // n_envs, 1) * n_envs  # whole calls (one call = one step of every env)
        self._next = self.period

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.period + 1) * self.period

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.period + 1) * self.period
            if self.evaluator.evaluate(self.make_policy(self.model), self.num_timesteps):
                with uninterrupted():
                    save_model(self.model, self.evaluator.run.best_model)
        return self.evaluator.stop_reason is None  # False ends learn(); the run then saves as at its end


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
