"""Vehicle motion models, batched over numpy arrays: the ego's kinematic bicycle and the others' IDM.

Vehicle geometry: every car is a ``CAR_LENGTH`` x ``CAR_WIDTH`` box. The ego's reference point is the middle of
its rear axle (the point that turns on a circle of radius ``wheelbase / tan(steering)``); its box extends
``REAR_OVERHANG`` behind the rear axle and ``wheelbase + FRONT_OVERHANG`` ahead of it.
"""

from __future__ import annotations

import numpy as np

CAR_WIDTH = 1.9  # m
REAR_OVERHANG = 0.9  # m behind the rear axle
FRONT_OVERHANG = 0.9  # m ahead of the front axle
CAR_LENGTH = 4.5  # m, other vehicles and parked cars
CONE_SIZE = 0.5  # m, square base

# Intelligent Driver Model (Treiber et al. 2000), values as in highway-env's IDMVehicle
IDM_ACCEL = 3.0  # m/s^2, comfortable acceleration
IDM_DECEL = 5.0  # m/s^2, comfortable deceleration
IDM_MAX_DECEL = 9.0  # m/s^2, physical braking limit
IDM_MIN_GAP = 2.0  # m, bumper-to-bumper gap when stopped
IDM_HEADWAY = 1.5  # s, desired time gap
IDM_SQRT_AB = 2.0 * np.sqrt(IDM_ACCEL * IDM_DECEL)


def bicycle_step(
    x: np.ndarray,
    y: np.ndarray,
    heading: np.ndarray,
    speed: np.ndarray,
    steer: np.ndarray,
    accel_cmd: np.ndarray,
    steer_cmd: np.ndarray,
    dt: float,
    wheelbase: float,
    max_speed: float,
    max_steer: float,
    max_steer_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Advance the rear-axle kinematic bicycle by ``dt`` -> ``(x, y, heading, speed, steer)``.

    The steering angle moves toward ``steer_cmd`` at most ``max_steer_rate * dt`` and stays within
    ``max_steer``; the speed changes by ``accel_cmd * dt`` within ``[0, max_speed]``. Within the step the
    car follows an exact circular arc (curvature ``tan(steer) / wheelbase``) over the exact distance of the
    piecewise-constant acceleration, so a held steering angle traces a circle of radius ``L / tan(steer)``.
    """
    rate = max_steer_rate * dt
    target = np.minimum(np.maximum(steer_cmd, -max_steer), max_steer)
    steer = steer + np.minimum(np.maximum(target - steer, -rate), rate)
    new_speed = np.minimum(np.maximum(speed + accel_cmd * dt, 0.0), max_speed)
    # exact distance of constant acceleration that stops at a speed bound: v1 dt - (v1 - v0)^2 / (2 a)
    dv = new_speed - speed
    dist = new_speed * dt - dv * dv / np.where(accel_cmd == 0.0, np.inf, 2.0 * accel_cmd)
    half_turn = dist * np.tan(steer) * (0.5 / wheelbase)
    safe = half_turn + 1e-300  # sin(h) / h -> 1 at h = 0 (a straight step)
    chord = dist * (np.sin(safe) / safe)  # straight-line length of the arc
    mid = heading + half_turn
    return x + chord * np.cos(mid), y + chord * np.sin(mid), heading + 2.0 * half_turn, new_speed, steer


def idm_accel(speed: np.ndarray, desired: np.ndarray, gap: np.ndarray, leader_speed: np.ndarray) -> np.ndarray:
    """IDM acceleration for a bumper-to-bumper ``gap`` (``inf`` without a leader), bounded by physics."""
    ratio = speed / desired
    ratio *= ratio
    wanted = IDM_MIN_GAP + np.maximum(speed * IDM_HEADWAY + speed * (speed - leader_speed) / IDM_SQRT_AB, 0.0)
    inter = wanted / np.maximum(gap, 0.1)
    acc = IDM_ACCEL * (1.0 - ratio * ratio - inter * inter)  # at most IDM_ACCEL
    return np.maximum(acc, -IDM_MAX_DECEL)
