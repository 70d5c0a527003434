"""Periodic evaluation during training, for every back end and multi-agent mode: the same episode loop as
``lepton-sim evaluate`` (fixed seeds, the scenario's own success key, fresh processes where the env spec asks
for it), one ``evaluations.csv`` schema, and the decision when a model is the best so far.

An evaluation hook sees every row as it is written and may end training early by raising :class:`StopTraining`
(``lepton-sim tune`` prunes trials so). The back end then stops as at the end of its budget, final model and
checkpoint saved, so an early-stopped run folder is as valid as any. Give the hook to the evaluator, or install
it around a ``train()`` call with :func:`evaluation_hook`, which reaches the evaluator whatever the back end.

Validation seeds. Periodic evaluation (and the best model it picks) runs on seeds apart from the test seeds, so
the held-out report measures a model that was never selected on its own episodes: episode k of a run with seed s
runs seed ``50000 + (s + k) mod 50000``, always inside [50000, 100000) (:data:`VALIDATION_SEEDS`). The built-in
suites' test rows start at 100000 or 200000 and their validation rows at 50000 (tests/test_validation_seeds.py
checks that the sets never meet); for the usual run seeds (s + k < 50000) this is s + 50000 + k, as before. A run
trained on a suite evaluates the suite's ``validation`` rows, each from its own seed, or, for a suite without
them, the rows it trains on, on the seeds above.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from lepton_sim.evaluation import run_episodes
from lepton_sim.policy import Policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import Scenario

EVAL_SEED_OFFSET = 50_000  # periodic evaluation seeds: [50000, 100000), below every built-in test seed (>= 100000)
VALIDATION_SEEDS = range(EVAL_SEED_OFFSET, 2 * EVAL_SEED_OFFSET)
EvaluationHook = Callable[[int, dict[str, Any]], None]  # (timesteps, the evaluations.csv row)
_HOOK: ContextVar[EvaluationHook | None] = ContextVar("lepton_sim_evaluation_hook", default=None)


class StopTraining(Exception):
    """Raised by an evaluation hook to end training after this evaluation; the message says why."""


@contextmanager
def evaluation_hook(hook: EvaluationHook) -> Iterator[None]:
    """Within the block, evaluators built without a hook of their own call ``hook`` after each evaluation."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """The periodic evaluation seeds of a run with seed ``seed``: ``50000 + (seed + k) mod 50000``, inside
    :data:`VALIDATION_SEEDS` whatever the run seed (repeating only past 50000 episodes)."""
    span = len(VALIDATION_SEEDS)
    return [VALIDATION_SEEDS.start + (seed + k) % span for k in range(episodes)]


class EvaluationRow(NamedTuple):
    """One row of a periodic evaluation: its label, scenario and episode seeds."""

    label: str
    scenario: Scenario
    seeds: list[int]


class PeriodicEvaluator:
    """Evaluates a policy on ``episodes`` fixed seeds and appends the result to the run's evaluations.csv.

    ``rows`` (suite runs) replaces the one scenario by several: every row's episodes run, and the CSV row (and the
    best-model decision) is over all their episodes together."""

    def __init__(
        self,
        run: RunFolder,
        scenario: Scenario,
        seed: int,
        episodes: int,
        num_envs: int | None = None,
        on_evaluation: EvaluationHook | None = None,
        rows: Sequence[EvaluationRow] | None = None,
    ) -> None:
        self.run, self.scenario = run, scenario
        self.on_evaluation = on_evaluation or _HOOK.get()
        self.stop_reason: str | None = None  # set when the hook asked training to stop
        self.seeds = evaluation_seeds(seed, episodes)
        self.rows = list(rows) if rows else [EvaluationRow(scenario.name, scenario, self.seeds)]
        self.num_envs = num_envs
        self.start = time.time() - run.last_wall_time()  # a resumed run's curve continues on the same clock
        written = run.read_evaluations()
        self.best = max((float(r["mean_return"]) for r in written), default=-math.inf)

    def evaluate(self, policy: Policy, timesteps: int) -> bool:
        """Run the episodes, write the row, call the hook; True if the mean return is the best so far (save the
        best model). Afterwards ``stop_reason`` says whether the hook asked training to stop."""
        per_row = [run_episodes(policy, r.scenario, r.seeds, num_envs=self.num_envs) for r in self.rows]
        episodes = [episode for done in per_row for episode in done]
        if len(self.rows) > 1:  # a suite run: each validation row's numbers too (evaluation_rows.csv)
            self.run.append_row_evaluations(
                [
                    {
                        "timesteps": int(timesteps),
                        "label": r.label,
                        "episodes": len(done),
                        "mean_return": float(sum(e.episode_return for e in done) / len(done)),
                        "success_rate": float(sum(e.success for e in done) / len(done)),
                        "mean_length": float(sum(e.length for e in done) / len(done)),
                    }
                    for r, done in zip(self.rows, per_row)
                ]
            )
        returns = [e.episode_return for e in episodes]
        lengths = [e.length for e in episodes]
        mean = sum(returns) / len(returns)
        row = {
            "timesteps": int(timesteps),
            "mean_return": float(mean),
            "std_return": float((sum((r - mean) ** 2 for r in returns) / len(returns)) ** 0.5),
            "success_rate": float(sum(e.success for e in episodes) / len(episodes)),
            "mean_length": float(sum(lengths) / len(lengths)),
            "wall_time_s": round(time.time() - self.start, 2),
        }
        self.run.append_evaluation(row)
        if self.on_evaluation is not None:
            try:
                self.on_evaluation(int(timesteps), dict(row))
            except StopTraining as stop:
                self.stop_reason = str(stop) or f"stopped by the evaluation hook at {int(timesteps)} steps"
        if mean > self.best:
            self.best = mean
            return True
        return False
