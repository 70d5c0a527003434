"""Procedural worlds: each episode's road, route, goal, static obstacles and other vehicles, from a seed.

:func:`generate_worlds` draws everything for a batch of worlds, each from its own random generator (the only
place randomness enters a driving episode: the simulation itself is deterministic). The draws happen world by
world; the arithmetic (road integration, vehicle placement) is batched and row-independent, so a world comes out
the same whether it is drawn alone (a single env) or with others (the vector env).

Obstacle sites are at least ``obstacle_spacing`` apart along the road and each blocks one lane, so with two or
more lanes there is always a free lane beside every obstacle.
"""

from __future__ import annotations

import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lepton_sim.envs.driving.dynamics import CAR_LENGTH, CAR_WIDTH, CONE_SIZE
from lepton_sim.envs.driving.params import FIRST_OBSTACLE, GOAL_CLEARANCE, START_MARGIN, DrivingParams
from lepton_sim.envs.driving.road import DS, centerlines, curves_needed

FRONT_MARGIN = 100.0  # m of road beyond the goal (route waypoints look past it)
FAR_AWAY = -1.0e5  # s of unused obstacle / vehicle slots: far behind everything, never seen or hit
CONES_PER_SITE = 3  # at most
PARKED, CONE = 1, 2  # obstacle kinds (0: unused slot)


def road_points(params: DrivingParams) -> int:
    """Centreline samples per world: enough for the longest route plus margins."""
    return int(math.ceil((START_MARGIN + params.route_length.high + FRONT_MARGIN) / DS)) + 1


def lane_center(lane: np.ndarray | float, lanes: np.ndarray | float, lane_width: float) -> np.ndarray | float:
    """Lateral offset of a lane's centre (lane 0 is the rightmost)."""
    return (lane - 0.5 * (lanes - 1)) * lane_width


@dataclass
class WorldLayout:
    """Everything drawn at reset for one world (views into a batch; arrays padded to the slot counts)."""

    x: np.ndarray  # centreline (P,)
    y: np.ndarray
    heading: np.ndarray
    kappa: np.ndarray
    lanes: int
    lane_width: float
    s_start: float
    s_goal: float
    ego_lane: int
    obs_s: np.ndarray  # (O,) obstacle centres along the road
    obs_d: np.ndarray  # (O,) lateral offsets
    obs_yaw: np.ndarray  # (O,) heading relative to the road
    obs_half_length: np.ndarray
    obs_half_width: np.ndarray
    obs_kind: np.ndarray  # 0 unused, 1 parked car, 2 cone
    world_id: int  # checksum of the layout: names the world in infos (trajectory plots)


@dataclass
class WorldBatch:
    """k freshly drawn worlds as arrays with a leading axis k."""

    road: np.ndarray  # (k, P, 6) centreline table rows (see road.centerlines)
    lanes: np.ndarray  # (k,)
    s_start: np.ndarray
    s_goal: np.ndarray
    ego_lane: np.ndarray
    ego_speed: np.ndarray
    obs_s: np.ndarray  # (k, O)
    obs_d: np.ndarray
    obs_yaw: np.ndarray
    obs_half_length: np.ndarray
    obs_half_width: np.ndarray
    obs_kind: np.ndarray
    veh_s: np.ndarray  # (k, V)
    veh_lane: np.ndarray
    veh_speed: np.ndarray
    veh_desired: np.ndarray
    veh_active: np.ndarray
    world_id: np.ndarray  # (k,)
    lane_width: float

    def layout(self, j: int) -> WorldLayout:
        """World j of the batch as a :class:`WorldLayout` (views, made on demand: plots and rendering only)."""
        return WorldLayout(
            self.road[j, :, 0],
            self.road[j, :, 1],
            self.road[j, :, 4],
            self.road[j, :, 5],
            int(self.lanes[j]),
            self.lane_width,
            float(self.s_start[j]),
            float(self.s_goal[j]),
            int(self.ego_lane[j]),
            self.obs_s[j],
            self.obs_d[j],
            self.obs_yaw[j],
            self.obs_half_length[j],
            self.obs_half_width[j],
            self.obs_kind[j],
            world_id=int(self.world_id[j]),
        )


_RECENT: "OrderedDict[int, tuple[WorldBatch, int]]" = OrderedDict()  # recent worlds by id, for plots
_RECENT_MAX = 256


def find_layout(world_id: int) -> WorldLayout | None:
    """A recently generated world by its id (plots find their road after the env has moved on), else None."""
    found = _RECENT.get(int(world_id))
    return None if found is None else found[0].layout(found[1])


