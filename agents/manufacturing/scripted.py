"""Scripted controllers for the manufacturing tasks: the non-learning reference (baseline ``scripted``).

Each controller reads only the state observation (positions, finger opening, part class, bin positions) and
chooses an end-effector displacement and gripper command: approach above the part, descend with the fingers
open, close, lift, carry, release. They are stateless (the phase is inferred from the observation), so they
work unchanged across vector-env autoresets.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.envs.manufacturing.conveyor_env import BIN_DIM, ROBOT_DIM, SLOT_DIM, SLOTS
from lepton_sim.envs.manufacturing.params import MAX_BINS
from lepton_sim.envs.manufacturing.robot import EE_STEP
from lepton_sim.envs.manufacturing.scene import BELT_X, BIN_HEIGHT, ZONE_END_Y, ZONE_START_Y
from lepton_sim.policy import Policy

OPEN, CLOSE = 1.0, -1.0
HOVER = 0.06  # approach height above a part (m)
CARRY_Z = 0.16  # travel height with a part (m)


def _move(ee: np.ndarray, target: np.ndarray, gain: float | np.ndarray = 1.0) -> np.ndarray:
    """Displacement action towards ``target``, scaled (not clipped per axis) so the path stays straight."""
    action = gain * (target - ee) / EE_STEP
    peak = float(np.max(np.abs(action)))
    return action / peak if peak > 1.0 else action


def _holding(ee: np.ndarray, width: float, part: np.ndarray, size: float) -> bool:
    """Fingers closed on the part: it sits between them and the opening matches its size."""
    d = np.abs(part - ee)
    return bool(d[0] < 0.02 and d[1] < 0.02 and d[2] < 0.025 and size - 0.012 < width < size + 0.006)


def _grasp(ee: np.ndarray, width: float, part: np.ndarray, part_velocity: np.ndarray) -> np.ndarray:
    """Approach above the part, descend with the fingers open, close when around it. A moving part is tracked
    one control step ahead (the motors reach a new target within about one step)."""
    lead = part + part_velocity * 0.06
    xy_error = float(np.linalg.norm(ee[:2] - lead[:2]))
    height = ee[2] - part[2]
    if xy_error > 0.04:  # travel above the parts
        return np.r_[_move(ee, np.r_[lead[:2], part[2] + HOVER + 0.04]), OPEN]
    if xy_error > (0.025 if height < HOVER - 0.015 else 0.012):  # align above it (keep descending if nearly there)
        return np.r_[_move(ee, np.r_[lead[:2], part[2] + HOVER]), OPEN]
    gain = np.array([1.0, 1.0, 0.6])
    if height > 0.006 or xy_error > 0.012:
        return np.r_[_move(ee, np.r_[lead[:2], part[2]], gain), OPEN if width < 0.07 else 0.0]
    return np.r_[_move(ee, np.r_[lead[:2], part[2]], gain), CLOSE]


class ReachController(Policy):
    """Straight to the target."""

    name = "scripted"
    env_overrides = {"control_type": "ee", "obs_mode": "state"}

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        ee = np.asarray(observation["observation"])[:, :3]
        goal = np.asarray(observation["desired_goal"])
        return _move(ee, goal, gain=1.0).astype(np.float32), None


class PickPlaceController(Policy):
    """Grasp the part, then carry it to the goal (gripper kept closed)."""

    name = "scripted"
    env_overrides = {"control_type": "ee", "obs_mode": "state"}

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation["observation"])
        goals = np.asarray(observation["desired_goal"])
        return np.stack([self._one(o, g) for o, g in zip(obs, goals)]).astype(np.float32), None

    @staticmethod
    def _one(obs: np.ndarray, goal: np.ndarray) -> np.ndarray:
        ee, width, part, size = obs[:3], float(obs[6]), obs[7:10], float(obs[19])
        if _holding(ee, width, part, size):
            return np.r_[_move(ee, goal), CLOSE]
        return _grasp(ee, width, part, np.zeros(3))  # the part lies still on the table


class ConveyorController(Policy):
    """Take the oldest part still catchable, lift it, carry it over its bin (class c -> bin c) and let go."""

    name = "scripted"
    env_overrides = {"control_type": "ee", "obs_mode": "state"}

    def __init__(self, sorting: bool) -> None:
        self.sorting = sorting

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        return np.stack([self._one(o) for o in np.asarray(observation)]).astype(np.float32), None

    def _one(self, obs: np.ndarray) -> np.ndarray:
        ee, width = obs[:3], float(obs[6])
        slots = obs[ROBOT_DIM : ROBOT_DIM + SLOTS * SLOT_DIM].reshape(SLOTS, SLOT_DIM)
        bins = obs[ROBOT_DIM + SLOTS * SLOT_DIM :].reshape(MAX_BINS, BIN_DIM)
        bins = bins[bins[:, 0] > 0.5, 1:3]
        parts = [s for s in slots if s[0] > 0.5]
        for s in parts:  # a part just let go over a bin: keep still until it has dropped in
            pos, size = s[1:4], float(s[7])
            if (
                width > size + 0.01
                and pos[2] > BIN_HEIGHT
                and np.min(np.linalg.norm(bins - pos[:2], axis=1)) < 0.06
                and np.linalg.norm(pos - ee) < 0.06
            ):
                return np.r_[_move(ee, np.r_[ee[:2], CARRY_Z]), OPEN]
        for s in parts:  # a part in the hand goes to its bin first
            pos, size = s[1:4], float(s[7])
            if _holding(ee, width, pos, size):
                if self.sorting:
                    target_bin = bins[int(np.argmax(s[8:]))]
                else:
                    target_bin = bins[int(np.argmin(np.linalg.norm(bins - ee[:2], axis=1)))]
                if ee[2] < CARRY_Z - 0.06 and np.linalg.norm(ee[:2] - target_bin) > 0.05:
                    return np.r_[_move(ee, np.r_[ee[:2], CARRY_Z]), CLOSE]  # lift clear of the belt first
                above = np.r_[target_bin, CARRY_Z]
                if np.linalg.norm(ee[:2] - target_bin) < 0.015 and np.linalg.norm(obs[3:5]) < 0.05:
                    return np.r_[_move(ee, above), OPEN]  # over the bin and slowed down: let go
                return np.r_[_move(ee, above, gain=0.7), CLOSE]
        for s in parts:  # otherwise the oldest part that can still be caught, once it is within reach
            pos, vel = s[1:4], s[4:7]
            if ZONE_START_Y - 0.02 < pos[1] < ZONE_END_Y - 0.04 and pos[2] < 0.1:
                return _grasp(ee, width, pos, vel)
        # nothing to do: wait above the upstream end of the reachable zone
        return np.r_[_move(ee, np.array([BELT_X, ZONE_START_Y + 0.05, CARRY_Z - 0.04])), OPEN]


def make_scripted(env_id: str, observation_space: gymnasium.Space, action_space: gymnasium.Space) -> Policy:
    """Baseline factory: the controller for ``env_id``."""
    if env_id == "lepton/ArmReach-v0":
        return ReachController()
    if env_id == "lepton/ArmPickPlace-v0":
        return PickPlaceController()
    if env_id in ("lepton/ConveyorPick-v0", "lepton/ConveyorSort-v0"):
        return ConveyorController(sorting=env_id == "lepton/ConveyorSort-v0")
    if env_id in ("lepton/VisualInspection-v0", "lepton/WasteSorting-v0"):
        from lepton_sim.agents.manufacturing.inspection import OracleSorter

        return OracleSorter()  # the class from the oracle state: the upper bound for perception
    raise ValueError(
        f"no scripted controller for {env_id}; manufacturing controllers: lepton/ArmReach-v0, "
        "lepton/ArmPickPlace-v0, lepton/ConveyorPick-v0, lepton/ConveyorSort-v0, lepton/VisualInspection-v0, "
        "lepton/WasteSorting-v0"
    )
