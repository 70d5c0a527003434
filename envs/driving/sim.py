"""The batched driving simulator: N worlds stepped together as numpy arrays.

:class:`DrivingSim` is the one implementation behind both ``DrivingEnv`` (N = 1) and ``DrivingVectorEnv``
(N = num_envs). Every operation is element-wise per world or a reduction within one world, so world ``n`` of a
batch evolves bit-for-bit like a single world with the same seed and actions.

One env step = ``sim_steps_per_action`` simulation steps of ``dt`` with the action held: ego bicycle model,
projection onto the road, other vehicles (IDM + MOBIL once per simulated second), then collision, off-road and
goal checks. A world that terminates inside an env step keeps its ego frozen for the remaining sub-steps.

The sub-step runs as compiled loops over worlds (:mod:`~lepton_sim.envs.driving.kernels`): with one world (a
single env) numpy's per-call overhead, not arithmetic, was the cost. The loops repeat the numpy model's
operations (``dynamics.bicycle_step``, ``RoadArrays.project``, ``dynamics.idm_accel``,
``sensors.boxes_overlap``) in the same order, so the numbers are the same bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lepton_sim.envs.driving import kernels
from lepton_sim.envs.driving.dynamics import CAR_LENGTH, CAR_WIDTH, FRONT_OVERHANG, REAR_OVERHANG
from lepton_sim.envs.driving.observation import observation_bounds, observe
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.road import RoadArrays
from lepton_sim.envs.driving.traffic import MAX_SLIP_SIN, Traffic
from lepton_sim.envs.driving.world import (
    CONES_PER_SITE,
    WorldBatch,
    WorldLayout,
    generate_worlds,
    lane_center,
    road_points,
)

JERK_REF = 10.0  # m/s^3 counted as maximal discomfort
# discrete meta-actions (highway-env's order)
LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER = range(5)
META_ACTIONS = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
SPEED_GAIN = 1.0  # 1/s: discrete mode speed controller
INFO_KEYS = (
    "is_success",
    "collision",
    "off_road",
    "route_completion",
    "time_to_goal",
    "speed",
    "average_speed",
    "x",
    "y",
    "heading",
    "lateral_offset",
    "lane",
    "elapsed_time",
    "world_id",
)


class _StepBuffers:
    """Scratch arrays of one env step, per world (reused from step to step)."""

    def __init__(self, n: int) -> None:
        z = np.zeros
        self.accel_cmd, self.steer_cmd, self.new_steer, self.tan_steer = z(n), z(n), z(n), z(n)
        self.lookahead, self.lateral, self.alpha = z(n), z(n), z(n)
        self.atan_args, self.atans = z(2 * n), z(2 * n)  # pursuit angle, then road curvature term
        self.s_before, self.s_prev, self.comfort = z(n), z(n), z(n)
        self.alive, self.was_alive = z(n, dtype=bool), z(n, dtype=bool)
        self.off, self.hit, self.due = z(n, dtype=bool), z(n, dtype=bool), z(n, dtype=bool)


class DrivingSim:
    """State of N driving worlds and the functions that advance and observe them."""

    def __init__(self, params: DrivingParams, num_worlds: int) -> None:
        p = self.params = params
        n = self.num_worlds = num_worlds
        self.num_vehicles = v = int(p.vehicles.high)
        self.num_obstacles = o = CONES_PER_SITE * int(p.obstacles.high)
        self.num_objects = m = v + o
        self.road = RoadArrays(n, road_points(p))
        self.traffic = Traffic(n, v, o, p.lane_width, p.lane_changes, int(p.lanes.high))
        self.rows = self.road.offset.copy()  # (N,) flat row offsets into road arrays
        self.rows_v = self.road.offset[:, None]
        self._layouts: list[tuple[WorldBatch, int] | None] = [None] * n  # where each world was drawn
        self.ego_half_length = 0.5 * (p.wheelbase + FRONT_OVERHANG + REAR_OVERHANG)
        self.ego_center = 0.5 * (p.wheelbase + FRONT_OVERHANG - REAR_OVERHANG)  # ahead of the rear axle
        self.mobil_period = max(1, int(round(1.0 / p.dt)))
        angles = 2.0 * np.pi * np.arange(p.lidar_rays) / p.lidar_rays
        self.ray_angles = np.where(angles > np.pi, angles - 2.0 * np.pi, angles)
        self.ray_cos, self.ray_sin = np.cos(self.ray_angles), np.sin(self.ray_angles)
        self.obs_low, self.obs_high = observation_bounds(p)

        z = np.zeros
        # per world
        self.lanes = z(n)
        self.half_road = z(n)
        self.s_start, self.s_goal, self.route_length = z(n), z(n), np.ones(n)
        self.route_d = z(n)
        self.world_id = z(n, dtype=np.int64)
        # ego
        self.x, self.y, self.heading, self.speed, self.steer, self.accel = z(n), z(n), z(n), z(n), z(n), z(n)
        self.s, self.d, self.psi, self.kappa = z(n), z(n), z(n), z(n)
        self.target_lane, self.target_speed, self.target_d = z(n), z(n), z(n)
        self.time, self.substeps = z(n), z(n, dtype=np.int64)
        self.goal_time = np.full(n, np.nan)
        self.collided, self.off_road, self.reached = z(n, bool), z(n, bool), z(n, bool)
        # objects the ego can hit or see: vehicles (columns :V, moved every sub-step) then obstacles (static)
        self.obj_x, self.obj_y = np.full((n, m), -1e6), np.full((n, m), -1e6)
        self.obj_cos, self.obj_sin = np.ones((n, m)), z((n, m))
        self.obj_vx, self.obj_vy = z((n, m)), z((n, m))
        self.obj_hl, self.obj_hw = np.full((n, m), 0.25), np.full((n, m), 0.25)
        # broad phase of collisions in road coordinates: boxes can only touch if their centres are closer along
        # the road than their half extents along it (rotated by the largest yaw or slip) times the arc stretch
        # 1 / (1 - |kappa| |d|) off the centreline, and closer across it than their lateral half extents plus
        # the bend of a box on a curve (|kappa| l^2 / 2). The ego's projected extents are added each step.
        kappa_max = float(p.curvature.high)
        self.arc_stretch = 1.0 / (1.0 - kappa_max * (0.5 * p.lanes.high * p.lane_width + 5.0))
        self.bend = kappa_max * (max(self.ego_half_length, 0.5 * CAR_LENGTH) + 1.0) ** 2 + 0.05
        self.reach_s, self.reach_d = np.full((n, m), 1e3), np.full((n, m), 1e3)
        # other vehicles all have the size of a car
        self.obj_hl[:, :v], self.obj_hw[:, :v] = 0.5 * CAR_LENGTH, 0.5 * CAR_WIDTH
        tr = self.traffic
        tr.half_length[:, 1 : 1 + v], tr.half_width[:, 1 : 1 + v], tr.veh_half_length[:] = (
            0.5 * CAR_LENGTH,
            0.5 * CAR_WIDTH,
            0.5 * CAR_LENGTH,
        )
        # the compiled sub-step's constants and scratch arrays
        self._buf = _StepBuffers(n)
        self._info_values = np.zeros(len(INFO_KEYS) - 1)
        self._ego_consts = np.array(
            [
                p.dt,
                p.wheelbase,
                p.max_speed,
                1.0 / (p.dt * JERK_REF),
                1.0 / (p.dt * p.max_steer_rate),
                self.road.num_points,
                self.ego_center,
                self.ego_half_length,
                0.5 * CAR_WIDTH,
            ]
        )
        self._collision_consts = np.array(
            [self.ego_center, self.ego_half_length, 0.5 * CAR_WIDTH, self.road.num_points]
        )
        self._reward_weights = np.array(
            [
                p.progress_reward / (p.max_speed * p.policy_dt),
                0.5 * p.comfort_weight / p.sim_steps_per_action,
                p.collision_penalty,
                p.off_road_penalty,
                p.goal_reward,
            ]
        )

    # ---------------------------------------------------------------------------------------------- reset
    def reset_worlds(self, worlds: list[int] | np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Draw new worlds for the given indices, each from its own generator."""
        idx = np.asarray(worlds, dtype=np.intp).reshape(-1)
        if idx.size == 0:
            return
        p, tr, v, o = self.params, self.traffic, self.num_vehicles, self.num_obstacles
        b = generate_worlds(p, rngs, self.road.num_points, o, v)
        for j, n in enumerate(idx.tolist()):
            self._layouts[n] = (b, j)
        self.road.set_worlds(idx, b.road)
        self.lanes[idx] = b.lanes
        self.half_road[idx] = 0.5 * p.lane_width * b.lanes
        self.s_start[idx], self.s_goal[idx], self.route_length[idx] = b.s_start, b.s_goal, b.s_goal - b.s_start
        route_d = lane_center(b.ego_lane, b.lanes, p.lane_width)
        self.route_d[idx] = route_d
        self.world_id[idx] = b.world_id
        rows = self.rows[idx]
        x0, y0, c0, sn0, k0 = self.road.to_world(b.s_start, route_d, rows)
        self.x[idx], self.y[idx], self.heading[idx] = x0, y0, np.arctan2(sn0, c0)
        self.speed[idx], self.steer[idx], self.accel[idx] = b.ego_speed, 0.0, 0.0
        self.s[idx], self.d[idx], self.psi[idx], self.kappa[idx] = b.s_start, route_d, 0.0, k0
        self.target_lane[idx], self.target_speed[idx], self.target_d[idx] = b.ego_lane, b.ego_speed, route_d
        self.time[idx], self.substeps[idx], self.goal_time[idx] = 0.0, 0, np.nan
        self.collided[idx] = self.off_road[idx] = self.reached[idx] = False
        if o:  # obstacles: static boxes
            ox, oy, oc, osn, _ = self.road.to_world(b.obs_s, b.obs_d, rows[:, None])
            cy, sy = np.cos(b.obs_yaw), np.sin(b.obs_yaw)
            self.obj_x[idx, v:], self.obj_y[idx, v:] = ox, oy
            self.obj_cos[idx, v:], self.obj_sin[idx, v:] = oc * cy - osn * sy, osn * cy + oc * sy
            self.obj_hl[idx, v:], self.obj_hw[idx, v:] = b.obs_half_length, b.obs_half_width
            self.obj_vx[idx, v:] = self.obj_vy[idx, v:] = 0.0
            tr.s[idx, 1 + v :], tr.d[idx, 1 + v :] = b.obs_s, b.obs_d
            tr.half_length[idx, 1 + v :], tr.half_width[idx, 1 + v :] = b.obs_half_length, b.obs_half_width
        if v:
            tr.veh_s[idx], tr.veh_d[idx] = b.veh_s, lane_center(b.veh_lane, b.lanes[:, None], p.lane_width)
            tr.veh_speed[idx], tr.veh_desired[idx], tr.desired[idx, 1 : 1 + v] = (
                b.veh_speed,
                b.veh_desired,
                b.veh_desired,
            )
            tr.veh_lane[idx], tr.veh_active[idx], tr.veh_lat[idx] = b.veh_lane, b.veh_active, 0.0
        tr.desired[idx, 0] = p.max_speed
        tr.restart(idx)
        hl, hw = self.obj_hl[idx], self.obj_hw[idx]
        yaw_sin = np.where(np.arange(self.num_objects) < v, MAX_SLIP_SIN, 0.1)  # vehicles' slip, parked cars' yaw
        ego = math.hypot(self.ego_half_length, 0.5 * CAR_WIDTH)  # the ego's half extent at any heading
        self.reach_s[idx] = self.arc_stretch * (hl + hw * yaw_sin + ego) + 0.05
        self.reach_d[idx] = hw + hl * yaw_sin + ego + self.bend
        self._update_ego_entity()
        tr.sync()  # world boxes of the vehicles follow in observe()

    def layout(self, n: int) -> WorldLayout | None:
        """What was drawn for world n's current episode (None before the first reset)."""
        found = self._layouts[n]
        return None if found is None else found[0].layout(found[1])

    # ----------------------------------------------------------------------------------------------- step
    def step(self, action: np.ndarray, discrete: bool) -> tuple[np.ndarray, np.ndarray]:
        """Apply one action per world for ``sim_steps_per_action`` sub-steps -> ``(reward, terminated)``.

        The sub-step's arithmetic runs in compiled loops over worlds (:mod:`~lepton_sim.envs.driving.kernels`),
        with numpy's ``tan`` / ``arctan`` / ``arctan2`` between them and the neighbour search and MOBIL in numpy.
        """
        p, b, k = self.params, self._buf, kernels
        n = self.num_worlds
        if discrete:
            self._apply_meta_action(np.asarray(action).reshape(-1).astype(np.int64))
        else:
            a = np.asarray(action, dtype=np.float64).reshape(n, 2)
            k.continuous_commands(a, p.max_accel, p.max_brake, p.max_steer, b.accel_cmd, b.steer_cmd)
        flags = (self.collided, self.off_road, self.reached)
        k.begin_step(self.s, self.s_goal, flags, b.s_before, b.comfort, b.alive, b.was_alive)
        tr, table, rate = self.traffic, self.road.flat, p.max_steer_rate * p.dt
        # the arrays are updated in place: one set of argument tuples serves every sub-step
        state = (
            self.x,
            self.y,
            self.heading,
            self.speed,
            self.steer,
            self.accel,
            self.s,
            self.d,
            self.psi,
            self.kappa,
            self.time,
            self.half_road,
            self.substeps,
        )
        entity = (tr.s, tr.d, tr.half_length, tr.half_width, tr.speed)
        ego_args = (b.accel_cmd, b.new_steer, b.tan_steer, b.alive, b.comfort, b.s_prev, b.off, table, self.rows)
        collision = self._collision_args()
        ends = (b.off, self.s, b.s_prev, self.s_goal, self.time, p.dt, b.alive, flags, self.goal_time)
        last_lane = self.lanes - 1.0
        for _ in range(p.sim_steps_per_action):
            if discrete:
                self._meta_controller(rate)
            else:
                k.steer_toward(b.steer_cmd, self.steer, p.max_steer, rate, b.new_steer)
            np.tan(b.new_steer, out=b.tan_steer)
            due = k.ego_substep(state, *ego_args, entity, self._ego_consts, self.mobil_period, b.due)
            if self.num_vehicles:
                tr.step(p.dt, self.half_road, last_lane, np.flatnonzero(b.due) if due else None)
            k.end_substep(collision, b.hit, ends)
        reward, terminated = np.empty(n), np.empty(n, dtype=bool)
        k.finish_step(
            self.s, self.s_goal, b.s_before, b.comfort, b.was_alive, flags, self._reward_weights, reward, terminated
        )
        return reward, terminated

    # ------------------------------------------------------------------------------------- discrete mode
    def _apply_meta_action(self, action: np.ndarray) -> None:
        p = self.params
        last = self.lanes - 1.0
        self.target_lane = np.where(
            action == LANE_LEFT,
            np.minimum(self.target_lane + 1.0, last),
            np.where(action == LANE_RIGHT, np.maximum(self.target_lane - 1.0, 0.0), self.target_lane),
        )
        self.target_speed = np.where(
            action == FASTER,
            np.minimum(self.target_speed + p.speed_step, p.max_speed),
            np.where(action == SLOWER, np.maximum(self.target_speed - p.speed_step, 0.0), self.target_speed),
        )
        self.target_d = lane_center(self.target_lane, self.lanes, p.lane_width)

    def _meta_controller(self, rate: float) -> None:
        """Pure pursuit of the target lane's centre and a proportional speed controller -> the commands in
        ``self._buf`` (``accel_cmd``, ``steer_cmd``) and the steering angle after this sub-step (``new_steer``,
        moving at most ``rate``)."""
        p, b = self.params, self._buf
        kernels.pursuit_arguments(
            self.speed, self.d, self.target_d, self.kappa, p.wheelbase, b.lookahead, b.lateral, b.atan_args
        )
        np.arctan2(b.lateral, b.lookahead, out=b.alpha)
        kernels.pursuit_steering(b.alpha, self.psi, b.lookahead, 2.0 * p.wheelbase, b.atan_args)
        np.arctan(b.atan_args, out=b.atans)
        steering = (self.steer, p.max_steer, rate, b.new_steer)
        kernels.pursuit_commands(
            b.atans,
            self.target_speed,
            self.speed,
            SPEED_GAIN,
            p.max_brake,
            p.max_accel,
            b.accel_cmd,
            b.steer_cmd,
            steering,
        )

    # --------------------------------------------------------------------------------- world bookkeeping
    def _update_ego_entity(self, c: np.ndarray | None = None, s: np.ndarray | None = None) -> None:
        """The ego as a traffic entity: its box projected on the road axes (for the other vehicles' IDM)."""
        tr = self.traffic
        if c is None or s is None:
            c, s = np.cos(self.psi), np.sin(self.psi)
        ac, as_ = np.abs(c), np.abs(s)
        hw = 0.5 * CAR_WIDTH
        tr.s[:, 0] = self.s + self.ego_center * c
        tr.d[:, 0] = self.d + self.ego_center * s
        tr.half_length[:, 0] = self.ego_half_length * ac + hw * as_
        tr.half_width[:, 0] = self.ego_half_length * as_ + hw * ac
        tr.speed[:, 0] = self.speed * c

    def _vehicle_poses(
        self, rows: np.ndarray | slice, cols: np.ndarray | slice, offsets: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """World centre, heading (cos, sin) and velocity of vehicles from their Frenet state."""
        tr = self.traffic
        speed, lat = tr.veh_speed[rows, cols], tr.veh_lat[rows, cols]
        x, y, c, s, _ = self.road.to_world(tr.veh_s[rows, cols], tr.veh_d[rows, cols], offsets)
        tan_slip = lat / np.maximum(speed, 1.0)  # heading relative to the lane: atan(lateral / forward speed)
        cb = 1.0 / np.sqrt(1.0 + tan_slip * tan_slip)
        sb = tan_slip * cb
        return x, y, c * cb - s * sb, s * cb + c * sb, speed * c - lat * s, speed * s + lat * c

    def _place_vehicles(self) -> None:
        """World boxes of all other vehicles (for the observation and rendering)."""
        v = self.num_vehicles
        if v:
            (
                self.obj_x[:, :v],
                self.obj_y[:, :v],
                self.obj_cos[:, :v],
                self.obj_sin[:, :v],
                self.obj_vx[:, :v],
                self.obj_vy[:, :v],
            ) = self._vehicle_poses(slice(None), slice(None), self.rows_v)

    def ego_box(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Centre and heading (cos, sin) of the ego's box."""
        c, s = np.cos(self.heading), np.sin(self.heading)
        return self.x + self.ego_center * c, self.y + self.ego_center * s, c, s

    def _collisions(self) -> np.ndarray:
        """Ego box against every object box: a broad phase in road coordinates, then exact separating axes."""
        hit = np.zeros(self.num_worlds, dtype=bool)
        self._kernel_collisions(hit)
        return hit

    def _kernel_collisions(self, hit: np.ndarray) -> None:
        kernels.collisions(*self._collision_args(), hit)

    def _collision_args(self) -> tuple[Any, ...]:
        """The arguments of :func:`~lepton_sim.envs.driving.kernels.collisions` but ``hit``."""
        tr = self.traffic
        return (
            (self.x, self.y, self.heading),
            (tr.s, tr.d),
            (self.reach_s, self.reach_d),
            (self.obj_x, self.obj_y, self.obj_cos, self.obj_sin, self.obj_hl, self.obj_hw),
            (tr.veh_s, tr.veh_d, tr.veh_speed, tr.veh_lat),
            self.road.flat,
            self.rows,
            self._collision_consts,
        )

    # ---------------------------------------------------------------------------------------- observation
    def observe(self) -> np.ndarray:
        """The state observation ``(N, D)`` float32 (layout in ``DrivingEnv``'s docstring)."""
        self._place_vehicles()
        return observe(self)

    # ----------------------------------------------------------------------------------------------- info
    def info_arrays(self) -> dict[str, np.ndarray]:
        """Per-world info values (the keys of ``INFO_KEYS``), as arrays of length N."""
        completion = np.minimum(np.maximum((self.s - self.s_start) / self.route_length, 0.0), 1.0)
        lane = np.floor((self.d + self.half_road) * (1.0 / self.params.lane_width))
        return {
            "is_success": self.reached & ~self.collided & ~self.off_road,
            "collision": self.collided.copy(),
            "off_road": self.off_road.copy(),
            "route_completion": completion,
            "time_to_goal": self.goal_time.copy(),
            "speed": self.speed.copy(),
            "average_speed": (self.s - self.s_start) / np.maximum(self.time, 1e-9) * (self.time > 0.0),
            "x": self.x.copy(),
            "y": self.y.copy(),
            "heading": self.heading.copy(),
            "lateral_offset": self.d - self.route_d,
            "lane": np.minimum(np.maximum(lane, 0.0), self.lanes - 1.0).astype(np.int64),
            "elapsed_time": self.time.copy(),
            "world_id": self.world_id.copy(),
        }

    def world_info(self, n: int) -> dict[str, Any]:
        """World n's info as Python scalars: ``{key: info_arrays()[key][n].item()}``, computed for that world only
        (the single env's per-step info)."""
        out = self._info_values
        kernels.world_info(
            n,
            (
                self.s,
                self.s_start,
                self.route_length,
                self.time,
                self.d,
                self.half_road,
                self.route_d,
                self.lanes,
                self.speed,
                self.goal_time,
                self.x,
                self.y,
                self.heading,
            ),
            (self.collided, self.off_road, self.reached),
            1.0 / self.params.lane_width,
            out,
        )
        v = out.tolist()
        lane = v[11]
        return {
            "is_success": v[0] == 1.0,
            "collision": v[1] == 1.0,
            "off_road": v[2] == 1.0,
            "route_completion": v[3],
            "time_to_goal": v[4],
            "speed": v[5],
            "average_speed": v[6],
            "x": v[7],
            "y": v[8],
            "heading": v[9],
            "lateral_offset": v[10],
            "lane": int(lane) if lane == lane else int(np.array(lane).astype(np.int64)),
            "elapsed_time": v[12],
            "world_id": self.world_id[n].item(),
        }
