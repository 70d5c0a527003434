"""``lepton/ArmReach-v0``: move the gripper to a target (PandaReach-v3's task on lepton-sim's faster robot layer)."""

from __future__ import annotations

import numpy as np
import pybullet as p
from gymnasium import spaces

from lepton_sim.envs.manufacturing.goal_env import GoalArmEnv
from lepton_sim.envs.manufacturing.params import ReachParams
from lepton_sim.envs.manufacturing.scene import create_marker
from lepton_sim.envs.manufacturing.segmentation import TARGET


class ArmReachEnv(GoalArmEnv):
    """
    ## Description
    A Franka Panda (or Kuka iiwa) on a table must bring its grasp point within ``distance_threshold`` (5 cm) of
    a target sampled in a 0.3 m cube in front of it. Same physics timing (25 Hz control, 20 substeps of 2 ms),
    action scaling, goal ranges and rewards as panda-gym's PandaReach-v3, so results compare directly.

    ## Action Space
    ``Box(-1, 1, (3,), float32)``: end-effector displacement (x, y, z) x 5 cm per step, solved by inverse
    kinematics with the gripper pointing down (fingers closed). ``control_type="joints"``: 7 arm joint deltas
    x 0.05 rad.

    ## Observation Space
    ``Dict`` (``obs_mode="state"``):

    | key           | index | meaning                                   | unit |
    |---------------|-------|-------------------------------------------|------|
    | observation   | 0-2   | grasp point position x, y, z              | m    |
    | observation   | 3-5   | grasp point velocity                      | m/s  |
    | achieved_goal | 0-2   | grasp point position                      | m    |
    | desired_goal  | 0-2   | target position                           | m    |

    ``obs_mode="pixels"``: ``observation`` is a ``camera_size`` square uint8 RGB image from ``obs_camera`` (the
    goals stay; see ``lepton_sim.envs.pixel_observation``).

    ## Rewards
    ``reward_type="sparse"``: -1 until within ``distance_threshold`` of the target, then 0; ``"dense"``: minus
    the distance (m). ``compute_reward(achieved_goal, desired_goal, info)`` gives the same for batches (HER).

    ## Starting State
    Arm at panda-gym's neutral pose (plus ``initial_joint_noise``); target uniform in
    ``target_x`` x ``target_y`` x ``target_z``.

    ## Episode End
    Terminates on success; truncated after 50 steps (registered ``max_episode_steps``).

    ## Info
    ``is_success``, ``time_to_success`` (simulated s, NaN before success) and the production-line counters
    (always 0 / NaN here), see ``ArmEnv``.

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.params.ReachParams`.
    """

    params_model = ReachParams
    use_gripper = False

    def _build_scene(self) -> None:
        self.goal = np.zeros(3)
        self.marker = create_marker(self.sim, 0.02, (0.1, 0.9, 0.1, 0.4))

    def _reset_task(self) -> None:
        prm = self.params
        rng = self.np_random
        self.goal = np.array([prm.target_x.sample(rng), prm.target_y.sample(rng), prm.target_z.sample(rng)])
        p.resetBasePositionAndOrientation(self.marker, self.goal.tolist(), (0, 0, 0, 1), physicsClientId=self.sim.cid)

    def _segmentation_bodies(self) -> list[tuple[int, int]]:
        return [*super()._segmentation_bodies(), (self.marker, TARGET)]

    def _state_vector_space(self) -> spaces.Box:
        return spaces.Box(-10.0, 10.0, shape=(6,), dtype=np.float32)

    def _state_vector(self) -> np.ndarray:
        return np.concatenate([self.robot.ee_position, self.robot.ee_velocity])

    def _achieved_goal(self) -> np.ndarray:
        return self.robot.ee_position
