"""The robot layer shared by every arm task: a Franka Panda (or gripperless Kuka iiwa) from ``pybullet_data``,
driven like panda-gym: each step the action moves the end-effector target by up to 5 cm (inverse kinematics,
gripper pointing down) or the arm joints by up to 0.05 rad, and position motors track the target.

Speed: the robot is loaded with fixed links merged (the grasp point is then a fixed offset from the last arm
link), its whole state is read with one ``getLinkState`` and one ``getJointStates`` call per step, and IK uses
joint limits and rest poses computed once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pybullet as p
import pybullet_data

from lepton_sim.envs.manufacturing.sim import BulletSim, quiet_stdout

BASE_POSITION = (-0.6, 0.0, 0.0)  # as panda-gym: the robot stands on the table, 0.6 m behind the workspace centre
EE_STEP = 0.05  # metres of end-effector displacement per unit action per step (panda-gym)
JOINT_STEP = 0.05  # radians per unit action per step (panda-gym)
FINGER_STEP = 0.2  # metres of finger-width change per unit action per step (panda-gym)
DOWN = (1.0, 0.0, 0.0, 0.0)  # gripper pointing down (quaternion x, y, z, w)


@dataclass(frozen=True)
class RobotModel:
    """Static description of a robot: URDF, joints, motor forces and where its grasp point sits."""

    name: str
    urdf: str  # inside pybullet_data
    arm_joints: tuple[int, ...]  # indices after merging fixed links
    finger_joints: tuple[int, ...]
    ee_link: int  # last arm link; the grasp point is ``ee_offset`` from its frame
    ee_offset: tuple[float, float, float]
    ee_link_orientation: tuple[float, float, float, float]  # link-frame orientation that points the tool down
    neutral: tuple[float, ...]  # arm joint angles at reset
    arm_forces: tuple[float, ...]
    finger_force: float
    light_visuals: bool  # the URDF has heavy visual meshes worth replacing by collision hulls for cameras


def _panda_link_orientation() -> tuple[float, float, float, float]:
    # panda-gym orients the grasp-target frame as DOWN; it is the last link's frame turned by -45 deg about z.
    _, q = p.multiplyTransforms((0, 0, 0), DOWN, (0, 0, 0), p.getQuaternionFromEuler((0.0, 0.0, np.pi / 4)))
    return tuple(float(v) for v in q)  # type: ignore[return-value]


PANDA = RobotModel(
    name="panda",
    urdf="franka_panda/panda.urdf",
    arm_joints=(0, 1, 2, 3, 4, 5, 6),
    finger_joints=(7, 8),
    ee_link=6,
    ee_offset=(0.0, 0.0, 0.107 + 0.105),
    ee_link_orientation=_panda_link_orientation(),
    neutral=(0.00, 0.41, 0.00, -1.85, 0.00, 2.26, 0.79),
    arm_forces=(87.0, 87.0, 87.0, 87.0, 12.0, 120.0, 120.0),
    finger_force=170.0,
    light_visuals=True,
)
KUKA = RobotModel(
    name="kuka",
    urdf="kuka_iiwa/model.urdf",
    arm_joints=(0, 1, 2, 3, 4, 5, 6),
    finger_joints=(),
    ee_link=6,
    ee_offset=(0.0, 0.0, 0.045),
    ee_link_orientation=(0.0, 1.0, 0.0, 0.0),
    neutral=(0.0, 0.55, 0.0, -1.55, 0.0, 1.05, 0.0),
    arm_forces=(300.0,) * 7,
    finger_force=0.0,
    light_visuals=False,
)
ROBOT_MODELS = {"panda": PANDA, "kuka": KUKA}


@lru_cache(maxsize=None)
def _light_urdf(urdf: str) -> str:
    """A copy of ``urdf`` whose visual meshes are its collision hulls: ~10x faster camera images and loading.

    Written once per process into the temp folder (mesh paths made absolute), atomically for parallel workers.
    """
    src = os.path.join(pybullet_data.getDataPath(), urdf)
    folder = os.path.dirname(src)
    with open(src) as f:
        text = f.read()
    text = text.replace("package://meshes/visual/", "package://meshes/collision/")
    text = text.replace("package://meshes/", os.path.join(folder, "meshes") + os.sep)
    out_dir = os.path.join(tempfile.gettempdir(), f"lepton-sim-assets-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, urdf.replace("/", "_").replace(".urdf", "_light.urdf"))
    tmp = f"{out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    return out


class Robot:
    """An arm (plus optional parallel gripper) in a :class:`BulletSim`, with cached state read once per step.

    Args:
        sim: the physics world.
        model: which robot.
        control_type: "ee" (IK end-effector displacement) or "joints" (arm joint deltas).
        use_gripper: whether the action has a gripper component (False: fingers held closed, as PandaReach).
        light_visuals: draw collision hulls instead of the full visual meshes (cameras ~10x faster).
        nullspace_ik: pull the redundant joints towards the start posture (long episodes); plain IK as panda-gym
            otherwise (40 us cheaper per step).
    """

    def __init__(
        self,
        sim: BulletSim,
        model: RobotModel,
        control_type: str = "ee",
        use_gripper: bool = True,
        light_visuals: bool = True,
        nullspace_ik: bool = False,
    ) -> None:
        self.sim = sim
        self.model = model
        self.control_type = control_type
        self.use_gripper = use_gripper and bool(model.finger_joints)
        cid = sim.cid
        urdf = _light_urdf(model.urdf) if (light_visuals and model.light_visuals) else model.urdf
        with quiet_stdout():
            self.body = p.loadURDF(
                urdf, BASE_POSITION, useFixedBase=True, flags=p.URDF_MERGE_FIXED_LINKS, physicsClientId=cid
            )
        # (link, colour) of links whose visual is their collision hull: a camera may skip those its frustum
        # misses, judged by their collision AABBs (exact for these, not for the full visual meshes)
        self.hull_links: list[tuple[int, tuple[float, float, float, float]]] = []
        if light_visuals and model.light_visuals:
            self._paint_light_visuals()
        self.joints = list(model.arm_joints + model.finger_joints)
        self.forces = list(model.arm_forces) + [model.finger_force] * len(model.finger_joints)
        for j in model.finger_joints:  # panda-gym's finger friction: what makes grasps hold
            p.changeDynamics(self.body, j, lateralFriction=1.0, spinningFriction=0.001, physicsClientId=cid)
        info = [
            p.getJointInfo(self.body, j, physicsClientId=cid)
            for j in range(p.getNumJoints(self.body, physicsClientId=cid))
        ]
        movable = [j for j, row in enumerate(info) if row[2] != p.JOINT_FIXED]
        lower = np.array([info[j][8] for j in movable])
        upper = np.array([info[j][9] for j in movable])
        rest = list(model.neutral) + [0.0] * (len(movable) - len(model.neutral))
        # null-space IK keeps the elbow near its start posture over long (conveyor) episodes
        self._ik_kwargs: dict = dict(physicsClientId=cid)
        if nullspace_ik:
            self._ik_kwargs.update(
                lowerLimits=lower.tolist(),
                upperLimits=upper.tolist(),
                jointRanges=(upper - lower).tolist(),
                restPoses=rest,
            )
        self.arm_lower = lower[: len(model.arm_joints)]
        self.arm_upper = upper[: len(model.arm_joints)]
        self._offset = np.asarray(model.ee_offset)
        self.n_action = (3 if control_type == "ee" else len(model.arm_joints)) + (1 if self.use_gripper else 0)
        # cached state, refreshed by read_state()
        self.ee_position = np.zeros(3)
        self.ee_velocity = np.zeros(3)
        self.ee_orientation = np.array([0.0, 0.0, 0.0, 1.0])
        self.finger_width = 0.0
        self.arm_angles = np.array(model.neutral, dtype=float)
        self._target_width = 0.0

    def _paint_light_visuals(self) -> None:
        cid = self.sim.cid
        for link in range(-1, p.getNumJoints(self.body, physicsClientId=cid)):
            finger = link in self.model.finger_joints
            colour = (0.15, 0.15, 0.15, 1.0) if finger or link in (-1, self.model.ee_link) else (0.92, 0.92, 0.92, 1.0)
            p.changeVisualShape(self.body, link, rgbaColor=colour, physicsClientId=cid)
            self.hull_links.append((link, colour))

    # ----------------------------------------------------------------------------------------------- reset / act
    def reset(self, rng: np.random.Generator, joint_noise: float = 0.0) -> None:
        """Put the arm at its neutral pose (plus uniform noise), fingers closed, motors holding that pose."""
        angles = np.array(self.model.neutral, dtype=float)
        if joint_noise > 0:
            angles = np.clip(
                angles + rng.uniform(-joint_noise, joint_noise, size=angles.shape), self.arm_lower, self.arm_upper
            )
        cid = self.sim.cid
        for j, a in zip(self.model.arm_joints, angles):
            p.resetJointState(self.body, j, float(a), 0.0, physicsClientId=cid)
        for j in self.model.finger_joints:
            p.resetJointState(self.body, j, 0.0, 0.0, physicsClientId=cid)
        self._target_width = 0.0
        self._command(angles, 0.0)
        self.read_state()

    def hold_at(self, grasp_point: np.ndarray, finger_width: float) -> None:
        """Teleport the arm so the grasp point is at ``grasp_point`` (tool down), fingers ``finger_width`` apart
        and commanded shut: a part placed between them is held once physics runs (grasped-start resets)."""
        cid = self.sim.cid
        for _ in range(5):  # IK from the current posture; re-solving from the result converges to ~1 mm
            angles = self.inverse_kinematics(grasp_point)
            for j, a in zip(self.model.arm_joints, angles):
                p.resetJointState(self.body, j, float(a), 0.0, physicsClientId=cid)
        for j in self.model.finger_joints:
            p.resetJointState(self.body, j, finger_width / 2, 0.0, physicsClientId=cid)
        self._command(angles, 0.0)
        self.read_state()

    def apply_action(self, action: np.ndarray) -> None:
        """Turn one action into motor targets (called just before the physics step)."""
        action = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        if self.control_type == "ee":
            target = self.ee_position + action[:3] * EE_STEP
            target[2] = max(target[2], 0.0)  # panda-gym clips the target height at the table top
            angles = self.inverse_kinematics(target)
        else:
            angles = np.clip(
                self.arm_angles + action[: len(self.model.arm_joints)] * JOINT_STEP, self.arm_lower, self.arm_upper
            )
        width = 0.0
        if self.use_gripper:
            width = self.finger_width + float(action[-1]) * FINGER_STEP
        self._command(angles, width)

    def inverse_kinematics(self, ee_target: np.ndarray) -> np.ndarray:
        """Arm joint angles that put the grasp point at ``ee_target`` with the tool pointing down."""
        # the tool points down, so the last link's frame sits ``ee_offset`` straight above the grasp point
        link_target = (float(ee_target[0]), float(ee_target[1]), float(ee_target[2] + self._offset[2]))
        solution = p.calculateInverseKinematics(
            self.body, self.model.ee_link, link_target, self.model.ee_link_orientation, **self._ik_kwargs
        )
        return np.asarray(solution[: len(self.model.arm_joints)])

    def _command(self, arm_angles: np.ndarray, finger_width: float) -> None:
        targets = list(arm_angles)
        if self.model.finger_joints:
            # never drive the fingers into their closed limit (0): motor and limit then fight every substep and
            # the solver runs all its iterations (~13 % of ArmReach's step time); 2 mm apart looks the same
            half = min(max(finger_width, 0.002), 0.08) / 2
            targets += [half, half]
        p.setJointMotorControlArray(
            self.body,
            self.joints,
            p.POSITION_CONTROL,
            targetPositions=targets,
            forces=self.forces,
            physicsClientId=self.sim.cid,
        )

    # ---------------------------------------------------------------------------------------------------- state
    def read_state(self) -> None:
        """Refresh the cached grasp-point pose/velocity and finger width (one call each, after a physics step)."""
        cid = self.sim.cid
        state = p.getLinkState(
            self.body, self.model.ee_link, computeLinkVelocity=1, computeForwardKinematics=1, physicsClientId=cid
        )
        frame_pos = np.asarray(state[4])
        rot = np.asarray(p.getMatrixFromQuaternion(state[5])).reshape(3, 3)
        lever = rot @ self._offset
        self.ee_position = frame_pos + lever
        rx, ry, rz = self.ee_position - np.asarray(state[0])  # grasp point relative to the link's centre of mass
        wx, wy, wz = state[7]
        vx, vy, vz = state[6]
        self.ee_velocity = np.array((vx + wy * rz - wz * ry, vy + wz * rx - wx * rz, vz + wx * ry - wy * rx))
        self.ee_orientation = np.asarray(state[5])
        if self.model.finger_joints:
            fingers = p.getJointStates(self.body, self.model.finger_joints, physicsClientId=cid)
            self.finger_width = float(fingers[0][0] + fingers[1][0])
        if self.control_type == "joints":
            arm = p.getJointStates(self.body, self.model.arm_joints, physicsClientId=cid)
            self.arm_angles = np.array([s[0] for s in arm])
