"""Compiled (numba) loops over worlds for one simulation sub-step of :class:`~lepton_sim.envs.driving.sim.DrivingSim`.

Why: a sub-step is ~150 small numpy operations, and with one world (a single env) each costs its call overhead,
not arithmetic; these loops do the same arithmetic per world in one call. They repeat the numpy code's operations
in the same order (same IEEE results, bit for bit; ``_max`` / ``_min`` return what ``np.maximum`` /
``np.minimum`` return, signed zeros and NaNs included). Only functions whose results match numpy's on this kind
of machine are evaluated here (``sqrt``, ``floor``, ``sin``, ``cos``: the C library's); ``tan``, ``arctan`` and
``arctan2`` come from numpy (its SIMD versions differ from the C library's in the last bit), between the loops.
Sorting (the neighbour search, MOBIL) stays in numpy: its order of equal keys is numpy's own.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from lepton_sim.envs.driving.dynamics import (
    IDM_ACCEL,
    IDM_HEADWAY,
    IDM_MAX_DECEL,
    IDM_MIN_GAP,
    IDM_SQRT_AB,
)

_SQRT_AB = float(IDM_SQRT_AB)
_JIT = {"cache": True, "nogil": True}


@njit(**_JIT)
def _max(a: float, b: float) -> float:
    """``np.maximum(a, b)``: NaN if either is NaN, ``b`` when equal (signed zeros)."""
    if a > b or a != a:
        return a
    return b


@njit(**_JIT)
def _min(a: float, b: float) -> float:
    """``np.minimum(a, b)``."""
    if a < b or a != a:
        return a
    return b


# ------------------------------------------------------------------------------------------------ ego controls
@njit(**_JIT)
def continuous_commands(
    a: np.ndarray, max_accel: float, max_brake: float, max_steer: float, accel_cmd: np.ndarray, steer_cmd: np.ndarray
) -> None:
    """Actions ``(N, 2)`` in [-1, 1] (NaN as 0, clipped) -> acceleration and steering commands."""
    for n in range(a.shape[0]):
        a0, a1 = a[n, 0], a[n, 1]
        a0 = 0.0 if a0 != a0 else a0  # nan_to_num (an infinity clips to +-1 like the largest float)
        a1 = 0.0 if a1 != a1 else a1
        a0 = _min(_max(a0, -1.0), 1.0)
        a1 = _min(_max(a1, -1.0), 1.0)
        accel_cmd[n] = a0 * max_accel if a0 >= 0.0 else a0 * max_brake
        steer_cmd[n] = a1 * max_steer


@njit(**_JIT)
def pursuit_arguments(
    speed: np.ndarray,
    d: np.ndarray,
    target_d: np.ndarray,
    kappa: np.ndarray,
    wheelbase: float,
    lookahead: np.ndarray,
    lateral: np.ndarray,
    atan_args: np.ndarray,
) -> None:
    """Meta-action controller, part 1: lookahead and the lateral error (for ``arctan2``), ``L kappa``."""
    n = speed.size
    for i in range(n):
        lookahead[i] = _max(8.0, 1.2 * speed[i])
        lateral[i] = target_d[i] - d[i]
        atan_args[n + i] = wheelbase * kappa[i]


@njit(**_JIT)
def pursuit_steering(
    alpha: np.ndarray, psi: np.ndarray, lookahead: np.ndarray, two_l: float, atan_args: np.ndarray
) -> None:
    """Part 2: ``2 L sin(alpha) / lookahead`` from ``alpha = arctan2(...) - psi`` (for ``arctan``)."""
    for i in range(alpha.size):
        atan_args[i] = two_l * math.sin(alpha[i] - psi[i]) / lookahead[i]


@njit(**_JIT)
def pursuit_commands(
    atans: np.ndarray,
    target_speed: np.ndarray,
    speed: np.ndarray,
    speed_gain: float,
    max_brake: float,
    max_accel: float,
    accel_cmd: np.ndarray,
    steer_cmd: np.ndarray,
    steering: tuple,  # type: ignore[type-arg]
) -> None:
    """Part 3: steering = the two arctangents' sum; the proportional speed controller; then
    :func:`steer_toward` with ``steering`` = (steer, max_steer, rate, new_steer)."""
    n = speed.size
    for i in range(n):
        steer_cmd[i] = atans[i] + atans[n + i]
        accel_cmd[i] = _min(_max(speed_gain * (target_speed[i] - speed[i]), -max_brake), max_accel)
    steer, max_steer, rate, new_steer = steering
    steer_toward(steer_cmd, steer, max_steer, rate, new_steer)


@njit(**_JIT)
def steer_toward(
    steer_cmd: np.ndarray, steer: np.ndarray, max_steer: float, rate: float, new_steer: np.ndarray
) -> None:
    """The bicycle's steering angle after one step toward the command (``bicycle_step``'s first lines)."""
    for i in range(steer.size):
        target = _min(_max(steer_cmd[i], -max_steer), max_steer)
        new_steer[i] = steer[i] + _min(_max(target - steer[i], -rate), rate)


# ------------------------------------------------------------------------------------------------ ego motion
@njit(**_JIT)
def ego_substep(
    state: tuple,  # type: ignore[type-arg]
    accel_cmd: np.ndarray,
    new_steer: np.ndarray,
    tan_steer: np.ndarray,
    alive: np.ndarray,
    comfort: np.ndarray,
    s_prev: np.ndarray,
    off: np.ndarray,
    table: np.ndarray,
    rows: np.ndarray,
    entity: tuple,  # type: ignore[type-arg]
    consts: np.ndarray,
    mobil_period: int,
    due: np.ndarray,
) -> int:
    """The rest of ``bicycle_step``, the discomfort, the projection onto the road, the heading error, the ego as
    a traffic entity and the off-road test, per world. Worlds not ``alive`` keep their state (and comfort, time,
    acceleration); every world counts the sub-step.

    ``state``: x, y, heading, speed, steer, accel, s, d, psi, kappa, time, half_road, substeps;
    ``entity``: the traffic arrays s, d, half_length, half_width, speed (column 0 is written);
    ``consts``: dt, wheelbase, max_speed, jerk_scale, rate_scale, num_points, ego_center, ego_half_length,
    half_width. ``due``: the worlds whose sub-step count is now a multiple of ``mobil_period`` (lane-change
    decisions of the other vehicles) -> how many.
    """
    x, y, heading, speed, steer, accel, s, d, psi, kappa, time, half_road, substeps = state
    due_count = 0
    es, ed, ehl, ehw, espeed = entity
    dt, wheelbase, max_speed, jerk_scale, rate_scale = consts[0], consts[1], consts[2], consts[3], consts[4]
    last_point, ego_center, ego_hl, hw = consts[5] - 1.0, consts[6], consts[7], consts[8]
    half_per_l = 0.5 / wheelbase
    two_pi, inv_two_pi = 2.0 * np.pi, 0.5 / np.pi
    front, rear = ego_center + ego_hl, ego_center - ego_hl
    bend_f, bend_r = 0.5 * front * front, 0.5 * rear * rear
    for n in range(x.size):
        s_prev[n] = s[n]
        if alive[n]:
            v0, a = speed[n], accel_cmd[n]
            st = new_steer[n]
            v1 = _min(_max(v0 + a * dt, 0.0), max_speed)
            dv = v1 - v0
            dist = v1 * dt - dv * dv / (np.inf if a == 0.0 else 2.0 * a)
            half_turn = dist * tan_steer[n] * half_per_l
            safe = half_turn + 1e-300
            chord = dist * (math.sin(safe) / safe)
            mid = heading[n] + half_turn
            nx = x[n] + chord * math.cos(mid)
            ny = y[n] + chord * math.sin(mid)
            nth = heading[n] + 2.0 * half_turn
            jerk = (a - accel[n]) * jerk_scale
            rate = (st - steer[n]) * rate_scale
            discomfort = _min(jerk * jerk, 1.0) + rate * rate
            # road.project: two Newton steps along the local tangent
            ss = s[n]
            row = rows[n]
            i = 0.0
            u = c = sn = dx = dy = 0.0
            k = 0
            for _ in range(2):
                i = _min(_max(np.floor(ss), 0.0), last_point)
                if i != i:
                    raise ValueError("driving: the ego's position is not finite")
                k = int(i) + row
                c, sn = table[k, 2], table[k, 3]
                dx = nx - table[k, 0]
                dy = ny - table[k, 1]
                u = dx * c + dy * sn
                ss = i + u
            road_th = table[k, 4] + u * table[k, 5]
            x[n], y[n], heading[n], speed[n], steer[n] = nx, ny, nth, v1, st
            s[n], d[n], kappa[n] = ss, dy * c - dx * sn, table[k, 5]
            p = nth - road_th
            psi[n] = p - two_pi * np.floor(p * inv_two_pi + 0.5)
            comfort[n] = comfort[n] + discomfort
            accel[n] = a
            time[n] = time[n] + dt
        else:
            comfort[n] = comfort[n] + 0.0
        substeps[n] += 1
        due[n] = substeps[n] % mobil_period == 0
        due_count += due[n]
        cp, sp = math.cos(psi[n]), math.sin(psi[n])
        ac, as_ = abs(cp), abs(sp)
        es[n, 0] = s[n] + ego_center * cp
        ed[n, 0] = d[n] + ego_center * sp
        ehl[n, 0] = ego_hl * ac + hw * as_
        ehw[n, 0] = ego_hl * as_ + hw * ac
        espeed[n, 0] = speed[n] * cp
        # off road: a corner of the box beyond an edge (lateral offsets with a curvature correction)
        lat_f = d[n] + front * sp - bend_f * kappa[n] * (cp * cp)
        lat_r = d[n] + rear * sp - bend_r * kappa[n] * (cp * cp)
        spread = hw * ac  # 0.5 * CAR_WIDTH * |cos psi|
        off[n] = (_max(lat_f, lat_r) + spread > half_road[n]) or (_min(lat_f, lat_r) - spread < -half_road[n])
    return due_count


# ---------------------------------------------------------------------------------------------------- traffic
@njit(**_JIT)
def lane_spans(
    d: np.ndarray,
    half_width: np.ndarray,
    half_road: np.ndarray,
    inv_w: float,
    lo: np.ndarray,
    hi: np.ndarray,
    stale: np.ndarray,
) -> int:
    """Lanes each entity overlaps (``lo``, ``hi``, updated in place); worlds where one changed become ``stale``.
    -> the number of stale worlds."""
    count = 0
    for n in range(d.shape[0]):
        changed = stale[n]
        offset = half_road[n] * inv_w
        for k in range(d.shape[1]):
            across = d[n, k] * inv_w + offset
            reach = half_width[n, k] * inv_w
            a, b = np.floor(across - reach), np.floor(across + reach)
            if a != lo[n, k] or b != hi[n, k]:
                changed = True
            lo[n, k], hi[n, k] = a, b
        stale[n] = changed
        count += changed
    return count


@njit(**_JIT)
def idm_accelerations(
    entity: tuple,  # type: ignore[type-arg]
    vehicles: tuple,  # type: ignore[type-arg]
    leaders: tuple,  # type: ignore[type-arg]
    all_active: bool,
    acc: np.ndarray,
    stale: np.ndarray,
) -> None:
    """IDM acceleration of every vehicle behind its cached leaders (the nearer of its lanes' two), ``acc`` in place;
    worlds where a gap closed (boxes overlap) become ``stale``. The arithmetic of ``Traffic._leaders`` and
    ``idm_accel``.

    ``entity``: s, half_length, speed ``(N, E)``; ``vehicles``: s, half_length, speed, desired, active ``(N, V)``;
    ``leaders``: has_a, has_b, lead_a, lead_b (flat entity indexes).
    """
    es, ehl, espeed = entity
    vs, vhl, vspeed, vdesired, vactive = vehicles
    has_a, has_b, lead_a, lead_b = leaders
    es_f, ehl_f, ev_f = es.ravel(), ehl.ravel(), espeed.ravel()
    for n in range(vs.shape[0]):
        closed = False
        for j in range(vs.shape[1]):
            rear = vs[n, j] + vhl[n, j]
            la, lb = lead_a[n, j], lead_b[n, j]
            gap_a = es_f[la] - ehl_f[la] - rear if has_a[n, j] else np.inf
            gap_b = es_f[lb] - ehl_f[lb] - rear if has_b[n, j] else np.inf
            if gap_b < gap_a:
                gap, lead_speed = gap_b, ev_f[lb]
            else:
                gap, lead_speed = gap_a, ev_f[la]
            if gap < 0.0:
                closed = True
            v = vspeed[n, j]
            ratio = v / vdesired[n, j]
            ratio = ratio * ratio
            wanted = IDM_MIN_GAP + _max(v * IDM_HEADWAY + v * (v - lead_speed) / _SQRT_AB, 0.0)
            inter = wanted / _max(gap, 0.1)
            a = _max(IDM_ACCEL * (1.0 - ratio * ratio - inter * inter), -IDM_MAX_DECEL)
            acc[n, j] = a if all_active else a * vactive[n, j]
        if closed:
            stale[n] = True


@njit(**_JIT)
def move_vehicles(
    vehicles: tuple,  # type: ignore[type-arg]
    entity: tuple,  # type: ignore[type-arg]
    acc: np.ndarray,
    last_lane: np.ndarray,
    consts: np.ndarray,
) -> None:
    """Advance the vehicles by ``dt`` at acceleration ``acc`` (trapezoidal position update) and steer them toward
    their lane's centre at a bounded lateral speed; copy them into the entity arrays (columns 1..V).

    ``vehicles``: s, d, speed, lane, lat ``(N, V)``; ``entity``: s, d, speed ``(N, E)``; ``consts``: dt,
    lane_width, lat_per_speed, lat_speed, lat_gain.
    """
    vs, vd, vspeed, vlane, vlat = vehicles
    es, ed, espeed = entity
    dt, lane_width, lat_per_speed, lat_speed, lat_gain = consts[0], consts[1], consts[2], consts[3], consts[4]
    half_dt = 0.5 * dt
    for n in range(vs.shape[0]):
        half_last = 0.5 * last_lane[n]
        for j in range(vs.shape[1]):
            v = vspeed[n, j]
            v1 = _max(v + acc[n, j] * dt, 0.0)
            vs[n, j] = vs[n, j] + half_dt * (v + v1)
            vspeed[n, j] = v1
            target = (vlane[n, j] - half_last) * lane_width
            limit = _min(lat_per_speed * v1, lat_speed)
            lat = _min(_max(lat_gain * (target - vd[n, j]), -limit), limit)
            vd[n, j] = vd[n, j] + lat * dt
            vlat[n, j] = lat
            es[n, 1 + j], ed[n, 1 + j], espeed[n, 1 + j] = vs[n, j], vd[n, j], v1


# ------------------------------------------------------------------------------------------------ collisions
@njit(**_JIT)
def _separated(
    ax: float, ay: float, ac: float, as_: float, ahl: float, ahw: float,
    bx: float, by: float, bc: float, bs: float, bhl: float, bhw: float,
) -> bool:  # fmt: skip
    """``not sensors.boxes_overlap`` for one pair (separating axes)."""
    tx, ty = bx - ax, by - ay
    c = abs(ac * bc + as_ * bs)
    s = abs(ac * bs - as_ * bc)
    return (
        abs(tx * ac + ty * as_) > ahl + bhl * c + bhw * s
        or abs(ty * ac - tx * as_) > ahw + bhl * s + bhw * c
        or abs(tx * bc + ty * bs) > bhl + ahl * c + ahw * s
        or abs(ty * bc - tx * bs) > bhw + ahl * s + ahw * c
    )


@njit(**_JIT)
def collisions(
    ego: tuple,  # type: ignore[type-arg]
    entity: tuple,  # type: ignore[type-arg]
    reach: tuple,  # type: ignore[type-arg]
    objects: tuple,  # type: ignore[type-arg]
    vehicles: tuple,  # type: ignore[type-arg]
    table: np.ndarray,
    rows: np.ndarray,
    consts: np.ndarray,
    hit: np.ndarray,
) -> None:
    """Ego box against every object box: a broad phase in road coordinates, then exact separating axes
    (``DrivingSim._collisions``). Vehicles' boxes come from their Frenet state (``_vehicle_poses``).

    ``ego``: x, y, heading; ``entity``: s, d ``(N, E)``; ``reach``: reach_s, reach_d ``(N, M)``; ``objects``:
    x, y, cos, sin, half_length, half_width ``(N, M)``; ``vehicles``: s, d, speed, lat ``(N, V)``; ``consts``:
    ego_center, ego_half_length, half_width, num_points.
    """
    x, y, heading = ego
    es, ed = entity
    reach_s, reach_d = reach
    ox, oy, oc, osn, ohl, ohw = objects
    vs, vd, vspeed, vlat = vehicles
    ego_center, ego_hl, ego_hw, last_point = consts[0], consts[1], consts[2], consts[3] - 1.0
    num_vehicles = vs.shape[1]
    for n in range(x.shape[0]):
        hit[n] = False
        s0, d0 = es[n, 0], ed[n, 0]
        computed = False
        ec = es_ = ex = ey = 0.0
        for k in range(reach_s.shape[1]):
            if not (abs(es[n, 1 + k] - s0) < reach_s[n, k] and abs(ed[n, 1 + k] - d0) < reach_d[n, k]):
                continue
            if not computed:
                ec, es_ = math.cos(heading[n]), math.sin(heading[n])
                ex, ey = x[n] + ego_center * ec, y[n] + ego_center * es_
                computed = True
            if k < num_vehicles:
                sv, dv = vs[n, k], vd[n, k]
                i = _min(_max(np.floor(sv), 0.0), last_point)
                if i != i:
                    raise ValueError("driving: a vehicle's position is not finite")
                row = int(i) + rows[n]
                u = sv - i
                c, sn = table[row, 2], table[row, 3]
                bx = table[row, 0] + u * c - dv * sn
                by = table[row, 1] + u * sn + dv * c
                tan_slip = vlat[n, k] / _max(vspeed[n, k], 1.0)
                cb = 1.0 / math.sqrt(1.0 + tan_slip * tan_slip)
                sb = tan_slip * cb
                bc, bs = c * cb - sn * sb, sn * cb + c * sb
            else:
                bx, by, bc, bs = ox[n, k], oy[n, k], oc[n, k], osn[n, k]
            if not _separated(ex, ey, ec, es_, ego_hl, ego_hw, bx, by, bc, bs, ohl[n, k], ohw[n, k]):
                hit[n] = True
                break


# ----------------------------------------------------------------------------------------------- episode ends
@njit(**_JIT)
def record_ends(
    hit: np.ndarray,
    off: np.ndarray,
    s: np.ndarray,
    s_prev: np.ndarray,
    s_goal: np.ndarray,
    time: np.ndarray,
    dt: float,
    alive: np.ndarray,
    flags: tuple,  # type: ignore[type-arg]
    goal_time: np.ndarray,
) -> None:
    """What ended which living world this sub-step: first a collision, then off-road, then the goal (with the
    time the rear axle crossed the goal line, interpolated within the sub-step). ``flags``: collided,
    off_road, reached (updated in place); ended worlds are no longer ``alive``."""
    collided, off_road, reached = flags
    for n in range(s.size):
        if not alive[n]:
            continue
        goal = s[n] >= s_goal[n]
        if hit[n]:
            collided[n] = True
        elif off[n]:
            off_road[n] = True
        elif goal:
            frac = (s_goal[n] - s_prev[n]) / _max(s[n] - s_prev[n], 1e-9)
            goal_time[n] = time[n] - dt + frac * dt
            reached[n] = True
        else:
            continue
        alive[n] = False


# ------------------------------------------------------------------------------------------- env step bounds
@njit(**_JIT)
def begin_step(
    s: np.ndarray,
    s_goal: np.ndarray,
    flags: tuple,  # type: ignore[type-arg]
    s_before: np.ndarray,
    comfort: np.ndarray,
    alive: np.ndarray,
    was_alive: np.ndarray,
) -> None:
    """Per world at the start of an env step: progress so far, no discomfort yet, whether it is still running."""
    collided, off_road, reached = flags
    for n in range(s.size):
        s_before[n] = _min(s[n], s_goal[n])
        comfort[n] = 0.0
        alive[n] = was_alive[n] = not (collided[n] or off_road[n] or reached[n])


@njit(**_JIT)
def finish_step(
    s: np.ndarray,
    s_goal: np.ndarray,
    s_before: np.ndarray,
    comfort: np.ndarray,
    was_alive: np.ndarray,
    flags: tuple,  # type: ignore[type-arg]
    weights: np.ndarray,
    reward: np.ndarray,
    terminated: np.ndarray,
) -> None:
    """The env step's reward (``DrivingEnv``'s docstring) and termination. ``weights``: progress per metre,
    comfort, collision, off-road and goal weights; a world that had ended before the step earns nothing."""
    collided, off_road, reached = flags
    for n in range(s.size):
        progress = _min(s[n], s_goal[n]) - s_before[n]
        r = (
            weights[0] * progress
            - weights[1] * comfort[n]
            - weights[2] * (1.0 if collided[n] else 0.0)
            - weights[3] * (1.0 if off_road[n] else 0.0)
            + weights[4] * (1.0 if reached[n] else 0.0)
        )
        reward[n] = r if was_alive[n] else 0.0
        terminated[n] = collided[n] or off_road[n] or reached[n]


# ------------------------------------------------------------------------------------------------------- info
@njit(**_JIT)
def world_info(
    n: int,
    state: tuple,  # type: ignore[type-arg]
    flags: tuple,  # type: ignore[type-arg]
    inv_lane_width: float,
    out: np.ndarray,
) -> None:
    """World n's info values in ``INFO_KEYS`` order but ``world_id`` (``DrivingSim.info_arrays``' arithmetic),
    as floats: the single env's info without 14 one-element arrays. ``state``: s, s_start, route_length, time,
    d, half_road, route_d, lanes, speed, goal_time, x, y, heading."""
    s, s_start, route_length, time, d, half_road, route_d, lanes, speed, goal_time, x, y, heading = state
    collided, off_road, reached = flags
    out[0] = 1.0 if reached[n] and not collided[n] and not off_road[n] else 0.0
    out[1] = 1.0 if collided[n] else 0.0
    out[2] = 1.0 if off_road[n] else 0.0
    out[3] = _min(_max((s[n] - s_start[n]) / route_length[n], 0.0), 1.0)
    out[4] = goal_time[n]
    out[5] = speed[n]
    out[6] = (s[n] - s_start[n]) / _max(time[n], 1e-9) * (1.0 if time[n] > 0.0 else 0.0)
    out[7], out[8], out[9] = x[n], y[n], heading[n]
    out[10] = d[n] - route_d[n]
    out[11] = _min(_max(np.floor((d[n] + half_road[n]) * inv_lane_width), 0.0), lanes[n] - 1.0)
    out[12] = time[n]


# ------------------------------------------------------------------------------------ neighbour search, MOBIL
@njit(**_JIT)
def search_keys(
    s: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: np.ndarray, big: float, no_lane: float, keys: np.ndarray
) -> None:
    """Sort keys ``lane * BIG + s`` of each entity's lower and upper lane entries (``NO_LANE`` when it occupies
    one lane) for the given worlds, ``keys[i]`` for ``rows[i]`` (``Traffic._search``)."""
    e = s.shape[1]
    for i in range(rows.size):
        n = rows[i]
        for k in range(e):
            keys[i, k] = lo[n, k] * big + s[n, k]
            keys[i, e + k] = no_lane if hi[n, k] == lo[n, k] else hi[n, k] * big + s[n, k]


@njit(**_JIT)
def search_leaders(
    keys: np.ndarray,
    order: np.ndarray,
    rows: np.ndarray,
    big: float,
    no_lane: float,
    leaders: tuple,  # type: ignore[type-arg]
) -> None:
    """From the entries sorted by key (``order = np.argsort(keys, axis=1)``): the entry after a vehicle's entry,
    if in the same lane, is its leader there. ``leaders``: has_a, has_b, lead_a, lead_b (flat entity indexes,
    0 without a leader), written for the given worlds."""
    has_a, has_b, lead_a, lead_b = leaders
    e2 = keys.shape[1]
    e = e2 // 2
    v = has_a.shape[1]
    leader = np.empty(e2, dtype=np.int64)
    for i in range(rows.size):
        n = rows[i]
        for p in range(e2):
            leader[order[i, p]] = -1
        for p in range(e2 - 1):
            here, nxt = keys[i, order[i, p]], keys[i, order[i, p + 1]]
            if nxt - here < 0.5 * big and nxt < 0.5 * no_lane:
                q = order[i, p + 1]
                leader[order[i, p]] = (q if q < e else q - e) + n * e
        for j in range(v):
            a, b = leader[1 + j], leader[1 + e + j]
            has_a[n, j], has_b[n, j] = a >= 0, b >= 0
            lead_a[n, j], lead_b[n, j] = max(a, 0), max(b, 0)


@njit(**_JIT)
def _idm(speed: float, desired: float, gap: float, leader_speed: float) -> float:
    """``dynamics.idm_accel`` for one vehicle."""
    ratio = speed / desired
    ratio = ratio * ratio
    wanted = IDM_MIN_GAP + _max(speed * IDM_HEADWAY + speed * (speed - leader_speed) / _SQRT_AB, 0.0)
    inter = wanted / _max(gap, 0.1)
    return _max(IDM_ACCEL * (1.0 - ratio * ratio - inter * inter), -IDM_MAX_DECEL)


@njit(**_JIT)
def mobil_candidates(
    rows: np.ndarray,
    vehicles: tuple,  # type: ignore[type-arg]
    acc: np.ndarray,
    last_lane: np.ndarray,
    consts: np.ndarray,
    held_back: np.ndarray,
) -> int:
    """MOBIL's candidates in the given worlds (``held_back[i, j]`` for ``rows[i]``): active vehicles settled in
    their lane whose acceleration is more than ``LC_MIN_GAIN`` below the free road's -> how many.
    ``vehicles``: speed, desired, lane, d, active; ``consts``: lane_width, LC_MIN_GAIN, LC_SETTLED."""
    speed, desired, lane, d, active = vehicles
    lane_width, min_gain, settled = consts[0], consts[1], consts[2]
    count = 0
    for i in range(rows.size):
        n = rows[i]
        half_last = 0.5 * last_lane[n]
        for j in range(speed.shape[1]):
            ratio = speed[n, j] / desired[n, j]
            ratio = ratio * ratio
            free_road = IDM_ACCEL * (1.0 - ratio * ratio)
            centre = (lane[n, j] - half_last) * lane_width
            h = free_road - acc[n, j] > min_gain and active[n, j] > 0.0 and abs(d[n, j] - centre) < settled
            held_back[i, j] = h
            count += h
    return count


@njit(**_JIT)
def mobil_decide(
    rows: np.ndarray,
    held_back: np.ndarray,
    order: np.ndarray,
    entity: tuple,  # type: ignore[type-arg]
    spans: tuple,  # type: ignore[type-arg]
    vehicles: tuple,  # type: ignore[type-arg]
    acc: np.ndarray,
    last_lane: np.ndarray,
    lanes_count: int,
    consts: np.ndarray,
) -> None:
    """MOBIL for the candidates (``Traffic._mobil``): the adjacent lane with the largest gain, if the new
    follower need not brake harder than ``LC_MAX_BRAKE``; ``order = np.argsort(s[rows], axis=1)``. The new
    leader / follower in a lane is the next / previous entity in that order (the candidate's own place
    included) that occupies the lane. ``entity``: s, half_length, speed, desired ``(N, E)``; ``spans``: lo, hi;
    ``vehicles``: s, half_length, speed, desired, lane (written); ``consts``: LC_MIN_GAIN, LC_MAX_BRAKE."""
    es, ehl, espeed, edesired = entity
    lo, hi = spans
    vs_, vhl_, vspeed, vdesired, vlane = vehicles
    min_gain, max_brake = consts[0], consts[1]
    e = es.shape[1]
    for i in range(rows.size):
        n = rows[i]
        for j in range(held_back.shape[1]):
            if not held_back[i, j]:
                continue
            me = 0
            for p in range(e):
                if order[i, p] == 1 + j:
                    me = p
                    break
            vs, hl = vs_[n, j], vhl_[n, j]
            speed, desired, lane, current = vspeed[n, j], vdesired[n, j], vlane[n, j], acc[n, j]
            best_gain, best_lane = min_gain, lane
            for side in (-1.0, 1.0):
                new_lane = lane + side
                ok = new_lane >= 0.0 and new_lane <= last_lane[n]
                lane_id = float(int(_min(_max(new_lane, 0.0), lanes_count - 1.0)))
                nxt = e
                for q in range(me, e):
                    k = order[i, q]
                    if lo[n, k] <= lane_id and hi[n, k] >= lane_id:
                        nxt = q
                        break
                lead = order[i, min(nxt, e - 1)]
                gap_lead = es[n, lead] - ehl[n, lead] - vs - hl if nxt < e else np.inf
                gain = _idm(speed, desired, gap_lead, espeed[n, lead]) - current
                if not (ok and gap_lead > 1.0 and gain > best_gain):
                    continue
                prv = -1
                for q in range(me, -1, -1):
                    k = order[i, q]
                    if lo[n, k] <= lane_id and hi[n, k] >= lane_id:
                        prv = q
                        break
                follow = order[i, max(prv, 0)]
                gap_follow = vs - hl - es[n, follow] - ehl[n, follow] if prv >= 0 else np.inf
                follower_acc = _idm(espeed[n, follow], edesired[n, follow], gap_follow, speed)
                if gap_follow > 1.0 and follower_acc >= -max_brake:
                    best_gain, best_lane = gain, new_lane
            vlane[n, j] = best_lane


@njit(**_JIT)
def end_substep(
    collision: tuple,  # type: ignore[type-arg]
    hit: np.ndarray,
    ends: tuple,  # type: ignore[type-arg]
) -> None:
    """:func:`collisions` (its arguments but ``hit`` in ``collision``), then :func:`record_ends` (its arguments
    after ``hit`` in ``ends``), in one call."""
    ego, entity, reach, objects, vehicles, table, rows, consts = collision
    collisions(ego, entity, reach, objects, vehicles, table, rows, consts, hit)
    off, s, s_prev, s_goal, time, dt, alive, flags, goal_time = ends
    record_ends(hit, off, s, s_prev, s_goal, time, dt, alive, flags, goal_time)
