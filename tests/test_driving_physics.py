"""Driving physics: the kinematic bicycle, actuator limits, collisions and off-road detection at the exact
geometry where they happen, and the other vehicles' IDM / MOBIL behaviour.

On a road with ``curvature=0`` the centreline is the x axis, so arc length = x and lateral offset = y: the tests
place things by hand there and compute the expected step on paper.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import lepton_sim.envs  # noqa: F401
from lepton_sim.envs.driving.dynamics import CAR_LENGTH, CAR_WIDTH, IDM_MIN_GAP, bicycle_step
from lepton_sim.envs.driving.sim import DrivingSim

ENV_ID = "lepton/Driving-v0"
NO_ACTION = np.zeros(2, dtype=np.float32)
FRONT = 2.7 + 0.9  # rear axle to front bumper (default wheelbase, front overhang)


def straight_env(**kwargs: object) -> tuple[gym.Env, DrivingSim]:
    env = gym.make(ENV_ID, curvature=0.0, **kwargs)
    env.reset(seed=0)
    return env, env.unwrapped.sim


def place_obstacle(sim: DrivingSim, k: int, x: float, y: float) -> None:
    """Move obstacle slot k (a box) to (x, y), aligned with the road."""
    col = sim.num_vehicles + k
    sim.obj_x[0, col], sim.obj_y[0, col], sim.obj_cos[0, col], sim.obj_sin[0, col] = x, y, 1.0, 0.0
    sim.traffic.s[0, 1 + col], sim.traffic.d[0, 1 + col] = x, y


def place_vehicle(sim: DrivingSim, j: int, s: float, lane: int, speed: float, desired: float) -> None:
    tr = sim.traffic
    d = (lane - 0.5 * (sim.lanes[0] - 1)) * sim.params.lane_width
    tr.veh_s[0, j], tr.veh_d[0, j], tr.veh_lane[0, j] = s, d, lane
    tr.veh_speed[0, j], tr.veh_desired[0, j], tr.veh_active[0, j] = speed, desired, 1.0
    tr.desired[0, 1 + j] = desired
    tr.sync()


@pytest.mark.parametrize("steer", [0.05, 0.2, -0.35, 0.5])
def test_held_steering_traces_a_circle_of_radius_wheelbase_over_tan_steer(steer: float) -> None:
    wheelbase, dt = 2.7, 0.1
    x, y, heading, speed = np.zeros(1), np.zeros(1), np.array([0.3]), np.array([8.0])
    st = np.array([steer])
    radius = wheelbase / math.tan(steer)
    cx, cy = -radius * math.sin(0.3), radius * math.cos(0.3)  # centre: left of the start for steer > 0
    for _ in range(300):
        x, y, heading, speed, st = bicycle_step(
            x, y, heading, speed, st, np.zeros(1), st, dt, wheelbase, 30.0, 0.6, 1.0
        )
        assert math.hypot(x[0] - cx, y[0] - cy) == pytest.approx(abs(radius), rel=1e-9)
    assert heading[0] - 0.3 == pytest.approx(300 * dt * 8.0 / radius, rel=1e-9)


def test_distance_is_exact_when_the_speed_limit_is_reached_within_a_step() -> None:
    # 9.5 m/s + 3 m/s^2 reaches the 10 m/s limit after 1/6 s: 0.5 * (9.5 + 10) / 6 + 10 * (0.5 - 1/6)
    x, _, _, v, _ = bicycle_step(
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.array([9.5]),
        np.zeros(1),
        np.array([3.0]),
        np.zeros(1),
        0.5,
        2.7,
        10.0,
        0.5,
        1.0,
    )
    assert v[0] == 10.0
    assert x[0] == pytest.approx(0.5 * (9.5 + 10.0) / 6.0 + 10.0 * (0.5 - 1.0 / 6.0), rel=1e-12)


def test_actuator_limits_hold_under_random_actions() -> None:
    params = dict(
        lanes=4,
        curvature=0.0,
        ego_speed=5,
        max_speed=12,
        max_accel=2.0,
        max_brake=4.0,
        max_steer=0.4,
        max_steer_rate=1.5,
    )
    env = gym.make(ENV_ID, max_episode_steps=400, **params)
    env.reset(seed=1)
    sim = env.unwrapped.sim
    rng = np.random.default_rng(0)
    for _ in range(400):
        speed, steer = sim.speed[0], sim.steer[0]
        action = rng.choice([-1.0, 1.0], 2).astype(np.float32) if rng.random() < 0.5 else rng.uniform(-1, 1, 2)
        _, _, terminated, truncated, _ = env.step(action.astype(np.float32))
        assert 0.0 <= sim.speed[0] <= 12.0
        assert -4.0 * 0.1 - 1e-12 <= sim.speed[0] - speed <= 2.0 * 0.1 + 1e-12
        assert abs(sim.steer[0]) <= 0.4 + 1e-12
        assert abs(sim.steer[0] - steer) <= 1.5 * 0.1 + 1e-12
        if terminated or truncated:
            env.reset()


def test_full_steering_ramps_at_the_rate_limit_up_to_the_angle_limit() -> None:
    env, sim = straight_env(lanes=4, max_steer=0.5, max_steer_rate=2.0, ego_speed=3, max_speed=3)
    angles = []
    for _ in range(4):
        env.step(np.array([0.0, 1.0], dtype=np.float32))
        angles.append(sim.steer[0])
    np.testing.assert_allclose(angles, [0.2, 0.4, 0.5, 0.5], atol=1e-12)


@pytest.mark.parametrize("lateral_gap, hits", [(0.05, False), (-0.05, True)])
def test_collision_flips_at_the_step_the_boxes_first_touch(lateral_gap: float, hits: bool) -> None:
    """Ego at 10 m/s straight at (or just beside) a parked car whose rear is 24.65 m ahead of the ego's bumper:
    the bumper moves 1 m per step, so the boxes touch during step 25 and not before."""
    env, sim = straight_env(lanes=2, obstacles=1, cone_fraction=0.0, ego_speed=10, max_speed=10)
    x0, y0 = sim.x[0], sim.y[0]
    side = CAR_WIDTH + lateral_gap  # centre-to-centre lateral distance (both cars are 1.9 m wide)
    place_obstacle(sim, 0, x0 + FRONT + 24.65 + 0.5 * CAR_LENGTH, y0 + side)
    for step in range(1, 40):
        _, reward, terminated, _, info = env.step(NO_ACTION)
        if step < 25 or not hits:
            assert not info["collision"], step
        else:
            assert info["collision"] and terminated and reward == pytest.approx(1.0 - 5.0)  # progress - penalty
            break
    else:
        assert not hits


def test_off_road_flips_when_the_front_corner_crosses_the_edge() -> None:
    """One 3.5 m lane (edges at y = +-1.75). Ego at y = 0 heading 0.05 rad to the left, no steering, 1 m per
    step: the front-left corner is at k sin(a) + 3.6 sin(a) + 0.95 cos(a), past 1.75 first at k = 13."""
    env, sim = straight_env(lanes=1, ego_speed=10, max_speed=10)
    sim.y[0] = sim.d[0] = 0.0
    sim.heading[0] = sim.psi[0] = 0.05
    k_first = math.floor((1.75 - 0.5 * CAR_WIDTH * math.cos(0.05) - FRONT * math.sin(0.05)) / math.sin(0.05)) + 1
    assert k_first == 13
    for step in range(1, 20):
        _, reward, terminated, _, info = env.step(NO_ACTION)
        assert info["off_road"] == (step >= k_first)
        if terminated:
            assert step == k_first and reward < -3.9
            break


def test_idm_vehicle_stops_behind_an_obstacle_without_touching_it() -> None:
    env, sim = straight_env(
        lanes=2, obstacles=1, cone_fraction=0.0, vehicles=1, lane_changes=False, route_length=400, ego_speed=0
    )
    ego_lane = int(round(sim.route_d[0] / 3.5 + 0.5))
    other = 1 - ego_lane
    place_obstacle(sim, 0, 200.0, (other - 0.5) * 3.5)
    place_vehicle(sim, 0, 100.0, other, speed=15.0, desired=15.0)
    gaps = []
    for _ in range(300):
        env.step(np.array([-1.0, 0.0], dtype=np.float32))  # the ego stays where it is
        gaps.append(200.0 - 0.5 * CAR_LENGTH - (sim.traffic.veh_s[0, 0] + 0.5 * CAR_LENGTH))
    assert min(gaps) > 0.5
    assert gaps[-1] == pytest.approx(IDM_MIN_GAP, abs=0.5)
    assert sim.traffic.veh_speed[0, 0] < 0.05


def test_mobil_vehicle_changes_lane_to_pass_an_obstacle() -> None:
    env, sim = straight_env(
        lanes=2, obstacles=1, cone_fraction=0.0, vehicles=1, lane_changes=True, route_length=400, ego_speed=0
    )
    ego_lane = int(round(sim.route_d[0] / 3.5 + 0.5))
    other = 1 - ego_lane
    place_obstacle(sim, 0, 200.0, (other - 0.5) * 3.5)
    place_vehicle(sim, 0, 100.0, other, speed=15.0, desired=15.0)
    for _ in range(300):
        env.step(np.array([-1.0, 0.0], dtype=np.float32))
    tr = sim.traffic
    assert tr.veh_lane[0, 0] == ego_lane and tr.veh_s[0, 0] > 260.0


def test_vehicle_behind_brakes_for_the_ego_instead_of_hitting_it() -> None:
    env, sim = straight_env(lanes=2, vehicles=1, lane_changes=False, route_length=400, ego_speed=2)
    ego_lane = int(round(sim.route_d[0] / 3.5 + 0.5))
    place_vehicle(sim, 0, -20.0, ego_lane, speed=20.0, desired=25.0)
    for _ in range(200):
        _, _, terminated, _, info = env.step(np.array([-1.0, 0.0], dtype=np.float32))
        assert not info["collision"]
    rear_of_ego = sim.x[0] - 0.9
    front_of_vehicle = sim.traffic.veh_s[0, 0] + 0.5 * CAR_LENGTH
    assert 0.5 < rear_of_ego - front_of_vehicle < 5.0


def test_collision_broad_phase_never_misses_an_overlap() -> None:
    """The road-coordinate broad phase + separating axes agree with a brute-force test of every box, over many
    random states with traffic and obstacles close to the ego (some of them overlapping)."""
    from lepton_sim.envs.driving.sensors import boxes_overlap

    env = gym.make(
        ENV_ID,
        lanes=[2, 3],
        curvature=[0.0, 0.05],
        obstacles=[3, 4],
        vehicles=[8, 12],
        vehicle_spacing=[8, 14],
        vehicle_speed=[2, 12],
        route_length=200,
        max_episode_steps=400,
    )
    sim = env.unwrapped.sim
    rng = np.random.default_rng(0)
    checked = overlaps = 0
    env.reset(seed=0)
    for _ in range(1500):
        *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 2).astype(np.float32))
        sim._place_vehicles()
        ex, ey, ec, es = sim.ego_box()
        brute = boxes_overlap(
            ex,
            ey,
            ec,
            es,
            sim.ego_half_length,
            0.5 * CAR_WIDTH,
            sim.obj_x[0],
            sim.obj_y[0],
            sim.obj_cos[0],
            sim.obj_sin[0],
            sim.obj_hl[0],
            sim.obj_hw[0],
        ).any()
        assert sim._collisions()[0] == brute
        checked += 1
        overlaps += int(brute)
        if terminated or truncated:
            env.reset()
    assert overlaps >= 20 and checked == 1500
