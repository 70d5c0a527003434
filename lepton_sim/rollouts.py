"""Rollouts for people: a video of a policy's episodes and a plot of what happened (trajectory or signals)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.evaluation import run_episodes, sub_env_info
from lepton_sim.io import write_atomic
from lepton_sim.loading import load_policy
from lepton_sim.policy import Policy
from lepton_sim.report import EpisodeResult
from lepton_sim.scenario import Scenario, load_scenario

VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass
class RolloutResult:
    video: Path
    plot: Path
    episodes: list[EpisodeResult]


def rollout(
    policy: str | Path | Policy,
    scenario: str | Path | Scenario,
    episodes: int = 1,
    out: str | Path = "rollout.mp4",
    seed: int | None = None,
    device: str = "auto",
    trust_pickle: bool = False,
) -> RolloutResult:
    """Run ``episodes`` episodes with rendering; write the video to ``out`` and a plot beside it (``.png``).
    ``trust_pickle``: allow loading a model by unpickling its files (old files from a trusted source)."""
    out = Path(out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise LeptonError(f"--out {out}: video must end in {' or '.join(VIDEO_SUFFIXES)}")
    sc = load_scenario(scenario)
    pol = policy if isinstance(policy, Policy) else load_policy(policy, sc, device=device, trust_pickle=trust_pickle)
    first = sc.seed + 100_000 if seed is None else seed
    frames: list[np.ndarray] = []
    episode_infos: list[list[dict[str, Any]]] = []
    found: dict[str, Any] = {"plotter": None, "fps": 30}

    def record(env: Any, info: Mapping[str, Any], running: np.ndarray) -> None:
        if not running[0]:
            return
        if not frames:
            found.update(plotter=_trajectory_plotter(env), fps=env.metadata.get("render_fps") or 30)
        frames.append(_first_frame(env.render()))
        episode_infos[-1].append(sub_env_info(info, 0))

    results: list[EpisodeResult] = []
    for k in range(episodes):  # one env at a time, in this process, so frames and infos follow one episode
        episode_infos.append([])
        results += run_episodes(
            pol, sc, [first + k], num_envs=1, render_mode="rgb_array", on_step=record, isolate=False
        )
    if not frames:
        raise LeptonError(f"{sc.name}: the env rendered no frames")
    write_video(out, frames, float(found["fps"]))
    plot_path = out.with_suffix(".png")
    plot_episodes(plot_path, episode_infos, found["plotter"], title=f"{pol.name} on {sc.name}")
    return RolloutResult(video=out, plot=plot_path, episodes=results)


def _first_frame(rendered: Any) -> np.ndarray:
    if isinstance(rendered, (list, tuple)):
        rendered = rendered[0]
    frame = np.asarray(rendered)
    return frame[0] if frame.ndim == 4 else frame


def _trajectory_plotter(env: Any) -> Any:
    """The env's own ``plot_trajectory(ax, infos)`` if it has one (vector env or its first sub-env)."""
    for candidate in (env, getattr(env, "envs", [None])[0]):
        target = getattr(candidate, "unwrapped", candidate)
        if hasattr(target, "plot_trajectory"):
            return target.plot_trajectory
    return None


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """mp4 (ffmpeg) or gif, at the env's real-time frame rate."""
    import imageio.v2 as imageio

    images: list[Any] = list(frames)  # imageio's stubs want a list

    def _write(tmp: Path) -> None:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, images, format="GIF", duration=1000.0 / fps, loop=0)
        else:
            imageio.mimsave(tmp, images, format="FFMPEG", fps=fps, macro_block_size=1)

    return write_atomic(path, _write)


def plot_episodes(path: Path, infos: list[list[dict[str, Any]]], plotter: Any = None, title: str = "") -> Path:
    """The env's trajectory plot if it offers one, else every numeric info signal against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if plotter is not None:
        fig, ax = plt.subplots(figsize=(8, 6))
        for episode in infos:
            plotter(ax, episode)
    else:
        keys = [k for k in infos[0][0] if np.isscalar(infos[0][0][k]) and not isinstance(infos[0][0][k], str)]
        keys = [k for k in keys if len({v for ep in infos for i in ep if (v := float(i[k])) == v}) > 1][
            :6
        ]  # v == v: not NaN
        fig, axes = plt.subplots(len(keys) or 1, 1, figsize=(8, 2 * max(len(keys), 1)), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for n, episode in enumerate(infos):
                ax.plot([float(i[key]) for i in episode], label=f"episode {n + 1}")
            ax.set_ylabel(key)
        axes[-1, 0].set_xlabel("step")
        ax = axes[0, 0]
    ax.set_title(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
