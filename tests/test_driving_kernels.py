"""The driving sim's compiled sub-step (envs/driving/kernels.py) against the numpy model it replaces: the same
numbers bit for bit (bicycle model, road projection, IDM, box overlap, min/max semantics, infos)."""

from __future__ import annotations

import numpy as np

from lepton_sim.envs.driving import kernels
from lepton_sim.envs.driving.dynamics import bicycle_step, idm_accel
from lepton_sim.envs.driving.params import DrivingParams
from lepton_sim.envs.driving.sensors import boxes_overlap
from lepton_sim.envs.driving.sim import DrivingSim


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def test_min_max_return_what_numpy_returns_for_signed_zeros_and_nan() -> None:
    values = [0.0, -0.0, 1.0, -2.5, np.nan, np.inf, -np.inf]
    for a in values:
        for b in values:
            assert bits(np.array(kernels._max(a, b))) == bits(np.maximum(np.array([a]), np.array([b])))
            assert bits(np.array(kernels._min(a, b))) == bits(np.minimum(np.array([a]), np.array([b])))


def test_compiled_idm_equals_idm_accel() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    speed, desired = rng.uniform(0, 35, n), rng.uniform(5, 35, n)
    gap = np.where(rng.random(n) < 0.2, np.inf, rng.uniform(-5, 120, n))
    lead = rng.uniform(0, 35, n)
    expected = idm_accel(speed, desired, gap, lead)
    got = np.array([kernels._idm(speed[i], desired[i], gap[i], lead[i]) for i in range(n)])
    assert bits(got) == bits(expected)


def test_compiled_separating_axes_equal_boxes_overlap() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    ax, ay, bx, by = (rng.uniform(-4, 4, n) for _ in range(4))
    ta, tb = rng.uniform(-np.pi, np.pi, n), rng.uniform(-np.pi, np.pi, n)
    ahl, ahw, bhl, bhw = (rng.uniform(0.2, 2.5, n) for _ in range(4))
    ac, as_, bc, bs = np.cos(ta), np.sin(ta), np.cos(tb), np.sin(tb)
    expected = boxes_overlap(ax, ay, ac, as_, ahl, ahw, bx, by, bc, bs, bhl, bhw)
    args = (ax, ay, ac, as_, ahl, ahw, bx, by, bc, bs, bhl, bhw)
    got = np.array([not kernels._separated(*(a[i] for a in args)) for i in range(n)])
    assert expected.any() and not expected.all()
    assert np.array_equal(got, expected)


def test_one_sub_step_moves_the_ego_like_bicycle_step_and_the_road_projection() -> None:
    """64 curvy worlds, random continuous actions: x, y, heading, speed, steer and the Frenet state after one
    sub-step are exactly bicycle_step's and RoadArrays.project's (the numpy model)."""
    p = DrivingParams(lanes=[1, 4], curvature=[0.0, 0.05], curve_length=[5, 60], ego_speed=[0, 20])
    sim = DrivingSim(p, 64)
    sim.reset_worlds(np.arange(64), [np.random.default_rng(i) for i in range(64)])
    rng = np.random.default_rng(2)
    for _ in range(20):
        alive = ~(sim.collided | sim.off_road | sim.reached)
        before = [a.copy() for a in (sim.x, sim.y, sim.heading, sim.speed, sim.steer, sim.s)]
        action = rng.uniform(-1.2, 1.2, (64, 2))
        a = np.minimum(np.maximum(action, -1.0), 1.0)
        accel = np.where(a[:, 0] >= 0.0, a[:, 0] * p.max_accel, a[:, 0] * p.max_brake)
        steer_cmd = a[:, 1] * p.max_steer
        x, y, th, v, st = bicycle_step(
            *before[:5], accel, steer_cmd, p.dt, p.wheelbase, p.max_speed, p.max_steer, p.max_steer_rate
        )
        s, d, road_th, kappa = sim.road.project(x, y, before[5], sim.rows)
        sim.step(action, discrete=False)
        state = (sim.x, sim.y, sim.heading, sim.speed, sim.steer, sim.s, sim.d, sim.kappa)
        for got, want in zip(state, (x, y, th, v, st, s, d, kappa)):
            assert bits(got[alive]) == bits(want[alive])
        assert alive.sum() >= 10


def test_world_info_equals_the_info_arrays_of_that_world() -> None:
    p = DrivingParams(lanes=[2, 3], vehicles=[5, 10], obstacles=[1, 3])
    sim = DrivingSim(p, 8)
    sim.reset_worlds(np.arange(8), [np.random.default_rng(i) for i in range(8)])
    rng = np.random.default_rng(3)
    for _ in range(60):
        sim.step(rng.uniform(-1, 1, (8, 2)), discrete=False)
        arrays = sim.info_arrays()
        for n in range(8):
            expected = {key: value[n].item() for key, value in arrays.items()}
            got = sim.world_info(n)
            assert list(got) == list(expected)
            for key, value in expected.items():
                assert type(got[key]) is type(value), key
                assert bits(np.array(float(got[key]))) == bits(np.array(float(value))), key