class _Draws:
    """Slices of each world's block of uniform numbers: one ``rng.random`` call per world and reset."""

    SCALARS = ("lanes", "route", "ego_lane", "ego_speed", "sites", "vehicles")

    def __init__(self, curves: int, sites: int, vehicles: int) -> None:
        sizes = {
            "length": curves,
            "curvature": curves,
            "sign": curves,
            "lanes": 1,
            "route": 1,
            "ego_lane": 1,
            "ego_speed": 1,
            "sites": 1,
            "vehicles": 1,
            "site_s": sites,
            "site_lane": sites,
            "site_cone": sites,
            "cones": sites,
            "side": sites,
            "jitter": sites,
            "yaw": sites,
            "veh_lane": vehicles,
            "veh_desired": vehicles,
            "veh_speed": vehicles,
            "veh_gap": vehicles,
        }
        self.slices, start = {}, 0
        for name, size in sizes.items():
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start


def _int_range(u: np.ndarray, low: float, high: float) -> np.ndarray:
    """Uniform integers in [low, high] from uniforms in [0, 1)."""
    return np.minimum(low + np.floor(u * (high - low + 1.0)), high)


def generate_worlds(
    p: DrivingParams, rngs: list[np.random.Generator], num_points: int, obstacle_slots: int, vehicle_slots: int
) -> WorldBatch:
    """Draw one world per generator. Each world consumes one block of uniforms from its own generator, and all
    arithmetic is row by row, so a world is the same drawn alone or in a batch."""
    k = len(rngs)
    sites = obstacle_slots // CONES_PER_SITE
    draws = _Draws(curves_needed(num_points, p.curve_length), sites, vehicle_slots)
    u = np.stack([rng.random(draws.size) for rng in rngs]) if k else np.zeros((0, draws.size))

    def col(name: str) -> np.ndarray:
        sl = draws.slices[name]
        return u[:, sl.start] if name in _Draws.SCALARS else u[:, sl]

    road = centerlines(col("length"), col("curvature"), col("sign"), num_points, p.curvature, p.curve_length)
    lanes = _int_range(col("lanes"), p.lanes.low, p.lanes.high)
    route = p.route_length.low + col("route") * (p.route_length.high - p.route_length.low)
    s_start = np.full(k, START_MARGIN)
    s_goal = s_start + route
    ego_lane = np.minimum(np.floor(col("ego_lane") * lanes), lanes - 1.0)
    ego_speed = p.ego_speed.low + col("ego_speed") * (p.ego_speed.high - p.ego_speed.low)
    obstacles = _obstacles(p, col, lanes, s_start, s_goal, sites)
    count = _int_range(col("vehicles"), p.vehicles.low, p.vehicles.high)
    active = np.arange(vehicle_slots)[None, :] < count[:, None]
    veh_lane = np.minimum(np.floor(col("veh_lane") * lanes[:, None]), lanes[:, None] - 1.0)
    desired = p.vehicle_speed.low + col("veh_desired") * (p.vehicle_speed.high - p.vehicle_speed.low)
    speed = desired * (0.8 + 0.2 * col("veh_speed"))
    gaps = p.vehicle_spacing.low + col("veh_gap") * (p.vehicle_spacing.high - p.vehicle_spacing.low)
    veh_s = _place_vehicles(p, veh_lane, gaps, active, lanes, ego_lane, s_start, obstacles[0], obstacles[1])
    ids = np.array([zlib.crc32(row.tobytes()) & 0x7FFFFFFF for row in u], dtype=np.int64)
    batch = WorldBatch(
        road,
        lanes,
        s_start,
        s_goal,
        ego_lane,
        ego_speed,
        *obstacles,
        veh_s,
        veh_lane,
        np.where(active, speed, 0.0),
        np.where(active, desired, 1.0),
        active.astype(np.float64),
        ids,
        p.lane_width,
    )
    for j, world_id in enumerate(ids.tolist()):
        _RECENT[world_id] = (batch, j)
        _RECENT.move_to_end(world_id)
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return batch


