"""Multi-agent RLlib PPO (shared and independent) on traffic networks against the fixed-time program (issue 12).

For each map and mode: train RLlib PPO through ``lepton_sim.train(backend="rllib", multi_agent=...)`` with a budget
in agent decisions (env steps x signals; SB3's shared PPO in benchmarks/traffic_resco.py counts the same way), with
the traffic entries of agents/hyperparams/rllib/ppo.yaml, then evaluate the final and the best-on-validation model
(periodic evaluation on validation seeds 50000+, never the test seeds) and the fixed-time program with
``lepton_sim.evaluate`` on the same held-out SUMO seeds (the scenario's test seeds, 100000 + k) and the same
protocol as benchmarks/traffic_resco.py: mean delay per vehicle (timeLoss + departDelay, never-inserted vehicles
charged end of window minus scheduled depart) +- 95% CI half-width, never-inserted vehicles per episode, each
evaluation batch in fresh worker processes. Verdict PASS: lower mean delay than fixed-time and no more
never-inserted vehicles.

SUMO runs one simulation per env-runner process; on a shared 2-core machine 200k decisions on grid4x4 take
~5-10 min of training. Run it at low priority.

Usage:
  nice -n 19 python benchmarks/rllib_multi_agent.py                        # 2x2-grid 100k, grid4x4 200k decisions
  nice -n 19 python benchmarks/rllib_multi_agent.py --maps grid4x4 --modes shared --decisions grid4x4=400000
  nice -n 19 python benchmarks/rllib_multi_agent.py --smoke                # 2x2-grid, one iteration, one seed
  python benchmarks/rllib_multi_agent.py --maps grid4x4 --run grid4x4:shared=runs/x   # evaluate an existing run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from traffic_resco import fmt, summarize  # noqa: E402  (the same summary and cell format as the RESCO table)

MAPS = {"2x2-grid": "traffic/2x2-grid", "grid4x4": "traffic/resco-grid4x4"}
DECISIONS = {"2x2-grid": 100_000, "grid4x4": 200_000}  # agent decisions (all signals) per training run
MODES = ("shared", "independent")
SMOKE_DECISIONS = 2 * 360 * 4  # one iteration on 2x2-grid: two runners x one 360-decision episode x 4 signals


def signals(scenario: str) -> int:
    import lepton_sim
    from lepton_sim.agents.rllib.algo_config import agent_ids

    return len(agent_ids(lepton_sim.load_scenario(scenario)))


def train(m: str, mode: str, decisions: int, seed: int, out: Path, evals: int) -> Path:
    """One RLlib run: reused once it has sampled its budget, resumed from its latest checkpoint if it stopped
    short (an interrupted benchmark), else trained from scratch."""
    import lepton_sim
    from lepton_sim.runs import RunFolder

    run = out / f"{m}_{mode}_d{decisions}_seed{seed}"
    steps = max(decisions // signals(MAPS[m]), 1)  # RLlib counts env steps: every signal decides once per step
    if RunFolder.is_run(run):
        if RunFolder(run, "").final_model.is_dir() and sampled_steps(run) >= steps:
            return run
        lepton_sim.train(resume=run, steps=steps, progress_bar=False)
        return run
    lepton_sim.train(
        MAPS[m],
        algo="ppo",
        backend="rllib",
        steps=steps,
        seed=seed,
        out=run,
        multi_agent=mode,
        eval_freq=max(steps // evals, 1) if evals else 0,
        eval_episodes=2,
        progress_bar=False,
    )
    return run


def progress_rows(run: Path) -> list[list[dict[str, str]]]:
    """Each training session's progress.csv rows (a resumed run has several parts)."""
    import csv

    from lepton_sim.runs import RunFolder

    return [
        list(csv.DictReader((part / "progress.csv").read_text().splitlines()))
        for part in RunFolder(run, "").log_parts()
    ]


def sampled_steps(run: Path) -> int:
    rows = [r for part in progress_rows(run) for r in part]
    return int(rows[-1]["timesteps"]) if rows else 0


def train_wall_s(run: Path) -> float:
    """Seconds in the training loops (every session's last wall_time_s; periodic evaluations included, Ray's
    start-up not)."""
    return sum(float(part[-1]["wall_time_s"]) for part in progress_rows(run) if part)


