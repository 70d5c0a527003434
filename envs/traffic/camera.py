"""The traffic envs' ``approaches`` camera: per signal, a top-down image of its approaches, drawn in numpy.

Layout: the true geometry around the junction, as a camera looking straight down would see it. The image is
centred on the junction (the mean of its incoming lanes' stop-line points), network north (+y of SUMO's
coordinates) up, and spans ``camera_range`` metres beyond the farthest stop line on every side (square, so
``camera_range`` + junction radius + 3 m from the centre to each edge). Drawn on a dark background:

- each approach, grey: the last ``camera_range`` metres before the stop line of every incoming lane of the
  signal, continued upstream onto the lanes feeding it where the incoming lane is shorter (RESCO's maps split
  roads into short edges), up to the previous signalised junction; other lanes are not drawn;
- a stop-line strip per incoming lane, just past its stop line into the junction (so queued vehicles never hide
  it), coloured by the lane's signal state: bright green (``G``, priority green), dark green (``g``, green that
  must yield), yellow (``y``/``u``/``o``), red (``r``/``s``), grey when off; a lane with several links shows its
  most permissive one;
- each vehicle on those lanes as a lane-aligned bar of its length, light blue when moving and orange when
  halted (< 0.1 m/s: SUMO's halting threshold, the state observation's queue).

Why this way: everything static (lanes, the pixel indices of the strips, each lane's shape in pixels) is
rasterised once per (signals, image size, camera conditions), i.e. once per episode; a frame copies that
background, places every vehicle of every signal with one ``np.interp`` and writes vehicles and strips with one
indexed assignment each (~0.02 ms per signal at 84x84). Vehicle positions come from one batched read per
decision step (:func:`reads.read_vehicles`).

Camera conditions (``CameraConditions``) act as on a top-down camera: ``offset`` x/y shift the camera (metres,
in the image's right/up directions), ``offset`` z raises it (a wider footprint), ``rotation`` yaw turns it
(degrees, counter-clockwise: the scene turns clockwise in the image) and ``fov_delta`` widens the field of view
(nominal FOV 90 degrees; the footprint scales by tan((90 + delta) / 2) / tan(45)).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions
from lepton_sim.envs.traffic.network import Network
from lepton_sim.envs.traffic.reads import VehicleReads

BACKGROUND = np.array([24, 26, 30], np.uint8)
LANE = np.array([110, 110, 110], np.uint8)
MOVING = np.array([80, 200, 255], np.uint8)
HALTED = np.array([255, 120, 0], np.uint8)  # queue
VEHICLE_COLOURS = np.stack([MOVING, HALTED])
# stop-line strip colours by code: 0 off / unknown, 1 red, 2 yellow, 3 green that yields, 4 priority green
STATE_COLOURS = np.array([[90, 90, 90], [230, 0, 0], [255, 230, 0], [0, 140, 0], [0, 235, 0]], np.uint8)
STATE_CODE = np.zeros(256, np.int8)  # SUMO link-state character -> code (more permissive = higher)
for _chars, _code in (("rRs", 1), ("yYuo", 2), ("g", 3), ("G", 4)):
    for _c in _chars:
        STATE_CODE[ord(_c)] = _code
NOMINAL_FOV = 90.0  # degrees: what fov_delta is relative to
STRIP_LENGTH = 3.0  # m of stop-line strip past the stop line (at least STRIP_PIXELS)
STRIP_PIXELS = 1.5
DEFAULT_VEHICLE_LENGTH = 5.0  # m: how densely vehicle bars are sampled
VEHICLE_WIDTH = 0.7  # of the lane width


@dataclass(frozen=True)
class LaneGeometry:
    """The camera's lanes (``ApproachCamera.lane_ids`` order), with one concatenated polyline table."""

    length: np.ndarray  # SUMO lane length (m): lane positions run over [0, length]
    width: np.ndarray  # lane width (m)
    offset: np.ndarray  # start of each lane in the concatenated distance table
    stretch: np.ndarray  # shape length / lane length (lane positions are scaled onto the drawn shape)
    distance: np.ndarray  # concatenated cumulative distances along the shapes (plus offsets)
    x: np.ndarray
    y: np.ndarray
    end: np.ndarray  # (L, 2) stop-line point (end of the shape)
    direction: np.ndarray  # (L, 2) unit direction of travel at the end
    first_point: np.ndarray  # (L + 1,) lane i's shape points are x/y/distance[first_point[i]:first_point[i + 1]]

    def points(self, lane: np.ndarray, position: np.ndarray) -> np.ndarray:
        """(n, 2) network coordinates of lane positions (clipped to the lane)."""
        s = np.clip(position, 0.0, self.length[lane]) * self.stretch[lane] + self.offset[lane]
        return np.stack([np.interp(s, self.distance, self.x), np.interp(s, self.distance, self.y)], axis=1)

    def polyline(self, lane: int, start: float) -> np.ndarray:
        """The lane's shape from lane position ``start`` to its end, as (k, 2) points."""
        length = float(self.length[lane])
        lo = self.offset[lane] + min(max(0.0, start), length) * self.stretch[lane]
        hi = self.offset[lane] + length * self.stretch[lane]
        inner = self.distance[(self.distance > lo) & (self.distance < hi)]
        s = np.concatenate([[lo], inner, [hi]])
        return np.stack([np.interp(s, self.distance, self.x), np.interp(s, self.distance, self.y)], axis=1)


