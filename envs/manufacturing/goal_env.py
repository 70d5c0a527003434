"""Goal-conditioned arm tasks (HER-ready): Dict observations and a batched ``compute_reward``, as panda-gym."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.manufacturing.arm_env import ArmEnv

GOAL_BOUND = 10.0


def goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis (works on single goals and on batches)."""
    return np.linalg.norm(
        np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64), axis=-1
    )


class GoalArmEnv(ArmEnv):
    """Observation ``{"observation", "achieved_goal", "desired_goal"}``; reward and success from goal distance.

    Sparse reward: -1 while the distance exceeds ``distance_threshold``, else 0; dense: minus the distance.
    The episode terminates on success (as panda-gym).
    """

    goal: np.ndarray

    def _state_vector_space(self) -> spaces.Box:
        raise NotImplementedError

    def _state_vector(self) -> np.ndarray:
        raise NotImplementedError

    def _achieved_goal(self) -> np.ndarray:
        raise NotImplementedError

    def _state_observation_space(self) -> spaces.Space:
        goal = spaces.Box(-GOAL_BOUND, GOAL_BOUND, shape=(3,), dtype=np.float32)
        return spaces.Dict({"observation": self._state_vector_space(), "achieved_goal": goal, "desired_goal": goal})

    def _state_observation(self) -> dict[str, np.ndarray]:
        return {
            "observation": self._state_vector().astype(np.float32),
            "achieved_goal": self._achieved_goal().astype(np.float32),
            "desired_goal": self.goal.astype(np.float32),
        }

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None) -> np.ndarray:
        """Reward for (batches of) goals, as HER relabelling calls it; equals the step reward for the real goal."""
        d = goal_distance(achieved_goal, desired_goal)
        if self.params.reward_type == "sparse":
            return -(d > self.params.distance_threshold).astype(np.float32)
        return -d.astype(np.float32)

    def _evaluate(self) -> tuple[float, bool]:
        achieved = self._achieved_goal().astype(np.float32)
        success = bool(goal_distance(achieved, self.goal.astype(np.float32)) < self.params.distance_threshold)
        self._update_counters(success)
        self.metrics.mark_success(success, self.sim.time)
        reward = float(self.compute_reward(achieved, self.goal.astype(np.float32)))
        return reward, success

    def _update_counters(self, success: bool) -> None:
        """Task counters (parts_placed, dropped) after each step."""
