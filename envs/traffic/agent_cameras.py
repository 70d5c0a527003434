"""Camera observation modes for the PettingZoo traffic env: each agent sees its own signal's ``approaches`` image.

Why here and not in the observation pipeline: the pipeline's modes are Gymnasium wrappers around one env with one
observation; a Parallel env has one observation per agent. The joint env (``lepton/TrafficNetwork-v0``) goes
through the pipeline and sees every signal's image stacked along channels. Here the same pipeline pieces
(``CameraLayout``, ``compose``, the sensor model seeded from the reset seed) build that same stack, and agent
``k`` gets its channels ``3k .. 3k+2`` as its own (H, W, 3) image ((3, H, W) with ``channel_order: first``):
for the same seed and actions agent ``k``'s image equals slice ``k`` of the joint env's, degradations included.
Modes: ``pixels`` (the image) and ``state+pixels`` (Dict with ``state`` and ``pixels``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.camera_image import NOMINAL, CameraImage
from lepton_sim.envs.pixel_observation import PIXELS_KEY, STATE_KEY, CameraLayout, compose, sensor_for
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.simulation import TrafficSim


class AgentCameras:
    """Builds every agent's camera observation from one frame of all signals (one batched read and draw)."""

    def __init__(self, params: TrafficParams) -> None:
        self.mode = params.obs_mode
        self.layout = CameraLayout.of(params)  # channels: 3 x signals (TrafficParams.camera_channels)
        self.sensor = sensor_for(params, self.layout)
        size = params.camera_size
        self.first = params.channel_order == "first"
        self.image_space = spaces.Box(0, 255, (3, size, size) if self.first else (size, size, 3), np.uint8)

    def space(self, state_space: spaces.Space) -> spaces.Space:
        """An agent's observation space in this mode, given its state observation space."""
        if self.mode == "pixels":
            return self.image_space
        return spaces.Dict({STATE_KEY: state_space, PIXELS_KEY: self.image_space})

    def begin_episode(self, seed: int | None) -> None:
        """At reset: this episode's sensor values (from the reset seed, as the pipeline's wrappers do)."""
        if self.sensor is not None:
            self.sensor.begin_episode(seed)

    def observations(self, sim: TrafficSim, states: list[np.ndarray]) -> list[Any]:
        """Per agent (SUMO's signal order): its observation in this mode."""
        size = self.layout.size
        conditions = self.sensor.conditions(0) if self.sensor is not None else NOMINAL
        frame = sim.approach_images(list(range(len(states))), size, size, conditions)
        stack = np.empty(self.layout.hwc, np.uint8)
        compose(self.layout, [CameraImage(rgb=frame)], stack, (self.sensor,))
        out: list[Any] = []
        for k, state in enumerate(states):
            image = stack[:, :, 3 * k : 3 * k + 3]
            image = np.ascontiguousarray(image.transpose(2, 0, 1) if self.first else image)
            out.append(image if self.mode == "pixels" else {PIXELS_KEY: image, STATE_KEY: state})
        return out