@dataclass(frozen=True)
class SignalView:
    """What one signal's camera shows: its incoming lanes and the lanes upstream of them, centre and extent."""

    lanes: np.ndarray  # incoming lanes of the signal (indices in ApproachCamera.lane_ids; Network.in_lanes first)
    link_lane: np.ndarray  # for each controlled link: position of its incoming lane in ``lanes``
    link_index: np.ndarray  # that link's index in the signal's state string
    shown: np.ndarray  # every lane drawn: the incoming lanes, then the upstream ones
    visible_from: np.ndarray  # per shown lane: the lane position where its drawn part begins
    centre: np.ndarray  # (2,) network coordinates
    half_extent: float  # metres from the centre to each image edge (nominal camera)


@dataclass
class FramePlan:
    """The static part of one frame of several signals' cameras (a channel stack), at one size and conditions.

    Pixels are addressed as rows of the stack viewed as (H * W * N, 3): row ``(y * W + x) * N + slot``, so every
    signal's strips and vehicles are written with one indexed assignment each. A *pair* is a lane shown in one
    slot's image (a lane upstream of two signals is shown in both)."""

    background: np.ndarray  # (H, W, 3N) uint8: lanes on the background
    strip_rows: np.ndarray  # rows of the stop-line strip pixels
    strip_lane: np.ndarray  # the incoming lane (slot by slot, in view order) each strip pixel belongs to
    lane_first: np.ndarray  # per camera lane: its first pair (pairs sorted by lane)
    lane_pairs: np.ndarray  # per camera lane: how many slots show it
    single: bool  # no lane is shown in two slots (the usual case)
    pair_slot: np.ndarray  # per pair: its slot
    pair_visible: np.ndarray  # per pair: the lane position where the drawn part begins
    # each pair's lane shape already in its slot's pixels (an affine map commutes with linear interpolation), in
    # one table: a vehicle's lane position -> its pixel position is one np.interp over all pairs
    pair_offset: np.ndarray  # start of each pair in the distance table
    distance: np.ndarray
    pixel_x: np.ndarray
    pixel_y: np.ndarray
    matrix: np.ndarray  # (N, 2, 2) network metres -> pixels (x right, y down) per slot
    shift: np.ndarray  # (N, 2)
    vehicle_side: int  # vehicle bar width (pixels)
    steps: np.ndarray  # fractions of a vehicle's length where its bar is sampled, front (0) to rear (1)
    square: tuple[np.ndarray, np.ndarray]  # pixel offsets (x, y) of a vehicle_side-wide square


@functools.lru_cache(maxsize=8)
def _read_net(net_path: str) -> Any:  # sumolib.net.Net
    import sumolib

    return sumolib.net.readNet(net_path, withInternal=False)


