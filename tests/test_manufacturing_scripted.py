"""The scripted baseline solves every manufacturing task (proves each is solvable with these physics), through
the same evaluation loop that judges learned policies."""

from __future__ import annotations

import numpy as np
import pytest

import lepton_sim
from lepton_sim.agents.manufacturing.scripted import ConveyorController
from lepton_sim.baselines import make_baseline


@pytest.mark.parametrize(
    "scenario, episodes",
    [
        ("manufacturing/reach", 10),
        ("manufacturing/pick-place", 10),
        ("manufacturing/conveyor-pick", 5),
        ("manufacturing/conveyor-sort", 5),
    ],
)
def test_scripted_baseline_succeeds_on_most_episodes(scenario: str, episodes: int) -> None:
    report = lepton_sim.evaluate("scripted", scenario=scenario, episodes=episodes, num_envs=2, progress=False)
    row = report.rows[0]
    assert row.success_rate >= 0.8, report.to_markdown()
    if "conveyor" in scenario:
        mean = {name: value[0] for name, value in row.metrics.items()}  # (mean, low, high)
        assert mean["parts_per_minute"] > 10.0  # a part every few seconds of simulated time
        assert mean["missed"] < 0.5
    if scenario.endswith("sort"):
        assert row.metrics["mis_sorted"][0] == 0.0  # it reads the class from the state


def test_factory_picks_the_controller_from_the_env_id() -> None:
    env = lepton_sim.make("manufacturing/conveyor-sort")
    try:
        policy = make_baseline(
            "scripted", "lepton/ConveyorSort-v0", "manufacturing", env.observation_space, env.action_space
        )
        assert isinstance(policy, ConveyorController) and policy.sorting
        obs, _ = env.reset(seed=0)
        actions, _ = policy.act(np.stack([obs, obs]))  # batched: one action per sub-env
        assert actions.shape == (2, 4) and env.action_space.contains(actions[0])
    finally:
        env.close()
    with pytest.raises(ValueError, match="no scripted controller for lepton/Driving-v0"):
        from lepton_sim.agents.manufacturing.scripted import make_scripted

        make_scripted("lepton/Driving-v0", env.observation_space, env.action_space)
