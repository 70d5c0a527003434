"""Scenario parameters of the manufacturing envs: bad values fail early with messages naming the field."""

from __future__ import annotations

import gymnasium
import pytest
from pydantic import ValidationError

import lepton_sim
import lepton_sim.envs.manufacturing  # noqa: F401
from lepton_sim.envs.manufacturing.params import ConveyorPickParams, ConveyorSortParams, PickPlaceParams, ReachParams
from lepton_sim.errors import ScenarioError


@pytest.mark.parametrize(
    "model, kwargs, field, message",
    [
        (ConveyorPickParams, {"conveyor_speed": -0.1}, "conveyor_speed", "conveyor speed must be >= 0 m/s"),
        (ConveyorPickParams, {"conveyor_speed": [-0.2, 0.3]}, "conveyor_speed", "conveyor speed must be >= 0 m/s"),
        (ConveyorPickParams, {"arrival_rate": 0}, "arrival_rate", "arrival rate must be > 0"),
        (ConveyorSortParams, {"num_classes": 4, "num_bins": 3}, "num_classes", "more classes (4) than bins (3)"),
        (ConveyorSortParams, {"num_bins": 5}, "num_bins", "less than or equal to 4"),
        (ConveyorSortParams, {"defect_rate": 1.5}, "defect_rate", "less than or equal to 1"),
        (ReachParams, {"robot": "ur5"}, "robot", "unknown robot 'ur5'; allowed: panda, kuka"),
        (PickPlaceParams, {"robot": "kuka"}, "robot", "robot 'kuka' has no gripper"),
        (PickPlaceParams, {"part_size": [0.05, 0.09]}, "part_size", "part_size must be within [0.02, 0.07] m"),
        (PickPlaceParams, {"part_mass": 0}, "part_mass", "part_mass must be within [0.01, 5] kg, got [0, 0]"),
        (PickPlaceParams, {"part_size": [0.05, 0.03]}, "part_size", "low (0.05) is greater than high (0.03)"),
        (ReachParams, {"initial_joint_noise": -0.1}, "initial_joint_noise", "greater than or equal to 0"),
        (ReachParams, {"target_z": [0.0, 0.9]}, "target_z", "target_z must be within [0, 0.5] m"),
        (ReachParams, {"obs_mode": "depth"}, "obs_mode", "obs_mode 'depth' is not supported; allowed: state, pixels"),
        (ReachParams, {"obs_mode": "rgb"}, "obs_mode", "obs_mode 'rgb' was renamed to 'pixels'"),
        (ReachParams, {"lanes": 2}, "lanes", "Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_field(model: type, kwargs: dict, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        model(**kwargs)
    text = str(err.value)
    assert field in text and message in text


def test_env_constructor_validates() -> None:
    with pytest.raises(ValidationError, match="unknown robot 'abb'"):
        gymnasium.make("lepton/ConveyorSort-v0", robot="abb")
    from lepton_sim.envs.manufacturing.reach import ArmReachEnv

    with pytest.raises(ValueError, match="render_mode 'human' is not supported"):
        ArmReachEnv(render_mode="human")


def test_scenario_overrides_are_checked_before_any_simulator_starts() -> None:
    with pytest.raises(ScenarioError, match=r"params\.conveyor_speed: .*conveyor speed must be >= 0"):
        lepton_sim.load_scenario("manufacturing/conveyor-pick", conveyor_speed=-1.0)
    with pytest.raises(ScenarioError, match=r"more classes \(3\) than bins \(2\)"):
        lepton_sim.load_scenario("manufacturing/conveyor-sort", num_classes=3)


def test_builtin_scenarios_and_suite_load() -> None:
    for name in ("reach", "pick-place", "conveyor-pick", "conveyor-sort"):
        sc = lepton_sim.load_scenario(f"manufacturing/{name}")
        assert sc.domain == "manufacturing" and sc.metrics
    suite = lepton_sim.load_suite("manufacturing/standard")
    labels = [e.label for e in suite.test]
    assert "conveyor-pick-fast" in labels and "pick-place-large-parts" in labels
    assert all(e.seed >= 100_000 for e in suite.test)  # held-out seeds
