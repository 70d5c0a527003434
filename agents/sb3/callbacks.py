"""Training callbacks: atomic checkpoints, periodic evaluation through lepton-sim's own evaluator (which also
decides the best model), and a wall-clock limit."""
from __future__ import annotations

import time
from typing import Any, Callable

from stable_baselines3.common.callbacks import BaseCallback

from lepton_sim.agents.sb3.model_files import save_model
from lepton_sim.io import write_atomic
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

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.save_freq
            self.save()
        return True

    def save(self) -> None:
        self.run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        save_model(self.model, self.run.checkpoint(self.num_timesteps))
        if getattr(self.model, "replay_buffer", None) is not None:
            for old in self.run.replay_buffers():
                old.unlink()
            write_atomic(self.run.replay_buffer(self.num_timesteps), lambda tmp: self.model.save_replay_buffer(tmp))


class PeriodicEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps (over all training envs): evaluate the current model with lepton-sim's
    evaluator (evaluations.csv) and save best_model when it is the best so far. ``make_policy`` wraps the
    model being trained as a Policy (with its live normalisation statistics)."""

    def __init__(self, evaluator: PeriodicEvaluator, make_policy: Callable[[Any], Policy], eval_freq: int,
                 n_envs: int) -> None:
        super().__init__()
        self.evaluator, self.make_policy = evaluator, make_policy
        self.every = max(eval_freq // n_envs, 1)  # in calls (one call = one step of every training env)

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            if self.evaluator.evaluate(self.make_policy(self.model), self.num_timesteps):
                save_model(self.model, self.evaluator.run.best_model)
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
