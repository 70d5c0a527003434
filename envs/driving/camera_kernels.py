"""The driving cameras' compiled rasteriser (numba): every world's polygons -> class bits -> image bytes.

Why compiled: in numpy, a frame costs a few hundred array operations (segments, crossings, scatter-adds, a running
sum and a colour look-up over temporaries the size of the whole batch); here each world is one loop that walks its
road window, emits every boundary segment and adds its column crossings straight into a small class-bit buffer,
then writes the image rows, reusing the row above (a pixel's class changes only where a crossing lands). The float
arithmetic that decides which pixel a polygon covers is the numpy version's, operation for operation and in the
same order (no fast-math, no fused multiply-add), so the images are the same bytes. Compiled once per machine
(``cache=True``), lazily on the first frame of a process.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

MARKING_WIDTH = 0.15  # m (drawn at least one pixel wide)
ROUTE_WIDTH = 1.0  # m, a strip along the route lane's centre (at least one pixel wide)
GOAL_DEPTH = 1.0  # m, the goal line across the road
DASH_ON, DASH_PERIOD = 4.0, 12.0  # m: lane lines between lanes are dashed
MIN_BOX = 0.5  # pixels: boxes are drawn at least this half size

# class bits of a pixel (one byte): vehicles last, see camera.py's docstring
ROAD_BIT, MARKING_BIT, ROUTE_BIT, GOAL_BIT, PARKED_BIT, CONE_BIT, EGO_BIT, VEHICLE_BIT = (1 << k for k in range(8))
_EDGE = ROAD_BIT | MARKING_BIT  # the road's edge strips: road with its edge marking


@njit(cache=True)
def _to_world(flat: np.ndarray, last: float, row: int, s: float, d: float) -> tuple[float, float, float, float]:
    """``RoadArrays.to_world`` of one point: world x, y and the road's cos, sin at arc length s, offset d."""
    i = min(max(np.floor(s), 0.0), last)
    k = int(i) + row
    u = s - i
    c, sn = flat[k, 2], flat[k, 3]
    return flat[k, 0] + u * c - d * sn, flat[k, 1] + u * sn + d * c, c, sn


@njit(cache=True)
def _segment(
    delta: np.ndarray, w: int, h: int, top: bool, u0: float, v0: float, u1: float, v1: float, weight: int
) -> None:
    """Add ``weight`` (signed class bits, mod 256) at the first pixel below each column crossing of a segment.

    ``top``: a segment wholly above the image adds to the top row of the columns it crosses (what the crossing
    rows, clipped to the image, give too).
    """
    c_lo = min(max(np.ceil(min(u0, u1) - 0.5), 0.0), float(w))
    c_hi = min(max(np.ceil(max(u0, u1) - 0.5), 0.0), float(w))
    if not (c_hi > c_lo and min(v0, v1) < h):  # crosses no column, or wholly below the image: changes nothing
        return
    du = u1 - u0
    value = (weight if du > 0.0 else -weight) & 255
    first, count = int(c_lo), int(c_hi - c_lo)
    if top and max(v0, v1) < 0.0:
        for col in range(first, first + count):
            delta[0, col] += value
        return
    slope = (v1 - v0) / du
    start = v0 + (c_lo + 0.5 - u0) * slope + 0.5  # at the first column crossed, + 0.5: floor() rounds
    for j in range(count):
        row = np.floor(start + j * slope)
        if row < h:  # rows below the image change nothing in it
            delta[int(max(row, 0.0)), first + j] += value


@njit(cache=True)
def _box(
    delta: np.ndarray,
    w: int,
    h: int,
    top: bool,
    view: tuple[float, float, float],
    bu: float,
    bv: float,
    bc: float,
    bs: float,
    hl: float,
    hw: float,
    bits: int,
) -> None:
    """An oriented box (centre pixel bu, bv; heading bc, bs; half length and width in m), if it can touch the
    image: its four edges, counter-clockwise in the world, with the box on each edge's left."""
    ax, ay, mpp = view
    r = (hl + hw) / mpp + 1.0
    if not (abs(bu - 0.5 * w) < r + 0.5 * w and abs(bv - 0.5 * h) < r + 0.5 * h):
        return
    hl, hw = max(hl, MIN_BOX * mpp), max(hw, MIN_BOX * mpp)
    lu, lv = (bc * ax + bs * ay) * hl, (bc * ay - bs * ax) * hl  # half the box's length, in pixels
    wu, wv = (bc * ay - bs * ax) * hw, (bc * -ax - bs * ay) * hw  # half its width
    fu, fv, ru, rv = bu + lu, bv + lv, bu - lu, bv - lv
    # corners front-right, front-left, rear-left, rear-right
    u0, v0, u1, v1, u2, v2, u3, v3 = fu - wu, fv - wv, fu + wu, fv + wv, ru + wu, rv + wv, ru - wu, rv - wv
    _segment(delta, w, h, top, u0, v0, u1, v1, -bits)
    _segment(delta, w, h, top, u1, v1, u2, v2, -bits)
    _segment(delta, w, h, top, u2, v2, u3, v3, -bits)
    _segment(delta, w, h, top, u3, v3, u0, v0, -bits)


