"""A classical driving baseline: lane choice from the sensed objects, pure pursuit, speed control.

Works on the state observation only (layout in ``DrivingEnv``'s docstring), batched over envs:

1. **Lane choice.** The nearest-object list is turned into the road frame; for every lane the free distance
   ahead (shortened by closing speed) is scored; the ego keeps its lane unless another adjacent lane is clearly
   freer and safe to enter (nothing alongside or closing in from behind).
2. **Pure pursuit.** The route waypoints are shifted sideways onto the chosen lane; the steering angle aims the
   rear axle at the point one look-ahead distance along that path: ``atan(2 L sin(alpha) / l_d)``.
3. **Speed.** The lowest of a cruise speed, the curve speed (3 m/s^2 lateral) and the speed that still stops
   (or matches the leader's speed) before the nearest object in the lanes the car occupies or enters.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium
import numpy as np

from lepton_sim.envs.driving.dynamics import CAR_WIDTH, FRONT_OVERHANG, REAR_OVERHANG
from lepton_sim.envs.driving.observation import (
    BASE_FEATURES,
    OBJECT_FEATURES,
    POS_SCALE,
    SIZE_SCALE,
    SPEED_SCALE,
    observation_size,
)
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sim import FASTER, IDLE, LANE_LEFT, LANE_RIGHT, SLOWER
from lepton_sim.policy import Policy, PolicyContext

LATERAL_MARGIN = 0.5  # m of clearance wanted beside an object
BRAKE = 3.5  # m/s^2 planned braking
LAT_ACCEL = 3.0  # m/s^2 in curves
STANDSTILL_GAP = 4.0  # m kept to the object ahead when stopped
HEADWAY = 1.0  # s
LANE_BONUS = 15.0  # m of free road a lane change has to gain
VIEW = 80.0  # m: free distances are capped here


class ScriptedDriver(Policy):
    """Rule-based driver for ``lepton/Driving-v0`` (continuous or discrete action mode)."""

    name = "scripted"

    def __init__(
        self, observation_space: gymnasium.Space, action_space: gymnasium.Space, params: DrivingParams | None = None
    ) -> None:
        self.discrete = isinstance(action_space, gymnasium.spaces.Discrete)
        self.size = int(observation_space.shape[0])
        self.p: DrivingParams | None = None
        guess = params or DrivingParams(action_mode="discrete" if self.discrete else "continuous")
        if observation_size(guess) == self.size:
            self._configure(guess)

    def _configure(self, params: DrivingParams) -> None:
        if observation_size(params) != self.size:
            raise ValueError(
                f"scripted driver: observation size {self.size} does not match the env parameters "
                f"(which give {observation_size(params)})"
            )
        self.p = params
        self.cruise = 0.9 * params.max_speed
        self.ego_center = 0.5 * (params.wheelbase + FRONT_OVERHANG - REAR_OVERHANG)
        self.ego_half_length = 0.5 * (params.wheelbase + FRONT_OVERHANG + REAR_OVERHANG)

    def reset(self, context: PolicyContext) -> None:
        """Read the scenario's parameters (speed limit, observation layout) from the context."""
        self._configure(DrivingParams(**context.params))

    # ------------------------------------------------------------------------------------------------ act
    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        p = self.p
        if p is None:
            raise ValueError(
                f"scripted driver: observation size {self.size} is not the default layout; call "
                "reset(context) first so the driver reads the scenario's parameters"
            )
        obs = np.asarray(observation, dtype=np.float64).reshape(-1, observation_size(p))
        k, r, q = p.num_waypoints, p.lidar_rays, p.num_objects
        v = obs[:, 0] * SPEED_SCALE
        psi = obs[:, 1]
        off_route = obs[:, 2] * SIZE_SCALE
        to_left, to_right = obs[:, 3] * SIZE_SCALE, obs[:, 4] * SIZE_SCALE
        width = obs[:, 5] * SIZE_SCALE
        kappa = obs[:, 8] / 20.0
        wp = obs[:, BASE_FEATURES : BASE_FEATURES + 2 * k].reshape(-1, k, 2) * POS_SCALE
        objs = obs[:, BASE_FEATURES + 2 * k + r :].reshape(-1, q, OBJECT_FEATURES)
        lanes = np.maximum(np.round((to_left + to_right) / width), 1.0)
        # everything below is measured from the right road edge (lateral) and the ego's box centre (along)
        c, s = np.cos(psi), np.sin(psi)
        ego_lat = to_right + self.ego_center * s
        current = np.minimum(np.floor(ego_lat / width), lanes - 1)
        free, closing_behind = self._lane_clearance(objs, ego_lat, width, lanes, c, s, kappa, v)
        target = self._choose_lane(free, closing_behind, current, lanes)
        target_lat = (target + 0.5) * width
        route_lat = to_right - off_route
        steer = self._pure_pursuit(wp, off_route, psi, target_lat - route_lat, v)
        occupied = self._occupied(ego_lat, width, lanes, c, s, target)
        gap = np.min(np.where(occupied, free[..., 0], VIEW), axis=1)
        lead_speed = np.min(np.where(occupied, free[..., 1], np.inf), axis=1)
        target_speed = self._target_speed(v, gap, lead_speed, kappa, wp)
        if self.discrete:
            return self._meta_action(target, current, ego_lat, width, v, target_speed), None
        accel = 1.5 * (target_speed - v)
        accel = np.where(accel >= 0.0, accel / p.max_accel, accel / p.max_brake)
        return np.stack([np.clip(accel, -1.0, 1.0), np.clip(steer / p.max_steer, -1.0, 1.0)], axis=1).astype(
            np.float32
        ), None

    # -------------------------------------------------------------------------------------------- helpers
    def _lane_clearance(
        self,
        objs: np.ndarray,
        ego_lat: np.ndarray,
        width: np.ndarray,
        lanes: np.ndarray,
        c: np.ndarray,
        s: np.ndarray,
        kappa: np.ndarray,
        v: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per lane (up to 4): free distance ahead and the speed of what limits it ``(N, 4, 2)``; and whether
        something sits alongside or closes in from behind ``(N, 4)``."""
        present = objs[..., 0] > 0.5
        x, y = objs[..., 1] * POS_SCALE, objs[..., 2] * POS_SCALE
        vx, vy = objs[..., 3] * SPEED_SCALE, objs[..., 4] * SPEED_SCALE
        half_len, half_wid = objs[..., 5] * SIZE_SCALE / 2, objs[..., 6] * SIZE_SCALE / 2
        c, s = c[:, None], s[:, None]
        along = x * c - y * s  # ego frame -> road frame (rotate by the heading error)
        lat = x * s + y * c - 0.5 * kappa[:, None] * along * np.abs(along)
        rel_speed = vx * c - vy * s  # object speed minus ego speed, along the road
        obj_lat = ego_lat[:, None] + lat
        obj_speed = v[:, None] + rel_speed
        free = np.full((len(objs), 4, 2), VIEW)
        free[..., 1] = np.inf
        behind = np.zeros((len(objs), 4), dtype=bool)
        for lane in range(4):
            centre = (lane + 0.5) * width[:, None]
            in_lane = present & (np.abs(obj_lat - centre) < half_wid + 0.5 * CAR_WIDTH + LATERAL_MARGIN)
            in_lane &= lane < lanes[:, None]
            dist = along - half_len - self.ego_half_length
            ahead = in_lane & (along + half_len > -self.ego_half_length)
            d_ahead = np.where(ahead, dist, np.inf)
            j = np.argmin(d_ahead, axis=1)
            rows = np.arange(len(objs))
            free[:, lane, 0] = np.minimum(d_ahead[rows, j], VIEW)
            free[:, lane, 1] = np.where(np.isfinite(d_ahead[rows, j]), obj_speed[rows, j], np.inf)
            rear_gap = -(along + half_len) - self.ego_half_length  # > 0: object entirely behind
            alongside = in_lane & (along + half_len > -self.ego_half_length - 2.0) & (dist < 2.0)
            closing = in_lane & (rear_gap > -2.0) & (rear_gap < 5.0 + 2.5 * np.maximum(rel_speed, 0.0))
            behind[:, lane] = (alongside | closing).any(axis=1) | (lane >= lanes)
        return free, behind

    def _choose_lane(self, free: np.ndarray, blocked: np.ndarray, current: np.ndarray, lanes: np.ndarray) -> np.ndarray:
        """Stay, or move one lane towards a clearly freer one that is safe to enter now."""
        n = len(current)
        rows = np.arange(n)
        cur = current.astype(np.int64)
        effective = free[..., 0] + np.where(np.isfinite(free[..., 1]), 2.0 * free[..., 1], 2.0 * self.cruise)
        effective = np.minimum(effective, VIEW + 2.0 * self.cruise)
        best = cur.copy()
        best_score = effective[rows, cur] + LANE_BONUS
        for side in (-1, 1):
            lane = cur + side
            ok = (lane >= 0) & (lane < lanes)
            lane_c = np.clip(lane, 0, 3)
            score = effective[rows, lane_c]
            take = ok & ~blocked[rows, lane_c] & (score > best_score) & (free[rows, lane_c, 0] > 5.0)
            best = np.where(take, lane_c, best)
            best_score = np.where(take, score, best_score)
        return best.astype(np.float64)

    def _occupied(
        self,
        ego_lat: np.ndarray,
        width: np.ndarray,
        lanes: np.ndarray,
        c: np.ndarray,
        s: np.ndarray,
        target: np.ndarray,
    ) -> np.ndarray:
        """Lanes the ego's box overlaps, plus the target lane ``(N, 4)``."""
        half = self.ego_half_length * np.abs(s) + 0.5 * CAR_WIDTH * np.abs(c)
        lo = np.floor((ego_lat - half) / width)
        hi = np.floor((ego_lat + half) / width)
        lane = np.arange(4)[None, :]
        return (((lane >= lo[:, None]) & (lane <= hi[:, None])) | (lane == target[:, None])) & (lane < lanes[:, None])

    def _pure_pursuit(
        self, wp: np.ndarray, off_route: np.ndarray, psi: np.ndarray, shift: np.ndarray, v: np.ndarray
    ) -> np.ndarray:
        """Steering angle towards the look-ahead point of the route shifted ``shift`` m to the left."""
        n = len(wp)
        c, s = np.cos(psi), np.sin(psi)
        # route point beside the ego (road frame (0, -off_route) in the ego frame), then the waypoints
        start = np.stack([-off_route * s, -off_route * c], axis=1)[:, None, :]
        path = np.concatenate([start, wp], axis=1)
        seg = np.diff(path, axis=1)
        seg_len = np.maximum(np.linalg.norm(seg, axis=2, keepdims=True), 1e-6)
        normal = np.concatenate([-seg[..., 1:], seg[..., :1]], axis=2) / seg_len
        normal = np.concatenate([normal[:, :1], normal], axis=1)
        path = path + shift[:, None, None] * normal
        lookahead = np.clip(0.9 * v, 7.0, 25.0)
        dist = np.linalg.norm(path, axis=2)
        beyond = dist >= lookahead[:, None]
        j = np.where(beyond.any(axis=1), np.argmax(beyond, axis=1), path.shape[1] - 1)
        j = np.maximum(j, 1)
        rows = np.arange(n)
        a, b = path[rows, j - 1], path[rows, j]
        da, db = dist[rows, j - 1], dist[rows, j]
        t = np.clip((lookahead - da) / np.maximum(db - da, 1e-6), 0.0, 1.0)[:, None]
        point = a + t * (b - a)
        ld = np.maximum(np.linalg.norm(point, axis=1), 1.0)
        alpha = np.arctan2(point[:, 1], point[:, 0])
        return np.arctan(2.0 * self.p.wheelbase * np.sin(alpha) / ld)

    def _target_speed(
        self, v: np.ndarray, gap: np.ndarray, lead_speed: np.ndarray, kappa: np.ndarray, wp: np.ndarray
    ) -> np.ndarray:
        """Cruise, curve and stopping-distance limits."""
        # curvature ahead from the waypoints' heading change
        heading = np.arctan2(np.diff(wp[..., 1], axis=1), np.diff(wp[..., 0], axis=1))
        turn = np.abs(np.diff(heading, axis=1)).max(axis=1) if heading.shape[1] > 1 else np.zeros(len(wp))
        curv = np.maximum(np.abs(kappa), turn / max(self.p.waypoint_spacing, 1e-6))
        v_curve = np.sqrt(LAT_ACCEL / np.maximum(curv, 1e-4))
        lead = np.where(np.isfinite(lead_speed), np.maximum(lead_speed, 0.0), 0.0)
        room = np.maximum(gap - STANDSTILL_GAP - HEADWAY * v, 0.0)
        v_stop = np.sqrt(lead * lead + 2.0 * BRAKE * room)
        return np.minimum(np.minimum(self.cruise, v_curve), v_stop)

    def _meta_action(
        self,
        target: np.ndarray,
        current: np.ndarray,
        ego_lat: np.ndarray,
        width: np.ndarray,
        v: np.ndarray,
        target_speed: np.ndarray,
    ) -> np.ndarray:
        """Discrete mode: request a lane change once settled in a lane, else adjust the speed."""
        settled = np.abs(ego_lat - (current + 0.5) * width) < 0.6
        action = np.full(len(v), IDLE, dtype=np.int64)
        action = np.where(v < target_speed - 0.6 * self.p.speed_step, FASTER, action)
        action = np.where(v > target_speed + 0.3 * self.p.speed_step, SLOWER, action)
        action = np.where(settled & (target > current), LANE_LEFT, action)
        action = np.where(settled & (target < current), LANE_RIGHT, action)
        return action
