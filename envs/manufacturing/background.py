"""Fast camera images of the cell: what never moves is not re-rendered, what a camera cannot see is not drawn.

Why: TinyRenderer shades every pixel of every triangle it draws, and the 6 m floor and the table cost more than
half of an 84x84 overhead frame (1.8 of 3.1 ms). For the fixed cameras they are rendered once per camera pose,
size and light in a private world that holds only identical copies of them (one per process, shared by every
env); each frame renders the env's world with them hidden (alpha 0: TinyRenderer skips the object) and merges
the two by depth. A moving camera (the wrist) renders everything except the floor when the frustum sees nothing
but the table top (the floor would be drawn and then entirely overdrawn: ~1 ms) and the robot links its frustum
misses (their collision boxes beyond one clip plane; ~0.4 ms of vertex work).

Exact: without shadows a fragment's colour depends only on its own triangle, the camera and the light, and
TinyRenderer keeps the nearest fragment (stored as float32; a later fragment wins a tie). The floor and table are
the first bodies of every cell and stay first in both paths, so wherever the moving bodies' depth and the
background's differ, the nearer one is what the plain render shows. Where they are equal (a body meeting the
table top, e.g. the belt's sides where it dips into it: a pixel in a few hundred frames) either could have won,
so such a frame is rendered whole (:func:`tied`). The images equal the plain render's pixel for pixel (rgb,
depth, segmentation; tests/test_manufacturing_camera.py compares them on every task, camera and condition).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pybullet as p

from lepton_sim.envs.camera_image import CameraImage
from lepton_sim.envs.manufacturing.camera import Camera, RawFrame
from lepton_sim.envs.manufacturing.scene import TABLE_LENGTH, TABLE_WIDTH, TABLE_X, create_floor_and_table
from lepton_sim.envs.manufacturing.segmentation import FLOOR, TABLE, class_lookup, classes_of
from lepton_sim.envs.manufacturing.sim import BulletSim

_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))  # which of (low, high) per axis, for 8 corners
CLEAR = np.array([255, 255, 255, 255], dtype=np.uint8).view(np.uint32)[0]  # TinyRenderer's empty pixel
MAX_LAYERS = 64  # cached backgrounds (camera x size x conditions); sensor realism makes a new one per episode
TABLE_MARGIN = 0.002  # m: frustum corners must hit the table top this far inside its edges to skip the floor


@dataclass(frozen=True)
class Layer:
    """The floor and table seen by one camera: RGBA pixels as uint32 (H, W), z-buffer float32 (H, W), class ids
    int32 (H, W)."""

    rgba32: np.ndarray
    zbuffer: np.ndarray
    classes: np.ndarray


def _as_uint32(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W) uint32, one number per pixel: merging whole pixels is ~8x faster than channels."""
    return np.ascontiguousarray(rgba).view(np.uint32)[..., 0]


class StaticBackground:
    """Renders and caches the floor-and-table layer of a camera, in a world of its own."""

    def __init__(self) -> None:
        self._sim: BulletSim | None = None
        self._lut = np.zeros(1, dtype=np.int32)
        self._layers: OrderedDict[tuple, Layer] = OrderedDict()

    def _world(self) -> BulletSim:
        if self._sim is None or not self._sim.connected:
            self._sim = BulletSim()
            floor, table = create_floor_and_table(self._sim)
            self._lut = class_lookup([(floor, FLOOR), (table, TABLE)])
            self._layers.clear()
        return self._sim

    def layer(self, camera: Camera) -> Layer:
        """The camera's background, rendered on first use."""
        light = tuple((k, tuple(v)) for k, v in sorted(camera.light.items()))
        key = (camera.view, camera.projection, camera.width, camera.height, light)
        cached = self._layers.get(key)
        if cached is not None:
            self._layers.move_to_end(key)
            return cached
        frame = camera.render(segmentation=True, cid=self._world().cid)
        assert frame.bodies is not None
        layer = Layer(_as_uint32(frame.rgba), frame.zbuffer, classes_of(frame.bodies, self._lut))
        self._layers[key] = layer
        if len(self._layers) > MAX_LAYERS:
            self._layers.popitem(last=False)
        return layer


BACKGROUND = StaticBackground()


Rgba = tuple[float, float, float, float]