@njit(cache=True)
def render_worlds(
    out: np.ndarray,
    table: np.ndarray,
    delta: np.ndarray,
    delta_words: np.ndarray,
    running: np.ndarray,
    road: np.ndarray,
    last_point: float,
    rows: np.ndarray,
    s_now: np.ndarray,
    s_end: np.ndarray,
    half_road: np.ndarray,
    route_offset: np.ndarray,
    num_lanes: np.ndarray,
    ego_x: np.ndarray,
    ego_y: np.ndarray,
    ego_cos: np.ndarray,
    ego_sin: np.ndarray,
    obj_x: np.ndarray,
    obj_y: np.ndarray,
    obj_cos: np.ndarray,
    obj_sin: np.ndarray,
    obj_hl: np.ndarray,
    obj_hw: np.ndarray,
    num_vehicles: int,
    nominal: bool,
    views: np.ndarray,
    reach: np.ndarray,
    reach_by_lanes: np.ndarray,
    mpp_nominal: float,
    ahead: float,
    step: float,
    lane_width: float,
    lane_lines: int,
    tight: bool,
    ego_half_length: float,
    ego_half_width: float,
) -> None:
    """Every world's image of one camera into ``out`` (N, H, W, C) via ``table`` (256, C): class bits -> bytes.

    ``delta`` (H, >= W, zero on entry and on exit; ``delta_words`` is its uint64 view) and ``running`` (W) are
    scratch. Per world (N,): arc length, goal, half road width, route lane offset, lanes, the ego box's centre and
    heading; objects (N, M): centre, heading, half length and width (the first ``num_vehicles`` are vehicles). ``nominal``: the camera rides at its default pose (``views`` (5, N): ax, ay, a0,
    b0, metres per pixel and ``reach`` are used otherwise). ``tight``: narrow the road window to what reaches the
    image (large batches) and add segments above the image to its top row as a range.
    """
    n, h, w, nc = out.shape
    inv_step = 1.0 / step
    inv_period = 1.0 / DASH_PERIOD
    num_objects = obj_x.shape[1]
    pu, pv, qu, qv, su, sv = np.empty(6), np.empty(6), np.empty(6), np.empty(6), np.empty(6), np.empty(6)
    dist = np.empty(6)
    strip_weight = (-_EDGE, _EDGE - ROAD_BIT, ROAD_BIT - _EDGE, _EDGE, -ROUTE_BIT, ROUTE_BIT)
    for i in range(n):
        ex, ey, ec, es = ego_x[i], ego_y[i], ego_cos[i], ego_sin[i]
        if nominal:
            mpp = mpp_nominal
            cx, cy = ex + ahead * ec, ey + ahead * es
            inv = 1.0 / mpp
            ax, ay = es * inv, ec * -inv
            a0, b0 = 0.5 * w - (cx * ax + cy * ay), 0.5 * h - (cx * ay - cy * ax)
            rch = reach_by_lanes[int(num_lanes[i])]
        else:
            ax, ay, a0, b0, mpp = views[0, i], views[1, i], views[2, i], views[3, i], views[4, i]
            inv = 1.0 / mpp
            rch = reach[i]
        view = (ax, ay, mpp)
        s, s_goal, half, route_d, lanes = s_now[i], s_end[i], half_road[i], route_offset[i], num_lanes[i]
        row = rows[i]

        # the road window: vertices every `step` m over [s - reach, s + reach]
        s_lo = step * np.floor((s - rch) * inv_step)
        k_hi = int(np.ceil((s + rch - s_lo) * inv_step))
        k_lo = 0
        if tight:  # from just before the first vertex near the image to just after the last one
            margin = (half + (MARKING_WIDTH + 0.5 * step)) * inv + 2.0
            first, last = -1, -1
            for k in range(k_hi + 1):
                x, y, _, _ = _to_world(road, last_point, row, s_lo + step * k, 0.0)
                du = abs(x * ax + y * ay + a0 - 0.5 * w)
                dv = abs(x * ay - y * ax + b0 - 0.5 * h)
                if du < margin + 0.5 * w and dv < margin + 0.5 * h:
                    if first < 0:
                        first = k
                    last = k
            if first < 0:
                k_lo = k_hi = 0
            else:
                k_lo, k_hi = max(first - 1, 0), min(last + 1, k_hi)

        # strips: the road's edges, its edge markings' inner edges and the route strip's edges, polylines right
        # to left (the first four follow the centreline, the last two the route lane's centre up to the goal)
        marking = max(mpp, MARKING_WIDTH)
        route_half = 0.5 * max(mpp, ROUTE_WIDTH)
        dist[0], dist[1], dist[2], dist[3] = -half, marking - half, half - marking, half
        dist[4], dist[5] = route_d - route_half, route_d + route_half
        for k in range(k_lo, k_hi + 1):
            sk = s_lo + step * k
            x, y, c, sn = _to_world(road, last_point, row, sk, 0.0)
            uc, vc = x * ax + y * ay + a0, x * ay - y * ax + b0
            nu, nv = c * ay - sn * ax, c * -ax - sn * ay
            for p in range(4):
                pu[p], pv[p] = uc + dist[p] * nu, vc + dist[p] * nv
            x, y, c, sn = _to_world(road, last_point, row, min(max(sk, s), s_goal), 0.0)
            uc, vc = x * ax + y * ay + a0, x * ay - y * ax + b0
            nu, nv = c * ay - sn * ax, c * -ax - sn * ay
            for p in range(4, 6):
                pu[p], pv[p] = uc + dist[p] * nu, vc + dist[p] * nv
            if k == k_lo:
                su[:] = pu
                sv[:] = pv
            else:
                for p in range(6):
                    _segment(delta, w, h, tight, qu[p], qv[p], pu[p], pv[p], strip_weight[p])
            qu[:] = pu
            qv[:] = pv
        # caps close the regions between polylines p and p + 1 at the window's start (+) and end (-)
        for p, value in ((0, _EDGE), (1, ROAD_BIT), (2, _EDGE), (4, ROUTE_BIT)):
            _segment(delta, w, h, tight, su[p], sv[p], su[p + 1], sv[p + 1], value)
            _segment(delta, w, h, tight, qu[p], qv[p], qu[p + 1], qv[p + 1], -value)

        # boxes: the goal line, the lane-line dashes, the ego, obstacles and vehicles
        x, y, c, sn = _to_world(road, last_point, row, s_goal, 0.0)
        _box(
            delta,
            w,
            h,
            tight,
            view,
            x * ax + y * ay + a0,
            x * ay - y * ax + b0,
            c,
            sn,
            0.5 * GOAL_DEPTH,
            half,
            GOAL_BIT,
        )
        lo, hi = s_lo + step * k_lo, s_lo + step * k_hi
        t0 = DASH_PERIOD * np.floor(lo * inv_period) + 0.5 * DASH_ON
        q = 0
        while t0 + DASH_PERIOD * q <= hi + 0.5 * DASH_ON:
            dash_s = t0 + DASH_PERIOD * q
            for j in range(1, lane_lines + 1):
                if j < lanes:
                    x, y, c, sn = _to_world(road, last_point, row, dash_s, j * lane_width - half)
                    u, v = x * ax + y * ay + a0, x * ay - y * ax + b0
                    _box(delta, w, h, tight, view, u, v, c, sn, 0.5 * DASH_ON, 0.5 * marking, MARKING_BIT)
            q += 1
        _box(delta, w, h, tight, view, ex * ax + ey * ay + a0, ex * ay - ey * ax + b0, ec, es, ego_half_length,
             ego_half_width, EGO_BIT)  # fmt: skip
        for m in range(num_objects):
            ox, oy, ohl = obj_x[i, m], obj_y[i, m], obj_hl[i, m]
            bits = VEHICLE_BIT if m < num_vehicles else (CONE_BIT if ohl < 1.0 else PARKED_BIT)
            u, v = ox * ax + oy * ay + a0, ox * ay - oy * ax + b0
            _box(delta, w, h, tight, view, u, v, obj_cos[i, m], obj_sin[i, m], ohl, obj_hw[i, m], bits)

        _write_image(out, i, table, delta, delta_words, running)


