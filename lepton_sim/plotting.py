"""Learning curves from run folders: periodic evaluation return and success rate, and smoothed training return,
against env steps; several runs overlaid (one colour per run)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic
from lepton_sim.runs import EVALUATION_FIELDS, RunFolder

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}  # suffix -> matplotlib format
CURVE_FIELDS = ("timesteps", "mean_return", "std_return", "success_rate")  # what the figure draws


def plot_format(out: str | Path) -> str:
    """The image format ``out``'s suffix asks for; an unknown suffix fails before any work, not as a PNG under
    another name."""
    suffix = Path(out).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise LeptonError(f"{out}: unknown plot format {suffix or '(no suffix)'}; allowed: {', '.join(PLOT_FORMATS)}")
    return PLOT_FORMATS[suffix]


def _number(value: str | None, source: Path) -> float:
    """A CSV cell as a number (empty: NaN, a metric that did not apply); anything else names the file."""
    if value is None or value == "":
        return np.nan
    try:
        return float(value)
    except ValueError:
        raise LeptonError(f"{source}: not a number: {value!r}") from None


def read_evaluations(run_dir: Path) -> dict[str, np.ndarray]:
    """evaluations.csv as one array per column; {} when the run has not evaluated yet."""
    run = RunFolder(run_dir)
    rows = run.read_evaluations()
    if not rows:
        return {}
    missing = [key for key in CURVE_FIELDS if key not in rows[0]]
    if missing:
        raise LeptonError(
            f"{run.evaluations_path}: no column {', '.join(missing)}; expected {', '.join(EVALUATION_FIELDS)}"
        )
    return {
        key: np.array([_number(r.get(key), run.evaluations_path) for r in rows]) for key in rows[0] if key is not None
    }


def read_training_episodes(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps at episode end, episode return) from the monitor files of every training part."""
    steps, returns, offset = [], [], 0
    for monitor in RunFolder(run_dir).monitor_files():
        with monitor.open() as f:
            f.readline()  # SB3's JSON comment line (start time, env id)
            rows = list(csv.DictReader(f))
        try:
            lengths = np.array([int(r["l"]) for r in rows], dtype=int)
            part_returns = np.array([float(r["r"]) for r in rows])
        except (KeyError, TypeError, ValueError):
            raise LeptonError(f"{monitor}: not a monitor file (columns r, l, t after a comment line)") from None
        steps.append(offset + np.cumsum(lengths))
        returns.append(part_returns)
        offset = int(steps[-1][-1]) if len(lengths) else offset
    if not steps:
        return np.array([]), np.array([])
    return np.concatenate(steps), np.concatenate(returns)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_runs(run_dirs: list[str | Path], out: str | Path = "learning_curves.png") -> Path:
    """Overlay the learning curves of ``run_dirs`` in one figure; the format (png, svg, pdf) follows ``out``'s
    suffix. Every run is read before anything is drawn, so a bad run writes nothing."""
    fmt = plot_format(out)
    if not run_dirs:
        raise LeptonError("plot needs at least one run folder")
    curves = []
    for run in map(Path, run_dirs):
        config = RunFolder(run).read_config()
        evals, (steps, returns) = read_evaluations(run), read_training_episodes(run)
        if not evals and not len(steps):
            raise LeptonError(f"{run}: no evaluations.csv or monitor.csv yet: nothing to plot")
        curves.append((f"{config.algo} s{config.seed} ({run.name})", evals, steps, returns))
    scenario = RunFolder(run_dirs[0]).read_config().scenario.get("name", "")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ret, ax_succ, ax_train) = plt.subplots(1, 3, figsize=(15, 4))
    try:
        for label, evals, steps, returns in curves:
            if evals:
                (line,) = ax_ret.plot(evals["timesteps"], evals["mean_return"], marker="o", label=label)
                ax_ret.fill_between(
                    evals["timesteps"],
                    evals["mean_return"] - evals["std_return"],
                    evals["mean_return"] + evals["std_return"],
                    alpha=0.15,
                    color=line.get_color(),
                )
                ax_succ.plot(evals["timesteps"], evals["success_rate"], marker="o", label=label)
            if len(steps):
                window = max(1, min(50, len(returns) // 10))
                ax_train.plot(steps[window - 1 :], _smooth(returns, window), label=label)
        for ax, title in (
            (ax_ret, "evaluation return"),
            (ax_succ, "evaluation success rate"),
            (ax_train, "training return (smoothed)"),
        ):
            ax.set_title(f"{scenario}: {title}")
            ax.set_xlabel("env steps")
            ax.grid(alpha=0.3)
        ax_succ.set_ylim(-0.02, 1.02)
        if ax_ret.get_legend_handles_labels()[0]:
            ax_ret.legend(fontsize=8)
        fig.tight_layout()
        out = Path(out)
        write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
    finally:
        plt.close(fig)
    return out
