"""Smart-manufacturing arm tasks on PyBullet: reach, pick-and-place, conveyor picking, conveyor sorting, and the
visual-inspection tasks (defect inspection, waste sorting) whose classes only cameras show.

Importing this package registers the env ids; PyBullet is imported only when an env is made.
"""

from __future__ import annotations

import math

from lepton_sim.envs.manufacturing.inspection_params import VisualInspectionParams, WasteSortingParams
from lepton_sim.envs.manufacturing.params import ConveyorPickParams, ConveyorSortParams, PickPlaceParams, ReachParams
from lepton_sim.envs.registration import LeptonEnvSpec, register

_PKG = "lepton_sim.envs.manufacturing"
# counters, throughput and times are non-negative, rates are shares (metrics.TaskMetrics)
_BOUNDS = {
    **{
        k: (0.0, math.inf)
        for k in ("parts_placed", "mis_sorted", "dropped", "missed", "parts_per_minute", "time_to_success")
    },
    "mis_sort_rate": (0.0, 1.0),
    "drop_rate": (0.0, 1.0),
}
# simulated time in s, throughput per minute of simulated time; the conveyor tasks count parts (reach and
# pick-place have one part, whose counters are 0/1 flags and so have no unit)
_UNITS = {"time_to_success": "s", "parts_per_minute": "1/min"}
_CONVEYOR_UNITS = {**_UNITS, **{k: "parts" for k in ("parts_placed", "mis_sorted", "dropped", "missed")}}
_OVERLAY = {"gripper_opening": "m"}  # what lepton-sim rollout shows over the video
_CONVEYOR_OVERLAY = {**_OVERLAY, "parts_placed": "parts"}
_ONE_PART = frozenset({"is_success", "parts_placed", "dropped"})  # one part per episode: its counters are 0/1 flags

for _spec in (
    LeptonEnvSpec(
        id="lepton/ArmReach-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.reach:ArmReachEnv",
        params_model=ReachParams,
        max_episode_steps=50,
        metric_bounds=_BOUNDS,
        metric_units=_UNITS,
        binary_metrics=_ONE_PART,
        overlay_keys=_OVERLAY,
    ),
    LeptonEnvSpec(
        id="lepton/ArmPickPlace-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.pick_place:ArmPickPlaceEnv",
        params_model=PickPlaceParams,
        max_episode_steps=50,
        metric_bounds=_BOUNDS,
        metric_units=_UNITS,
        binary_metrics=_ONE_PART,
        overlay_keys=_OVERLAY,
    ),
    LeptonEnvSpec(
        id="lepton/ConveyorPick-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.conveyor_pick:ConveyorPickEnv",
        params_model=ConveyorPickParams,
        max_episode_steps=500,
        metric_bounds=_BOUNDS,
        metric_units=_CONVEYOR_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_CONVEYOR_OVERLAY,
    ),
    LeptonEnvSpec(
        id="lepton/ConveyorSort-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.conveyor_sort:ConveyorSortEnv",
        params_model=ConveyorSortParams,
        max_episode_steps=600,
        metric_bounds=_BOUNDS,
        metric_units=_CONVEYOR_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_CONVEYOR_OVERLAY,
    ),
    LeptonEnvSpec(
        id="lepton/VisualInspection-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.inspection:VisualInspectionEnv",
        params_model=VisualInspectionParams,
        max_episode_steps=600,
        metric_bounds=_BOUNDS,
        metric_units=_CONVEYOR_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_CONVEYOR_OVERLAY,
    ),
    LeptonEnvSpec(
        id="lepton/WasteSorting-v0",
        domain="manufacturing",
        entry_point=f"{_PKG}.inspection:WasteSortingEnv",
        params_model=WasteSortingParams,
        max_episode_steps=600,
        metric_bounds=_BOUNDS,
        metric_units=_CONVEYOR_UNITS,
        binary_metrics=frozenset({"is_success"}),
        overlay_keys=_CONVEYOR_OVERLAY,
    ),
):
    register(_spec)

ENV_IDS = (
    "lepton/ArmReach-v0",
    "lepton/ArmPickPlace-v0",
    "lepton/ConveyorPick-v0",
    "lepton/ConveyorSort-v0",
    "lepton/VisualInspection-v0",
    "lepton/WasteSorting-v0",
)
