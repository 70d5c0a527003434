"""Driving cameras: an ego-centred, heading-aligned top-down view of N worlds, rasterised by one compiled loop.

``topdown`` is RGB (grass, road, lane markings, the remaining route, the goal line, parked cars, cones, other
vehicles and the ego); ``semantic`` is the same view as 5 channels of 0/255, one per class (road, markings,
obstacles, vehicles, route and goal: ``SEMANTIC_CLASSES``), like MetaDrive's and highway-env's top-down
occupancy grids; the ego is not in it (it is always at the same pixel). The ego's box centre sits at a fixed
pixel (column W/2, row 3/4 H), its heading pointing up the image; the image height covers ``camera_footprint``
metres (default ``FOOTPRINT``, 64: 48 m ahead of the ego, 16 m behind) whatever its size, with square pixels
(0.76 m at 84 x 84; a smaller footprint gives small images finer pixels and a shorter view ahead).

Why polygons and a column scan, not per-pixel tests: every feature is a polygon in pixel coordinates with a class
bit (``CLASS_BITS``). Where a boundary segment crosses a pixel column's centre line, it adds its polygon's bits
(entering) or subtracts them (leaving) at the first pixel below the crossing; a running sum down every column
then gives each pixel the bits of the polygons whose inside holds its centre (winding numbers, in one byte: the
classes' bits are disjoint, so modular uint8 sums stay exact). The cost per frame is a few hundred boundary
segments and their crossings and one pass over the image, in ``camera_kernels`` (numba): world ``i`` of a batch
is drawn by the same loop as a single world, pixel for pixel. Where two polygons of one class overlap, the sum
carries into the next bit: vehicles, the only class that can overlap itself, have the top bit, so an overlap of
two of them wraps to no vehicle.

Features thinner than a pixel are drawn one pixel wide (markings, route, cones), so an agent always sees them.
``CameraConditions`` move the virtual camera: ``offset`` x (right) / y (ahead) shift it in the ego's frame,
z raises it (a wider footprint, like zooming out), ``rotation`` yaw turns it counter-clockwise (the scene turns
clockwise in the image) and ``fov_delta`` widens the field of view of a camera at ``ALTITUDE``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from lepton_sim.envs.camera_image import CameraConditions, CameraImage
from lepton_sim.envs.driving import camera_kernels
from lepton_sim.envs.driving.camera_kernels import (
    CONE_BIT,
    DASH_ON,
    DASH_PERIOD,
    EGO_BIT,
    GOAL_BIT,
    GOAL_DEPTH,
    MARKING_BIT,
    MARKING_WIDTH,
    MIN_BOX,
    PARKED_BIT,
    ROAD_BIT,
    ROUTE_BIT,
    ROUTE_WIDTH,
    VEHICLE_BIT,
)
from lepton_sim.envs.driving.dynamics import CAR_WIDTH
from lepton_sim.envs.driving.params import MAX_LANES, DrivingParams
from lepton_sim.envs.driving.render import CONE, EGO, GOAL, GRASS, MARKING, ROAD, ROUTE, VEHICLE

if TYPE_CHECKING:
    from lepton_sim.envs.driving.sim import DrivingSim

__all__ = ["DASH_ON", "DASH_PERIOD", "GOAL_DEPTH", "MARKING_WIDTH", "MIN_BOX", "ROUTE_WIDTH"]  # re-exported

CAMERAS = ("topdown", "semantic")
FOOTPRINT = 64.0  # m covered by the image height (at any image size) by default (scenario param camera_footprint)
EGO_ROW = 0.75  # the ego's box centre sits this far down the image (it sees 3/4 of the footprint ahead)
AHEAD = (EGO_ROW - 0.5) * FOOTPRINT  # m from the ego's box centre to the image centre (default footprint)
ALTITUDE = 50.0  # m: height of the virtual camera (offset z raises it; fov_delta widens its field of view)
CHORD_TOL = 0.1  # m: road polylines stay this close to the curved road (0.13 px at 84 x 84)
TIGHT_WINDOW_WORLDS = 8  # batches this large first narrow the road window to what reaches the image
PARKED = (160, 80, 210)  # parked cars (the video's blue-grey is too close to the route's blue at 84 x 84)

CLASS_BITS = {
    "road": ROAD_BIT,
    "marking": MARKING_BIT,
    "route": ROUTE_BIT,
    "goal": GOAL_BIT,
    "parked": PARKED_BIT,
    "cone": CONE_BIT,
    "ego": EGO_BIT,
    "vehicle": VEHICLE_BIT,
}
SEMANTIC_CLASSES = ("road", "marking", "obstacle", "vehicle", "route")
_SEMANTIC_BITS = (ROAD_BIT, MARKING_BIT, PARKED_BIT | CONE_BIT, VEHICLE_BIT, ROUTE_BIT | GOAL_BIT)
# RGB: the first class present at a pixel gives its colour
_PRIORITY = (
    (EGO_BIT, EGO),
    (VEHICLE_BIT, VEHICLE),
    (CONE_BIT, CONE),
    (PARKED_BIT, PARKED),
    (GOAL_BIT, GOAL),
    (ROUTE_BIT, ROUTE),
    (MARKING_BIT, MARKING),
    (ROAD_BIT, ROAD),
)
COLORS = {"grass": GRASS, **{name: dict(_PRIORITY)[bit] for name, bit in CLASS_BITS.items()}}  # RGB per class


def _pixel_bytes() -> dict[str, np.ndarray]:
    """Each camera's bytes for every value of a pixel's class bits: topdown (256, 3) RGB, semantic (256, 5)."""
    values = np.arange(256)
    rgb = np.array([next((color for bit, color in _PRIORITY if v & bit), GRASS) for v in values], np.uint8)
    semantic = np.stack([np.where(values & mask, 255, 0) for mask in _SEMANTIC_BITS], axis=1).astype(np.uint8)
    return {"topdown": rgb, "semantic": semantic}


PIXEL_BYTES = _pixel_bytes()


def check_camera(name: str, depth: bool = False, segmentation: bool = False) -> None:
    """Raise ValueError for an unknown camera or a channel the driving cameras do not have."""
    if name not in CAMERAS:
        raise ValueError(f"unknown camera {name!r}; allowed: {', '.join(CAMERAS)}")
    if depth or segmentation:
        raise ValueError("the driving cameras have no depth or segmentation channel (CAMERA_CHANNELS is empty)")


def _condition_arrays(conditions: Sequence[CameraConditions] | None, n: int) -> np.ndarray | None:
    """Per world (offset x, y, z, yaw degrees, fov delta) as an (n, 5) array; None when all are nominal."""
    if conditions is None:
        return None
    if len(conditions) != n:
        raise ValueError(f"camera conditions: got {len(conditions)} for {n} worlds")
    if all(c.nominal for c in conditions):
        return None
    return np.array([(*c.offset, c.rotation[2], c.fov_delta) for c in conditions], dtype=np.float64)


_UNUSED = np.zeros((5, 1))  # views and reach of a nominal camera (the kernel computes them)


class DrivingCamera:
    """Renders the driving cameras of every world of a :class:`DrivingSim` (one instance per env)."""

    def __init__(self, params: DrivingParams) -> None:
        self.params = params
        self.footprint = float(params.camera_footprint)
        self.ahead = (EGO_ROW - 0.5) * self.footprint  # m from the ego's box centre to the image centre
        self.fov = 2.0 * math.degrees(math.atan(0.5 * self.footprint / ALTITUDE))  # degrees, along the image height
        self.kappa = float(params.curvature.high)
        # polyline vertices every `step` m (whole metres: exact centreline samples) keep chords within CHORD_TOL
        self.step = float(min(max(math.floor(math.sqrt(8.0 * CHORD_TOL / max(self.kappa, 1e-9))), 1.0), 12.0))
        self.lane_lines = int(params.lanes.high) - 1  # lines between lanes: 1 .. lane_lines
        self._reach: dict[tuple[int, int], np.ndarray] = {}
        self.list_room: int | None = None  # the kernel's changed-cell lists (None: H W; tests set fewer)

    def render(
        self,
        sim: "DrivingSim",
        name: str,
        width: int,
        height: int,
        conditions: Sequence[CameraConditions] | None = None,
    ) -> CameraImage:
        """All worlds' images of camera ``name``: rgb (N, H, W, 3) or semantic (N, H, W, 5), fresh uint8 arrays."""
        check_camera(name)
        n, w, h = sim.num_worlds, int(width), int(height)
        if w < 1 or h < 1:
            raise ValueError(f"camera image size must be positive, got {w} x {h}")
        table = PIXEL_BYTES[name]
        size = n * h * w * table.shape[1]
        data = np.empty(size + 64, np.uint8)  # the kernel writes whole 64-byte blocks (see camera_kernels)
        image = data[:size].reshape(n, h, w, table.shape[1])
        ex, ey, ec, es = sim.ego_box()
        cond = _condition_arrays(conditions, n)
        views, reach = (_UNUSED, _UNUSED[0]) if cond is None else self._views(sim, w, h, cond, ex, ey, ec, es)
        c = np.ascontiguousarray
        camera_kernels.render_worlds(
            data,
            w,
            h,
            table,
            sim.road.flat,
            sim.road.num_points - 1.0,
            c(sim.rows),
            c(sim.s),
            c(sim.s_goal),
            c(sim.half_road),
            c(sim.route_d),
            c(sim.lanes),
            c(ex),
            c(ey),
            c(ec),
            c(es),
            c(sim.obj_x),
            c(sim.obj_y),
            c(sim.obj_cos),
            c(sim.obj_sin),
            c(sim.obj_hl),
            c(sim.obj_hw),
            sim.num_vehicles,
            cond is None,
            views,
            reach,
            self._reach_by_lanes(w, h),
            self.footprint / h,
            self.ahead,
            self.step,
            float(self.params.lane_width),
            self.lane_lines,
            n >= TIGHT_WINDOW_WORLDS,
            float(sim.ego_half_length),
            0.5 * CAR_WIDTH,
            h * w if self.list_room is None else self.list_room,
        )
        return CameraImage(rgb=image) if name == "topdown" else CameraImage(semantic=image)

    # ------------------------------------------------------------------------------------------ geometry
    def _window(self, chord: np.ndarray) -> np.ndarray:
        """Arc length of road that can reach ``chord`` metres (straight-line) from a point on it.

        A curve with curvature at most kappa and total turning at most 180 degrees (the road never turns back)
        spans at least the chord of a circular arc of the same length (Schur's comparison theorem).
        """
        k = self.kappa
        if k * float(chord.max()) < 1e-6:
            return chord + 1.0
        ratio = np.minimum(0.5 * k * chord, 1.0)
        return np.where(ratio < 1.0, 2.0 * np.arcsin(ratio) / k, chord + math.pi / k) + 1.0

    def _reach_by_lanes(self, w: int, h: int) -> np.ndarray:
        """:meth:`_window` of the nominal camera for roads of 0..MAX_LANES lanes (made once per image size)."""
        found = self._reach.get((w, h))
        if found is None:
            half = 0.5 * self.params.lane_width * np.arange(MAX_LANES + 1)
            found = self._reach[(w, h)] = self._window(
                0.5 * math.hypot(w, h) * (self.footprint / h) + self.ahead + 2.0 * half + 2.0
            )
        return found

    def _views(
        self,
        sim: "DrivingSim",
        w: int,
        h: int,
        cond: np.ndarray,
        ex: np.ndarray,
        ey: np.ndarray,
        ec: np.ndarray,
        es: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each moved camera's world -> pixel map u = ax x + ay y + a0 (columns, to the right), v = ay x - ax y +
        b0 (rows, down the image) as (5, N) ax, ay, a0, b0, metres per pixel, and the road window that can reach
        its image (N,)."""
        ox, oy, oz, yaw, fov = cond.T
        half_fov = np.radians(0.5 * np.minimum(np.maximum(self.fov + fov, 1.0), 179.0))
        zoom = ((ALTITUDE + oz) / ALTITUDE) * (np.tan(half_fov) / math.tan(math.radians(0.5 * self.fov)))
        mpp = (self.footprint / h) * np.maximum(zoom, 1e-3)
        theta = sim.heading + np.radians(yaw)
        fx, fy = np.cos(theta), np.sin(theta)
        ahead = self.ahead
        cx = ex + ec * (ahead + oy) + es * ox
        cy = ey + es * (ahead + oy) - ec * ox
        centre_offset = np.sqrt(ox * ox + (ahead + oy) * (ahead + oy))
        inv = 1.0 / mpp
        ax, ay = fy * inv, fx * -inv
        views = np.array([ax, ay, 0.5 * w - (cx * ax + cy * ay), 0.5 * h - (cx * ay - cy * ax), mpp])
        reach = self._window(0.5 * math.hypot(w, h) * mpp + centre_offset + 2.0 * sim.half_road + 2.0)
        return views, reach
