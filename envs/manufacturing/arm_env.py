"""The base class of every arm task: physics world, robot, cameras, metrics bookkeeping and the step loop.

Subclasses build their scene and define observation, reward and success through a few hooks
(``_build_scene``, ``_reset_task``, ``_before_physics``, ``_evaluate``, ``_state_observation``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pybullet as p
from gymnasium import spaces

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.manufacturing.background import (
    BACKGROUND,
    Layer,
    Rgba,
    floor_hidden_by_table,
    hidden,
    merge,
    outside_frustum,
    tied,
)
from lepton_sim.envs.manufacturing.camera import CAMERA_NAMES, FIXED_VIEWS, Camera, fixed_camera, wrist_camera
from lepton_sim.envs.manufacturing.metrics import TaskMetrics
from lepton_sim.envs.manufacturing.params import ArmParams
from lepton_sim.envs.manufacturing.robot import ROBOT_MODELS, Robot
from lepton_sim.envs.manufacturing.scene import FLOOR_COLOUR, TABLE_COLOUR, create_floor_and_table
from lepton_sim.envs.manufacturing.segmentation import FLOOR, ROBOT, TABLE, class_lookup
from lepton_sim.envs.manufacturing.sim import CONTROL_DT, BulletSim
from lepton_sim.envs.rendering import check_render_mode

MAX_CAMERAS = 12  # cached fixed cameras per env: names x sizes x recent conditions (sensor realism: one per episode)


class ArmEnv(gym.Env):
    """Abstract arm task on a table (see the task classes for the full description)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / CONTROL_DT)}
    params_model: ClassVar[type[ArmParams]] = ArmParams
    use_gripper: ClassVar[bool] = True
    nullspace_ik: ClassVar[bool] = False

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.params = self.params_model(**kwargs)
        self.sim = BulletSim()
        self.floor, self.table = create_floor_and_table(self.sim)
        self.robot = Robot(
            self.sim,
            ROBOT_MODELS[self.params.robot],
            control_type=self.params.control_type,
            use_gripper=self.use_gripper,
            light_visuals=self.params.robot_visuals == "collision",
            nullspace_ik=self.nullspace_ik,
        )
        self.metrics = TaskMetrics()
        self.steps = 0
        self._build_scene()
        # every reset starts from this snapshot (contact caches and solver warm starts included), so an episode
        # depends only on its seed, never on what the previous episode left behind
        self._snapshot = p.saveState(physicsClientId=self.sim.cid)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.robot.n_action,), dtype=np.float32)
        self.observation_space = self._state_observation_space()
        # fixed cameras (and their backgrounds) per (name, size, conditions), wrist projections per (size, fov):
        # built once, reused
        self._cameras: dict[tuple, tuple[Camera, Layer | None]] = {}
        self._wrist_projections: dict[tuple[int, int, float], tuple[float, ...]] = {}

    # ------------------------------------------------------------------------------------------------ task hooks
    def _build_scene(self) -> None:
        """Create the task's bodies (once, at construction)."""

    def _clear_episode(self) -> None:
        """Remove the bodies created by ``_reset_task`` (called before the world is restored at reset)."""

    def _reset_task(self) -> None:
        """Sample the episode (goals, parts) from ``self.np_random`` and create its bodies."""

    def _before_physics(self) -> None:
        """Called after the robot's motor targets are set, just before the physics step."""

    def _evaluate(self) -> tuple[float, bool]:
        """After the physics step: update metrics, return (reward, terminated)."""
        raise NotImplementedError

    def _state_observation(self) -> Any:
        """The task's observation (camera modes are the observation pipeline's wrappers, see ``camera_image``)."""
        raise NotImplementedError

    def _state_observation_space(self) -> spaces.Space:
        raise NotImplementedError

    def _segmentation_bodies(self) -> list[tuple[int, int]]:
        """(body id, segmentation class) of every body a camera can see now (see ``segmentation``)."""
        return [(self.floor, FLOOR), (self.table, TABLE), (self.robot.body, ROBOT)]

    # ------------------------------------------------------------------------------------------------ gym API
    def _info(self) -> dict[str, Any]:
        # gripper_opening: the distance between the fingers (m; 0 for a gripperless arm), shown by rollout videos
        return {**self.metrics.info(self.sim.time), "gripper_opening": float(self.robot.finger_width)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.sim.time = 0.0
        self.steps = 0
        self.metrics.reset()
        self._clear_episode()
        p.restoreState(self._snapshot, physicsClientId=self.sim.cid)
        self.robot.reset(self.np_random, self.params.initial_joint_noise)
        self._reset_task()
        return self._state_observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        self.robot.apply_action(action)
        self._before_physics()
        self.sim.step()
        self.steps += 1
        self.robot.read_state()
        reward, terminated = self._evaluate()
        return self._state_observation(), float(reward), bool(terminated), False, self._info()

    def render(self) -> np.ndarray | None:
        """An RGB frame (``render_width`` x ``render_height``) from the front view, when render_mode='rgb_array'."""
        if self.render_mode != "rgb_array":
            return None
        return self.camera_image("front", self.params.render_width, self.params.render_height).rgb

    def camera(
        self, name: str = "overhead", width: int = 84, height: int = 84, conditions: CameraConditions = NOMINAL
    ) -> Camera:
        """A named camera: "overhead" (fixed, looking down on belt, bins and table), "front" (the render view),
        "inspection" (fixed, close and straight down on the belt where parts enter) or "wrist" (on the hand, looking along the gripper; posed where the hand is now), moved by ``conditions``."""
        if name == "wrist":
            key = (width, height, conditions.fov_delta)
            projection = self._wrist_projections.get(key, ())
            camera = wrist_camera(
                self.sim.cid, self.robot.ee_position, self.robot.ee_orientation, width, height, conditions, projection
            )
            if key not in self._wrist_projections:
                if len(self._wrist_projections) >= MAX_CAMERAS:
                    self._wrist_projections.pop(next(iter(self._wrist_projections)))
                self._wrist_projections[key] = camera.projection
            return camera
        if name not in FIXED_VIEWS:
            raise ValueError(f"unknown camera {name!r}; allowed: {', '.join(CAMERA_NAMES)}")
        return self._fixed_camera(name, width, height, conditions)[0]

    def _fixed_camera(
        self, name: str, width: int, height: int, conditions: CameraConditions, background: bool = False
    ) -> tuple[Camera, Layer | None]:
        key = (name, width, height, conditions)
        cached = self._cameras.get(key)
        if cached is None:
            if len(self._cameras) >= MAX_CAMERAS:  # per-episode conditions: forget the oldest
                self._cameras.pop(next(iter(self._cameras)))
            cached = self._cameras[key] = (
                fixed_camera(self.sim.cid, FIXED_VIEWS[name], width, height, conditions),
                None,
            )
        if background and cached[1] is None:
            cached = self._cameras[key] = (cached[0], BACKGROUND.layer(cached[0]))
        return cached

    def camera_image(
        self,
        name: str = "overhead",
        width: int = 84,
        height: int = 84,
        *,
        depth: bool = False,
        segmentation: bool = False,
        conditions: CameraConditions = NOMINAL,
    ) -> CameraImage:
        """Capture from a named camera (see :meth:`camera`): RGB uint8 (H, W, 3) and, when asked for, depth float32
        metres (H, W) and segmentation class ids int32 (H, W) (``segmentation`` module), all from one render.

        Fixed cameras draw the floor and table from a cached background (``background``: the same pixels, half
        the cost); nothing is rendered unless asked for, and never on physics substeps."""
        layer: Layer | None = None
        if name in FIXED_VIEWS:
            camera, layer = self._fixed_camera(name, width, height, conditions, background=True)
            skipped = [(self.floor, -1, FLOOR_COLOUR), (self.table, -1, TABLE_COLOUR)]
        else:
            camera = self.camera(name, width, height, conditions)
            skipped = self._unseen_links(camera)
        with hidden(self.sim.cid, skipped):
            frame = camera.render(segmentation)
        if layer is not None and tied(frame, layer):  # rare: a body level with the table top; render it all
            frame, layer = camera.render(segmentation), None
        lut = class_lookup(self._segmentation_bodies()) if segmentation else None
        return merge(camera, frame, layer, lut, depth)

    def _unseen_links(self, camera: Camera) -> list[tuple[int, int, Rgba]]:
        """What a moving camera need not draw: the floor where the table hides it, robot links it cannot see."""
        skipped = [(self.floor, -1, FLOOR_COLOUR)] if floor_hidden_by_table(camera) else []
        links = self.robot.hull_links
        if links:
            cid, body = self.sim.cid, self.robot.body
            boxes = np.array([p.getAABB(body, link, physicsClientId=cid) for link, _ in links])
            skipped += [(body, link, rgba) for (link, rgba), out in zip(links, outside_frustum(camera, boxes)) if out]
        return skipped

    def close(self) -> None:
        self.sim.close()