def _obstacles(
    p: DrivingParams,
    col: Callable[[str], np.ndarray],
    lanes: np.ndarray,
    s_start: np.ndarray,
    s_goal: np.ndarray,
    sites: int,
) -> tuple[np.ndarray, ...]:
    """Obstacle slots ``(k, 3 S)``: S sites of 3 slots each (a parked car uses the first, cones 1-3)."""
    k = len(lanes)
    if sites == 0:
        empty = np.zeros((k, 0))
        return empty + FAR_AWAY, empty, empty, empty, empty, empty.astype(np.int8)
    count = _int_range(col("sites"), p.obstacles.low, p.obstacles.high)
    used = np.arange(sites)[None, :] < count[:, None]
    lo = s_start + FIRST_OBSTACLE
    slack = np.maximum(s_goal - GOAL_CLEARANCE - lo - (count - 1.0) * p.obstacle_spacing, 0.0)
    order = np.sort(np.where(used, col("site_s"), np.inf), axis=1)  # sorted positions within the slack
    site_s = lo[:, None] + np.where(used, order, 0.0) * slack[:, None] + np.arange(sites) * p.obstacle_spacing
    site_lane = np.minimum(np.floor(col("site_lane") * lanes[:, None]), lanes[:, None] - 1.0)
    centre = lane_center(site_lane, lanes[:, None], p.lane_width)
    cone = col("site_cone") < p.cone_fraction
    cones = np.floor(1.0 + col("cones") * CONES_PER_SITE)
    side = np.where(col("side") < 0.5, 1.0, -1.0) * min(1.0, 0.5 * p.lane_width - 0.5)
    j = np.arange(CONES_PER_SITE)[None, None, :]
    n = cones[:, :, None]
    across = np.where(n > 1.0, (2.0 * j / np.maximum(n - 1.0, 1.0) - 1.0), 0.0) * side[:, :, None]
    is_cone = cone[:, :, None]
    slot_used = used[:, :, None] & np.where(is_cone, j < n, j == 0)
    s = np.where(is_cone, site_s[:, :, None] + 2.5 * j, site_s[:, :, None] + 0.0 * j)
    d = np.where(is_cone, centre[:, :, None] + across, (centre + 0.6 * col("jitter") - 0.3)[:, :, None] + 0.0 * j)
    yaw = np.where(is_cone, 0.0, (0.2 * col("yaw") - 0.1)[:, :, None] + 0.0 * j)
    hl = np.where(is_cone, 0.5 * CONE_SIZE, 0.5 * CAR_LENGTH) + 0.0 * j
    hw = np.where(is_cone, 0.5 * CONE_SIZE, 0.5 * CAR_WIDTH) + 0.0 * j
    kind = np.where(is_cone, CONE, PARKED) + 0 * j
    s, d, yaw = np.where(slot_used, s, FAR_AWAY), np.where(slot_used, d, 0.0), np.where(slot_used, yaw, 0.0)
    hl = np.where(slot_used, hl, 0.5 * CONE_SIZE)
    hw = np.where(slot_used, hw, 0.5 * CONE_SIZE)
    kind = np.where(slot_used, kind, 0).astype(np.int8)
    return tuple(a.reshape(k, -1) for a in (s, d, yaw, hl, hw, kind))


def _place_vehicles(
    p: DrivingParams,
    lane: np.ndarray,
    gaps: np.ndarray,
    active: np.ndarray,
    lanes: np.ndarray,
    ego_lane: np.ndarray,
    s_start: np.ndarray,
    obs_s: np.ndarray,
    obs_d: np.ndarray,
) -> np.ndarray:
    """Vehicle positions ``(k, V)``: lane by lane ahead of the ego, first one a gap (ego's lane) or a short
    stagger (other lanes) ahead, then cumulative gaps; unused slots far behind; none on an obstacle."""
    k, v = lane.shape
    if v == 0:
        return np.zeros((k, 0))
    key = np.where(active, lane, 1.0e3)  # group by lane, unused slots last, slot order within a lane
    order = np.argsort(key, axis=1, kind="stable")
    rows = (np.arange(k) * v)[:, None]
    flat = order + rows
    ls, g = key.ravel()[flat], gaps.ravel()[flat]
    starts = np.concatenate([np.ones((k, 1), dtype=bool), ls[:, 1:] != ls[:, :-1]], axis=1)
    first = np.maximum.accumulate(np.where(starts, np.arange(v)[None, :], 0), axis=1) + rows
    g_first = g.ravel()[first]
    cs = np.cumsum(g, axis=1)
    lead_in = np.where(ls == ego_lane[:, None], g_first, 0.3 * g_first + CAR_LENGTH + 3.0)
    pos = s_start[:, None] + lead_in + cs - cs.ravel()[first]
    for j in np.flatnonzero((obs_s > FAR_AWAY / 2).any(axis=1) & active.any(axis=1)):
        _clear_obstacles(pos[j], ls[j], obs_s[j], obs_d[j], lanes[j], p.lane_width)
    out = np.empty((k, v))
    out.ravel()[flat.ravel()] = pos.ravel()
    return np.where(active, out, FAR_AWAY - 10.0 * np.arange(v)[None, :])


def _clear_obstacles(
    pos: np.ndarray, lane: np.ndarray, obs_s: np.ndarray, obs_d: np.ndarray, lanes: float, lane_width: float
) -> None:
    """Keep 10 m behind / 15 m past every obstacle of a vehicle's lane clear, pushing its followers on."""
    used = obs_s > FAR_AWAY / 2
    obs_lane = np.round(obs_d / lane_width + 0.5 * (lanes - 1))
    shift, current = 0.0, None
    for j in range(len(pos)):
        if lane[j] != current:
            shift, current = 0.0, lane[j]
        pos[j] += shift
        for b in np.sort(obs_s[used & (obs_lane == current)]):
            if b - 10.0 < pos[j] < b + 15.0:
                shift += b + 15.0 - pos[j]
                pos[j] = b + 15.0
