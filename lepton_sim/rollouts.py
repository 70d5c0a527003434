"""Rollouts for people: a video of a policy's episodes and a plot of what happened (trajectory or signals).

Each video frame is the scene (the env's ``render()``) with an overlay (simulated time, step, reward, return
and the domain's key signals, ``LeptonEnvSpec.overlay_keys``) and, when the policy observes camera images, those
images beside it, enlarged (``video_frames``). ``fps`` / ``speed`` choose how simulated time maps to video time
(``video_timing``); frames a speed-up drops are never rendered, and an mp4 is streamed to ffmpeg, so a one-hour
traffic episode needs neither an hour of video nor its frames in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from lepton_sim.video_frames import (
    ChannelView,
    camera_layout,
    channels_last,
    compose,
    draw_overlay,
    observation_views,
    overlay_lines,
    plain_layout,
)
from lepton_sim.video_timing import VideoTiming, check_rate, video_timing

VIDEO_SUFFIXES = (".mp4", ".gif")


@dataclass
class RolloutResult:
    video: Path
    plot: Path
    episodes: list[EpisodeResult]
    frames: int = 0  # frames in the video
    fps: float = 0.0  # its frame rate
    speed: float = 0.0  # simulated seconds per second of video


def rollout(
    policy: str | Path | Policy,
    scenario: str | Path | Scenario,
    episodes: int = 1,
    out: str | Path = "rollout.mp4",
    seed: int | None = None,
    device: str = "auto",
    trust_pickle: bool = False,
    fps: float | None = None,
    speed: float | None = None,
) -> RolloutResult:
    """Run ``episodes`` episodes with rendering; write the video to ``out`` and a plot beside it (``.png``).

    ``speed``: simulated seconds per video second (frames dropped above 30 fps); ``fps``: the video's frame rate
    (alone: every frame at that rate). Default: real time, traffic 60x (``video_timing``).
    ``trust_pickle``: allow loading a model by unpickling its files (old files from a trusted source)."""
    out = Path(out)
    if out.suffix not in VIDEO_SUFFIXES:
        raise LeptonError(f"--out {out}: video must end in {' or '.join(VIDEO_SUFFIXES)}")
    check_rate(fps, "--fps")
    check_rate(speed, "--speed")
    sc = load_scenario(scenario)
    pol = policy if isinstance(policy, Policy) else load_policy(policy, sc, device=device, trust_pickle=trust_pickle)
    first = sc.seed + 100_000 if seed is None else seed
    recorder = _Recorder(sc, episodes, fps, speed)
    results: list[EpisodeResult] = []

    def record(tmp: Path) -> None:
        recorder.path = tmp
        try:
            for k in range(episodes):  # one env at a time, in this process, so frames and infos follow one episode
                recorder.begin_episode(k)
                results.extend(
                    run_episodes(
                        pol, sc, [first + k], num_envs=1, render_mode="rgb_array", on_step=recorder, isolate=False
                    )
                )
            if recorder.sink is None:
                raise LeptonError(f"{sc.name}: the env rendered no frames")
        finally:
            recorder.close()

    write_atomic(out, record)
    plot_path = out.with_suffix(".png")
    plot_episodes(
        plot_path,
        recorder.infos,
        recorder.plotter,
        title=f"{pol.name} on {sc.name}",
        units={**sc.spec.overlay_keys, **sc.spec.metric_units},
        dt=recorder.timing.dt if recorder.timing else None,
    )
    timing = recorder.timing
    assert timing is not None  # a frame was written
    return RolloutResult(
        video=out, plot=plot_path, episodes=results, frames=recorder.frames, fps=timing.fps, speed=timing.speed
    )


class _Recorder:
    """The ``on_step`` observer of the rollout's episodes: keeps each step's info (for the plot) and writes the
    frames the timing keeps."""

    def __init__(self, scenario: Scenario, episodes: int, fps: float | None, speed: float | None) -> None:
        self.scenario, self.episodes, self.fps, self.speed = scenario, episodes, fps, speed
        self.keys = dict(scenario.spec.overlay_keys)
        self.path: Path | None = None
        self.sink: VideoSink | None = None
        self.timing: VideoTiming | None = None
        self.plotter: Any = None
        self.layout: list[ChannelView] | None = None
        self.order = "last"
        self.infos: list[list[dict[str, Any]]] = []
        self.frames = 0
        self.episode, self.step, self.episode_return = 0, 0, 0.0

    def begin_episode(self, k: int) -> None:
        self.infos.append([])
        self.episode, self.step, self.episode_return = k, 0, 0.0

    def __call__(self, env: Any, info: Mapping[str, Any], running: np.ndarray, obs: Any, reward: np.ndarray) -> None:
        if not running[0]:
            return
        if self.timing is None:
            self._start(env)
        assert self.timing is not None
        index, self.step = self.step, self.step + 1
        step_reward = float(np.asarray(reward).reshape(-1)[0])
        self.episode_return += step_reward
        step_info = sub_env_info(info, 0)
        self.infos[-1].append(step_info)
        repeats = self.timing.repeats(index)
        if not repeats:
            return  # dropped by the speed-up: not even rendered
        lines = overlay_lines(
            self.step * self.timing.dt,
            self.step,
            step_reward,
            self.episode_return,
            step_info,
            self.keys,
            episode=f"{self.episode + 1}/{self.episodes}" if self.episodes > 1 else "",
        )
        scene = draw_overlay(_first_frame(env.render()), lines)
        frame = compose(scene, self._views(env, obs))
        if self.sink is None:
            assert self.path is not None
            self.sink = open_sink(self.path, self.timing.fps)
        self.sink.append(frame, repeats)
        self.frames += repeats

    def _start(self, env: Any) -> None:
        fps = (getattr(env, "metadata", None) or {}).get("render_fps") or 30
        self.timing = video_timing(1.0 / float(fps), self.fps, self.speed, self.scenario.spec.domain)
        self.plotter = _trajectory_plotter(env)
        self.order = str(getattr(getattr(_base_env(env), "params", None), "channel_order", "last"))

    def _views(self, env: Any, obs: Any) -> list[np.ndarray]:
        views = []
        for image in agent_images(obs, self.order):
            if self.layout is None or self.layout[-1].stop != image.shape[2]:
                self.layout = _layout(env, image.shape[2])
            views += observation_views(image, self.layout)
        return views

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def agent_images(obs: Any, order: str = "last") -> list[np.ndarray]:
    """Sub-env 0's camera images in a batched observation, (H, W, C) uint8: the observation itself, or a Dict
    observation's ``pixels`` (else every uint8 image entry); [] for state observations."""
    if isinstance(obs, Mapping):
        values = [obs["pixels"]] if "pixels" in obs else list(obs.values())
    else:
        values = [obs]
    return [
        channels_last(v[0], order) for v in values if isinstance(v, np.ndarray) and v.dtype == np.uint8 and v.ndim == 4
    ]


