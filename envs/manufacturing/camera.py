"""Cameras of the production cell: fixed views ("overhead", "front", "inspection") and a wrist camera on the hand.

All images come from PyBullet's software TinyRenderer (``ER_TINY_RENDERER``), so they work headless in
``p.DIRECT``. RGB is uint8 HxWx3; depth is float32 HxW in metres along the optical axis (linearised from the
z-buffer); the segmentation mask is PyBullet's body id per pixel (-1 where nothing was drawn), which
``segmentation`` maps to class ids. One ``getCameraImage`` call gives all three; the mask is requested only when
asked for (it costs ~10 %). ``Camera.project`` maps world points to pixels, so state can label images.

A camera is posed by its nominal view plus ``CameraConditions`` (sensor realism): ``offset`` and ``rotation`` move
it in its own frame (x right, y up the image, z towards the viewer; roll about the optical axis, pitch about x,
yaw about y), ``fov_delta`` widens or narrows it and ``light_direction`` / ``light_color`` become TinyRenderer's
``lightDirection`` / ``lightColor``. Nominal conditions give exactly the nominal view (no recomputed matrices).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pybullet as p

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.manufacturing.params import ArmParams
from lepton_sim.envs.manufacturing.scene import BELT_TOP, BELT_X, SPAWN_Y

CAMERA_NAMES = ArmParams.CAMERA_NAMES  # the nominal light: params.LIGHT_DIRECTION
MIN_FOV, MAX_FOV = 1.0, 170.0
NOMINAL_LIGHT_ARGUMENT = (-50.0, 30.0, 100.0)  # TinyRenderer's default light direction, unnormalised as it is


@dataclass(frozen=True)
class FixedView:
    """A camera at ``eye`` looking at ``target``; ``up`` is the world direction shown at the top of the image."""

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float  # vertical field of view, degrees
    near: float = 0.05
    far: float = 4.0


# overhead: high above the belt's side of the cell looking down at belt, bins and table (the arm comes in
# from the top of the image)
OVERHEAD = FixedView(eye=(0.3, 0.0, 1.1), target=(-0.1, 0.0, 0.0), up=(-1.0, 0.0, 0.0), fov=45.0)
# front: panda-gym's render view (distance 1.4, yaw 45, pitch -30 around the origin)
FRONT = FixedView(eye=(0.857, 0.857, 0.7), target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0), fov=45.0)
# inspection: an inspection station where parts enter, upstream of the pick zone: straight down on the belt from
# INSPECTION_HEIGHT above it, seeing its whole width (0.14 m) and ~2 part lengths of it (a 4 cm part is ~28 % of
# the image); the belt runs left to right, the robot's side at the top as in the overhead view
INSPECTION_Y = SPAWN_Y + 0.05  # the view's centre along the belt (parts appear 5 cm before it)
INSPECTION_HEIGHT, INSPECTION_FOV = 0.18, 46.0  # m above the belt surface; degrees (square images: both axes)
INSPECTION_HALF = INSPECTION_HEIGHT * math.tan(math.radians(INSPECTION_FOV / 2))  # ~0.076 m at the belt surface
INSPECTION_VIEW = FixedView(
    eye=(BELT_X, INSPECTION_Y, BELT_TOP + INSPECTION_HEIGHT),
    target=(BELT_X, INSPECTION_Y, 0.0),
    up=(-1.0, 0.0, 0.0),
    fov=INSPECTION_FOV,
    near=0.02,
    far=1.0,
)
FIXED_VIEWS = {"overhead": OVERHEAD, "front": FRONT, "inspection": INSPECTION_VIEW}


def under_inspection(position: np.ndarray | tuple[float, ...], half_size: float = 0.0) -> bool:
    """Whether a part centred at ``position`` is wholly inside the inspection camera's view of the belt (a margin
    of ``half_size``: its top face all in the image) and on the belt, not lifted."""
    x, y, z = (float(v) for v in position[:3])
    top = BELT_TOP + 2 * half_size  # the top face is nearer the camera, so its view is narrower there
    reach = (INSPECTION_VIEW.eye[2] - top) * math.tan(math.radians(INSPECTION_FOV / 2)) - half_size
    return abs(x - BELT_X) <= reach and abs(y - INSPECTION_Y) <= reach and z < top + 0.02


WRIST_FOV, WRIST_NEAR, WRIST_FAR = 70.0, 0.01, 2.0
WRIST_BACK = 0.12  # the wrist camera sits this far behind (above) the grasp point, looking along the gripper


@dataclass(frozen=True)
class RawFrame:
    """What one ``getCameraImage`` call returns: RGBA uint8 (H, W, 4), z-buffer float32 (H, W) in [0, 1] (1 where
    nothing was drawn) and body ids int32 (H, W) (-1: nothing; None when the mask was not requested)."""

    rgba: np.ndarray
    zbuffer: np.ndarray
    bodies: np.ndarray | None


@dataclass(frozen=True)
class Camera:
    """A posed pinhole camera in one PyBullet world."""

    cid: int
    view: tuple[float, ...]  # 4x4 column-major, as PyBullet
    width: int
    height: int
    fov: float
    near: float
    far: float
    projection: tuple[float, ...] = ()  # 4x4 column-major; computed from fov/near/far when left empty
    light: dict[str, Any] = field(default_factory=lambda: light_arguments(NOMINAL), compare=False)  # getCameraImage's

    def __post_init__(self) -> None:
        if not self.projection:
            matrix = p.computeProjectionMatrixFOV(
                self.fov, self.width / self.height, self.near, self.far, physicsClientId=self.cid
            )
            object.__setattr__(self, "projection", tuple(matrix))

    def render(self, segmentation: bool = False, cid: int | None = None) -> RawFrame:
        """One TinyRenderer call (headless, no shadows) in this camera's world (or in world ``cid``)."""
        _, _, rgba, zbuf, bodies = p.getCameraImage(
            self.width,
            self.height,
            self.view,
            self.projection,
            shadow=0,
            renderer=p.ER_TINY_RENDERER,
            flags=0 if segmentation else p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self.cid if cid is None else cid,
            **self.light,
        )
        shape = (self.height, self.width)
        return RawFrame(
            rgba=np.asarray(rgba, dtype=np.uint8).reshape(*shape, 4),
            zbuffer=np.asarray(zbuf, dtype=np.float32).reshape(shape),
            bodies=np.asarray(bodies, dtype=np.int32).reshape(shape) if segmentation else None,
        )

    def linear_depth(self, zbuffer: np.ndarray) -> np.ndarray:
        """Metres along the optical axis from TinyRenderer's [0, 1] z-buffer (``far`` where nothing was drawn)."""
        n, f = self.near, self.far
        return (f * n / (f - (f - n) * zbuffer)).astype(np.float32, copy=False)

    def capture(self, depth: bool = False) -> CameraImage:
        """The whole scene in one render: RGB uint8 (H, W, 3) and, if asked for, depth float32 (H, W) in metres.

        The plain reference path; ``ArmEnv.camera_image`` gives the same pixels faster (see ``background``)."""
        frame = self.render()
        return CameraImage(
            rgb=np.ascontiguousarray(frame.rgba[..., :3]),
            depth=self.linear_depth(frame.zbuffer) if depth else None,
        )

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> pixel coordinates (N, 2) as (row, col) floats, and depth (N,) in metres."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        view = np.asarray(self.view).reshape(4, 4).T
        proj = np.asarray(self.projection).reshape(4, 4).T
        eye_space = np.c_[pts, np.ones(len(pts))] @ view.T
        clip = eye_space @ proj.T
        ndc = clip[:, :3] / clip[:, 3:4]
        col = (ndc[:, 0] + 1.0) / 2.0 * self.width
        row = (1.0 - ndc[:, 1]) / 2.0 * self.height
        return np.stack([row, col], axis=1), -eye_space[:, 2]

    @property
    def clip_matrix(self) -> np.ndarray:
        """World -> clip coordinates (4, 4): projection @ view."""
        return np.asarray(self.projection).reshape(4, 4).T @ np.asarray(self.view).reshape(4, 4).T

    @property
    def pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Camera position (3,) and its frame as columns (right, up, towards the viewer), both in world coordinates."""
        view = np.asarray(self.view).reshape(4, 4).T  # world -> camera
        rot = view[:3, :3].T
        return -rot @ view[:3, 3], rot

    def corner_rays(self) -> np.ndarray:
        """World directions (4, 3) through the image corners, scaled to unit depth along the optical axis."""
        _, rot = self.pose
        half_v = np.tan(np.radians(self.fov) / 2.0)
        half_h = half_v * self.width / self.height
        signs = np.array([(-1, -1), (-1, 1), (1, -1), (1, 1)], dtype=float)
        return -rot[:, 2] + (signs[:, :1] * half_h) * rot[:, 0] + (signs[:, 1:] * half_v) * rot[:, 1]


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    x, y, z = axis
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def posed_view(
    cid: int, eye: np.ndarray, forward: np.ndarray, up: np.ndarray, conditions: CameraConditions
) -> tuple[float, ...]:
    """The view matrix of a camera at ``eye`` looking along ``forward``, moved by ``conditions`` in its own frame."""
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    frame = np.stack([right, np.cross(right, forward), -forward], axis=1)  # columns: x right, y up, z back
    roll, pitch, yaw = conditions.rotation
    local = _rotation(np.array([0.0, 1.0, 0.0]), yaw) @ _rotation(np.array([1.0, 0.0, 0.0]), pitch)
    frame = frame @ local @ _rotation(np.array([0.0, 0.0, 1.0]), roll)
    eye = eye + frame @ np.asarray(conditions.offset, dtype=float)
    matrix = p.computeViewMatrix(eye.tolist(), (eye - frame[:, 2]).tolist(), frame[:, 1].tolist(), physicsClientId=cid)
    return tuple(matrix)


def light_arguments(conditions: CameraConditions) -> dict[str, Any]:
    """getCameraImage's light keywords for ``conditions``, always both: PyBullet keeps the last light it was given
    for every later call that names none, so the nominal light is passed explicitly, as TinyRenderer's own default
    (direction (-50, 30, 100), normalised by the renderer; white), which renders the same pixels."""
    direction = conditions.light_direction if conditions.light_direction is not None else NOMINAL_LIGHT_ARGUMENT
    colour = conditions.light_color if conditions.light_color is not None else (1.0, 1.0, 1.0)
    return {"lightDirection": [float(v) for v in direction], "lightColor": [float(v) for v in colour]}


def _fov(fov: float, conditions: CameraConditions) -> float:
    return float(np.clip(fov + conditions.fov_delta, MIN_FOV, MAX_FOV))


def fixed_camera(cid: int, view: FixedView, width: int, height: int, conditions: CameraConditions = NOMINAL) -> Camera:
    """A fixed view; nominal poses use ``computeViewMatrix(eye, target, up)`` exactly as always."""
    if conditions.offset == (0.0, 0.0, 0.0) and conditions.rotation == (0.0, 0.0, 0.0):
        matrix = tuple(p.computeViewMatrix(view.eye, view.target, view.up, physicsClientId=cid))
    else:
        eye = np.asarray(view.eye, dtype=float)
        matrix = posed_view(cid, eye, np.asarray(view.target) - eye, np.asarray(view.up, dtype=float), conditions)
    fov = _fov(view.fov, conditions)
    return Camera(cid, matrix, width, height, fov, view.near, view.far, light=light_arguments(conditions))


def wrist_camera(
    cid: int,
    ee_position: np.ndarray,
    ee_orientation: np.ndarray,
    width: int,
    height: int,
    conditions: CameraConditions = NOMINAL,
    projection: tuple[float, ...] = (),
) -> Camera:
    """A camera on the hand looking along the gripper (towards what the fingers will grasp)."""
    rot = np.asarray(p.getMatrixFromQuaternion(ee_orientation)).reshape(3, 3)
    forward, up = rot[:, 2], rot[:, 0]  # tool axis, and the hand's x axis as image "up"
    eye = ee_position - WRIST_BACK * forward
    if conditions.offset == (0.0, 0.0, 0.0) and conditions.rotation == (0.0, 0.0, 0.0):
        matrix = tuple(p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), up.tolist(), physicsClientId=cid))
    else:
        matrix = posed_view(cid, eye, forward, up, conditions)
    fov = _fov(WRIST_FOV, conditions)
    return Camera(cid, matrix, width, height, fov, WRIST_NEAR, WRIST_FAR, projection, light_arguments(conditions))
