"""Learning bar on pixels: PPO on 64x64 camera images reaches >= 90% held-out success on driving/lane-keep within
60 minutes on 2 CPU cores; a manufacturing reach task beside it; the state agent on the same seeds next to both.

For each task, seed and agent (``state``: the scenario's state vector, MlpPolicy; ``pixels``: ``obs_mode
pixels`` at ``--camera-size``, the image policy and the ``pixels:`` hyperparameters of
agents/hyperparams/sb3/ppo.yaml), trains PPO with ``lepton_sim.train`` under a wall-clock budget, then evaluates
every checkpoint on the suite's held-out test entries of the task (unseen seeds and parameter ranges; a pixel
policy renders the camera it was trained on there, through its env_overrides) and reports steps and wall time
(training only) to the first checkpoint at >= 90% (confirmed on ``--episodes`` per entry), training throughput,
the best and last held-out success, and the last checkpoint on the suite's unseen-corruption rows (state policies
ignore ``sensor``: there they repeat their clean numbers). Writes results.csv, summary.md (the table for benchmarks/RESULTS.md) and
learning_curves.png/.svg into ``--out``.

    python benchmarks/pixel_learning.py [--minutes 60] [--state-minutes 15] [--tasks lane-keep reach]
        [--seeds 0] [--camera-size 64] [--camera-footprint 32] [--episodes 50] [--curve-episodes 20] [--out runs/bench-pixels]

Smoke run (about 2 minutes): ``--minutes 0.5 --state-minutes 0.25 --episodes 4 --curve-episodes 2
--checkpoint-freq 2000 --tasks reach``.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lepton_sim
from lepton_sim.errors import LeptonError
from lepton_sim.evaluation import run_episodes
from lepton_sim.loading import load_policy
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import SuiteItem, load_suite, suite_items

BAR = 0.90
AGENTS = ("state", "pixels")


@dataclass(frozen=True)
class Task:
    scenario: str
    suite: str
    overrides: dict[str, Any] = field(default_factory=dict)  # for both agents
    checkpoint_freq: dict[str, int] = field(default_factory=dict)  # per agent


TASKS = {
    "lane-keep": Task("driving/lane-keep", "driving/standard", checkpoint_freq={"state": 50_000, "pixels": 100_000}),
    # PPO on reach needs a dense reward (the state reference agent, SAC+HER, learns the sparse one); success is
    # the same 5 cm test either way, and the held-out rows keep the scenario's sparse reward
    "reach": Task(
        "manufacturing/reach",
        "manufacturing/standard",
        overrides={"params.reward_type": "dense", "policy": "MultiInputPolicy"},  # goal Dict in both modes
        checkpoint_freq={"state": 10_000, "pixels": 20_000},
    ),
}


@dataclass
class Outcome:
    task: str
    agent: str
    seed: int
    run: Path | None = None
    skipped: str = ""
    steps: int = 0
    train_wall: float = 0.0
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (steps, wall s, held-out success)
    first: tuple[int, float, float] | None = None  # the first checkpoint confirmed at >= BAR
    sensor_unseen: float | None = None  # the last checkpoint on the unseen-corruption rows

    @property
    def rate(self) -> float:
        return self.steps / self.train_wall if self.train_wall else float("nan")


def held_out(task: Task, episodes: int, sensor: bool = False) -> list[SuiteItem]:
    """The suite's test entries of the task: clean ones (unseen seeds and parameter ranges: the bar), or with
    ``sensor`` the ``*-sensor-unseen`` ones (corruptions never in training; reported beside the bar)."""
    items = [
        i
        for i in suite_items(load_suite(task.suite), "test")
        if i.scenario.name == task.scenario and ("sensor" in i.scenario.params) == sensor
    ]
    return [i.model_copy(update={"episodes": episodes}) for i in items]


def success_on(policy_spec: str, items: list[SuiteItem]) -> float:
    """Held-out success over the entries (episode-weighted); the policy's env_overrides give its camera."""
    won = total = 0
    for item in items:
        policy = load_policy(policy_spec, item.scenario)
        episodes = run_episodes(policy, item.scenario, item.seeds)
        won += sum(bool(e.success) for e in episodes)
        total += len(episodes)
    return won / total


