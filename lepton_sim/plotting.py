"""Learning curves from run folders: periodic evaluation return and success rate, and smoothed training return,
against env steps; several runs overlaid (one colour per run). An experiment folder draws one line per
experiment, its seeds summed up (IQM or mean) with a 95% bootstrap band over seeds, so experiments compare
as algorithms, not as single seeds."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

from lepton_sim.aggregate import STATISTICS, Statistic, curve_band
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


@dataclass
class _Curves:
    """What one line of each panel draws: a run's curves, or an experiment's summed up over its seeds."""

    label: str
    scenario: str
    eval_steps: np.ndarray
    eval_return: tuple[np.ndarray, np.ndarray, np.ndarray]  # centre, band low, band high
    success: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # band only for an experiment
    train_steps: np.ndarray
    train_return: tuple[np.ndarray, np.ndarray, np.ndarray] | None


def _run_curves(run: Path) -> _Curves:
    config = RunFolder(run).read_config()
    evals, (steps, returns) = read_evaluations(run), read_training_episodes(run)
    if not evals and not len(steps):
        raise LeptonError(f"{run}: no evaluations.csv or monitor.csv yet: nothing to plot")
    empty = np.array([])
    ret = (
        (evals["mean_return"], evals["mean_return"] - evals["std_return"], evals["mean_return"] + evals["std_return"])
        if evals
        else (empty, empty, empty)
    )
    success = (evals["success_rate"], evals["success_rate"], evals["success_rate"]) if evals else None
    window = max(1, min(50, len(returns) // 10))
    smooth = _smooth(returns, window)
    return _Curves(
        label=f"{config.algo} s{config.seed} ({run.name})",
        scenario=config.suite or str(config.scenario.get("name", "")),  # a suite run: the suite
        eval_steps=evals["timesteps"] if evals else empty,
        eval_return=ret,
        success=success,
        train_steps=steps[window - 1 :] if len(steps) else empty,
        train_return=(smooth, smooth, smooth) if len(steps) else None,
    )


def _experiment_curves(path: Path, statistic: Statistic) -> _Curves:
    """An experiment's curves: at each evaluation step every seed has reached, the IQM or mean over seeds with a
    95% bootstrap band over seeds; training return likewise on a common grid of env steps."""
    from lepton_sim.experiments import Experiment, seed_runs

    exp = Experiment.load(path)
    runs = [_run_curves(run) for run in seed_runs(path).values() if _has_curves(run)]
    if not runs:
        raise LeptonError(f"{path}: no seed's run has evaluations.csv or monitor.csv yet: nothing to plot")
    with_evals = [c for c in runs if len(c.eval_steps)]
    common = reduce(np.intersect1d, [c.eval_steps for c in with_evals]) if with_evals else np.array([])

    def at_common(values: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        return np.array([v[np.isin(s, common)] for s, v in values])

    ret = curve_band(at_common([(c.eval_steps, c.eval_return[0]) for c in with_evals]), statistic)
    success = curve_band(at_common([(c.eval_steps, c.success[0]) for c in with_evals if c.success]), statistic)
    trained = [c for c in runs if c.train_return is not None and len(c.train_steps)]
    grid, train = np.array([]), None
    if trained:
        low, high = max(c.train_steps[0] for c in trained), min(c.train_steps[-1] for c in trained)
        grid = np.linspace(low, high, 200) if high > low else np.array([low])
        assert all(c.train_return is not None for c in trained)
        train = curve_band(
            np.array([np.interp(grid, c.train_steps, c.train_return[0]) for c in trained if c.train_return]),
            statistic,
        )
    n = len(runs)
    name = "IQM" if statistic == "iqm" else "mean"
    return _Curves(
        label=f"{exp.algo} ({path.name}): {name} of {n} seed{'s' if n != 1 else ''}, 95% CI",
        scenario=exp.scenario,
        eval_steps=common,
        eval_return=ret if len(common) else (common, common, common),
        success=success if len(common) else None,
        train_steps=grid,
        train_return=train,
    )


def _has_curves(run: Path) -> bool:
    return RunFolder(run).evaluations_path.is_file() or bool(RunFolder(run).monitor_files())


# each panel: (title, y label); returns carry no unit (a reward is the env's own number), success rates are shares
PANELS = (
    ("evaluation return", "mean return per episode"),
    ("evaluation success rate", "success rate (share of episodes)"),
    ("training return (smoothed)", "return per episode"),
)
X_LABEL = "env steps (all training envs)"


def plot_runs(run_dirs: list[str | Path], out: str | Path = "learning_curves.png", aggregate: str = "iqm") -> Path:
    """Overlay the learning curves of ``run_dirs`` (run folders, and experiment folders summed up over their
    seeds by ``aggregate``: ``iqm`` or ``mean``) in one figure; the format (png, svg, pdf) follows ``out``'s
    suffix. Everything is read before anything is drawn, so a bad folder writes nothing."""
    fmt = plot_format(out)
    fig = learning_curve_figure(run_dirs, aggregate)
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        out = Path(out)
        write_atomic(out, lambda tmp: fig.savefig(tmp, dpi=100, format=fmt))
    finally:
        plt.close(fig)
    return out


def learning_curve_figure(run_dirs: list[str | Path], aggregate: str = "iqm") -> Any:
    """The figure :func:`plot_runs` writes: three panels (evaluation return, evaluation success rate, smoothed
    training return) against env steps, with titles, axis labels and a legend of the runs. The caller closes
    it (``matplotlib.pyplot.close``)."""
    from lepton_sim.experiments import is_experiment

    if not run_dirs:
        raise LeptonError("plot needs at least one run folder")
    if aggregate not in STATISTICS:
        raise LeptonError(f"unknown aggregate {aggregate!r}; allowed: {', '.join(STATISTICS)}")
    statistic: Statistic = "iqm" if aggregate == "iqm" else "mean"
    curves = [_experiment_curves(Path(p), statistic) if is_experiment(p) else _run_curves(Path(p)) for p in run_dirs]
    scenario = curves[0].scenario

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ret, ax_succ, ax_train) = plt.subplots(1, 3, figsize=(15, 4.5))
    try:
        for c in curves:
            if len(c.eval_steps):
                (line,) = ax_ret.plot(c.eval_steps, c.eval_return[0], marker="o", label=c.label)
                colour = line.get_color()
                ax_ret.fill_between(c.eval_steps, c.eval_return[1], c.eval_return[2], alpha=0.15, color=colour)
                if c.success is not None:
                    ax_succ.plot(c.eval_steps, c.success[0], marker="o", label=c.label, color=colour)
                    ax_succ.fill_between(c.eval_steps, c.success[1], c.success[2], alpha=0.15, color=colour)
            else:
                colour = None
            if c.train_return is not None:
                (line,) = ax_train.plot(c.train_steps, c.train_return[0], label=c.label, color=colour)
                ax_train.fill_between(
                    c.train_steps, c.train_return[1], c.train_return[2], alpha=0.15, color=line.get_color()
                )
        band = _band_note(run_dirs)
        for ax, (title, ylabel), note in zip((ax_ret, ax_succ, ax_train), PANELS, (band, "", "")):
            ax.set_title(f"{scenario}: {title}" + (f"\n{note}" if note else ""), fontsize=10)
            ax.set_xlabel(X_LABEL)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=ax.transAxes)
        ax_succ.set_ylim(-0.02, 1.02)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _band_note(run_dirs: list[str | Path]) -> str:
    """What the shaded band around the evaluation return is: ±1 std over a run's evaluation episodes, a 95%
    bootstrap interval over an experiment's seeds."""
    from lepton_sim.experiments import is_experiment

    kinds = {is_experiment(p) for p in run_dirs}
    if kinds == {True}:
        return "band: 95% CI over seeds"
    if kinds == {False}:
        return "band: ±1 std over evaluation episodes"
    return "band: ±1 std (runs), 95% CI over seeds (experiments)"
