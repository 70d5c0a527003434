"""Learning curves from run folders: periodic evaluation return and success rate, and smoothed training return,
against env steps; several runs overlaid (one colour per run)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic
from lepton_sim.runs import RunFolder


def read_evaluations(run_dir: Path) -> dict[str, np.ndarray]:
    rows = RunFolder(run_dir).read_evaluations()
    return {key: np.array([float(r[key]) if r[key] != "" else np.nan for r in rows]) for key in rows[0]} if rows else {}


def read_training_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps at episode end, episode return) from the monitor files of every training part."""
    steps, returns, offset = [], [], 0
    for monitor in RunFolder(run_dir).monitor_files():
        with monitor.open() as f:
            f.readline()  # SB3's JSON comment line (start time, env id)
            rows = list(csv.DictReader(f))
        lengths = np.array([int(r["l"]) for r in rows])
        steps.append(offset + np.cumsum(lengths))
        returns.append(np.array([float(r["r"]) for r in rows]))
        offset = int(steps[-1][-1]) if len(lengths) else offset
    if not steps:
        return np.array([]), np.array([])
    return np.concatenate(steps), np.concatenate(returns)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_runs(run_dirs: list[str | Path], out: str | Path = "learning_curves.png") -> Path:
    """Overlay the learning curves of ``run_dirs`` in one figure (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ret, ax_succ, ax_train) = plt.subplots(1, 3, figsize=(15, 4))
    for run in map(Path, run_dirs):
        config = RunFolder(run).read_config()
        label = f"{config.algo} s{config.seed} ({run.name})"
        evals = read_evaluations(run)
        if evals:
            line, = ax_ret.plot(evals["timesteps"], evals["mean_return"], marker="o", label=label)
            ax_ret.fill_between(evals["timesteps"], evals["mean_return"] - evals["std_return"],
                                evals["mean_return"] + evals["std_return"], alpha=0.15, color=line.get_color())
            ax_succ.plot(evals["timesteps"], evals["success_rate"], marker="o", label=label)
        steps, returns = read_training_episodes(run)
        if len(steps):
            window = max(1, min(50, len(returns) // 10))
            ax_train.plot(steps[window - 1:], _smooth(returns, window), label=label)
        if not evals and not len(steps):
            raise LeptonError(f"{run}: no evaluations.csv or monitor.csv yet: nothing to plot")
    scenario = RunFolder(run_dirs[0]).read_config().scenario.get("name", "")
    for ax, title in ((ax_ret, "evaluation return"), (ax_succ, "evaluation success rate"),
                      (ax_train, "training return (smoothed)")):
        ax.set_title(f"{scenario}: {title}")
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    ax_succ.set_ylim(-0.02, 1.02)
    ax_ret.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return out
