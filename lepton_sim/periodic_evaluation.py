"""Periodic evaluation during training, for every back end and multi-agent mode: the same episode loop as
``lepton-sim evaluate`` (fixed seeds, the scenario's own success key, fresh processes where the env spec asks
for it), one ``evaluations.csv`` schema, and the decision when a model is the best so far."""

from __future__ import annotations

import math
import time

from lepton_sim.evaluation import run_episodes
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario

EVAL_SEED_OFFSET = 50_000  # periodic evaluation seeds, away from training (seed+i) and test (seed+100000+k)


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    return [seed + EVAL_SEED_OFFSET + k for k in range(episodes)]


class PeriodicEvaluator:
    """Evaluates a policy on ``episodes`` fixed seeds and appends the result to the run's evaluations.csv."""

    def __init__(
        self, run: RunFolder, scenario: Scenario, seed: int, episodes: int, num_envs: int | None = None
    ) -> None:
        self.run, self.scenario = run, scenario
        self.seeds = evaluation_seeds(seed, episodes)
        self.num_envs = num_envs
        self.start = time.time() - run.last_wall_time()  # a resumed run's curve continues on the same clock
        rows = run.read_evaluations()
        self.best = max((float(r["mean_return"]) for r in rows), default=-math.inf)

    def evaluate(self, policy: Policy, timesteps: int) -> bool:
        """Run the episodes, write the row; True if the mean return is the best so far (save the best model)."""
        episodes = run_episodes(policy, self.scenario, self.seeds, num_envs=self.num_envs)
        returns = [e.episode_return for e in episodes]
        lengths = [e.length for e in episodes]
        mean = sum(returns) / len(returns)
        self.run.append_evaluation(
            {
                "timesteps": int(timesteps),
                "mean_return": float(mean),
                "std_return": float((sum((r - mean) ** 2 for r in returns) / len(returns)) ** 0.5),
                "success_rate": float(sum(e.success for e in episodes) / len(episodes)),
                "mean_length": float(sum(lengths) / len(lengths)),
                "wall_time_s": round(time.time() - self.start, 2),
            }
        )
        if mean > self.best:
            self.best = mean
            return True
        return False
