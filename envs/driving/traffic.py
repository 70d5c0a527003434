"""Other vehicles of N worlds at once: lane-aware neighbour search, IDM car-following, MOBIL lane changes.

Every *entity* (the ego, the other vehicles, the static obstacles) of a world lives in Frenet coordinates
``(s, d)`` with a half-length along the road and a half-width across it. An entity occupies every lane its
width overlaps (one or two), so a car changing lanes, or the ego straddling a line, blocks both lanes.

Neighbour search without all pairs: each (entity, lane) entry gets the key ``lane * BIG + s``; one argsort per
world orders the keys by lane, then by position, so a vehicle's leader in a lane is the next entry of that lane.
Leaders change only when some entity's lanes change, so the search runs only for those worlds (and once per
simulated second); in between, gaps are refreshed from the cached leaders. MOBIL's new leader and follower in the
next lane are the next and previous occupants of that lane among the entities ordered along the road.

The sorts are numpy's (``argsort``: its order of equal keys decides who leads); the loops around them are
compiled (:mod:`~lepton_sim.envs.driving.kernels`), which is what a single world's step costs least with.
"""

from __future__ import annotations

import numpy as np

from lepton_sim.envs.driving import kernels

BIG = 1.0e6  # lane separation in the sort key (m); positions stay within +-2e5 m
NO_LANE = 1.0e9  # key of an entity's unused second lane entry: sorts last
LC_MIN_GAIN = 0.2  # m/s^2: MOBIL acceleration gain needed to change lanes (politeness 0, as highway-env)
LC_MAX_BRAKE = 2.0  # m/s^2: the new follower may not be forced to brake harder than this
LC_SETTLED = 0.2  # m from the lane centre before a vehicle considers another change
LAT_GAIN = 1.5  # 1/s: lateral speed per metre of lateral error during a lane change
LAT_SPEED = 1.5  # m/s: lateral speed limit (a 3.5 m lane change takes about 3 s)
LAT_PER_SPEED = 0.25  # lateral speed is also at most this fraction of the forward speed: slip angle <= 14 deg
MAX_SLIP_SIN = LAT_PER_SPEED / float(np.hypot(1.0, LAT_PER_SPEED))


