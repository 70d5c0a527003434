"""Learning benchmark for the manufacturing arm tasks (a benchmark, not a test: minutes of CPU).

* SAC + HER on ``manufacturing/reach`` for 20k steps: the bar is >= 95 % success (panda-gym reference: SAC+HER
  solved PandaReach in 15.6k steps; rl-zoo3 TQC+HER reaches mean reward -1.77 at 20k steps).
* SAC + HER (or with ``--pick-place-config zoo`` rl-zoo3's TQC + HER) on ``manufacturing/pick-place`` for a
  short, time-boxed run: success vs steps is recorded honestly (panda-gym reference: TQC+HER on
  PandaPickAndPlace needs ~1M steps for mean reward -8.0). The random policy's success is the floor.

Training goes through ``lepton_sim.train`` (evaluations.csv gives success vs steps), the final model is
re-evaluated with ``lepton_sim.evaluate`` on held-out seeds. Hyperparameters are rl-zoo3's for the panda-gym
tasks, passed as overrides (they are the values recommended for agents/hyperparams/{sac,tqc}.yaml).

* ``--start-grasped 0.5`` trains pick-place with the grasped-start curriculum (half the training episodes begin with
  the part in the gripper) and evaluates every checkpoint on the plain task: 98 % at 150k steps (RESULTS.md).

Usage: python benchmarks/manufacturing_learning.py [--task reach|pick-place|all] [--pick-place-minutes 6]
       python benchmarks/manufacturing_learning.py --task pick-place --pick-place-minutes 60 --start-grasped 0.5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import lepton_sim
from lepton_sim.agents.sb3.policy import SB3Policy  # loads HER models without their replay buffer
from lepton_sim.runs import RunFolder

HER = {
    "policy": "MultiInputPolicy",
    "her": True,
    "her_kwargs": {"n_sampled_goal": 4, "goal_selection_strategy": "future"},
}
REACH_SAC: dict[str, Any] = {
    **HER,
    "buffer_size": 1_000_000,
    "learning_rate": 0.001,
    "batch_size": 256,
    "gamma": 0.95,
    "tau": 0.05,
    "learning_starts": 1000,
    "policy_kwargs": {"net_arch": [256, 256]},
}
# rl-zoo3's TQC+HER for PandaPickAndPlace (the 1M-step reference): ~1 s per gradient step on 2 shared cores
PICK_PLACE_TQC: dict[str, Any] = {
    **HER,
    "buffer_size": 1_000_000,
    "learning_rate": 0.001,
    "batch_size": 2048,
    "gamma": 0.95,
    "tau": 0.05,
    "learning_starts": 1000,
    "policy_kwargs": {"net_arch": [512, 512, 512], "n_critics": 2},
}
# the time-boxed run: the same algorithm family at the reach configuration's cost (~40 steps/s here)
PICK_PLACE_SHORT: dict[str, Any] = {**REACH_SAC}


def _curve(run_dir: Path) -> list[dict[str, float]]:
    return [
        {k: float(v) if v != "" else float("nan") for k, v in row.items()}
        for row in RunFolder(run_dir).read_evaluations()
    ]


def _checkpoint_curve(run_dir: Path, algo: str, scenario: str, episodes: int) -> list[dict[str, float]]:
    """Success of every checkpoint on the plain scenario's held-out seeds (no curriculum)."""
    curve = []
    for steps, path in RunFolder(run_dir).checkpoints():
        report = lepton_sim.evaluate(
            SB3Policy.load(path, algo=algo, device="cpu"), scenario=scenario, episodes=episodes, progress=False
        )
        curve.append({"timesteps": steps, "success_rate": report.rows[0].success_rate})
        print(f"  checkpoint {steps}: {report.rows[0].success_rate:.0%}", flush=True)
    return curve


