"""How a rollout video maps simulated time to video time: ``--speed`` (simulated seconds per video second) and
``--fps`` (output frames per second).

Why: one env step is one frame of ``dt`` simulated seconds (the env's ``render_fps`` is ``1 / dt``). Played at
``render_fps`` a one-hour traffic episode (5 s per decision) is a one-hour video at 0.2 fps; driving and
manufacturing (10-25 Hz) look right in real time. So a speed picks the frames: output frame ``j`` shows the
env's frame ``floor(j * speed / (fps * dt))``; frames in between are dropped (never rendered), and where
``fps * dt > speed`` (slow motion) a frame is repeated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lepton_sim.errors import LeptonError

FPS_CAP = 30.0  # --speed alone never writes more frames per second than this: it drops frames instead
# simulated seconds per video second when neither --speed nor --fps is given (by domain; others: real time).
# Traffic: a one-hour episode (720 decisions of 5 s) plays in one minute at 12 fps.
DEFAULT_SPEED = {"traffic": 60.0}
_EPS = 1e-9  # float slack: 25 Hz * 0.04 s is 1 up to rounding, and must count as exactly one frame per frame


@dataclass(frozen=True)
class VideoTiming:
    """``fps``: output frame rate; ``speed``: simulated seconds per video second; ``dt``: simulated seconds per
    env frame. ``ratio`` = env frames per output frame (2: every other frame; 0.5: each frame twice)."""

    fps: float
    speed: float
    dt: float

    @property
    def ratio(self) -> float:
        return self.speed / (self.fps * self.dt)

    def repeats(self, index: int) -> int:
        """How many output frames show the episode's env frame ``index`` (0-based): 0 drops it."""
        r = self.ratio
        return math.ceil((index + 1 - _EPS) / r) - math.ceil((index - _EPS) / r)

    def frame_count(self, frames: int) -> int:
        """Output frames for an episode of ``frames`` env frames (the sum of :meth:`repeats`)."""
        return math.ceil((frames - _EPS) / self.ratio) if frames > 0 else 0


def check_rate(value: float | None, name: str) -> float | None:
    """A frame rate or speed must be a positive, finite number (or None: the default)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise LeptonError(f"{name} must be a positive number, got {value}")
    return value


def video_timing(dt: float, fps: float | None = None, speed: float | None = None, domain: str = "") -> VideoTiming:
    """The timing for env frames of ``dt`` simulated seconds.

    - neither: ``speed`` = the domain's default (:data:`DEFAULT_SPEED`, else 1: real time), as for ``speed``;
    - ``speed`` alone: every frame at ``speed / dt`` fps, or, above :data:`FPS_CAP`, at the cap with frames
      dropped;
    - ``fps`` alone: every frame, at ``fps`` (the video plays ``fps * dt`` simulated seconds per second);
    - both: ``fps`` frames per second, each ``speed / fps`` simulated seconds after the one before.
    """
    check_rate(fps, "--fps")
    check_rate(speed, "--speed")
    if not (math.isfinite(dt) and dt > 0):
        raise LeptonError(f"the env's frame interval must be positive (render_fps = 1 / dt), got dt = {dt}")
    if fps is None:
        speed = DEFAULT_SPEED.get(domain, 1.0) if speed is None else speed
        return VideoTiming(fps=min(speed / dt, FPS_CAP), speed=speed, dt=dt)
    return VideoTiming(fps=fps, speed=fps * dt if speed is None else speed, dt=dt)
