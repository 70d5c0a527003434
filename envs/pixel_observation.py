"""Observation mode ``pixels``: an image from one of the env's named cameras replaces its state vector.

Why a wrapper: an env produces its state observation and camera images; which of them an agent sees is the
observation pipeline's choice (``observation_pipeline``), so no env branches on its ``obs_mode``.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium
import numpy as np
from gymnasium import spaces

GOAL_KEYS = ("achieved_goal", "desired_goal")


class CameraImage(Protocol):
    rgb: np.ndarray  # uint8 (H, W, 3)


class CameraEnv(Protocol):
    """What a base env offers for camera modes: named cameras rendered at a requested size."""

    def camera_image(self, name: str, width: int, height: int) -> CameraImage: ...


def is_goal_space(space: spaces.Space) -> bool:
    """A goal-conditioned (HER) observation space: Dict with ``observation``, ``achieved_goal``, ``desired_goal``."""
    return isinstance(space, spaces.Dict) and {"observation", *GOAL_KEYS} <= set(space.spaces)


class PixelObservation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """The observation is ``camera``'s RGB image (uint8, ``height`` x ``width`` x 3).

    Goal-conditioned envs keep their Dict: only ``observation`` becomes the image, ``achieved_goal`` and
    ``desired_goal`` stay, so HER and ``compute_reward`` work unchanged.
    """

    def __init__(self, env: gymnasium.Env, camera: str, width: int, height: int) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, camera=camera, width=width, height=height)
        gymnasium.ObservationWrapper.__init__(self, env)
        self.camera, self.width, self.height = camera, width, height
        self._goal_conditioned = is_goal_space(env.observation_space)
        image = spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8)
        self.observation_space = (
            spaces.Dict({**env.observation_space.spaces, "observation": image}) if self._goal_conditioned else image
        )

    def observation(self, observation: Any) -> Any:
        image = self.env.unwrapped.camera_image(self.camera, self.width, self.height).rgb
        return {**observation, "observation": image} if self._goal_conditioned else image


def pixel_observation(env: gymnasium.Env) -> PixelObservation:
    """The ``pixels`` stage, configured from the env's params (``obs_camera``, square ``camera_size``)."""
    params = env.unwrapped.params
    return PixelObservation(env, params.obs_camera, params.camera_size, params.camera_size)
