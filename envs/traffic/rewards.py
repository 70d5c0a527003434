"""The five per-signal rewards of ``TrafficParams.reward``, computed from one step's reads (and SUMO where a
reward needs more than lane counts), times ``reward_scale``:

- ``queue-entry`` (default): -(halted vehicles on the edges feeding the signal, back to the previous signal or
  the network's edge, plus vehicles waiting there to be inserted), so spill-back and blocked entrances count;
- ``queue``: -(halted vehicles on the signal's incoming lanes) (sumo-rl's);
- ``diff-waiting-time``: decrease of the vehicles' accumulated waiting time on the incoming lanes / 100 (sumo-rl's);
- ``pressure``: vehicles on outgoing minus incoming lanes (sumo-rl's: minus the usual pressure);
- ``average-speed``: mean speed / allowed speed of the vehicles on the incoming lanes, 1 with none (sumo-rl's).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lepton_sim.envs.traffic.network import Network
from lepton_sim.envs.traffic.reads import StepReads
from lepton_sim.envs.traffic.signals import TrafficSignal


class EpisodeRewards:
    """One episode's reward: the chosen function, its scale, and the state two rewards keep between steps
    (diff-waiting-time: each vehicle's waiting time per lane and the last measure; queue-entry: the first edge
    of each vehicle waiting to enter). Create a new one for every episode."""

    def __init__(self, kind: str, network: Network, scale: float) -> None:
        self.kind, self.network, self.scale = kind, network, scale
        self.waiting: dict[str, dict[str, float]] = {}
        self.last_measure = [0.0] * len(network.ts_ids)
        self.first_edge: dict[str, str] = {}

    def __call__(self, conn: Any, signals: Sequence[TrafficSignal], reads: StepReads) -> np.ndarray:
        """Per-signal rewards of the step just simulated (signals in ``Network.ts_ids`` order)."""
        kind = self.kind
        if kind == "queue":
            r = queue(self.network, reads)
        elif kind == "queue-entry":
            r = queue_entry(conn, self.network, reads, self.first_edge)
        elif kind == "diff-waiting-time":
            r = np.array([self._diff_waiting_time(conn, k) for k in range(len(self.network.layouts))])
        elif kind == "pressure":
            r = np.array([sig.get_pressure() for sig in signals], float)
        elif kind == "average-speed":
            r = np.array([sig.get_average_speed() for sig in signals], float)
        else:
            raise ValueError(f"unknown reward {kind!r}")
        return r * self.scale

    def _diff_waiting_time(self, conn: Any, k: int) -> float:
        measure = accumulated_waiting_time(conn, self.network.layouts[k].lanes, self.waiting) / 100.0
        reward, self.last_measure[k] = self.last_measure[k] - measure, measure
        return reward


def queue(network: Network, reads: StepReads) -> np.ndarray:
    """Minus the halted vehicles on each signal's incoming lanes."""
    return -np.array([reads.halting[lay.lane_index].sum() for lay in network.layouts])


def queue_entry(conn: Any, network: Network, reads: StepReads, first_edge: dict[str, str]) -> np.ndarray:
    """Minus, per signal, the halted vehicles on its feeder edges and the vehicles waiting to enter on them."""
    edge = conn.edge
    halted = np.array([edge.getLastStepHaltingNumber(e) for e in network.feeder_edges], float)
    return -np.bincount(network.feeder_owner, weights=halted, minlength=len(network.ts_ids)) - entry_waiting(
        conn, network, reads.pending, first_edge
    )


def entry_waiting(conn: Any, network: Network, pending: Sequence[str], first_edge: dict[str, str]) -> np.ndarray:
    """Vehicles waiting to be inserted, per signal whose feeder edges they would enter on (``first_edge``
    caches each vehicle's first edge: one route lookup per vehicle)."""
    counts = np.zeros(len(network.ts_ids))
    for veh in pending:
        edge = first_edge.get(veh)
        if edge is None:
            edge = first_edge[veh] = conn.vehicle.getRoute(veh)[0]
        k = network.feeder_signal.get(edge)
        if k is not None:
            counts[k] += 1
    return counts


def accumulated_waiting_time(conn: Any, lanes: Sequence[str], memory: dict[str, dict[str, float]]) -> float:
    """sumo-rl's waiting time on ``lanes`` (TrafficSignal.get_accumulated_waiting_time_per_lane, summed): each
    vehicle's accumulated waiting time, minus what it already accrued on other lanes it was seen on (``memory``,
    shared by all signals of the episode). The same bookkeeping and values, with one SUMO call per vehicle
    instead of two: a vehicle listed on a lane is on that lane."""
    vehicle = conn.vehicle
    total = 0.0
    for lane in lanes:
        for veh in conn.lane.getLastStepVehicleIDs(lane):
            acc = vehicle.getAccumulatedWaitingTime(veh)
            seen = memory.get(veh)
            if seen is None:
                memory[veh] = seen = {lane: acc}
            else:
                seen[lane] = acc - sum(w for other, w in seen.items() if other != lane)
            total += seen[lane]
    return total