def train_one(name: str, task: Task, agent: str, seed: int, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(name, agent, seed)
    overrides = dict(task.overrides)
    if agent == "pixels":
        overrides.update({"params.obs_mode": "pixels", "params.camera_size": args.camera_size})
        if args.camera_footprint and "driving" in task.scenario:
            overrides["params.camera_footprint"] = args.camera_footprint
    minutes = args.minutes if agent == "pixels" else args.state_minutes
    freq = args.checkpoint_freq or task.checkpoint_freq[agent]
    start = time.time()
    try:
        run = lepton_sim.train(
            task.scenario,
            algo="ppo",
            seed=seed,
            steps=args.max_steps,
            device=args.device,
            out=Path(args.out) / name / f"{agent}-s{seed}",
            overrides=overrides,
            time_limit=minutes * 60,
            checkpoint_freq=freq,
            eval_freq=0,  # held-out evaluation of the checkpoints afterwards, outside the training clock
            progress_bar=False,
        )
    except LeptonError as err:  # e.g. a domain whose camera has not landed: obs_mode 'pixels' is not supported
        outcome.skipped = " ".join(str(err).split())
        print(f"{name} {agent} seed {seed}: skipped ({outcome.skipped})")
        return outcome
    outcome.run, outcome.train_wall = run, time.time() - start
    checkpoints = RunFolder(run).checkpoints()
    outcome.steps = checkpoints[-1][0] if checkpoints else 0
    print(
        f"{name} {agent} seed {seed}: {outcome.steps:,} steps in {outcome.train_wall / 60:.1f} min "
        f"({outcome.rate:,.0f} steps/s with updates); evaluating {len(checkpoints)} checkpoints"
    )
    curve_items, full_items = held_out(task, args.curve_episodes), held_out(task, args.episodes)
    for steps, path in checkpoints:
        wall = path.stat().st_mtime - start
        rate = success_on(str(path), curve_items)
        outcome.curve.append((steps, wall, rate))
        note = ""
        if outcome.first is None and rate >= BAR:
            confirmed = success_on(str(path), full_items)
            note = f" -> {confirmed:.1%} on {sum(i.episodes for i in full_items)} episodes"
            if confirmed >= BAR:
                outcome.first = (steps, wall, confirmed)
        print(f"  {steps:>10,} steps  {wall / 60:6.1f} min  held-out {rate:6.1%}{note}", flush=True)
    sensor_items = held_out(task, args.episodes, sensor=True)
    if checkpoints and sensor_items:
        outcome.sensor_unseen = success_on(str(checkpoints[-1][1]), sensor_items)
        print(f"  last checkpoint on {', '.join(i.label for i in sensor_items)}: {outcome.sensor_unseen:.1%}")
    return outcome


# ---------------------------------------------------------------------------------------------- output
def write_outputs(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["task", "agent", "seed", "steps", "wall_s", "heldout_success", "skipped"])
        for o in outcomes:
            if o.skipped:
                writer.writerow([o.task, o.agent, o.seed, "", "", "", o.skipped])
            writer.writerows([(o.task, o.agent, o.seed, s, round(w, 1), r, "") for s, w, r in o.curve])
    lines = [
        f"PPO, {args.camera_size}x{args.camera_size} pixels vs state, {os.cpu_count()} CPU cores, budgets "
        f"{args.minutes:g} min (pixels) / {args.state_minutes:g} min (state); held-out success on the suites' test "
        f"entries ({args.curve_episodes} episodes per entry per checkpoint, {args.episodes} to confirm the bar)",
        "",
        "| task | agent | seed | env steps/s (with updates) | steps trained | first >= 90% held-out "
        "| best held-out | last held-out | last, unseen sensor corruptions |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.skipped:
            lines.append(f"| {o.task} | {o.agent} | {o.seed} | skipped: {o.skipped} | | | | | |")
            continue
        first = f"**{o.first[0]:,} steps, {o.first[1] / 60:.1f} min** ({o.first[2]:.0%})" if o.first else "not reached"
        best = max((r for *_, r in o.curve), default=float("nan"))
        last = o.curve[-1][2] if o.curve else float("nan")
        sensor = "-" if o.sensor_unseen is None else f"{o.sensor_unseen:.0%}"
        lines.append(
            f"| {o.task} | {o.agent} | {o.seed} | {o.rate:,.0f} | {o.steps:,} | {first} | {best:.0%} | {last:.0%} "
            f"| {sensor} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    figure = plot(outcomes, out)
    print(f"\nresults: {out / 'results.csv'}, {out / 'summary.md'}" + (f", {figure}" if figure else ""))


def plot(outcomes: list[Outcome], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({o.task for o in outcomes if o.curve})
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for o in (o for o in outcomes if o.task == task and o.curve):
            ax.plot(
                [w / 60 for _, w, _ in o.curve],
                [100 * r for *_, r in o.curve],
                marker="o",
                label=f"{o.agent} (seed {o.seed})",
            )
        ax.axhline(100 * BAR, color="grey", linestyle="--", linewidth=1, label=f"bar ({BAR:.0%})")
        ax.set(title=f"PPO on {task}", xlabel="training wall time (min)", ylabel="held-out success (%)", ylim=(0, 102))
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = out / "learning_curves.png"
    fig.savefig(path, dpi=120)
    fig.savefig(out / "learning_curves.svg")
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget of each pixel run")
    parser.add_argument("--state-minutes", type=float, default=15.0, help="training budget of each state run")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--camera-size", type=int, default=64)
    parser.add_argument(
        "--camera-footprint",
        type=float,
        default=32.0,
        help="driving: metres the image height covers (0.5 m per pixel at 64x64; 0: the scenario's, 64)",
    )
    parser.add_argument("--episodes", type=int, default=50, help="held-out episodes per entry to confirm the bar")
    parser.add_argument("--curve-episodes", type=int, default=20, help="held-out episodes per entry per checkpoint")
    parser.add_argument("--checkpoint-freq", type=int, default=0, help="env steps (default: per task and agent)")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=20_000_000,
        help="upper bound, and the horizon of lin_ learning-rate schedules (set it near what the budget reaches)",
    )
    parser.add_argument("--device", default="auto", help="auto: CUDA for the CNN when present")
    parser.add_argument("--out", default=f"runs/bench-pixels-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()

    outcomes = [
        train_one(name, TASKS[name], agent, seed, args)
        for name in args.tasks
        for seed in args.seeds
        for agent in args.agents
    ]
    write_outputs(outcomes, args)


if __name__ == "__main__":
    main()
