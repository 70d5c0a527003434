"""Learning bar: PPO on driving/obstacle-avoid reaches >= 90% success on the held-out test split of the
driving/standard suite within 15 minutes of wall-clock time on 2 CPU cores.

Trains with `lepton_sim.train` under a wall-clock limit, then evaluates every checkpoint on the suite's held-out
obstacle-avoid entries (unseen seeds and parameter ranges) and reports, next to the scripted baseline on the same
seeds, the first checkpoint that clears the bar: env steps and wall time.

    python benchmarks/driving_learning.py [--minutes 15] [--episodes 50] [--out runs/bench-driving]
"""

from __future__ import annotations

import argparse
import csv
import time

import lepton_sim
from lepton_sim.evaluation import run_episodes
from lepton_sim.loading import load_policy
from lepton_sim.report import ScenarioResult
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import load_suite, suite_items

SCENARIO = "driving/obstacle-avoid"
SUITE = "driving/standard"
BAR = 0.90


def held_out_items(episodes: int) -> list:
    items = [i for i in suite_items(load_suite(SUITE), "test") if i.scenario.name == SCENARIO]
    return [i.model_copy(update={"episodes": episodes}) for i in items]


def success_on(policy_spec: str, items: list) -> tuple[float, list[ScenarioResult]]:
    rows = []
    for item in items:
        policy = load_policy(policy_spec, item.scenario)
        rows.append(
            ScenarioResult.from_episodes(item.label, item.scenario, run_episodes(policy, item.scenario, item.seeds))
        )
    n = sum(len(r.seeds) for r in rows)
    return sum(r.success_rate * len(r.seeds) for r in rows) / n, rows


def held_out_curve(checkpoints: list, items: list, start: float) -> list[tuple[int, float, float]]:
    """(steps, wall s since ``start``, held-out success) of every checkpoint, printed as it goes."""
    results = []
    for steps, path in checkpoints:
        rate, _ = success_on(str(path), items)
        wall = path.stat().st_mtime - start
        results.append((steps, wall, rate))
        print(f"  {steps:>9,} steps  {wall / 60:5.1f} min  held-out success {rate:.1%}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--steps", type=int, default=5_000_000, help="upper bound; the time limit usually ends it")
    parser.add_argument("--episodes", type=int, default=50, help="held-out episodes per test entry")
    parser.add_argument("--checkpoint-freq", type=int, default=100_000)
    parser.add_argument("--out", default=f"runs/bench-driving-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()

    items = held_out_items(args.episodes)
    start = time.time()
    run = lepton_sim.train(
        SCENARIO,
        algo="ppo",
        steps=args.steps,
        out=args.out,
        time_limit=args.minutes * 60,
        checkpoint_freq=args.checkpoint_freq,
        eval_freq=args.checkpoint_freq,
    )
    train_wall = time.time() - start

    found = RunFolder(run).checkpoints()
    print(
        f"\ntrained {found[-1][0]:,} steps in {train_wall / 60:.1f} min; evaluating {len(found)} "
        f"checkpoints on {sum(i.episodes for i in items)} held-out episodes each"
    )
    results = held_out_curve(found, items, start)
    scripted, rows = success_on("scripted", items)
    first = next(((s, w, r) for s, w, r in results if r >= BAR), None)

    last = [r for _, _, r in results[-5:]]
    print(f"\nscripted baseline on the same seeds: {scripted:.1%}")
    print(
        f"PPO, mean of the last {len(last)} checkpoints: {sum(last) / len(last):.1%}; "
        f"best checkpoint: {max(r for _, _, r in results):.1%}"
    )
    if first:
        print(f"PASS: {first[2]:.1%} >= {BAR:.0%} held-out success after {first[0]:,} steps, {first[1] / 60:.1f} min")
    else:
        print(
            f"FAIL: best held-out success {max(r for _, _, r in results):.1%} < {BAR:.0%} within {args.minutes:g} min"
        )
    with open(run / "learning_benchmark.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["steps", "wall_s", "heldout_success", "scripted_success"])
        writer.writerows([(s, round(w, 1), r, scripted) for s, w, r in results])
    print(f"results: {run / 'learning_benchmark.csv'}")


if __name__ == "__main__":
    main()
