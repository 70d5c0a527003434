"""A tiny camera env and its batched vector env, written only against the camera contract (envs/camera_image.py,
envs/camera_params.py), so the observation pipeline and sensor realism are tested apart from any domain: two
cameras (RGB ``cam`` with depth and segmentation, semantic ``grid``), optional goal-conditioned Dict, episodes
that end by termination or after 12 steps (autoresets happen within a few dozen steps)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.camera_params import CAMERA_OBS_MODES, CameraParams

EPISODE_STEPS = 12


class FakeParams(CameraParams):
    OBS_MODES: ClassVar[tuple[str, ...]] = CAMERA_OBS_MODES
    CAMERA_NAMES: ClassVar[tuple[str, ...]] = ("cam", "grid")
    CAMERA_CHANNELS: ClassVar[tuple[str, ...]] = ("depth", "segmentation")
    CAMERA_SEMANTIC_CHANNELS: ClassVar[Mapping[str, int]] = {"grid": 2}
    CAMERA_DEPTH_RANGE: ClassVar[Mapping[str, tuple[float, float]]] = {"cam": (0.0, 2.0), "grid": (0.0, 2.0)}
    LIGHT_DIRECTION: ClassVar[tuple[float, float, float] | None] = (0.0, 0.0, 1.0)
    goal: bool = False


class FakeCameraEnv(gymnasium.Env):
    """A dot moving on the unit square; the episode ends when it leaves the square or after 12 steps."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        self.params = FakeParams(**kwargs)
        self.action_space = spaces.Box(-0.2, 0.2, (2,), np.float32)
        box = spaces.Box(-5, 5, (2,), np.float32)
        self.observation_space: spaces.Space = (
            spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box}) if self.params.goal else box
        )
        self.pos = np.zeros(2, np.float32)
        self.goal = np.zeros(2, np.float32)
        self.t = 0
        self.renders = 0

    def _obs(self) -> Any:
        if self.params.goal:
            return {"observation": self.pos.copy(), "achieved_goal": self.pos.copy(), "desired_goal": self.goal.copy()}
        return self.pos.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(0.2, 0.8, 2).astype(np.float32)
        self.goal = self.np_random.uniform(0.2, 0.8, 2).astype(np.float32)
        self.t = 0
        return self._obs(), {"t": 0}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.pos = (self.pos + np.asarray(action, np.float32)).astype(np.float32)
        self.t += 1
        terminated = bool(np.any(self.pos < 0) or np.any(self.pos > 1))
        reward = float(-np.abs(self.pos - self.goal).sum())
        return self._obs(), reward, terminated, self.t >= EPISODE_STEPS, {"t": self.t}

    def compute_reward(self, achieved: Any, desired: Any, info: Any) -> np.ndarray:
        return -np.abs(np.asarray(achieved) - np.asarray(desired)).sum(axis=-1)

    def camera_image(
        self,
        name: str,
        width: int,
        height: int,
        *,
        depth: bool = False,
        segmentation: bool = False,
        conditions: CameraConditions = NOMINAL,
    ) -> CameraImage:
        """A colour gradient with the dot drawn (shifted by the pose jitter's offset, in image fractions)."""
        if name not in FakeParams.CAMERA_NAMES:
            raise ValueError(f"unknown camera {name!r}; allowed: {', '.join(FakeParams.CAMERA_NAMES)}")
        self.renders += 1
        ys, xs = np.mgrid[0:height, 0:width]
        cx = (self.pos[0] + conditions.offset[0] * 10) * width
        cy = (self.pos[1] + conditions.offset[1] * 10) * height
        disc = (xs - cx) ** 2 + (ys - cy) ** 2 < (0.2 * width) ** 2
        out = CameraImage()
        if name == "grid":
            out.semantic = np.stack([disc, ~disc], axis=-1).astype(np.uint8) * 255
        else:
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[..., 0] = (xs * 255 // max(1, width - 1)).astype(np.uint8)
            rgb[..., 1] = (ys * 255 // max(1, height - 1)).astype(np.uint8)
            rgb[..., 2] = 60
            rgb[disc] = (250, 250, 40)
            out.rgb = rgb
        if depth:
            out.depth = np.where(disc, 0.5, 1.5).astype(np.float32)
        if segmentation:
            out.segmentation = disc.astype(np.int32) * 7
        return out


class FakeCameraVectorEnv(SyncVectorEnv):
    """N FakeCameraEnvs standing in for a native vector env: ``params`` and the batched ``camera_images``."""

    def __init__(self, num_envs: int, autoreset_mode: Any = "NextStep", **kwargs: Any) -> None:
        super().__init__([lambda: FakeCameraEnv(**kwargs) for _ in range(num_envs)], autoreset_mode=autoreset_mode)
        self.params = FakeParams(**kwargs)

    def camera_images(self, name: str, width: int, height: int, *, conditions: Any = None, **flags: Any) -> CameraImage:
        shots = [
            env.unwrapped.camera_image(  # type: ignore[attr-defined]
                name, width, height, conditions=NOMINAL if conditions is None else conditions[i], **flags
            )
            for i, env in enumerate(self.envs)
        ]

        def stack(key: str) -> np.ndarray | None:
            first = getattr(shots[0], key)
            return None if first is None else np.stack([getattr(s, key) for s in shots])

        return CameraImage(
            rgb=stack("rgb"), depth=stack("depth"), segmentation=stack("segmentation"), semantic=stack("semantic")
        )


class NoBatchVectorEnv(SyncVectorEnv):
    """A native vector env without batched cameras (the pipeline must fall back to 'sync')."""