@contextlib.contextmanager
def hidden(cid: int, links: Sequence[tuple[int, int, Rgba]]) -> Iterator[None]:
    """(body, link, colour) made invisible to TinyRenderer (alpha 0) for one render, then given their colour back;
    only for links whose visual shapes all have that one colour (changeVisualShape sets them all)."""
    for body, link, rgba in links:
        p.changeVisualShape(body, link, rgbaColor=(*rgba[:3], 0.0), physicsClientId=cid)
    try:
        yield
    finally:
        for body, link, rgba in links:
            p.changeVisualShape(body, link, rgbaColor=rgba, physicsClientId=cid)


def outside_frustum(camera: Camera, boxes: np.ndarray) -> np.ndarray:
    """Which axis-aligned boxes (N, 2, 3: low and high corners) lie entirely outside the camera's frustum: all eight
    corners beyond one clip plane (left, right, bottom, top, near, far) or behind the camera. Conservative: a box
    beside a corner of the frustum, beyond two planes but not wholly beyond either, counts as inside."""
    corners = np.where(_CORNERS[None] == 0, boxes[:, None, 0], boxes[:, None, 1])  # (N, 8, 3)
    clip = np.concatenate([corners, np.ones((*corners.shape[:2], 1))], axis=-1) @ camera.clip_matrix.T
    x, y, z, w = np.moveaxis(clip, -1, 0)
    out = (w < 0).all(axis=1)
    for c in (x, y, z):
        out |= (c > w).all(axis=1) | (c < -w).all(axis=1)
    return out


def floor_hidden_by_table(camera: Camera) -> bool:
    """Whether the camera sees the table top wherever it could see the floor: all four frustum corner rays hit
    the top (z = 0) inside its edges, between the near and far planes (the footprint is then inside the top)."""
    eye, _ = camera.pose
    rays = camera.corner_rays()
    if eye[2] <= 0.0 or np.any(rays[:, 2] >= 0.0):
        return False
    depth = -eye[2] / rays[:, 2]  # along the optical axis: the rays have unit depth
    hits = eye[:2] + depth[:, None] * rays[:, :2]
    inside = (np.abs(hits[:, 0] - TABLE_X) < TABLE_LENGTH / 2 - TABLE_MARGIN) & (
        np.abs(hits[:, 1]) < TABLE_WIDTH / 2 - TABLE_MARGIN
    )
    return bool(inside.all() and depth.min() > camera.near and depth.max() < camera.far)


def tied(frame: RawFrame, layer: Layer) -> bool:
    """Whether a moving body and the background are at the same depth somewhere (then only the plain render knows
    which one TinyRenderer kept: it compares its double-precision fragment depth with the stored float32).

    Depth 1.0 is also where nothing was drawn, and where the floor's far end lies within float32 of the far plane:
    there the background stays (``merge``), unless a moving body was drawn there too (not white)."""
    level = frame.zbuffer == layer.zbuffer
    if not level.any():
        return False
    drawn = (layer.zbuffer < 1.0) | (_as_uint32(frame.rgba) != CLEAR)
    return bool(np.any(level & drawn))


def merge(camera: Camera, frame: RawFrame, layer: Layer | None, lut: np.ndarray | None, depth: bool) -> CameraImage:
    """The camera image from a frame of the moving bodies and the background layer (None: the frame is all).

    ``rgb`` is a view of the RGBA array PyBullet (or the merge) produced, not a copy: the observation pipeline
    copies it into its stacked image once (a separate packed copy of an 84x84 image costs more than the merge)."""
    segmentation = None if lut is None or frame.bodies is None else classes_of(frame.bodies, lut)
    if layer is None:
        rgba, zbuffer = frame.rgba, frame.zbuffer
    else:
        front = frame.zbuffer < layer.zbuffer  # equal: nothing moving was drawn there (see tied)
        rgba = np.where(front, _as_uint32(frame.rgba), layer.rgba32)[..., None].view(np.uint8)
        zbuffer = np.where(front, frame.zbuffer, layer.zbuffer) if depth else frame.zbuffer
        if segmentation is not None:
            segmentation = np.where(front, segmentation, layer.classes)
    return CameraImage(
        rgb=rgba[..., :3], depth=camera.linear_depth(zbuffer) if depth else None, segmentation=segmentation
    )
