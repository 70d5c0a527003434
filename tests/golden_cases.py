"""Golden reports: evaluations and a short training run recorded on main before the back-end-neutral core
refactor (issue 8). ``python tests/golden_cases.py`` re-records them; tests/test_golden.py compares exactly."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "golden"
MODEL_DIR = GOLDEN / "ppo-lane-keep"  # a small trained run folder, committed (config + model)

# (policy, keyword arguments of lepton_sim.evaluate)
EVALUATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "scripted-driving-standard": ("scripted", {"suite": "driving/standard", "split": "test", "episodes": 2}),
    "random-lane-keep": ("random", {"scenario": "driving/lane-keep", "episodes": 3}),
    "scripted-manufacturing-standard": (
        "scripted",
        {"suite": "manufacturing/standard", "split": "test", "episodes": 2},
    ),
    "fixed-time-single-intersection": ("fixed-time", {"scenario": "traffic/single-intersection", "episodes": 2}),
    "max-pressure-single-intersection": ("max-pressure", {"scenario": "traffic/single-intersection", "episodes": 2}),
    "ppo-model-lane-keep": ("<model>", {"scenario": "driving/lane-keep", "episodes": 3}),
}
TRAIN = {
    "scenario": "driving/lane-keep",
    "algo": "ppo",
    "steps": 4096,
    "seed": 0,
    "n_envs": 8,
    "eval_freq": 2048,
    "eval_episodes": 4,
    "overrides": {"normalize": False, "n_steps": 128, "batch_size": 256},
}


def episodes_of(report: Any) -> list[dict[str, Any]]:
    """Each row's episodes as plain data (NaN as None), the part of a report that must never change."""
    rows = []
    for row in report.rows:
        rows.append(
            {
                "label": row.label,
                "skipped": row.skipped,
                "episodes": [
                    {
                        "seed": e.seed,
                        "return": e.episode_return,
                        "length": e.length,
                        "success": e.success,
                        "metrics": {k: None if math.isnan(v) else v for k, v in e.metrics.items()},
                    }
                    for e in row.episodes
                ],
            }
        )
    return rows


def run_evaluation(name: str) -> list[dict[str, Any]]:
    import lepton_sim

    policy, kwargs = EVALUATIONS[name]
    if policy == "<model>":
        policy = str(MODEL_DIR)
    return episodes_of(lepton_sim.evaluate(policy, progress=False, **kwargs))


def run_training(out: Path) -> dict[str, Any]:
    """Train the short run; its periodic evaluations (without wall time) and the final model's episodes."""
    import lepton_sim

    run = lepton_sim.train(out=out, progress_bar=False, **TRAIN)
    with open(run / "evaluations.csv") as f:
        evals = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in csv.DictReader(f)]
    report = lepton_sim.evaluate(str(run), scenario="driving/lane-keep", episodes=3, progress=False)
    return {"evaluations": evals, "final": episodes_of(report)}


def record() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        training = run_training(run)
        (GOLDEN / "training.json").write_text(json.dumps(training, indent=1) + "\n")
        if MODEL_DIR.exists():
            shutil.rmtree(MODEL_DIR)
        MODEL_DIR.mkdir()
        for name in ("config.yaml", "model.zip"):
            shutil.copy(run / name, MODEL_DIR / name)
    for name in EVALUATIONS:
        print("recording", name, file=sys.stderr)
        (GOLDEN / f"{name}.json").write_text(json.dumps(run_evaluation(name), indent=1) + "\n")


if __name__ == "__main__":
    record()