def run(
    task: str,
    scenario: str,
    algo: str,
    hp: dict[str, Any],
    steps: int,
    eval_freq: int,
    out: Path,
    time_limit: float | None = None,
    final_episodes: int = 50,
    train: bool = True,
    start_grasped: float = 0.0,
) -> dict[str, Any]:
    """Train on ``scenario`` and measure it there. With ``start_grasped`` > 0 training uses the grasped-start
    curriculum, so the curve comes from evaluating checkpoints on the plain scenario instead of the training
    env's periodic evaluation."""
    start = time.time()
    run_dir = out / task
    curriculum = {"params.start_grasped_prob": start_grasped} if start_grasped > 0 else {}
    if train:
        run_dir = lepton_sim.train(
            scenario,
            algo=algo,
            steps=steps,
            seed=0,
            n_envs=1,
            device="cpu",
            out=run_dir,
            overrides={**hp, **curriculum},
            eval_freq=0 if curriculum else eval_freq,
            eval_episodes=20,
            checkpoint_freq=eval_freq * 5 if curriculum else None,
            time_limit=time_limit,
            progress_bar=False,
        )
    wall = time.time() - start
    report = lepton_sim.evaluate(
        SB3Policy.load(RunFolder(run_dir).final_model, algo=algo, device="cpu"),
        scenario=scenario,
        episodes=final_episodes,
        progress=False,
    )
    floor = lepton_sim.evaluate("random", scenario=scenario, episodes=final_episodes, progress=False)
    curve = (
        _checkpoint_curve(run_dir, algo, scenario, final_episodes)
        if curriculum
        else [{"timesteps": c["timesteps"], "success_rate": c["success_rate"]} for c in _curve(run_dir)]
    )
    steps_done = int(curve[-1]["timesteps"]) if curve else 0
    result = {
        "task": task,
        "algo": f"{algo}+her",
        "steps_trained": steps_done,
        "wall_s": round(wall, 1),
        "curve": [(int(c["timesteps"]), c["success_rate"]) for c in curve],
        "final_eval_success": report.rows[0].success_rate,
        "random_success": floor.rows[0].success_rate,
        "report": report.to_markdown(),
    }
    print(
        f"\n== {task}: {algo}+HER, {steps_done} steps in {wall:.0f} s; final success "
        f"{result['final_eval_success']:.0%} on {final_episodes} held-out episodes (random policy: "
        f"{result['random_success']:.0%})"
    )
    print("success vs steps:", ", ".join(f"{s // 1000}k: {r:.0%}" for s, r in result["curve"]))
    print(result["report"])
    return result


def main() -> None:
    import torch

    # small MLPs: one thread is fastest, and on a shared machine two OpenMP threads can be 10x slower
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["reach", "pick-place", "all"], default="all")
    parser.add_argument("--reach-steps", type=int, default=20_000)
    parser.add_argument("--pick-place-minutes", type=float, default=8.0)
    parser.add_argument(
        "--pick-place-config",
        choices=["short", "zoo"],
        default="short",
        help="short: SAC+HER [256, 256], batch 256 (fits minutes); zoo: rl-zoo3's TQC+HER",
    )
    parser.add_argument(
        "--start-grasped",
        type=float,
        default=0.0,
        help="pick-place training curriculum: share of episodes that start with the part in the "
        "gripper (checkpoints are evaluated on the plain task)",
    )
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temp folder)")
    parser.add_argument("--evaluate-only", action="store_true", help="re-evaluate the runs already in --out")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lepton-manufacturing-learning-"))
    train = not args.evaluate_only
    results = []
    if args.task in ("reach", "all"):
        results.append(run("reach", "manufacturing/reach", "sac", REACH_SAC, args.reach_steps, 2000, out, train=train))
    if args.task in ("pick-place", "all"):
        algo, hp = ("tqc", PICK_PLACE_TQC) if args.pick_place_config == "zoo" else ("sac", PICK_PLACE_SHORT)
        results.append(
            run(
                "pick-place",
                "manufacturing/pick-place",
                algo,
                hp,
                1_000_000,
                2000,
                out,
                time_limit=args.pick_place_minutes * 60,
                train=train,
                start_grasped=args.start_grasped,
            )
        )
    (out / "learning.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nrun folders and learning.json in {out}")


if __name__ == "__main__":
    main()
