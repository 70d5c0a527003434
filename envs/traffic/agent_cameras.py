"""Camera observation modes for the PettingZoo traffic env: each agent sees its own signal's ``approaches`` image.

Why here and not in the observation pipeline: the pipeline's modes are Gymnasium wrappers around one env with one
observation; a Parallel env has one observation per agent. The joint env (``lepton/TrafficNetwork-v0``) goes
through the pipeline and sees every signal's image stacked along channels; here agent ``k`` gets channels
``3k .. 3k+2`` of that same stack, as its own (H, W, 3) image (or (3, H, W) with ``channel_order: first``), in
the same modes: ``pixels`` (the image) and ``state+pixels`` (Dict with ``state`` and ``pixels``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions
from lepton_sim.envs.camera_params import SensorParams
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.simulation import TrafficSim


class AgentCameras:
    """Builds every agent's camera observation from one frame of all signals (one batched read and draw)."""

    def __init__(self, params: TrafficParams) -> None:
        if params.sensor != SensorParams():
            raise ValueError(
                "sensor realism (the 'sensor' field) is not applied by the PettingZoo traffic env's per-agent "
                "cameras yet; use lepton/TrafficNetwork-v0 (joint control, observation pipeline) for degraded images"
            )
        self.mode = params.obs_mode
        self.size = params.camera_size
        self.first = params.channel_order == "first"
        shape = (3, self.size, self.size) if self.first else (self.size, self.size, 3)
        self.image_space = spaces.Box(0, 255, shape, np.uint8)
        self.conditions: CameraConditions = NOMINAL

    def space(self, state_space: spaces.Space) -> spaces.Space:
        """An agent's observation space in this mode, given its state observation space."""
        if self.mode == "pixels":
            return self.image_space
        return spaces.Dict({"state": state_space, "pixels": self.image_space})

    def observations(self, sim: TrafficSim, states: list[np.ndarray]) -> list[Any]:
        """Per agent (SUMO's signal order): its observation in this mode."""
        frame = sim.approach_images(list(range(len(states))), self.size, self.size, self.conditions)
        out: list[Any] = []
        for k, state in enumerate(states):
            image = frame[:, :, 3 * k : 3 * k + 3]
            image = np.ascontiguousarray(image.transpose(2, 0, 1) if self.first else image)
            out.append(image if self.mode == "pixels" else {"state": state, "pixels": image})
        return out
