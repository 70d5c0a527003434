"""Driving cameras: an ego-centred, heading-aligned top-down view of N worlds, rasterised in one numpy pass.

``topdown`` is RGB (grass, road, lane markings, the remaining route, the goal line, parked cars, cones, other
vehicles and the ego); ``semantic`` is the same view as 5 channels of 0/255, one per class (road, markings,
obstacles, vehicles, route and goal: ``SEMANTIC_CLASSES``), like MetaDrive's and highway-env's top-down
occupancy grids; the ego is not in it (it is always at the same pixel). The ego's box centre sits at a fixed
pixel (column W/2, row 3/4 H), its heading pointing up the image; the image height covers ``FOOTPRINT`` metres
(48 m ahead of the ego, 16 m behind) whatever its size, with square pixels (0.76 m at 84 x 84).

Why polygons and a column scan, not per-pixel tests: every feature is a polygon in pixel coordinates with a class
bit (``CLASS_BITS``). Where a boundary segment crosses a pixel column's centre line, it adds its polygon's bits
(entering) or subtracts them (leaving) at the first pixel below the crossing; a running sum down every column
then gives each pixel the bits of the polygons whose inside holds its centre (winding numbers, in one byte: the
classes' bits are disjoint, so modular uint8 sums stay exact). The cost per frame is a few hundred boundary
segments and their crossings, one scan and one table look-up per pixel, all batched over worlds: 256 worlds cost
little more per pixel than one, and world ``i`` of a batch is drawn by the same arithmetic as a single world,
pixel for pixel. Where two polygons of one class overlap, the sum carries into the next bit: vehicles, the only
class that can overlap itself, have the top bit, so an overlap of two of them wraps to no vehicle.

Features thinner than a pixel are drawn one pixel wide (markings, route, cones), so an agent always sees them.
``CameraConditions`` move the virtual camera: ``offset`` x (right) / y (ahead) shift it in the ego's frame,
z raises it (a wider footprint, like zooming out), ``rotation`` yaw turns it counter-clockwise (the scene turns
clockwise in the image) and ``fov_delta`` widens the field of view of a camera at ``ALTITUDE``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from lepton_sim.envs.camera_image import CameraConditions, CameraImage
from lepton_sim.envs.driving.dynamics import CAR_WIDTH
from lepton_sim.envs.driving.params import MAX_LANES, DrivingParams
from lepton_sim.envs.driving.render import CONE, EGO, GOAL, GRASS, MARKING, ROAD, ROUTE, VEHICLE

if TYPE_CHECKING:
    from lepton_sim.envs.driving.sim import DrivingSim

CAMERAS = ("topdown", "semantic")
FOOTPRINT = 64.0  # m covered by the image height (at any image size)
EGO_ROW = 0.75  # the ego's box centre sits this far down the image (it sees 3/4 of the footprint ahead)
AHEAD = (EGO_ROW - 0.5) * FOOTPRINT  # m from the ego's box centre to the image centre
ALTITUDE = 50.0  # m: height of the virtual camera (offset z raises it; fov_delta widens its field of view)
FOV = 2.0 * math.degrees(math.atan(0.5 * FOOTPRINT / ALTITUDE))  # degrees, along the image height
MARKING_WIDTH = 0.15  # m (drawn at least one pixel wide)
ROUTE_WIDTH = 1.0  # m, a strip along the route lane's centre (at least one pixel wide)
GOAL_DEPTH = 1.0  # m, the goal line across the road
DASH_ON, DASH_PERIOD = 4.0, 12.0  # m: lane lines between lanes are dashed
CHORD_TOL = 0.1  # m: road polylines stay this close to the curved road (0.13 px at 84 x 84)
MIN_BOX = 0.5  # pixels: boxes are drawn at least this half size
TIGHT_WINDOW_WORLDS = 8  # batches this large first narrow the road window to what reaches the image
LOOKUP_CHUNK = 65536  # groups of 4 pixels per pass of the colour look-up (its buffers stay in the L2/L3 cache)
PARKED = (160, 80, 210)  # parked cars (the video's blue-grey is too close to the route's blue at 84 x 84)

# class bits of a pixel (one byte): vehicles last, see the module docstring
ROAD_BIT, MARKING_BIT, ROUTE_BIT, GOAL_BIT, PARKED_BIT, CONE_BIT, EGO_BIT, VEHICLE_BIT = (1 << k for k in range(8))
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
_WORD_TABLES: dict[str, tuple[np.ndarray, list[int]]] = {}


def _word_table(name: str) -> tuple[np.ndarray, list[int]]:
    """Look-up tables that write 4 pixels of C bytes as C uint32 words, so the image comes out contiguous.

    Word j of a group of 4 pixels holds bytes 4j..4j+3, which belong to pixels ``first[j]`` and ``first[j] + 1``:
    table j (65536 entries) maps those two pixels' bits (as one little-endian uint16) to the word.
    """
    if name not in _WORD_TABLES:
        pixel = PIXEL_BYTES[name]
        c = pixel.shape[1]
        pair = np.arange(65536)
        first = [min(4 * j // c, 2) for j in range(c)]
        words = np.empty((c, 65536, 4), np.uint8)
        for j in range(c):
            for k in range(4):
                q, channel = divmod(4 * j + k, c)
                words[j, :, k] = pixel[pair & 255 if q == first[j] else pair >> 8, channel]
        _WORD_TABLES[name] = (words.view(np.uint32)[..., 0], first)
    return _WORD_TABLES[name]


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


# Road strips: polylines along the road at 6 lateral offsets: the road's edges, the inner edges of its edge
# markings, and the route strip's edges. Region values between consecutive polylines (right to left):
_ROAD_REGIONS = np.array([0, ROAD_BIT | MARKING_BIT, ROAD_BIT, ROAD_BIT | MARKING_BIT, 0])
_ROUTE_REGIONS = np.array([0, ROUTE_BIT, 0])
# a polyline run along +s adds (region on its right - region on its left) where a column crosses it running to
# the right in the image (and subtracts it running to the left): image rows run down, so the image is the mirror
# image of the world
_STRIP_WEIGHTS = np.concatenate([_ROAD_REGIONS[:-1] - _ROAD_REGIONS[1:], _ROUTE_REGIONS[:-1] - _ROUTE_REGIONS[1:]])
_STRIP_CENTRE = np.array([0, 0, 0, 0, 1, 1])  # road polylines follow the window's centreline, route ones the route's
# caps close the regions between polylines j and j + 1 at the window's start (+value) and end (-value)
_CAP_FROM = np.array([0, 1, 2, 4])
_CAP_VALUES = np.array([ROAD_BIT | MARKING_BIT, ROAD_BIT, ROAD_BIT | MARKING_BIT, ROUTE_BIT])
_ZERO = np.zeros(1)  # lateral offset of centreline points


class DrivingCamera:
    """Renders the driving cameras of every world of a :class:`DrivingSim` (one instance per env)."""

    def __init__(self, params: DrivingParams) -> None:
        self.params = params
        self.kappa = float(params.curvature.high)
        # polyline vertices every `step` m (whole metres: exact centreline samples) keep chords within CHORD_TOL
        self.step = float(min(max(math.floor(math.sqrt(8.0 * CHORD_TOL / max(self.kappa, 1e-9))), 1.0), 12.0))
        self.lane_lines = np.arange(1, int(params.lanes.high), dtype=np.float64)  # lines between lanes
        self._delta: np.ndarray | None = None
        self._pixels: np.ndarray | None = None
        self._top_row: np.ndarray | None = None
        self._consts: dict[tuple, Any] = {}
        self._strip_layout: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

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
        image = self._lookup(self.raster(sim, w, h, _condition_arrays(conditions, n)), name)
        return CameraImage(rgb=image) if name == "topdown" else CameraImage(semantic=image)

    def _lookup(self, bits: np.ndarray, name: str) -> np.ndarray:
        """Class bits (H, N, W) -> the camera's bytes (N, H, W, C), a fresh contiguous array.

        Four pixels at a time (see :func:`_word_table`): C gathers of one word per 4 pixels and no per-byte copy,
        in chunks that stay in the CPU's cache.
        """
        h, n, w = bits.shape
        m = n * h * w
        g = -(-m // 4)
        if self._pixels is None or self._pixels.size != 4 * g + 4:
            self._pixels = np.zeros(4 * g + 4, np.uint8)  # + 4: the odd pair view below stays inside it
        np.copyto(self._pixels[:m].reshape(n, h, w), bits.transpose(1, 0, 2))
        # the pixel pairs (0, 1), (1, 2), (2, 3) of each group as uint16 views (little-endian): np.take reads
        # them as indices directly, with no pass that builds an index array
        data = self._pixels.data
        pairs = [np.ndarray((g,), np.uint16, buffer=data, offset=f, strides=(4,)) for f in range(3)]
        tables, first = _word_table(name)
        c = len(first)
        out = np.empty((g, c), np.uint32)
        size = min(g, LOOKUP_CHUNK)
        word = np.empty(size, np.uint32)
        for a in range(0, g, size):
            b = min(a + size, g)
            wd = word[: b - a]
            for j in range(c):
                np.take(tables[j], pairs[first[j]][a:b], out=wd, mode="wrap")  # "wrap": no buffering (valid)
                out[a:b, j] = wd
        return out.view(np.uint8).reshape(-1)[: m * c].reshape(n, h, w, c)

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

    def raster(self, sim: "DrivingSim", w: int, h: int, cond: np.ndarray | None) -> np.ndarray:
        """Class bits of every pixel of every world, ``(H, N, W)`` uint8 (a view of a reused buffer)."""
        n = sim.num_worlds
        ex, ey, ec, es = sim.ego_box()
        # each world's camera: metres per pixel, centre, and the world -> pixel map u = ax x + ay y + a0 (columns,
        # to the right), v = ay x - ax y + b0 (rows, down the image)
        if cond is None:
            mpp = self._const(("mpp", n, h), lambda: np.full(n, FOOTPRINT / h))
            fx, fy = ec, es
            cx, cy = ex + AHEAD * ec, ey + AHEAD * es
            centre_offset: float | np.ndarray = AHEAD
        else:
            ox, oy, oz, yaw, fov = cond.T
            half_fov = np.radians(0.5 * np.minimum(np.maximum(FOV + fov, 1.0), 179.0))
            zoom = ((ALTITUDE + oz) / ALTITUDE) * (np.tan(half_fov) / math.tan(math.radians(0.5 * FOV)))
            mpp = (FOOTPRINT / h) * np.maximum(zoom, 1e-3)
            theta = sim.heading + np.radians(yaw)
            fx, fy = np.cos(theta), np.sin(theta)
            cx = ex + ec * (AHEAD + oy) + es * ox
            cy = ey + es * (AHEAD + oy) - ec * ox
            centre_offset = np.sqrt(ox * ox + (AHEAD + oy) * (AHEAD + oy))
        inv = 1.0 / mpp
        ax, ay = fy * inv, fx * -inv
        view = np.array([ax, ay, 0.5 * w - (cx * ax + cy * ay), 0.5 * h - (cx * ay - cy * ax), mpp])
        cols = view[:, :, None]
        ax, ay, a0, b0, _ = cols
        half, s, step, rows = sim.half_road, sim.s, self.step, sim.rows[:, None]

        # road in view: centreline vertices every `step` m over [s - reach, s + reach] (all the road that can be
        # in view; in large batches only the part that reaches the image)
        if cond is None:  # the same for every world with as many lanes
            reach = self._const(("reach", w, h), lambda: self._reach_by_lanes(w, h)).take(sim.lanes.astype(np.intp))
        else:
            reach = self._window(0.5 * math.hypot(w, h) * mpp + centre_offset + 2.0 * half + 2.0)
        s_lo = step * np.floor((s - reach) * (1.0 / step))
        steps = np.ceil((s + reach - s_lo) * (1.0 / step))
        k = np.arange(int(steps.max()) + 1, dtype=np.float64)
        grid = s_lo[:, None] + step * np.minimum(k, steps[:, None])  # (N, K); repeated ends where shorter
        if n >= TIGHT_WINDOW_WORLDS:
            grid = self._tight_window(sim, grid, steps, w, h, ax, ay, a0, b0, inv)
        tight, ke = grid, grid.shape[1]  # (N, Ke) vertices along the road
        lo, hi = tight[:, 0], tight[:, -1]
        # the route strip's vertices (clipped to the remaining route), the goal line and the lane-line dashes
        route = np.minimum(np.maximum(tight, s[:, None]), sim.s_goal[:, None])
        t0 = DASH_PERIOD * np.floor(lo * (1.0 / DASH_PERIOD)) + 0.5 * DASH_ON
        nq = int(np.ceil(float((hi - t0).max()) * (1.0 / DASH_PERIOD))) + 1
        along, dash_j = self._const(("dashes", nq), lambda: self._dash_layout(nq))
        dash_s = t0[:, None] + along  # (N, Q L): dash centres, Q along the road for each of the L lines
        zeros = np.zeros((n, 2 * ke + 1))
        x, y, c, sn, _ = sim.road.to_world(
            np.concatenate([tight, route, sim.s_goal[:, None], dash_s], axis=1),
            np.concatenate([zeros, dash_j * self.params.lane_width - half[:, None]], axis=1),
            rows,
        )
        m = 2 * ke
        u, v = x * ax + y * ay + a0, x * ay - y * ax + b0
        strips = self._strip_segments(sim, u[:, :m], v[:, :m], c[:, :m], sn[:, :m], cols, ke)
        dash_used = (dash_s <= (hi + 0.5 * DASH_ON)[:, None]) & (dash_j < sim.lanes[:, None])
        boxes = self._box_segments(
            sim, w, h, view, cols, u[:, m:], v[:, m:], c[:, m:], sn[:, m:], dash_used, ex, ey, ec, es
        )
        return self._fill([np.concatenate([a, b]) for a, b in zip(strips, boxes)], n, w, h)

    def _const(self, key: tuple, make: Callable[[], Any]) -> Any:
        """A value that depends only on ``key`` (batch size, image size, window size), made once."""
        found = self._consts.get(key)
        if found is None:
            found = self._consts[key] = make()
        return found

    def _reach_by_lanes(self, w: int, h: int) -> np.ndarray:
        """:meth:`_window` of the nominal camera for roads of 0..MAX_LANES lanes."""
        half = 0.5 * self.params.lane_width * np.arange(MAX_LANES + 1)
        return self._window(0.5 * math.hypot(w, h) * (FOOTPRINT / h) + AHEAD + 2.0 * half + 2.0)

    def _dash_layout(self, nq: int) -> tuple[np.ndarray, np.ndarray]:
        """Offsets along the road and lane-line numbers of nq dashes on each lane line."""
        lines = self.lane_lines
        return (DASH_PERIOD * np.arange(nq)).repeat(len(lines)), np.tile(lines, nq)

    def _tight_window(
        self,
        sim: "DrivingSim",
        grid: np.ndarray,
        steps: np.ndarray,
        w: int,
        h: int,
        ax: np.ndarray,
        ay: np.ndarray,
        a0: np.ndarray,
        b0: np.ndarray,
        inv: np.ndarray,
    ) -> np.ndarray:
        """The window's vertices from just before the first near the image to just after the last one (the road
        beyond them does not reach the image). Any window holding these gives the same pixels: the polygons
        differ only outside the image, so many worlds draw fewer segments and one world skips this pass."""
        n, k = grid.shape
        x, y, _, _, _ = sim.road.to_world(grid, _ZERO, sim.rows[:, None])
        margin = ((sim.half_road + (MARKING_WIDTH + 0.5 * self.step)) * inv + 2.0)[:, None]
        du = np.abs(x * ax + y * ay + a0 - 0.5 * w)
        dv = np.abs(x * ay - y * ax + b0 - 0.5 * h)
        near = (du < margin + 0.5 * w) & (dv < margin + 0.5 * h)
        seen = near.any(axis=1)
        first = np.maximum(near.argmax(axis=1) - 1, 0) * seen
        last = np.minimum(k - near[:, ::-1].argmax(axis=1), steps.astype(np.intp)) * seen
        span = last - first
        idx = first[:, None] + np.minimum(np.arange(int(span.max()) + 1), span[:, None])
        return grid.take(idx + (np.arange(n) * k)[:, None])

    def _strip_segments(
        self,
        sim: "DrivingSim",
        uc: np.ndarray,
        vc: np.ndarray,
        c: np.ndarray,
        sn: np.ndarray,
        cols: np.ndarray,
        ke: int,
    ) -> tuple[np.ndarray, ...]:
        """Boundary segments of the road, its edge markings and the route strip (centrelines (N, 2 Ke): window,
        route), with their weights and worlds."""
        n = sim.num_worlds
        ax, ay, _, _, mpp = cols
        uc, vc = uc.reshape(n, 2, ke)[:, _STRIP_CENTRE], vc.reshape(n, 2, ke)[:, _STRIP_CENTRE]
        nu, nv = (
            (c * ay - sn * ax).reshape(n, 2, ke)[:, _STRIP_CENTRE],
            (c * -ax - sn * ay).reshape(n, 2, ke)[:, _STRIP_CENTRE],
        )
        half, rd = sim.half_road, sim.route_d
        marking = np.maximum(mpp[:, 0], MARKING_WIDTH)
        route_half = 0.5 * np.maximum(mpp[:, 0], ROUTE_WIDTH)
        d = np.array([-half, marking - half, half - marking, half, rd - route_half, rd + route_half]).T[:, :, None]
        u, v = uc + d * nu, vc + d * nv  # (N, 6, Ke)
        ends = [0, ke - 1]
        cu0, cv0 = u[:, _CAP_FROM][:, :, ends], v[:, _CAP_FROM][:, :, ends]
        cu1, cv1 = u[:, _CAP_FROM + 1][:, :, ends], v[:, _CAP_FROM + 1][:, :, ends]
        weight, world = self._strip_layout_of(n, ke)
        return (
            np.concatenate([u[:, :, :-1].reshape(n, -1), cu0.reshape(n, -1)], axis=1).ravel(),
            np.concatenate([v[:, :, :-1].reshape(n, -1), cv0.reshape(n, -1)], axis=1).ravel(),
            np.concatenate([u[:, :, 1:].reshape(n, -1), cu1.reshape(n, -1)], axis=1).ravel(),
            np.concatenate([v[:, :, 1:].reshape(n, -1), cv1.reshape(n, -1)], axis=1).ravel(),
            weight,
            world,
        )

    def _strip_layout_of(self, n: int, ke: int) -> tuple[np.ndarray, np.ndarray]:
        """Weight and world of every strip segment in :meth:`_strip_segments`' order (cached per batch, window)."""
        key = (n, ke)
        if key not in self._strip_layout:
            caps = np.stack([_CAP_VALUES, -_CAP_VALUES], axis=1).ravel()  # start, end of each cap
            row = np.concatenate([np.repeat(_STRIP_WEIGHTS, ke - 1), caps])
            self._strip_layout[key] = (np.tile(row, n), np.repeat(np.arange(n), row.size))
        return self._strip_layout[key]

    def _box_segments(
        self,
        sim: "DrivingSim",
        w: int,
        h: int,
        view: np.ndarray,
        cols: np.ndarray,
        u: np.ndarray,
        v: np.ndarray,
        c: np.ndarray,
        sn: np.ndarray,
        dash_used: np.ndarray,
        ex: np.ndarray,
        ey: np.ndarray,
        ec: np.ndarray,
        es: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """Boundary segments of the oriented boxes near the image: the goal line and dashes (pixel centres and
        road headings ``u, v, c, sn`` (N, 1 + dashes)), the ego, obstacles and vehicles."""
        ax, ay, a0, b0, mpp = cols
        n, nd = dash_used.shape
        half = sim.half_road[:, None]
        marking = np.maximum(mpp, MARKING_WIDTH)
        obj = sim.num_objects
        ego_hl, ego_hw, ego_bits, goal_hl, goal_bits = self._const(
            ("boxes", n),
            lambda: (
                np.full((n, 1), sim.ego_half_length),
                np.full((n, 1), 0.5 * CAR_WIDTH),
                np.full((n, 1), EGO_BIT),
                np.full((n, 1), 0.5 * GOAL_DEPTH),
                np.full((n, 1), GOAL_BIT),
            ),
        )
        dash_hl = self._const(("dash_hl", n, nd), lambda: np.full((n, nd), 0.5 * DASH_ON))
        if obj:
            kind = np.where(sim.obj_hl < 1.0, CONE_BIT, PARKED_BIT)
            kind[:, : sim.num_vehicles] = VEHICLE_BIT
            ox, oy = np.concatenate([ex[:, None], sim.obj_x], axis=1), np.concatenate([ey[:, None], sim.obj_y], axis=1)
            oc = np.concatenate([ec[:, None], sim.obj_cos], axis=1)
            os_ = np.concatenate([es[:, None], sim.obj_sin], axis=1)
            ohl = np.concatenate([ego_hl, sim.obj_hl], axis=1)
            ohw = np.concatenate([ego_hw, sim.obj_hw], axis=1)
            obits = np.concatenate([ego_bits, kind], axis=1)
        else:
            ox, oy, oc, os_ = ex[:, None], ey[:, None], ec[:, None], es[:, None]
            ohl, ohw, obits = ego_hl, ego_hw, ego_bits
        bu = np.concatenate([u, ox * ax + oy * ay + a0], axis=1)
        bv = np.concatenate([v, ox * ay - oy * ax + b0], axis=1)
        bc, bs = np.concatenate([c, oc], axis=1), np.concatenate([sn, os_], axis=1)
        bhl = np.concatenate([goal_hl, dash_hl, ohl], axis=1)
        bhw = np.concatenate([half, (0.5 * marking).repeat(nd, axis=1), ohw], axis=1)
        bbits = np.concatenate([goal_bits, MARKING_BIT * dash_used, obits], axis=1)
        # keep the boxes that can touch the image
        r = (bhl + bhw) / mpp + 1.0
        keep = (np.abs(bu - 0.5 * w) < r + 0.5 * w) & (np.abs(bv - 0.5 * h) < r + 0.5 * h) & (bbits != 0)
        world, j = np.nonzero(keep)
        bu, bv, bc, bs = bu[world, j], bv[world, j], bc[world, j], bs[world, j]
        gax, gay, _, _, gm = view[:, world]
        hl = np.maximum(bhl[world, j], MIN_BOX * gm)
        hw = np.maximum(bhw[world, j], MIN_BOX * gm)
        lu, lv = (bc * gax + bs * gay) * hl, (bc * gay - bs * gax) * hl  # half the box's length, in pixels
        wu, wv = (bc * gay - bs * gax) * hw, (bc * -gax - bs * gay) * hw  # half its width
        # corners front-right, front-left, rear-left, rear-right: counter-clockwise in the world
        fu, fv, ru, rv = bu + lu, bv + lv, bu - lu, bv - lv
        cu = (fu - wu, fu + wu, ru + wu, ru - wu)
        cv = (fv - wv, fv + wv, rv + wv, rv - wv)
        weight = -bbits[world, j]  # the box lies on each edge's left
        return (
            np.concatenate(cu),
            np.concatenate(cv),
            np.concatenate(cu[1:] + cu[:1]),
            np.concatenate(cv[1:] + cv[:1]),
            np.concatenate((weight,) * 4),
            np.concatenate((world,) * 4),
        )

    # ---------------------------------------------------------------------------------------------- fill
    def _fill(self, segments: Sequence[np.ndarray], n: int, w: int, h: int) -> np.ndarray:
        """Add each segment's signed bits below its column crossings, then sum down the columns (mod 256).

        ``segments``: flat arrays u0, v0, u1, v1 (pixels), weight (signed class bits), world.
        """
        u0, v0, u1, v1, weight, world = segments
        c_lo = np.ceil(np.minimum(u0, u1) - 0.5)
        c_hi = np.ceil(np.maximum(u0, u1) - 0.5)
        np.minimum(np.maximum(c_lo, 0.0, out=c_lo), w, out=c_lo)
        np.minimum(np.maximum(c_hi, 0.0, out=c_hi), w, out=c_hi)
        count = ((c_hi - c_lo) * (np.minimum(v0, v1) < h)).astype(np.intp)  # below the image: changes nothing
        du = u1 - u0
        value = np.where(du > 0.0, weight, -weight).astype(np.uint8)  # modulo 256
        start = world * w + c_lo.astype(np.intp)  # flat index of the first column crossed in a (N, W) row
        delta = self._buffer(n, w, h)
        # segments wholly above the image add their value to the top row of the columns they cross: in large
        # batches as a range (+value at the first column, -value past the last one, summed along the row), which
        # gives the same sums as one entry per crossing in fewer operations
        if n >= TIGHT_WINDOW_WORLDS:
            (above,) = np.nonzero((np.maximum(v0, v1) < 0.0) & (count > 0))
            top = self._top(n, w)
            ends = np.concatenate([start[above] + world[above], start[above] + world[above] + count[above]])
            np.add.at(top.reshape(-1), ends, np.concatenate([value[above], -value[above]]))
            np.add.accumulate(top, axis=1, out=top)
            delta[0] += top[:, :w]
            count[above] = 0
        # per segment: first row, rows per column (segments with du == 0 cross no column), index of its first
        # crossing, flat start column minus that index; packed so that one repeat gives every crossing its
        # segment's values (one 32-byte copy each instead of four passes)
        pack = np.empty((len(u0), 4))
        slope = np.divide(v1 - v0, du + (du == 0.0), out=pack[:, 1])
        pack[:, 0] = v0 + (c_lo + 0.5 - u0) * slope + 0.5  # at the first column crossed, + 0.5: floor() rounds
        first = np.cumsum(count) - count
        pack[:, 2] = first
        np.subtract(start, first, out=pack[:, 3])
        # one entry per crossing (segments crossing no column drop out); integers stay exact in float64
        per = np.repeat(pack, count, axis=0)
        k = np.arange(per.shape[0], dtype=np.float64)
        offset = k - per[:, 2]  # columns from the segment's first crossing
        row = np.floor(per[:, 0] + offset * per[:, 1])
        np.minimum(np.maximum(row, 0.0, out=row), h, out=row)  # row h collects what falls below the image
        pos = (row * (n * w) + (k + per[:, 3])).astype(np.intp)
        np.add.at(delta.reshape(-1), pos, np.repeat(value, count))
        if n * w <= 1024:
            np.add.accumulate(delta[:h], axis=0, out=delta[:h])
        else:
            for r in range(1, h):
                np.add(delta[r - 1], delta[r], out=delta[r])
        return delta[:h]

    def _top(self, n: int, w: int) -> np.ndarray:
        if self._top_row is None or self._top_row.shape != (n, w + 1):
            self._top_row = np.zeros((n, w + 1), np.uint8)
        else:
            self._top_row.fill(0)
        return self._top_row

    def _buffer(self, n: int, w: int, h: int) -> np.ndarray:
        if self._delta is None or self._delta.shape != (h + 1, n, w):
            self._delta = np.zeros((h + 1, n, w), np.uint8)
        else:
            self._delta.fill(0)
        return self._delta