@njit(cache=True)
def _write_image(
    out: np.ndarray, i: int, table: np.ndarray, delta: np.ndarray, delta_words: np.ndarray, running: np.ndarray
) -> None:
    """Running sums down the columns -> world i's image rows; each row starts as a copy of the one above and
    changes only where a crossing landed. Leaves ``delta`` zero."""
    _, h, w, nc = out.shape
    image = out[i]
    flat = image.reshape(-1)
    row_bytes = w * nc
    for col in range(w):
        bits = delta[0, col]
        running[col] = bits
        delta[0, col] = 0
        for ch in range(nc):
            image[0, col, ch] = table[bits, ch]
    words = delta_words.shape[1]
    size = uint64(row_bytes)
    for r in range(1, h):
        base = uint64(r * row_bytes)
        for t in range(size):  # unsigned indices: no negative-index wrap test, so the copy is vectorised
            flat[base + t] = flat[base - size + t]
        for k in range(words):
            if delta_words[r, k] == 0:
                continue
            for col in range(8 * k, min(8 * k + 8, w)):
                d = delta[r, col]
                if d != 0:
                    bits = (running[col] + d) & 255
                    running[col] = bits
                    delta[r, col] = 0
                    for ch in range(nc):
                        image[r, col, ch] = table[bits, ch]