def evaluate(policy: str, m: str, seeds: int, cache: Path) -> dict[str, float]:
    """The held-out summary of ``policy`` on ``m``, kept in ``cache`` (a JSON file) so that a rerun that only
    redraws the table evaluates nothing twice (evaluation is deterministic for given seeds)."""
    import lepton_sim

    if cache.is_file():
        return json.loads(cache.read_text())
    result = summarize(lepton_sim.evaluate(policy, scenario=MAPS[m], episodes=seeds, progress=False))
    cache.write_text(json.dumps(result))
    return result


def verdict(learned: dict[str, float], fixed: dict[str, float]) -> str:
    better = learned["mean_delay"] < fixed["mean_delay"]
    blocks = learned["never_inserted"] > fixed["never_inserted"]
    if better and not blocks:
        separated = learned["mean_delay"] + learned["mean_delay_ci"] < fixed["mean_delay"] - fixed["mean_delay_ci"]
        return "PASS" + ("" if separated else " (CIs overlap)")
    return "MISS (" + ", ".join(w for w, bad in (("delay", not better), ("never inserted", blocks)) if bad) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=list(MAPS), choices=list(MAPS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument(
        "--decisions", nargs="*", default=[], help="MAP=N agent decisions (default: 2x2-grid=100000 grid4x4=200000)"
    )
    parser.add_argument("--seeds", type=int, default=5, help="held-out SUMO seeds per policy")
    parser.add_argument("--evals", type=int, default=5, help="periodic evaluations per run (best model); 0: none")
    parser.add_argument("--models", nargs="+", default=["final", "best"], choices=["final", "best"])
    parser.add_argument("--run", nargs="*", default=[], help="MAP:MODE=RUN_DIR: evaluate an existing run instead")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--out", default="runs/rllib-multi-agent")
    parser.add_argument("--smoke", action="store_true", help="2x2-grid, one training iteration, one seed")
    args = parser.parse_args()
    if args.smoke:
        args.maps, args.seeds, args.evals, args.models = ["2x2-grid"], 1, 0, ["final"]
        budgets = {"2x2-grid": SMOKE_DECISIONS}
    else:
        budgets = dict(DECISIONS) | {k: int(float(v)) for k, v in (d.split("=", 1) for d in args.decisions)}
    given = {k: Path(v) for k, v in (r.split("=", 1) for r in args.run)}

    from lepton_sim.runs import RunFolder

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()[0]
    for m in args.maps:
        t0 = time.time()
        fixed = evaluate("fixed-time", m, args.seeds, out / f"{m}_fixed-time_{args.seeds}seeds.json")
        print(f"{m}: fixed-time {fmt(fixed)} [{time.time() - t0:.0f} s]", flush=True)
        rows.append({"map": m, "policy": "fixed-time", "result": fixed})
        for mode in args.modes:
            if f"{m}:{mode}" in given:
                run = given[f"{m}:{mode}"]
            else:
                run = train(m, mode, budgets[m], args.train_seed, out, args.evals)
            wall = train_wall_s(run)
            for which in args.models:
                folder = RunFolder(run, "")
                model = folder.final_model if which == "final" else folder.best_model
                if not model.is_dir():
                    continue
                result = evaluate(str(model), m, args.seeds, run / f"benchmark_{which}_{args.seeds}seeds.json")
                row = {
                    "map": m,
                    "policy": f"{mode} ({which})",
                    "run": str(run),
                    "result": result,
                    "decisions": sampled_steps(run) * signals(MAPS[m]),
                    "train_wall_s": wall,
                    "verdict": verdict(result, fixed),
                }
                rows.append(row)
                print(f"{m}: {row['policy']} {fmt(result)} {row['verdict']} [train {wall:.0f} s]", flush=True)
                (out / "results.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows, load, os.getloadavg()[0])
    print("\n" + table)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    (out / "results.md").write_text(table + "\n")


def markdown(rows: list[dict[str, Any]], load_start: float, load_end: float) -> str:
    lines = [
        "| map | policy | mean delay s ± 95% CI | never inserted | decisions | train wall | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        res = r["result"]
        wall = r.get("train_wall_s")
        cells = [
            r["map"],
            r["policy"],
            f"{res['mean_delay']:.1f} ± {res['mean_delay_ci']:.1f}",
            f"{res['never_inserted']:.1f}",
            f"{r['decisions']:,}" if "decisions" in r else "-",
            f"{wall / 60:.1f} min" if wall is not None and wall == wall else "-",
            r.get("verdict", "-"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\nHeld-out seeds: {rows[0]['result']['episodes']:.0f} per policy; load average {load_start:.1f} at the "
        f"start, {load_end:.1f} at the end (2 cores)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
