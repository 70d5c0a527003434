"""The state observation of N driving worlds: what the ego knows, scaled to about [-1, 1].

Layout (documented in ``DrivingEnv``'s docstring): 10 ego and road features, 9 lane features, route waypoints,
lidar rays and the nearest objects. Pure functions of a :class:`~lepton_sim.envs.driving.sim.DrivingSim`'s state.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sensors import rays_to_boxes, rays_to_edges
from lepton_sim.envs.driving.world import lane_center

if TYPE_CHECKING:
    from lepton_sim.envs.driving.sim import DrivingSim

SPEED_SCALE = 30.0  # m/s, observation scale
POS_SCALE = 50.0  # m, observation scale of waypoints and object positions
SIZE_SCALE = 5.0  # m, observation scale of lateral offsets, lane width and object sizes
GOAL_SCALE = 100.0  # m, distance to goal is reported up to this
OBJECT_FEATURES = 7  # present, x, y, vx, vy, length, width
LANE_FEATURES = 9  # exists, free distance ahead, relative speed - for the lanes right of, at and left of the ego
BASE_FEATURES = 10 + LANE_FEATURES
BEHIND = 5.0  # m: objects farther behind than this are listed after those ahead at the same distance


def observation_size(p: DrivingParams) -> int:
    return BASE_FEATURES + 2 * p.num_waypoints + p.lidar_rays + OBJECT_FEATURES * p.num_objects


def observation_bounds(p: DrivingParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-index bounds of the observation (values are clipped into them)."""
    base_lo = [0.0, -math.pi, -5.0, -5.0, -5.0, 0.0, -1.0, -1.0, -1.0, 0.0] + [0.0, 0.0, -5.0] * 3
    base_hi = [2.0, math.pi, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0] + [1.0, 1.0, 5.0] * 3
    obj_lo = [0.0, -5.0, -5.0, -5.0, -5.0, 0.0, 0.0]
    obj_hi = [1.0, 5.0, 5.0, 5.0, 5.0, 2.0, 2.0]
    low = np.array(base_lo + [-5.0] * 2 * p.num_waypoints + [0.0] * p.lidar_rays + obj_lo * p.num_objects)
    high = np.array(base_hi + [5.0] * 2 * p.num_waypoints + [1.0] * p.lidar_rays + obj_hi * p.num_objects)
    return low.astype(np.float32), high.astype(np.float32)


def observe(sim: "DrivingSim") -> np.ndarray:
    """The state observation ``(N, D)`` float32 of all worlds (layout in ``DrivingEnv``'s docstring)."""
    p = sim.params
    n = sim.num_worlds
    base = np.empty((n, BASE_FEATURES))
    base[:, 0] = sim.speed * (1.0 / SPEED_SCALE)
    base[:, 1] = sim.psi
    base[:, 2] = (sim.d - sim.route_d) * (1.0 / SIZE_SCALE)
    base[:, 3] = (sim.half_road - sim.d) * (1.0 / SIZE_SCALE)
    base[:, 4] = (sim.half_road + sim.d) * (1.0 / SIZE_SCALE)
    base[:, 5] = p.lane_width / SIZE_SCALE
    base[:, 6] = sim.steer * (1.0 / p.max_steer)
    base[:, 7] = np.where(sim.accel >= 0.0, sim.accel * (1.0 / p.max_accel), sim.accel * (1.0 / p.max_brake))
    base[:, 8] = sim.kappa * 20.0
    base[:, 9] = np.minimum(np.maximum(sim.s_goal - sim.s, 0.0), GOAL_SCALE) * (1.0 / GOAL_SCALE)
    base[:, 10:] = lane_features(sim)
    c, s = np.cos(sim.heading), np.sin(sim.heading)
    # route waypoints ahead, in the ego frame (x forward, y left)
    ahead = sim.s[:, None] + p.waypoint_spacing * np.arange(1, p.num_waypoints + 1)
    wx, wy, _, _, _ = sim.road.to_world(ahead, np.broadcast_to(sim.route_d[:, None], ahead.shape), sim.rows_v)
    dx, dy = wx - sim.x[:, None], wy - sim.y[:, None]
    waypoints = np.stack([dx * c[:, None] + dy * s[:, None], dy * c[:, None] - dx * s[:, None]], axis=2)
    waypoints = waypoints.reshape(n, -1) * (1.0 / POS_SCALE)
    # lidar from the box centre
    ex, ey = sim.x + sim.ego_center * c, sim.y + sim.ego_center * s
    lateral = sim.d + sim.ego_center * np.sin(sim.psi)
    lidar = rays_to_edges(lateral, sim.psi, sim.kappa, sim.half_road, sim.ray_angles, p.lidar_range)
    objects = np.zeros((n, p.num_objects, OBJECT_FEATURES))
    if sim.num_objects:
        dx = sim.obj_x - ex[:, None]
        dy = sim.obj_y - ey[:, None]
        dist2 = dx * dx + dy * dy
        seen = dist2 < (p.lidar_range + np.hypot(sim.obj_hl, sim.obj_hw)) ** 2
        if seen.any():
            w, k = np.nonzero(seen)
            hits = rays_to_boxes(
                ex[w],
                ey[w],
                sim.heading[w],
                sim.obj_x[w, k],
                sim.obj_y[w, k],
                sim.obj_cos[w, k],
                sim.obj_sin[w, k],
                sim.obj_hl[w, k],
                sim.obj_hw[w, k],
                sim.ray_cos,
                sim.ray_sin,
            )
            starts = np.flatnonzero(np.concatenate([[True], w[1:] != w[:-1]]))
            rows = w[starts]
            lidar[rows] = np.minimum(lidar[rows], np.minimum.reduceat(hits, starts, axis=0))
        objects = nearest_objects(sim, dx, dy, dist2, c, s)
    lidar *= 1.0 / p.lidar_range
    obs = np.concatenate([base, waypoints, lidar, objects.reshape(n, -1)], axis=1)
    return np.minimum(np.maximum(obs, sim.obs_low), sim.obs_high).astype(np.float32)


