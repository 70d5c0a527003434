"""The driving cameras' compiled rasteriser (numba): every world's polygons -> class bits -> image bytes.

Why compiled: in numpy, a frame costs a few hundred array operations (segments, crossings, scatter-adds, a running
sum and a colour look-up over temporaries the size of the whole batch); here each world is one pass that walks its
road window and boxes into a list of boundary segments, adds their column crossings into a small class-bit buffer
(listing each changed cell under its row) and writes the image rows, each the row above changed only at its
listed cells. The float arithmetic that decides which pixel a polygon covers is the numpy version's, operation
for operation and in the same order (no fast-math, no fused multiply-add), so the images are the same bytes.
Helpers called per vertex or box take and return scalars only (array arguments' reference counting would cost
more than their work); indices are unsigned where loops must vectorise (numba tests signed indices for negative wrap-around).
Compiled once per machine (``cache=True``), lazily on the first frame of a process.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
def _box_corners(
    w: int, h: int, ax: float, ay: float, mpp: float, box: tuple[float, float, float, float, float, float]
) -> tuple[bool, tuple[float, float, float, float, float, float, float, float]]:
    """An oriented box (centre pixel u, v; heading cos, sin; half length and width in m): whether it can touch
    the image, and its corners front-right, front-left, rear-left, rear-right (counter-clockwise in the world)."""
    bu, bv, bc, bs, hl, hw = box
    r = (hl + hw) / mpp + 1.0
    if not (abs(bu - 0.5 * w) < r + 0.5 * w and abs(bv - 0.5 * h) < r + 0.5 * h):
        return False, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    hl, hw = max(hl, MIN_BOX * mpp), max(hw, MIN_BOX * mpp)
    lu, lv = (bc * ax + bs * ay) * hl, (bc * ay - bs * ax) * hl  # half the box's length, in pixels
    wu, wv = (bc * ay - bs * ax) * hw, (bc * -ax - bs * ay) * hw  # half its width
    fu, fv, ru, rv = bu + lu, bv + lv, bu - lu, bv - lv
    return True, (fu - wu, fv - wv, fu + wu, fv + wv, ru + wu, rv + wv, ru - wu, rv - wv)


@njit(cache=True)
def render_worlds(
    out: np.ndarray,
    w: int,
    h: int,
    table: np.ndarray,
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
    list_room: int,
) -> None:
    """Every world's image of one camera (N, H, W, C) into the flat ``out`` (64 spare bytes at its end) via
    ``table`` (256, C): class bits -> bytes.

    ``road``: the centreline table (N P, 6) with each world's first row in ``rows``. Per world (N,): arc length,
    goal, half road width, route lane offset, lanes, the ego box's centre and heading; objects (N, M): centre,
    heading, half length and width (the first ``num_vehicles`` are vehicles). ``nominal``: the camera rides at its
    default pose (otherwise ``views`` (5, N): ax, ay, a0, b0, metres per pixel, and ``reach`` give it).
    ``tight``: narrow the road window to what reaches the image (large batches) and add segments above the image
    to its top row as a range. ``list_room``: changed cells the per-row lists hold at first (H W: far more than
    a frame changes; a cell changed back to 0 and again is listed twice, and if the lists overflow, every nonzero
    cell is listed anew, row by row).
    """
    n, nc = len(s_now), table.shape[1]
    stride = 8 * -(-w // 8)
    delta = np.zeros(h * stride, np.uint8)  # class-bit changes; cleared again as each image is written
    head = np.full(h, -1, np.int32)  # changed cells listed per row: first cell, next cell, flat index
    link, cell = np.empty(list_room, np.int32), np.empty(list_room, np.int32)
    running = np.zeros(w, np.uint8)  # column sums
    line = np.zeros(64 * -(-w * nc // 64), np.uint8)  # the current row's bytes, in whole 64-byte blocks
    seg = np.empty((64, 5))  # boundary segments u0, v0, u1, v1, signed class bits
    boxes = np.empty((16, 7))  # u, v, cos, sin, half length, half width, class bits
    pu, pv, qu, qv, su, sv, dist = (
        np.empty(6),
        np.empty(6),
        np.empty(6),
        np.empty(6),
        np.empty(6),
        np.empty(6),
        np.empty(6),
    )
    strip_weight = (-_EDGE, _EDGE - ROAD_BIT, ROAD_BIT - _EDGE, _EDGE, -ROUTE_BIT, ROUTE_BIT)
    inv_step = 1.0 / step
    inv_period = 1.0 / DASH_PERIOD
    num_objects = obj_x.shape[1]
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
        lo, hi = s_lo + step * k_lo, s_lo + step * k_hi
        t0 = DASH_PERIOD * np.floor(lo * inv_period) + 0.5 * DASH_ON
        # room for every segment: strips and caps, 4 per box (goal, dashes, ego, objects)
        num_boxes = 2 + num_objects + lane_lines * (int((hi + 0.5 * DASH_ON - t0) * inv_period) + 2)
        if boxes.shape[0] < num_boxes:
            boxes = np.empty((2 * num_boxes, 7))
        if seg.shape[0] < 6 * (k_hi - k_lo) + 8 + 4 * num_boxes:
            seg = np.empty((2 * (6 * (k_hi - k_lo) + 8 + 4 * num_boxes), 5))

        # strips: the road's edges, its edge markings' inner edges and the route strip's edges, polylines right
        # to left (the first four follow the centreline, the last two the route lane's centre up to the goal)
        marking = max(mpp, MARKING_WIDTH)
        route_half = 0.5 * max(mpp, ROUTE_WIDTH)
        dist[0], dist[1], dist[2], dist[3] = -half, marking - half, half - marking, half
        dist[4], dist[5] = route_d - route_half, route_d + route_half
        ns = 0
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
            for p in range(6):
                if k == k_lo:
                    su[p], sv[p] = pu[p], pv[p]
                else:
                    seg[ns, 0], seg[ns, 1], seg[ns, 2], seg[ns, 3] = qu[p], qv[p], pu[p], pv[p]
                    seg[ns, 4] = strip_weight[p]
                    ns += 1
                qu[p], qv[p] = pu[p], pv[p]
        # caps close the regions between polylines p and p + 1 at the window's start (+) and end (-)
        for p, value in ((0, _EDGE), (1, ROAD_BIT), (2, _EDGE), (4, ROUTE_BIT)):
            seg[ns, 0], seg[ns, 1], seg[ns, 2], seg[ns, 3], seg[ns, 4] = su[p], sv[p], su[p + 1], sv[p + 1], value
            seg[ns + 1, 0], seg[ns + 1, 1], seg[ns + 1, 2], seg[ns + 1, 3] = qu[p], qv[p], qu[p + 1], qv[p + 1]
            seg[ns + 1, 4] = -value
            ns += 2

        # boxes: the goal line, the lane-line dashes, the ego, obstacles and vehicles
        x, y, c, sn = _to_world(road, last_point, row, s_goal, 0.0)
        boxes[0, 0], boxes[0, 1], boxes[0, 2], boxes[0, 3] = x * ax + y * ay + a0, x * ay - y * ax + b0, c, sn
        boxes[0, 4], boxes[0, 5], boxes[0, 6] = 0.5 * GOAL_DEPTH, half, GOAL_BIT
        boxes[1, 0], boxes[1, 1], boxes[1, 2], boxes[1, 3] = ex * ax + ey * ay + a0, ex * ay - ey * ax + b0, ec, es
        boxes[1, 4], boxes[1, 5], boxes[1, 6] = ego_half_length, ego_half_width, EGO_BIT
        nb = 2
        for m in range(num_objects):
            ox, oy, ohl = obj_x[i, m], obj_y[i, m], obj_hl[i, m]
            boxes[nb, 0], boxes[nb, 1] = ox * ax + oy * ay + a0, ox * ay - oy * ax + b0
            boxes[nb, 2], boxes[nb, 3], boxes[nb, 4], boxes[nb, 5] = obj_cos[i, m], obj_sin[i, m], ohl, obj_hw[i, m]
            boxes[nb, 6] = VEHICLE_BIT if m < num_vehicles else (CONE_BIT if ohl < 1.0 else PARKED_BIT)
            nb += 1
        q = 0
        while t0 + DASH_PERIOD * q <= hi + 0.5 * DASH_ON:
            dash_s = t0 + DASH_PERIOD * q
            for j in range(1, lane_lines + 1):
                if j < lanes:
                    x, y, c, sn = _to_world(road, last_point, row, dash_s, j * lane_width - half)
                    boxes[nb, 0], boxes[nb, 1], boxes[nb, 2], boxes[nb, 3] = (
                        x * ax + y * ay + a0,
                        x * ay - y * ax + b0,
                        c,
                        sn,
                    )
                    boxes[nb, 4], boxes[nb, 5], boxes[nb, 6] = 0.5 * DASH_ON, 0.5 * marking, MARKING_BIT
                    nb += 1
            q += 1
        for b in range(nb):  # the edges of the boxes that can touch the image, each box on their left
            box = (boxes[b, 0], boxes[b, 1], boxes[b, 2], boxes[b, 3], boxes[b, 4], boxes[b, 5])
            keep, corners = _box_corners(w, h, ax, ay, mpp, box)
            if keep:
                for e in range(4):
                    f = (e + 1) % 4
                    seg[ns, 0], seg[ns, 1] = corners[2 * e], corners[2 * e + 1]
                    seg[ns, 2], seg[ns, 3] = corners[2 * f], corners[2 * f + 1]
                    seg[ns, 4] = -boxes[b, 6]
                    ns += 1

        count = _rasterise(seg, ns, w, h, stride, tight, delta, head, link, cell)
        if count < 0:  # more changed cells than the lists hold: list every nonzero cell once, row by row
            if len(cell) < h * w:
                link, cell = np.empty(h * w, np.int32), np.empty(h * w, np.int32)
            head[:] = -1
            count = 0
            for r in range(1, h):
                for col in range(w):
                    if delta[r * stride + col] != 0:
                        cell[count], link[count], head[r] = r * stride + col, head[r], count
                        count += 1
        _write_image(out, i * h * w * nc, h, w, table, delta, stride, head, link, cell, running, line)


@njit(cache=True)
def _rasterise(
    seg: np.ndarray,
    ns: int,
    w: int,
    h: int,
    stride: int,
    tight: bool,
    delta: np.ndarray,
    head: np.ndarray,
    link: np.ndarray,
    cell: np.ndarray,
) -> int:
    """Add each segment's signed class bits (mod 256) at the first pixel below each of its column crossings;
    list each cell of rows 1.. under its row when it changes from 0. Returns the cells listed, -1 if they overflowed.

    ``tight``: a segment wholly above the image adds to the top row of the columns it crosses (what the crossing
    rows, clipped to the image, give too).
    """
    count, room, overflow = 0, len(cell), False
    width = np.uint64(stride)
    for g in range(ns):
        u0, v0, u1, v1, weight = seg[g, 0], seg[g, 1], seg[g, 2], seg[g, 3], int(seg[g, 4])
        c_lo = min(max(np.ceil(min(u0, u1) - 0.5), 0.0), float(w))
        c_hi = min(max(np.ceil(max(u0, u1) - 0.5), 0.0), float(w))
        if not (c_hi > c_lo and min(v0, v1) < h):  # crosses no column, or wholly below the image: changes nothing
            continue
        du = u1 - u0
        value = (weight if du > 0.0 else -weight) & 255
        first, crossed = np.uint64(c_lo), np.uint64(c_hi - c_lo)
        if tight and max(v0, v1) < 0.0:
            for col in range(first, first + crossed):
                delta[col] += value
            continue
        slope = (v1 - v0) / du
        start = v0 + (c_lo + 0.5 - u0) * slope + 0.5  # at the first column crossed, + 0.5: floor() rounds
        for j in range(crossed):
            row = np.floor(start + float(j) * slope)
            if row < h:  # rows below the image change nothing in it
                r = np.uint64(max(row, 0.0))
                at = r * width + first + j
                if r > 0 and delta[at] == 0:
                    if count < room:
                        cell[count], link[count], head[r] = at, head[r], count
                        count += 1
                    else:
                        overflow = True
                delta[at] += value
    return -1 if overflow else count


@njit(cache=True)
def _write_image(
    out: np.ndarray,
    start: int,
    h: int,
    w: int,
    table: np.ndarray,
    delta: np.ndarray,
    stride: int,
    head: np.ndarray,
    link: np.ndarray,
    cell: np.ndarray,
    running: np.ndarray,
    line: np.ndarray,
) -> None:
    """Running sums down the columns -> an image's rows (H, W, C) from ``start`` in the flat ``out``: the current
    row's bytes (``line``) change only at the cells listed under the row, then are copied out. Leaves ``delta``
    zero and the lists empty.

    Copying from ``line`` rather than from the row above avoids reading bytes just stored at another alignment
    (a row is W C bytes), which stalls each load until the stores retire; each copy writes whole 64-byte blocks
    (``line``'s length), the bytes past the row being overwritten by the rows after it (``out`` has 64 spare)."""
    nc = table.shape[1]
    size, channels, width, blocks = np.uint64(w * nc), np.uint64(nc), np.uint64(stride), np.uint64(len(line))
    for col in range(np.uint64(w)):
        bits = delta[col]
        running[col] = bits
        delta[col] = 0
        for ch in range(channels):
            line[col * channels + ch] = table[bits, ch]
    first = np.uint64(start)
    for t in range(blocks):
        out[first + t] = line[t]
    for r in range(np.uint64(1), np.uint64(h)):
        k = head[r]
        while k >= 0:
            at = np.uint64(cell[k])
            d = delta[at]
            if d != 0:  # a cell can be listed twice (changed back to 0 and again)
                col = at - r * width
                bits = (running[col] + d) & 255
                running[col] = bits
                delta[at] = 0
                for ch in range(channels):
                    line[col * channels + ch] = table[bits, ch]
            k = link[k]
        head[r] = -1
        base = first + r * size
        for t in range(blocks):  # unsigned indices: no negative-index wrap test, so the copy is vectorised
            out[base + t] = line[t]
