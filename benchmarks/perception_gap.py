"""The perception gap: how much task success an agent loses when it acts on perceived instead of true state.

For each task (driving obstacle-avoid, manufacturing visual inspection) and seed, on the same suite test entries
and seeds:

- ``state``: the state agent on the true state (PPO trained here, or the scripted oracle sorter for inspection,
  whose class comes from the oracle state);
- ``state-on-perceived``: the same agent, unchanged, on ``obs_mode: perceived`` (a perception model trained
  here on frames collected with the scenario's scripted baseline and their simulator-labelled state);
- ``perceived-trained``: PPO trained on perceived state;
- ``pixels``: PPO end to end on the camera images (the image policy and the ``pixels:`` hyperparameters).

Clean test entries give the bar's numerator on clean images; the suites' sensor rows (corruptions never in
training, or unseen lighting) the "moderate degradation" one (a state agent on true state ignores the sensor:
there it repeats its clean numbers). Reported per agent: success with its 95% Wilson interval, episodes, env
steps and wall time spent on training (PPO) or on data collection and perception training, and the ratio to
the state agent (the bar: >= 0.90 clean, >= 0.80 degraded). ``--check-ground-truth`` also runs the state agent
through the perceived pipeline with ``perception: ground-truth`` (it must equal ``state`` exactly). Writes
results.json, summary.md (the table for benchmarks/RESULTS.md) into ``--out``.

    python benchmarks/perception_gap.py [--tasks obstacle-avoid visual-inspection] [--seeds 0]
        [--state-minutes 10] [--agent-minutes 20] [--frames 20000] [--perception-epochs 20]
        [--camera-size 64] [--episodes 50] [--perception TASK=PATH] [--state-run TASK=PATH] [--out DIR]

Smoke run (a few minutes on 2 cores): ``--state-minutes 0.3 --agent-minutes 0.3 --frames 300
--perception-epochs 1 --episodes 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lepton_sim
from lepton_sim.evaluation import run_episodes
from lepton_sim.loading import load_policy
from lepton_sim.policy import Policy, PolicyContext
from lepton_sim.runs import RunFolder
from lepton_sim.scenario import SuiteItem, load_suite, suite_items
from lepton_sim.stats import wilson_interval

AGENTS = ("state", "state-on-perceived", "perceived-trained", "pixels")
CLEAN_BAR, DEGRADED_BAR = 0.90, 0.80


@dataclass(frozen=True)
class Task:
    scenario: str
    suite: str
    state_agent: str  # "ppo": trained here; otherwise a baseline name
    collect_policy: str = "scripted"  # the perception data's policy
    train_overrides: dict[str, Any] = field(default_factory=dict)  # PPO runs (all three)
    collect_overrides: dict[str, Any] = field(default_factory=dict)


TASKS = {
    "obstacle-avoid": Task("driving/obstacle-avoid", "driving/standard", "ppo"),
    # the class of each part is visible only in the image: the oracle state fills the class one-hot, which the
    # perception model learns to give (collect with oracle_class: the scripted sorter asks for it)
    "visual-inspection": Task(
        "manufacturing/visual-inspection",
        "manufacturing/inspection",
        "scripted",
        train_overrides={"params.reward_type": "dense"},
    ),
}


@dataclass
class Row:
    task: str
    agent: str
    seed: int
    clean: tuple[int, int] = (0, 0)  # successes, episodes
    degraded: tuple[int, int] = (0, 0)
    train_steps: int = 0  # PPO env steps, or frames collected for the perception model
    train_wall_s: float = 0.0
    eval_wall_s: float = 0.0
    note: str = ""

    def rate(self, which: str) -> float:
        won, n = getattr(self, which)
        return won / n if n else float("nan")


class Unpinned(Policy):
    """A baseline without the obs mode its env_overrides force (scripted controllers ask for ``state``)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.observation_space = policy.observation_space
        self.action_space = policy.action_space
        self.env_overrides = {k: v for k, v in policy.env_overrides.items() if k != "obs_mode"}

    def reset(self, context: PolicyContext) -> None:
        self.policy.reset(context)

    def act(self, observation: Any, state: Any = None, episode_start: Any = None, *, info: Any = None) -> Any:
        return self.policy.act(observation, state, episode_start, info=info)


