"""``lepton/ArmPickPlace-v0``: pick a part from the table and place it at a target (in the air or on the table)."""

from __future__ import annotations

import numpy as np
import pybullet as p
from gymnasium import spaces

from lepton_sim.envs.manufacturing.goal_env import GoalArmEnv
from lepton_sim.envs.manufacturing.params import PickPlaceParams
from lepton_sim.envs.manufacturing.scene import PartFactory, create_marker
from lepton_sim.envs.manufacturing.segmentation import TARGET, part_class_id

FELL_OFF_Z = -0.1  # a part this far below the table top has fallen off it


class ArmPickPlaceEnv(GoalArmEnv):
    """
    ## Description
    A Franka Panda must pick a cube part from the table and bring its centre within ``distance_threshold``
    (5 cm) of a target; 30 % of targets lie on the table, the others up to 20 cm above it. Defaults reproduce
    panda-gym's PandaPickAndPlace-v3 (4 cm, 1 kg cube, same ranges, timing and rewards); part size, mass and
    friction can be randomised per episode (e.g. held-out sizes in the test split).

    ## Action Space
    ``Box(-1, 1, (4,), float32)``: end-effector displacement (x, y, z) x 5 cm per step (IK, gripper down) and
    the gripper: finger opening changes by ``a[3]`` x 0.2 m (clipped to 0..0.08 m).
    ``control_type="joints"``: 7 arm joint deltas x 0.05 rad + gripper.

    ## Observation Space
    ``Dict`` (``obs_mode="state"``):

    | key           | index | meaning                                      | unit  |
    |---------------|-------|----------------------------------------------|-------|
    | observation   | 0-2   | grasp point position                         | m     |
    | observation   | 3-5   | grasp point velocity                         | m/s   |
    | observation   | 6     | finger opening                               | m     |
    | observation   | 7-9   | part centre position                         | m     |
    | observation   | 10-12 | part orientation (roll, pitch, yaw)          | rad   |
    | observation   | 13-15 | part linear velocity                         | m/s   |
    | observation   | 16-18 | part angular velocity                        | rad/s |
    | observation   | 19    | part size (cube side)                        | m     |
    | achieved_goal | 0-2   | part centre position                         | m     |
    | desired_goal  | 0-2   | target position of the part centre           | m     |

    ## Rewards
    As ArmReach: sparse -1/0 (5 cm), or dense minus the distance; batched ``compute_reward`` for HER.

    ## Starting State
    Arm at neutral, fingers closed; part on the table at (``part_x``, ``part_y``); target at (``target_x``,
    ``target_y``, size/2 + ``target_z``), on the table with probability ``target_on_table_prob``.
    Training curriculum (``start_grasped_prob``, default 0): that share of episodes starts with the part already
    held between the fingers, ``start_grasped_height`` above its start position - a reset to a state a
    demonstration would pass through (Nair et al. 2018), which lets HER learn carrying and placing early.

    ## Episode End
    Terminates on success; truncated after 50 steps.

    ## Info
    ``is_success``, ``parts_placed`` (1 while the part is at the target), ``dropped`` (1 once the part fell off
    the table), ``time_to_success`` and the rates, see ``ArmEnv``.

    ## Arguments
    See :class:`lepton_sim.envs.manufacturing.params.PickPlaceParams`.
    """

    params_model = PickPlaceParams

    def _build_scene(self) -> None:
        self.goal = np.zeros(3)
        self.parts = PartFactory(self.sim)
        self.part = -1
        self.part_size = 0.0
        self.marker = create_marker(self.sim, 0.02, (0.1, 0.9, 0.1, 0.4))
        self._part_state = np.zeros(12)

    def _clear_episode(self) -> None:
        if self.part >= 0:
            p.removeBody(self.part, physicsClientId=self.sim.cid)
            self.part = -1

    def _reset_task(self) -> None:
        prm, rng, cid = self.params, self.np_random, self.sim.cid
        size = PartFactory.quantise(prm.part_size.sample(rng))
        mass, friction = prm.part_mass.sample(rng), prm.part_friction.sample(rng)
        goal = np.array([prm.target_x.sample(rng), prm.target_y.sample(rng), size / 2])
        if rng.random() >= prm.target_on_table_prob:
            goal[2] += prm.target_z.sample(rng)
        start = (prm.part_x.sample(rng), prm.part_y.sample(rng), size / 2)
        self.goal = goal
        if prm.start_grasped_prob > 0 and rng.random() < prm.start_grasped_prob:
            start = (start[0], start[1], size / 2 + prm.start_grasped_height.sample(rng))
            self.robot.hold_at(np.array(start), size)
        self.part = self.parts.create(size, mass, friction, 0, False, start)
        self.part_size = size
        p.resetBasePositionAndOrientation(self.marker, goal.tolist(), (0, 0, 0, 1), physicsClientId=cid)
        self._read_part()

    def _read_part(self) -> None:
        cid = self.sim.cid
        pos, orn = p.getBasePositionAndOrientation(self.part, physicsClientId=cid)
        lin, ang = p.getBaseVelocity(self.part, physicsClientId=cid)
        self._part_state = np.array(pos + p.getEulerFromQuaternion(orn) + lin + ang)

    def _evaluate(self) -> tuple[float, bool]:
        self._read_part()
        return super()._evaluate()

    def _update_counters(self, success: bool) -> None:
        self.metrics.placed = int(success)
        if self._part_state[2] < FELL_OFF_Z:
            self.metrics.dropped = 1

    def _segmentation_bodies(self) -> list[tuple[int, int]]:
        return [*super()._segmentation_bodies(), (self.marker, TARGET), (self.part, part_class_id(0))]

    def _state_vector_space(self) -> spaces.Box:
        return spaces.Box(-10.0, 10.0, shape=(20,), dtype=np.float32)

    def _state_vector(self) -> np.ndarray:
        r = self.robot
        return np.concatenate([r.ee_position, r.ee_velocity, [r.finger_width], self._part_state, [self.part_size]])

    def _achieved_goal(self) -> np.ndarray:
        return self._part_state[:3]

    @property
    def part_position(self) -> np.ndarray:
        return self._part_state[:3].copy()
