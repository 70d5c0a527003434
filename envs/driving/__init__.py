"""Driving domain: path planning on procedurally generated roads (``lepton/Driving-v0``).

Importing registers the env with Gymnasium; the simulator modules load only when an env is made.
"""

import math

from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.registration import LeptonEnvSpec, register

register(
    LeptonEnvSpec(
        id="lepton/Driving-v0",
        domain="driving",
        entry_point="lepton_sim.envs.driving.driving_env:DrivingEnv",
        vector_entry_point="lepton_sim.envs.driving.vector_env:DrivingVectorEnv",
        params_model=DrivingParams,
        max_episode_steps=300,
        metric_bounds={"route_completion": (0.0, 1.0), "time_to_goal": (0.0, math.inf)},
        binary_metrics=frozenset({"is_success", "collision", "off_road"}),
        metric_units={"time_to_goal": "s", "average_speed": "m/s"},  # simulated seconds; along the route
        overlay_keys={"speed": "m/s"},
    )
)

__all__ = ["DrivingParams"]