def test_items(task: Task, episodes: int) -> tuple[list[SuiteItem], list[SuiteItem]]:
    """The suite's test entries of the task: (clean, degraded: those with a ``sensor`` setting)."""
    items = [i for i in suite_items(load_suite(task.suite), "test") if i.scenario.name == task.scenario]
    items = [i.model_copy(update={"episodes": min(episodes, i.episodes)}) for i in items]
    return [i for i in items if "sensor" not in i.scenario.params], [i for i in items if "sensor" in i.scenario.params]


def successes(spec: str | Policy, items: list[SuiteItem], params: dict[str, Any]) -> tuple[int, int]:
    won = total = 0
    for item in items:
        scenario = item.scenario.with_params(params) if params else item.scenario
        policy = spec if isinstance(spec, Policy) else load_policy(spec, scenario)
        if policy.env_overrides.get("obs_mode") and params.get("obs_mode"):
            policy = Unpinned(policy)
        episodes = run_episodes(policy, scenario, item.seeds)
        won += sum(bool(e.success) for e in episodes)
        total += len(episodes)
    return won, total


def evaluate(row: Row, spec: str | Policy, task: Task, args: argparse.Namespace, params: dict[str, Any]) -> Row:
    clean, degraded = test_items(task, args.episodes)
    start = time.time()
    row.clean = successes(spec, clean, params)
    row.degraded = successes(spec, degraded, params)
    row.eval_wall_s = time.time() - start
    print(
        f"{row.task} {row.agent} seed {row.seed}: clean {row.rate('clean'):.1%} of {row.clean[1]}, degraded "
        f"{row.rate('degraded'):.1%} of {row.degraded[1]} ({row.eval_wall_s:.0f} s)",
        flush=True,
    )
    return row


def train_ppo(task: Task, name: str, seed: int, minutes: float, extra: dict[str, Any], args: argparse.Namespace) -> Any:
    start = time.time()
    run = lepton_sim.train(
        task.scenario,
        algo="ppo",
        seed=seed,
        steps=args.max_steps,
        device=args.device,
        out=Path(args.out) / "runs" / name,
        overrides={**task.train_overrides, **extra},
        time_limit=minutes * 60,
        eval_freq=0,
        progress_bar=False,
    )
    return run, trained_steps(run), time.time() - start


def trained_steps(run: Path) -> int:
    """The env steps the final model was trained for (SB3 records them in the model file's ``data``)."""
    try:
        with zipfile.ZipFile(RunFolder(run).final_model) as archive:
            return int(json.loads(archive.read("data")).get("num_timesteps", 0))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0


def perception_model(task: Task, name: str, seed: int, args: argparse.Namespace) -> tuple[str, int, float]:
    """A perception model with a ``state`` head: given (``--perception TASK=PATH``) or collected and trained."""
    if name in args.perception:
        return args.perception[name], 0, 0.0
    from lepton_sim import perception

    root = Path(args.out) / "perception" / f"{name}-s{seed}"
    start = time.time()
    data = perception.collect(
        task.scenario,
        frames=args.frames,
        out=root / "data",
        policy=task.collect_policy,
        overrides={"camera_size": args.camera_size, **task.collect_overrides},
        seed=1000 * (seed + 1),  # apart from the suites' test seeds (100000+)
        progress=False,
    )
    model = perception.train(
        data,
        root / "model",
        heads=["state"],
        epochs=args.perception_epochs,
        device=args.device,
        seed=seed,
        progress=False,
    )
    return str(model), args.frames, time.time() - start


