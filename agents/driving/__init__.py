"""Driving baselines: ``scripted`` (pure pursuit + obstacle-aware lane choice + speed control)."""

from __future__ import annotations

import gymnasium

from lepton_sim.baselines import register_baseline
from lepton_sim.policy import Policy


def _scripted(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    from lepton_sim.agents.driving.scripted import ScriptedDriver

    return ScriptedDriver(observation_space, action_space)


register_baseline(
    "scripted",
    "driving",
    _scripted,
    "pure pursuit of the route, lane choice around sensed objects, stopping-distance speed control",
)
