"""Plots say what they show (issue 10): learning curves and rollout plots have titles, axis labels with units and
legends; checked on the matplotlib figures themselves (Axes.get_xlabel, get_legend), not on pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import lepton_sim  # noqa: E402
from lepton_sim.plotting import PANELS, X_LABEL, learning_curve_figure, plot_runs  # noqa: E402
from lepton_sim.rollouts import episode_figure  # noqa: E402
from lepton_sim.runs import EVALUATION_FIELDS  # noqa: E402
from lepton_sim.training_config import TrainConfig  # noqa: E402


def fake_run(path: Path, seed: int = 0) -> Path:
    """A run folder as training leaves it, without training: config, evaluations.csv and a monitor file."""
    path.mkdir(parents=True)
    config = TrainConfig(
        algo="ppo",
        scenario={"name": "driving/lane-keep"},
        steps=3000,
        seed=seed,
        eval_freq=1000,
        checkpoint_freq=1000,
    )
    (path / "config.yaml").write_text(yaml.safe_dump(config.to_file_data()))
    rows = [",".join(EVALUATION_FIELDS)]
    rows += [f"{1000 * k},{10.0 * k + seed},{2.0},{0.3 * k},{100},{k}" for k in (1, 2, 3)]
    (path / "evaluations.csv").write_text("\n".join(rows) + "\n")
    logs = path / "logs" / "part0"
    logs.mkdir(parents=True)
    episodes = "\n".join(f"{np.sin(k) + k / 10:.3f},100,{k}" for k in range(30))
    (logs / "monitor.csv").write_text('#{"t_start": 0, "env_id": "lepton/Driving-v0"}\nr,l,t\n' + episodes + "\n")
    return path


def test_learning_curves_have_titles_axis_labels_and_legends(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / "ppo-s0"), fake_run(tmp_path / "ppo-s1", seed=1)]
    fig = learning_curve_figure(runs)
    try:
        axes = fig.get_axes()
        assert len(axes) == 3
        for ax, (title, ylabel) in zip(axes, PANELS):
            assert ax.get_xlabel() == X_LABEL and "env steps" in X_LABEL
            assert ax.get_ylabel() == ylabel
            assert "driving/lane-keep" in ax.get_title() and title in ax.get_title()
            legend = ax.get_legend()
            assert legend is not None
            assert [t.get_text() for t in legend.get_texts()] == ["ppo s0 (ppo-s0)", "ppo s1 (ppo-s1)"]
        assert "return" in axes[0].get_ylabel() and "success rate" in axes[1].get_ylabel()
        assert "±1 std over evaluation episodes" in axes[0].get_title()
    finally:
        plt.close(fig)
    out = plot_runs(runs, tmp_path / "curves.svg")
    assert "env steps" in out.read_text()


def test_rollout_trajectory_plot_names_road_obstacles_route_and_path(tmp_path: Path) -> None:
    env = lepton_sim.make("driving/obstacle-avoid", obstacles=5)
    try:
        _, info = env.reset(seed=1)
        infos = [info]
        for _ in range(30):
            infos.append(env.step(env.action_space.sample() * 0)[4])
        fig = episode_figure([infos], env.unwrapped.plot_trajectory, title="random on driving/obstacle-avoid")
    finally:
        env.close()
    try:
        (ax,) = [a for a in fig.get_axes() if a.get_legend() is not None]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (m)", "y (m)")
        assert ax.get_title() == "random on driving/obstacle-avoid"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        for label in ("road", "route", "goal", "ego path", "start"):
            assert label in labels, label
        assert {"parked car", "cone"} & set(labels)  # the obstacles
        assert len(labels) == len(set(labels))  # one entry per label
    finally:
        plt.close(fig)


def test_rollout_signal_plot_has_time_units_and_a_legend() -> None:
    """Envs without a trajectory plot (manufacturing): each changing info signal against simulated time."""
    infos: list[list[dict[str, Any]]] = [
        [{"gripper_opening": 0.01 * k, "parts_placed": k // 3, "constant": 1.0, "name": "x"} for k in range(10)]
    ] * 2
    units = {"gripper_opening": "m", "parts_placed": "parts"}
    fig = episode_figure(infos, None, title="random on manufacturing/conveyor-pick", units=units, dt=0.04)
    try:
        axes = fig.get_axes()
        assert [a.get_ylabel() for a in axes] == ["gripper opening (m)", "parts placed (parts)"]
        assert axes[-1].get_xlabel() == "simulated time (s)"
        assert axes[0].get_title() == "random on manufacturing/conveyor-pick"
        assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["episode 1", "episode 2"]
        assert axes[0].get_lines()[0].get_xdata()[-1] == pytest.approx(0.4)  # 10 steps of 0.04 s
    finally:
        plt.close(fig)


def test_traffic_plot_has_axis_labels_and_a_legend() -> None:
    from lepton_sim.envs.traffic.plots import plot_episode_signals

    infos = [
        {"sim_time": 5.0 * k, "queue_length": k % 4, "waiting_vehicles": 0.0, "trip_delay": 2.0} for k in range(12)
    ]
    fig, ax = plt.subplots()
    try:
        plot_episode_signals(ax, infos)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("simulated time (min)", "vehicles")
        assert ax._lepton_delay_axis.get_ylabel() == "mean delay of completed trips (s)"  # noqa: SLF001
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["queue length (halted at signals)", "waiting to enter", "delay (completed trips)"]
    finally:
        plt.close(fig)
