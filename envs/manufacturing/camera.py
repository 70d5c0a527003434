"""Cameras for rendering and perception: fixed views ("overhead", "front") and a wrist camera on the hand.

All images come from PyBullet's software TinyRenderer (``ER_TINY_RENDERER``), so they work headless in
``p.DIRECT``. RGB is uint8 HxWx3; depth is float32 HxW in metres along the optical axis (linearised from the
z-buffer). Without shadows and with the robot's light meshes an 84x84 frame costs ~2 ms (panda-gym ~35 ms).
``Camera.project`` maps world points to pixels, so state can label images for a perception module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p

CAMERA_NAMES = ("overhead", "front", "wrist")


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
WRIST_FOV, WRIST_NEAR, WRIST_FAR = 70.0, 0.01, 2.0
WRIST_BACK = 0.12  # the wrist camera sits this far behind (above) the grasp point, looking along the gripper


@dataclass
class CameraImage:
    """One capture: ``rgb`` uint8 (H, W, 3) and, if asked for, ``depth`` float32 (H, W) in metres."""

    rgb: np.ndarray
    depth: np.ndarray | None = None


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

    @property
    def projection(self) -> tuple[float, ...]:
        return p.computeProjectionMatrixFOV(
            self.fov, self.width / self.height, self.near, self.far, physicsClientId=self.cid
        )

    def capture(self, depth: bool = False) -> CameraImage:
        """Render with TinyRenderer (headless, no shadows, no segmentation mask)."""
        _, _, rgba, zbuf, _ = p.getCameraImage(
            self.width,
            self.height,
            self.view,
            self.projection,
            shadow=0,
            renderer=p.ER_TINY_RENDERER,
            flags=p.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self.cid,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3]
        result = CameraImage(rgb=np.ascontiguousarray(rgb))
        if depth:
            z = np.asarray(zbuf, dtype=np.float32).reshape(self.height, self.width)
            n, f = self.near, self.far
            result.depth = (f * n / (f - (f - n) * z)).astype(np.float32)
        return result

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


def fixed_camera(cid: int, view: FixedView, width: int, height: int) -> Camera:
    matrix = p.computeViewMatrix(view.eye, view.target, view.up, physicsClientId=cid)
    return Camera(cid, tuple(matrix), width, height, view.fov, view.near, view.far)


def wrist_camera(cid: int, ee_position: np.ndarray, ee_orientation: np.ndarray, width: int, height: int) -> Camera:
    """A camera on the hand looking along the gripper (towards what the fingers will grasp)."""
    rot = np.asarray(p.getMatrixFromQuaternion(ee_orientation)).reshape(3, 3)
    forward, up = rot[:, 2], rot[:, 0]  # tool axis, and the hand's x axis as image "up"
    eye = ee_position - WRIST_BACK * forward
    matrix = p.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), up.tolist(), physicsClientId=cid)
    return Camera(cid, tuple(matrix), width, height, WRIST_FOV, WRIST_NEAR, WRIST_FAR)