def run_task(name: str, seed: int, args: argparse.Namespace) -> list[Row]:
    task = TASKS[name]
    rows: list[Row] = []
    camera = {"camera_size": args.camera_size}
    state = Row(name, "state", seed)
    if task.state_agent == "ppo":
        if name in args.state_run:
            spec: str | Policy = args.state_run[name]
            state.note = f"given: {spec}"
        else:
            run, state.train_steps, state.train_wall_s = train_ppo(
                task, f"{name}-state-s{seed}", seed, args.state_minutes, {}, args
            )
            spec = str(run)
    else:
        spec = task.state_agent
        state.note = f"baseline {spec}"
    rows.append(evaluate(state, spec, task, args, {}))
    model, frames, wall = perception_model(task, name, seed, args)
    perceived = {"obs_mode": "perceived", "perception": model, **camera}
    if args.check_ground_truth:
        truth = evaluate(
            Row(name, "state-on-ground-truth", seed), spec, task, args, {**perceived, "perception": "ground-truth"}
        )
        truth.note = "must equal state" + (
            "" if (truth.clean, truth.degraded) == (state.clean, state.degraded) else ": DIFFERS"
        )
        rows.append(truth)
    if "state-on-perceived" in args.agents:
        row = Row(name, "state-on-perceived", seed, train_steps=frames, train_wall_s=wall, note=f"model {model}")
        rows.append(evaluate(row, spec, task, args, perceived))
    for agent, extra in (
        ("perceived-trained", {f"params.{k}": v for k, v in perceived.items()}),
        ("pixels", {"params.obs_mode": "pixels", "params.camera_size": args.camera_size}),
    ):
        if agent not in args.agents:
            continue
        run, steps, wall_s = train_ppo(task, f"{name}-{agent}-s{seed}", seed, args.agent_minutes, extra, args)
        row = Row(name, agent, seed, train_steps=steps, train_wall_s=wall_s)
        if agent == "perceived-trained":
            row.train_wall_s += wall
            row.note = f"+ perception data/training {wall:.0f} s"
        rows.append(evaluate(row, str(run), task, args, {}))
    return rows


# ---------------------------------------------------------------------------------------------- output
def _cell(row: Row, which: str) -> str:
    won, n = getattr(row, which)
    if not n:
        return "-"
    low, high = wilson_interval(won, n)
    return f"{won / n:.0%} [{low:.0%}, {high:.0%}] (n={n})"


def write_outputs(rows: list[Row], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    lines = [
        f"Perception gap, {os.cpu_count()} CPU cores: {args.camera_size}x{args.camera_size} camera, perception data "
        f"{args.frames} frames x {args.perception_epochs} epochs, PPO budgets {args.state_minutes:g} min (state) / "
        f"{args.agent_minutes:g} min (perceived, pixels); success on the suites' test entries (<= {args.episodes} "
        "episodes each), 95% Wilson intervals; ratio = success / the state agent's (bar: "
        f">= {CLEAN_BAR:.2f} clean, >= {DEGRADED_BAR:.2f} degraded)",
        "",
        "| task | agent | seed | success, clean | ratio | success, degraded | ratio | env steps (training) "
        "| training wall | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        state = next(s for s in rows if s.task == r.task and s.seed == r.seed and s.agent == "state")
        ratios = []
        for which in ("clean", "degraded"):
            base = state.rate(which) if state.rate(which) == state.rate(which) else state.rate("clean")
            ratios.append("-" if r.agent == "state" or not base else f"{r.rate(which) / base:.2f}")
        lines.append(
            f"| {r.task} | {r.agent} | {r.seed} | {_cell(r, 'clean')} | {ratios[0]} | {_cell(r, 'degraded')} "
            f"| {ratios[1]} | {r.train_steps:,} | {r.train_wall_s / 60:.1f} min | {r.note} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))
    print(f"\nresults: {out / 'results.json'}, {out / 'summary.md'}")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        task, sep, path = value.partition("=")
        if not sep or task not in TASKS:
            raise SystemExit(f"{flag} takes TASK=PATH with TASK one of {', '.join(TASKS)}, got {value!r}")
        out[task] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--agents", nargs="+", choices=AGENTS, default=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--state-minutes", type=float, default=10.0, help="training budget of the state PPO")
    parser.add_argument("--agent-minutes", type=float, default=20.0, help="budget of the perceived and pixel PPO")
    parser.add_argument("--frames", type=int, default=20_000, help="frames collected for the perception model")
    parser.add_argument("--perception-epochs", type=int, default=20)
    parser.add_argument("--camera-size", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=50, help="at most this many episodes per test entry")
    parser.add_argument("--max-steps", type=int, default=20_000_000, help="upper bound; the budgets usually end it")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--perception", nargs="*", default=[], help="TASK=PATH: use this model, collect nothing")
    parser.add_argument("--state-run", nargs="*", default=[], help="TASK=PATH: a trained state agent")
    parser.add_argument("--check-ground-truth", action="store_true", help="also run perception: ground-truth")
    parser.add_argument("--out", default=f"runs/bench-perception-gap-{time.strftime('%Y%m%d-%H%M%S')}")
    args = parser.parse_args()
    args.perception = _pairs(args.perception, "--perception")
    args.state_run = _pairs(args.state_run, "--state-run")
    rows = [row for name in args.tasks for seed in args.seeds for row in run_task(name, seed, args)]
    write_outputs(rows, args)


if __name__ == "__main__":
    main()