def lane_features(sim: "DrivingSim") -> np.ndarray:
    """For the lanes right of, at and left of the ego's centre: [lane exists, free distance ahead (bumper to
    bumper, along the road) / sensor_range, speed of what limits it minus the ego's / 30 m/s]."""
    p, tr = sim.params, sim.traffic
    n = sim.num_worlds
    out = np.zeros((n, 3, 3))
    lane = np.minimum(np.maximum(np.floor((tr.d[:, 0] + sim.half_road) / p.lane_width), 0.0), sim.lanes - 1.0)
    lanes = lane[:, None] + np.array([-1.0, 0.0, 1.0])  # (N, 3)
    exists = (lanes >= 0.0) & (lanes < sim.lanes[:, None])
    out[:, :, 0] = exists
    out[:, :, 1] = exists
    if sim.num_objects:
        ego_s, ego_hl = tr.s[:, :1], tr.half_length[:, :1]
        obj_s, obj_hl = tr.s[:, None, 1:], tr.half_length[:, None, 1:]
        centre = lane_center(lanes, sim.lanes[:, None], p.lane_width)[:, :, None]
        inside = (np.abs(tr.d[:, None, 1:] - centre) < 0.5 * p.lane_width + tr.half_width[:, None, 1:]) & (
            obj_s + obj_hl > (ego_s - ego_hl)[:, :, None]
        )  # (N, 3, M): in the lane, not behind
        dist = np.where(inside, np.maximum(obj_s - obj_hl - (ego_s + ego_hl)[:, :, None], 0.0), np.inf)
        k = np.argmin(dist, axis=2)
        flat = k + (np.arange(n) * (tr.num_entities - 1))[:, None]
        best = np.take_along_axis(dist, k[:, :, None], axis=2)[:, :, 0]
        seen = exists & (best < p.sensor_range)
        out[:, :, 1] = np.where(seen, best * (1.0 / p.sensor_range), out[:, :, 1])
        speed = tr.speed[:, 1:].ravel()[flat]
        out[:, :, 2] = np.where(seen, (speed - tr.speed[:, :1]) * (1.0 / SPEED_SCALE), 0.0)
    return out.reshape(n, LANE_FEATURES)


def nearest_objects(
    sim: "DrivingSim", dx: np.ndarray, dy: np.ndarray, dist2: np.ndarray, c: np.ndarray, s: np.ndarray
) -> np.ndarray:
    """The ``num_objects`` nearest objects within ``sensor_range``: present, position, relative velocity, size.

    Objects more than ``BEHIND`` m behind the ego's centre rank at twice their distance, so that objects passed
    (a row of cones) do not take the slots of those ahead.
    """
    p = sim.params
    n, q = sim.num_worlds, p.num_objects
    dist2 = np.where(dist2 < p.sensor_range**2, dist2, np.inf)
    rank = np.where(dx * c[:, None] + dy * s[:, None] < -BEHIND, 4.0 * dist2, dist2)
    order = np.argsort(rank, axis=1)[:, :q]
    flat = order + (np.arange(n) * sim.num_objects)[:, None]
    present = np.isfinite(dist2.ravel()[flat])
    rdx, rdy = dx.ravel()[flat], dy.ravel()[flat]
    vx = sim.obj_vx.ravel()[flat] - (sim.speed * c)[:, None]
    vy = sim.obj_vy.ravel()[flat] - (sim.speed * s)[:, None]
    c, s = c[:, None], s[:, None]
    feats = np.stack(
        [
            np.ones_like(rdx),
            (rdx * c + rdy * s) * (1.0 / POS_SCALE),
            (rdy * c - rdx * s) * (1.0 / POS_SCALE),
            (vx * c + vy * s) * (1.0 / SPEED_SCALE),
            (vy * c - vx * s) * (1.0 / SPEED_SCALE),
            sim.obj_hl.ravel()[flat] * (2.0 / SIZE_SCALE),
            sim.obj_hw.ravel()[flat] * (2.0 / SIZE_SCALE),
        ],
        axis=2,
    )
    feats *= present[:, :, None]
    out = np.zeros((n, q, OBJECT_FEATURES))
    out[:, : feats.shape[1]] = feats
    return out
