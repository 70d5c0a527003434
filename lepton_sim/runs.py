"""Run folders: everything needed to reproduce a training run lives in one directory.

Layout (rl-baselines3-zoo's, adapted)::

    runs/<scenario>/<algo>-s<seed>-<time>/
        config.yaml      resolved scenario, algorithm, hyperparameters, steps, seed, n_envs, device, back end
        command.txt      the command line that started (or resumed) the run
        meta.json        package versions, git commit, Python, platform, start time
        model.zip        final model          best_model.zip   best periodic evaluation
        checkpoints/     ckpt_<steps>_steps.zip (+ replay buffer / normalisation stats)
        evaluations.csv  periodic evaluation: timesteps, return, success rate, wall time
        logs/part<k>/    SB3 progress.csv, monitor.csv and TensorBoard events (k counts resumes)
"""
from __future__ import annotations

import datetime as _dt
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from lepton_sim.io import write_json_atomic, write_text_atomic

TRACKED_PACKAGES = ("lepton-sim", "gymnasium", "numpy", "torch", "stable-baselines3", "sb3-contrib", "pybullet",
                    "eclipse-sumo", "libsumo", "sumo-rl", "pettingzoo", "ray")


def new_run_dir(scenario_name: str, algo: str, seed: int, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / scenario_name.replace("/", "-") / f"{algo}-s{seed}-{stamp}"
    suffix = 1
    while path.exists():
        path = path.with_name(f"{algo}-s{seed}-{stamp}-{suffix}")
        suffix += 1
    path.mkdir(parents=True)
    return path


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> dict[str, Any]:
    """The lepton-sim source's git commit and whether it had uncommitted changes (None outside a checkout)."""
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def write_run_record(run_dir: Path, config: dict[str, Any], append_command: bool = False) -> None:
    """Write config.yaml, command.txt and meta.json (the command is appended when a run is resumed)."""
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\n"
    previous = (run_dir / "command.txt").read_text() if append_command and (run_dir / "command.txt").exists() else ""
    write_text_atomic(run_dir / "command.txt", previous + command)
    meta = {"started": _dt.datetime.now().isoformat(timespec="seconds"), "versions": package_versions(),
            "git": git_commit(), "platform": platform.platform(), "argv": sys.argv}
    meta_path = run_dir / "meta.json"
    if append_command and meta_path.exists():
        import json

        history = json.loads(meta_path.read_text())
        meta = {**history, "resumed": [*history.get("resumed", []), meta]}
    write_json_atomic(meta_path, meta)
