"""Plots of one traffic episode from its per-step infos: queue length, vehicles waiting to enter, and delay
over simulated time. Used by ``lepton-sim rollout`` (the envs' ``plot_trajectory``) and by users directly."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _series(infos: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([float(i.get(key, np.nan)) for i in infos])


def plot_episode_signals(ax: Any, infos: Sequence[dict[str, Any]], label: str = "") -> None:
    """On ``ax``: halted vehicles at the signals and vehicles waiting to enter (left axis, vehicles), and the
    mean delay of the trips completed so far (right axis, s), against simulated time in minutes."""
    if not infos:
        return
    t = _series(infos, "sim_time") / 60.0
    prefix = f"{label} " if label else ""
    ax.plot(t, _series(infos, "queue_length"), label=f"{prefix}queue length (halted at signals)")
    ax.plot(t, _series(infos, "waiting_vehicles"), "--", label=f"{prefix}waiting to enter")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("vehicles")
    right = getattr(ax, "_lepton_delay_axis", None)
    if right is None:
        right = ax._lepton_delay_axis = ax.twinx()  # noqa: SLF001  (one delay axis shared by several episodes)
        right.set_ylabel("mean delay of completed trips (s)")
    right.plot(t, _series(infos, "trip_delay"), ":", color="black", label=f"{prefix}delay (completed trips)")
    final = infos[-1]
    if not np.isnan(float(final.get("mean_delay", np.nan))):
        ax.set_title(
            f"mean delay {float(final['mean_delay']):.1f} s, never inserted "
            f"{int(final['never_inserted'])}, throughput {int(final['throughput'])}",
            fontsize=9,
        )
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = right.get_legend_handles_labels()
    ax.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8)


def plot_episode(infos: Sequence[dict[str, Any]], path: str | None = None, title: str = "") -> np.ndarray:
    """Render :func:`plot_episode_signals` to an RGB array (and to ``path`` if given) with matplotlib's Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    plot_episode_signals(ax, infos)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if path is not None:
        fig.savefig(path)
    return image