def _layout(env: Any, channels: int) -> list[ChannelView]:
    """The channel layout of the env's camera images, as the observation pipeline stacks them (its
    ``CameraLayout`` from the env's params); a plain split where the env has no camera params."""
    from lepton_sim.envs.pixel_observation import CameraLayout

    base = _base_env(env)
    layout_of: Any = CameraLayout.of  # newer pipelines also ask the env (its camera_channels), older only params
    try:
        try:
            layout = layout_of(base.params, base)
        except TypeError:
            layout = layout_of(base.params)
    except Exception:  # noqa: BLE001  (an env outside the camera contract: show the channels plainly)
        return plain_layout(channels)
    cameras = list(zip(layout.cameras, layout.channels, layout.semantic))
    return camera_layout(cameras, layout.depth, layout.segmentation, channels)


def _base_env(env: Any) -> Any:
    """The base env behind sub-env 0 of a vector env (or the native vector env itself)."""
    envs = getattr(env, "envs", None)
    target = envs[0] if envs else env
    return getattr(target, "unwrapped", target)


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


@dataclass
class VideoSink:
    """Frames to ``path``: an mp4 is streamed to ffmpeg as frames come; a gif is written when closed."""

    path: Path
    fps: float
    _writer: Any = None
    _gif: list[np.ndarray] = field(default_factory=list)

    def append(self, frame: np.ndarray, repeats: int = 1) -> None:
        if self.path.suffix == ".gif":
            self._gif += [frame] * repeats
            return
        if self._writer is None:
            import imageio.v2 as imageio

            self._writer = imageio.get_writer(self.path, format="FFMPEG", fps=self.fps, macro_block_size=1)
        for _ in range(repeats):
            self._writer.append_data(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._gif:
            import imageio.v2 as imageio

            images: list[Any] = list(self._gif)  # imageio's stubs want a list
            imageio.mimsave(self.path, images, format="GIF", duration=1000.0 / self.fps, loop=0)
            self._gif = []


def open_sink(path: Path, fps: float) -> VideoSink:
    """Where rollout frames go (tests replace it to see the frames before encoding)."""
    return VideoSink(path, fps)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """mp4 (ffmpeg) or gif of ``frames`` at ``fps``, written atomically."""

    def _write(tmp: Path) -> None:  # the temporary file keeps the suffix, which picks the format
        sink = VideoSink(tmp, fps)
        for frame in frames:
            sink.append(frame)
        sink.close()

    return write_atomic(path, _write)


def episode_figure(
    infos: list[list[dict[str, Any]]],
    plotter: Any = None,
    title: str = "",
    units: Mapping[str, str] | None = None,
    dt: float | None = None,
) -> Any:
    """The env's trajectory plot if it offers one, else every numeric info signal (up to six that change)
    against simulated time (``dt`` s per step; else the step), with units (``units``: info key -> unit) and a
    legend of the episodes. Returns the matplotlib Figure (the caller closes it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = units or {}
    if plotter is not None:
        fig, ax = plt.subplots(figsize=(8, 6))
        for episode in infos:
            plotter(ax, episode)
        if ax.get_legend() is None:  # one entry per label: every episode draws the same road and ego path
            unique: dict[str, Any] = {}
            for handle, label in zip(*ax.get_legend_handles_labels()):
                unique.setdefault(label, handle)
            if unique:
                ax.legend(list(unique.values()), list(unique), fontsize=8, loc="best")
    else:
        first = infos[0][0] if infos and infos[0] else {}
        keys = [k for k in first if np.isscalar(first[k]) and not isinstance(first[k], str)]
        keys = [k for k in keys if len({v for ep in infos for i in ep if (v := float(i[k])) == v}) > 1][
            :6
        ]  # v == v: not NaN
        fig, axes = plt.subplots(len(keys) or 1, 1, figsize=(8, 2 * max(len(keys), 1)), sharex=True, squeeze=False)
        for ax, key in zip(axes[:, 0], keys):
            for n, episode in enumerate(infos):
                steps = np.arange(1, len(episode) + 1)
                ax.plot(steps * dt if dt else steps, [float(i[key]) for i in episode], label=f"episode {n + 1}")
            ax.set_ylabel(f"{key.replace('_', ' ')} ({units[key]})" if units.get(key) else key.replace("_", " "))
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("simulated time (s)" if dt else "step")
        ax = axes[0, 0]
        if keys:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no info signal changed during the episodes", ha="center", va="center")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_episodes(
    path: Path,
    infos: list[list[dict[str, Any]]],
    plotter: Any = None,
    title: str = "",
    units: Mapping[str, str] | None = None,
    dt: float | None = None,
) -> Path:
    """:func:`episode_figure` written to ``path`` as PNG."""
    fig = episode_figure(infos, plotter, title, units, dt)
    import matplotlib.pyplot as plt

    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path