def lane_geometry(net: Any, lane_ids: Sequence[str]) -> LaneGeometry:
    offsets, distances, xs, ys, length, width, stretch, ends, dirs = [], [], [], [], [], [], [], [], []
    first = [0]
    start = 0.0
    for lane_id in lane_ids:
        lane = net.getLane(lane_id)
        shape = np.asarray(lane.getShape(), float)[:, :2]
        seg = np.linalg.norm(np.diff(shape, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        shape_length = max(float(cum[-1]), 1e-6)
        length.append(float(lane.getLength()))
        width.append(float(lane.getWidth()))
        stretch.append(shape_length / max(length[-1], 1e-6))
        offsets.append(start)
        distances.append(cum + start)
        xs.append(shape[:, 0])
        ys.append(shape[:, 1])
        first.append(first[-1] + len(shape))
        last = np.flatnonzero(seg > 1e-9)
        d = np.diff(shape, axis=0)[last[-1]] if len(last) else np.array([0.0, 1.0])
        ends.append(shape[-1])
        dirs.append(d / np.linalg.norm(d))
        start += shape_length + 1.0  # a gap: no vehicle position falls between two lanes
    return LaneGeometry(
        length=np.array(length),
        width=np.array(width),
        offset=np.array(offsets),
        stretch=np.array(stretch),
        distance=np.concatenate(distances),
        x=np.concatenate(xs),
        y=np.concatenate(ys),
        end=np.array(ends).reshape(-1, 2),
        direction=np.array(dirs).reshape(-1, 2),
        first_point=np.array(first, np.int64),
    )


def upstream_lanes(net: Any, incoming: Sequence[str], camera_range: float) -> dict[str, float]:
    """Every lane within ``camera_range`` metres upstream of the stop lines of ``incoming``: lane id -> distance
    from its end to the nearest stop line (0 for the incoming lanes). The search crosses unsignalised junctions
    only: beyond a signal the traffic belongs to that signal's approach."""
    best = {lane: 0.0 for lane in incoming}
    frontier = list(incoming)
    while frontier:
        lane_id = frontier.pop()
        lane = net.getLane(lane_id)
        reach = best[lane_id] + lane.getLength()
        if reach >= camera_range or "traffic_light" in lane.getEdge().getFromNode().getType():
            continue
        begin = np.asarray(lane.getShape()[0][:2], float)
        for pred in lane.getIncoming():
            if pred.getEdge().getFunction() == "internal":
                continue
            gap = float(np.linalg.norm(np.asarray(pred.getShape()[-1][:2], float) - begin))  # across the junction
            d = reach + gap
            if d < camera_range and d < best.get(pred.getID(), math.inf):
                best[pred.getID()] = d
                frontier.append(pred.getID())
    return best


class ApproachCamera:
    """The ``approaches`` camera of every signal of one network (built once per env; frame plans cached).

    ``lane_ids``: the lanes vehicles are read from, ``Network.in_lanes`` first, then the upstream lanes."""

    def __init__(self, net_path: str, network: Network, camera_range: float) -> None:
        net = _read_net(net_path)
        self.network = network
        self.camera_range = float(camera_range)
        reach = [upstream_lanes(net, layout.lanes, self.camera_range) for layout in network.layouts]
        upstream = sorted({lane for r in reach for lane in r} - set(network.in_lanes))
        self.lane_ids = [*network.in_lanes, *upstream]
        self.lanes = lane_geometry(net, self.lane_ids)
        position = {lane: i for i, lane in enumerate(self.lane_ids)}
        self.views: list[SignalView] = []
        for layout, distances in zip(network.layouts, reach):
            lanes = np.array([position[x] for x in layout.lanes], np.int64)
            local = {int(g): k for k, g in enumerate(lanes)}
            link_lane, link_index = [], []
            for in_lane, _out, link_no in net.getTLS(layout.id).getConnections():
                k = local.get(position.get(in_lane.getID(), -1))
                if k is not None:
                    link_lane.append(k)
                    link_index.append(int(link_no))
            incoming = set(layout.lanes)
            others = sorted((x for x in distances if x not in incoming), key=position.__getitem__)
            shown = np.concatenate([lanes, np.array([position[x] for x in others], np.int64)])
            ahead = np.array([distances[x] for x in [*layout.lanes, *others]])
            ends = self.lanes.end[lanes]
            centre = ends.mean(axis=0) if len(ends) else np.zeros(2)
            radius = float(np.linalg.norm(ends - centre, axis=1).max()) if len(ends) else 0.0
            self.views.append(
                SignalView(
                    lanes=lanes,
                    link_lane=np.array(link_lane, np.int64),
                    link_index=np.array(link_index, np.int64),
                    shown=shown,
                    visible_from=self.lanes.length[shown] - (self.camera_range - ahead),
                    centre=centre,
                    half_extent=self.camera_range + radius + STRIP_LENGTH,
                )
            )
        self._plans: dict[tuple[tuple[int, ...], int, int, tuple[CameraConditions, ...]], FramePlan] = {}
        self._codes: list[dict[str, np.ndarray]] = [{} for _ in self.views]

    # ------------------------------------------------------------------------------------------ frames
    def frame(
        self,
        signals: Sequence[int],
        width: int,
        height: int,
        reads: VehicleReads,
        conditions: CameraConditions | Sequence[CameraConditions] = NOMINAL,
    ) -> np.ndarray:
        """The images of ``signals`` (indices in SUMO's order) stacked along channels: a new (H, W, 3N) uint8 array.

        ``conditions``: one for every signal's camera, or one per signal."""
        if isinstance(conditions, CameraConditions):
            conditions = (conditions,) * len(signals)
        plan = self.plan(tuple(signals), width, height, tuple(conditions))
        out = plan.background.copy()
        rows = out.reshape(-1, 3)
        self._draw_vehicles(rows, plan, len(signals), width, height, reads)
        codes = np.concatenate([self._lane_codes(k, reads.states) for k in signals])
        rows[plan.strip_rows] = STATE_COLOURS[codes[plan.strip_lane]]  # last: a vehicle never hides the signal
        return out

    def _lane_codes(self, signal: int, states: Sequence[str]) -> np.ndarray:
        """Per incoming lane of the signal: the most permissive state code of its links (cached per state)."""
        view = self.views[signal]
        state = states[signal] if signal < len(states) else ""
        cache = self._codes[signal]
        codes = cache.get(state)
        if codes is None:
            codes = np.zeros(len(view.lanes), np.int8)
            chars = np.frombuffer(state.encode("ascii", "replace"), np.uint8)
            valid = view.link_index < len(chars)
            np.maximum.at(codes, view.link_lane[valid], STATE_CODE[chars[view.link_index[valid]]])
            if len(cache) > 256:
                cache.clear()
            cache[state] = codes
        return codes

    def _draw_vehicles(
        self, rows: np.ndarray, plan: FramePlan, slots: int, width: int, height: int, reads: VehicleReads
    ) -> None:
        lane, front, length, halted = reads.lane, reads.position, reads.length, reads.halted
        shown = plan.lane_pairs[lane] > 0
        lane, front, length, halted = lane[shown], front[shown], length[shown], halted[shown]
        if plan.single:
            pair = plan.lane_first[lane]
        else:  # one entry per (vehicle, slot showing its lane)
            counts = plan.lane_pairs[lane]
            vehicle = np.repeat(np.arange(len(lane)), counts)
            within = np.arange(len(vehicle)) - np.repeat(np.cumsum(counts) - counts, counts)
            lane, front, length, halted = lane[vehicle], front[vehicle], length[vehicle], halted[vehicle]
            pair = plan.lane_first[lane] + within
        visible_from = plan.pair_visible[pair]
        keep = front >= visible_from
        if not keep.any():
            return
        lane, front, length, halted = lane[keep], front[keep], length[keep], halted[keep]
        pair, visible_from = pair[keep], visible_from[keep]
        # lane positions along each visible vehicle, front to rear, clipped to the drawn part: (V, K)
        along = front[:, None] - length[:, None] * plan.steps[None, :]
        along = np.clip(along, np.maximum(visible_from, 0.0)[:, None], self.lanes.length[lane][:, None])
        at = along * self.lanes.stretch[lane][:, None] + plan.pair_offset[pair][:, None]
        # the square of side s nearest each point starts at floor(x + 0.5 - (s - 1) / 2) (np.floor, not np.rint:
        # rint rounds halves to even)
        corner = 0.5 - (plan.vehicle_side - 1) / 2
        x = np.floor(np.interp(at, plan.distance, plan.pixel_x) + corner).astype(np.int64)
        y = np.floor(np.interp(at, plan.distance, plan.pixel_y) + corner).astype(np.int64)
        target = (y * width + x) * slots + plan.pair_slot[pair][:, None]
        flags = halted[:, None]
        if plan.vehicle_side > 1:  # widen the bar into squares: offsets broadcast over a trailing axis
            dx, dy = plan.square
            x, y = x[..., None] + dx, y[..., None] + dy
            target = target[..., None] + (dy * width + dx) * slots
            flags = flags[..., None]
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        rows[target[inside]] = VEHICLE_COLOURS[np.broadcast_to(flags, inside.shape)[inside].astype(np.int64)]

    # ------------------------------------------------------------------------------------------ static part
    def plan(
        self, signals: tuple[int, ...], width: int, height: int, conditions: tuple[CameraConditions, ...] = ()
    ) -> FramePlan:
        """The static layer of a frame of ``signals`` (built once per size and episode conditions, then cached);
        ``conditions``: one per signal (none: nominal)."""
        conditions = conditions or (NOMINAL,) * len(signals)
        key = (signals, width, height, conditions)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 8:
                self._plans.clear()  # new episode conditions: the old plans are done with
            plan = self._plans[key] = self._build(signals, width, height, conditions)
        return plan

    def _build(
        self, signals: tuple[int, ...], width: int, height: int, conditions: tuple[CameraConditions, ...]
    ) -> FramePlan:
        n = len(signals)
        geo = self.lanes
        background = np.empty((height, width, 3 * n), np.uint8)
        matrices, shifts, scales = np.zeros((n, 2, 2)), np.zeros((n, 2)), np.zeros(n)
        strip_rows, strip_lane, pair_lane, pair_slot, pair_visible = [], [], [], [], []
        lanes_before = 0
        for slot, signal in enumerate(signals):
            view = self.views[signal]
            matrix, shift, scale = _camera_transform(view, width, height, conditions[slot])
            matrices[slot], shifts[slot], scales[slot] = matrix, shift, scale
            image = background[:, :, 3 * slot : 3 * slot + 3]
            image[:] = BACKGROUND
            for lane, start in zip(view.shown, view.visible_from):
                shape = geo.polyline(int(lane), float(start)) @ matrix.T + shift
                stamp_polyline(image, shape, max(1, int(np.rint(geo.width[lane] * scale))), LANE)
            labels = np.full((height, width), -1, np.int32)
            strip = max(STRIP_LENGTH, STRIP_PIXELS / scale)
            for k, lane in enumerate(view.lanes):
                stop = np.stack([geo.end[lane], geo.end[lane] + strip * geo.direction[lane]]) @ matrix.T + shift
                stamp_polyline(labels, stop, max(1, int(np.rint(geo.width[lane] * scale))), k)
            ys, xs = np.nonzero(labels >= 0)
            strip_rows.append((ys * width + xs) * n + slot)
            strip_lane.append(labels[ys, xs] + lanes_before)
            lanes_before += len(view.lanes)
            pair_lane.extend(int(x) for x in view.shown)
            pair_slot.extend([slot] * len(view.shown))
            pair_visible.extend(float(v) for v in view.visible_from)
        lanes, slots = np.array(pair_lane, np.int64), np.array(pair_slot, np.int64)
        order = np.argsort(lanes, kind="stable")
        lane_pairs = np.bincount(lanes, minlength=len(self.lane_ids))
        offsets, distance, pixels, start = [], [], [], 0.0
        for lane, slot in zip(lanes[order], slots[order]):
            a, b = geo.first_point[lane], geo.first_point[lane + 1]
            local = geo.distance[a:b] - geo.offset[lane]
            offsets.append(start)
            distance.append(local + start)
            pixels.append(np.stack([geo.x[a:b], geo.y[a:b]], axis=1) @ matrices[slot].T + shifts[slot])
            start += float(local[-1]) + 1.0
        widths = geo.width[lanes] if len(lanes) else np.array([3.2])
        side = max(1, int(np.rint(VEHICLE_WIDTH * float(np.median(widths)) * float(np.median(scales)))))
        # samples at most half a pixel apart along a typical vehicle, an odd count (its middle is one)
        samples = 2 * int(math.ceil(DEFAULT_VEHICLE_LENGTH * float(scales.max()))) + 1
        dx, dy = np.meshgrid(np.arange(side), np.arange(side))
        table = np.concatenate(pixels) if pixels else np.zeros((1, 2))
        return FramePlan(
            background=background,
            strip_rows=np.concatenate(strip_rows),
            strip_lane=np.concatenate(strip_lane),
            lane_first=np.cumsum(lane_pairs) - lane_pairs,
            lane_pairs=lane_pairs,
            single=bool(lane_pairs.max(initial=0) <= 1),
            pair_slot=slots[order],
            pair_visible=np.array(pair_visible)[order] if pair_visible else np.zeros(0),
            pair_offset=np.array(offsets),
            distance=np.concatenate(distance) if distance else np.zeros(1),
            pixel_x=table[:, 0],
            pixel_y=table[:, 1],
            matrix=matrices,
            shift=shifts,
            vehicle_side=side,
            steps=np.linspace(0.0, 1.0, samples),
            square=(dx.ravel(), dy.ravel()),
        )


def _camera_transform(
    view: SignalView, width: int, height: int, conditions: CameraConditions
) -> tuple[np.ndarray, np.ndarray, float]:
    """Network metres -> pixels (x right, y down, pixel centres at integers) for a top-down camera over the
    junction, moved by ``conditions``; and pixels per metre."""
    half_fov = math.radians(NOMINAL_FOV) / 2
    half = view.half_extent
    height_m = half / math.tan(half_fov)  # nominal camera height above the road
    zoom = max(1e-3, (height_m + conditions.offset[2]) / height_m)
    fov = min(math.radians(NOMINAL_FOV + conditions.fov_delta), math.radians(170.0))
    half *= zoom * math.tan(fov / 2) / math.tan(half_fov)
    yaw = math.radians(conditions.rotation[2])
    rot = np.array([[math.cos(yaw), -math.sin(yaw)], [math.sin(yaw), math.cos(yaw)]])  # camera axes in the world
    centre = view.centre + rot @ np.asarray(conditions.offset[:2], float)
    sx, sy = width / (2 * half), height / (2 * half)
    matrix = np.diag([sx, -sy]) @ rot.T
    shift = np.array([(width - 1) / 2, (height - 1) / 2]) - matrix @ centre
    return matrix, shift, math.sqrt(sx * sy)


# ---------------------------------------------------------------------------------------------- rasterising


def stamp_squares(img: np.ndarray, pixels: np.ndarray, side: int, value: np.ndarray | int) -> None:
    """Filled squares ``side`` pixels wide centred on each (x, y) pixel coordinate, clipped to the image."""
    if len(pixels) == 0:
        return
    offsets = np.arange(side) - (side - 1) / 2
    # floor(x + 0.5), not np.rint: rint rounds halves to even, which would merge a 2-pixel square into one column
    xs = np.floor(pixels[:, 0:1, None] + offsets[None, None, :] + 0.5).astype(np.int64)
    ys = np.floor(pixels[:, 1:2, None] + offsets[None, :, None] + 0.5).astype(np.int64)
    xs, ys = np.broadcast_arrays(xs, ys)
    xs, ys = xs.ravel(), ys.ravel()
    keep = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    img[ys[keep], xs[keep]] = value


def stamp_polyline(img: np.ndarray, points: np.ndarray, side: int, value: np.ndarray | int) -> None:
    """A thick polyline (pixel coordinates): points every half pixel along each segment, stamped as squares."""
    if len(points) < 2:
        stamp_squares(img, points, side, value)
        return
    a, b = points[:-1], points[1:]
    counts = np.maximum(2, np.ceil(np.linalg.norm(b - a, axis=1) / 0.5).astype(int) + 1)
    seg = np.repeat(np.arange(len(a)), counts)
    t = np.concatenate([np.linspace(0.0, 1.0, c) for c in counts])
    stamp_squares(img, a[seg] + (b - a)[seg] * t[:, None], side, value)