class Traffic:
    """Entity arrays ``(N, E)`` with ``E = 1 + V + O`` columns: ego, vehicles, obstacles.

    The vehicles' own state lives in contiguous ``(N, V)`` arrays (``veh_*``), copied into the entity arrays
    (``s, d, speed``) for the neighbour search. The caller writes the ego column and the obstacle columns.
    """

    def __init__(
        self,
        num_worlds: int,
        num_vehicles: int,
        num_obstacles: int,
        lane_width: float,
        lane_changes: bool,
        max_lanes: int = 4,
    ) -> None:
        n, v = num_worlds, num_vehicles
        e = 1 + v + num_obstacles
        self.num_vehicles, self.num_entities = v, e
        self.lane_width = lane_width
        self.lane_changes = lane_changes
        z = np.zeros
        self.s, self.d, self.speed = z((n, e)), z((n, e)), z((n, e))
        self.half_length, self.half_width, self.desired = z((n, e)), z((n, e)), np.ones((n, e))
        self.veh_s, self.veh_d, self.veh_speed, self.veh_desired = z((n, v)), z((n, v)), z((n, v)), np.ones((n, v))
        self.veh_lane = z((n, v))  # target lane (float for arithmetic)
        self.veh_active = z((n, v))  # 1.0 for vehicles in use
        self.veh_lat = z((n, v))  # lateral speed (m/s)
        self.veh_half_length = z((n, v))
        # cached neighbour search: leaders (flat entity indexes) in a vehicle's lower and upper lane
        self._lead_a, self._lead_b = np.zeros((n, v), dtype=np.intp), np.zeros((n, v), dtype=np.intp)
        self._has_a, self._has_b = np.zeros((n, v), dtype=bool), np.zeros((n, v), dtype=bool)
        self._stale = np.ones(n, dtype=bool)  # worlds whose leaders must be searched again
        self.all_active = False  # every vehicle slot of every world in use (skips masking)
        self._lo, self._hi = z((n, e)), z((n, e))  # lanes each entity overlaps (from the last neighbour search)
        self._lane_ids = np.arange(max_lanes, dtype=np.float64)[None, :, None]
        self._acc = z((n, v))  # the vehicles' accelerations of the current sub-step
        self._move_consts = np.array([0.0, lane_width, LAT_PER_SPEED, LAT_SPEED, LAT_GAIN])
        self._mobil_consts = np.array([lane_width, LC_MIN_GAIN, LC_SETTLED])
        self._decide_consts = np.array([LC_MIN_GAIN, LC_MAX_BRAKE])
        self._all_rows = np.arange(n)

    def restart(self, rows: np.ndarray) -> None:
        """New episodes in these worlds: search their leaders afresh."""
        self._stale[rows] = True
        self.all_active = bool(self.veh_active.all())

    def sync(self) -> None:
        """Copy the vehicles' state into the entity arrays."""
        v = self.num_vehicles
        self.s[:, 1 : 1 + v] = self.veh_s
        self.d[:, 1 : 1 + v] = self.veh_d
        self.speed[:, 1 : 1 + v] = self.veh_speed

    # ------------------------------------------------------------------------------------------ stepping
    def step(self, dt: float, half_road: np.ndarray, last_lane: np.ndarray, decide: np.ndarray | None) -> None:
        """Advance the vehicles by ``dt``. ``half_road``/``last_lane``: ``(N,)`` road half-width and lane count - 1
        of each world; ``decide``: indices of the worlds whose vehicles consider a lane change now.
        Expects the entity arrays in sync (ego column written, :meth:`sync` after the last move)."""
        if self.num_vehicles == 0:
            return
        self._update_leaders(half_road)
        acc = self._acc
        kernels.idm_accelerations(
            (self.s, self.half_length, self.speed),
            (self.veh_s, self.veh_half_length, self.veh_speed, self.veh_desired, self.veh_active),
            (self._has_a, self._has_b, self._lead_a, self._lead_b),
            self.all_active,
            acc,
            self._stale,  # boxes overlap: look again next time
        )
        if self.lane_changes and decide is not None and decide.size:
            self._mobil(decide, acc, last_lane)
            self._stale[decide] = True  # and a fresh neighbour search once per simulated second
        self._move_consts[0] = dt
        kernels.move_vehicles(
            (self.veh_s, self.veh_d, self.veh_speed, self.veh_lane, self.veh_lat),
            (self.s, self.d, self.speed),
            acc,
            last_lane,
            self._move_consts,
        )

    def _update_leaders(self, half_road: np.ndarray) -> None:
        """Search the leaders again (:meth:`_search`) in the worlds where an entity's lanes changed or that are
        marked stale.

        Who leads whom changes only when some entity's lanes change (IDM vehicles do not pass each other within
        a lane), so the search runs only for worlds where an entity's lanes changed, a gap closed, a lane-change
        decision is due, or the world was reset; other worlds reuse their leaders with fresh gaps
        (:func:`~lepton_sim.envs.driving.kernels.idm_accelerations`). A vehicle on a lane line keeps the leaders
        of both its lanes and follows the nearer one.
        """
        stale = self._stale
        count = kernels.lane_spans(self.d, self.half_width, half_road, 1.0 / self.lane_width, self._lo, self._hi, stale)
        if count:
            self._search(None if count == stale.size else np.flatnonzero(stale))
            stale[:] = False

    def _search(self, rows: np.ndarray | None) -> None:
        """Sort the (entity, lane) entries of these worlds (all when None) by lane, then position; the entry
        after a vehicle's entry, if in the same lane, is its leader there (the sort is numpy's, its order of
        equal keys included; the rest compiled)."""
        rows = self._all_rows if rows is None else rows
        keys = np.empty((len(rows), 2 * self.num_entities))
        kernels.search_keys(self.s, self._lo, self._hi, rows, BIG, NO_LANE, keys)
        order = np.argsort(keys, axis=1)
        leaders = (self._has_a, self._has_b, self._lead_a, self._lead_b)
        kernels.search_leaders(keys, order, rows, BIG, NO_LANE, leaders)

    def _mobil(self, rows: np.ndarray, acc: np.ndarray, last_lane: np.ndarray) -> None:
        """MOBIL (politeness 0): move to the adjacent lane with the largest acceleration gain above
        ``LC_MIN_GAIN`` if the new follower need not brake harder than ``LC_MAX_BRAKE``.

        Only vehicles held back by more than ``LC_MIN_GAIN`` (current acceleration below the free-road one) are
        examined: no lane can offer the others more than the free road does, so this skips no change. Who would
        lead and follow in a lane comes from the worlds' entities ordered by position (numpy's sort): per lane,
        the next and the previous occupant from the candidate's place in that order.
        ``last_lane``: ``(N,)`` lane count - 1 of each world.
        """
        held_back = np.empty((len(rows), self.num_vehicles), dtype=bool)
        vehicles = (self.veh_speed, self.veh_desired, self.veh_lane, self.veh_d, self.veh_active)
        if not kernels.mobil_candidates(rows, vehicles, acc, last_lane, self._mobil_consts, held_back):
            return
        order = np.argsort(self.s[rows], axis=1)
        kernels.mobil_decide(
            rows,
            held_back,
            order,
            (self.s, self.half_length, self.speed, self.desired),
            (self._lo, self._hi),
            (self.veh_s, self.veh_half_length, self.veh_speed, self.veh_desired, self.veh_lane),
            acc,
            last_lane,
            self._lane_ids.shape[1],
            self._decide_consts,
        )
