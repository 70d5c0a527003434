"""Manufacturing baselines: ``scripted`` (IK approach, grasp, lift, place; sorting reads the class from state).

The controllers are imported only when the baseline is built, so listing baselines never imports PyBullet.
"""

from __future__ import annotations

from typing import Any

from lepton_sim.baselines import register_baseline


def _make_scripted(env_id: str, observation_space: Any, action_space: Any) -> Any:
    from lepton_sim.agents.manufacturing.scripted import make_scripted

    return make_scripted(env_id, observation_space, action_space)


register_baseline(
    "scripted",
    "manufacturing",
    _make_scripted,
    "scripted IK controllers: reach, pick-and-place, conveyor pick and sort (class read from state; visual "
    "inspection and waste sorting read the oracle class: oracle_class=true)",
)
