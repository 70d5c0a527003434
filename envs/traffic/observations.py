"""sumo-rl's density/queue observation per signal, computed for all signals at once from one step's lane reads
(sumo-rl's ``DefaultObservationFunction`` asks SUMO lane by lane, per signal; the values are the same)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lepton_sim.envs.traffic.network import Network
from lepton_sim.envs.traffic.reads import StepReads
from lepton_sim.envs.traffic.signals import MIN_GAP, TrafficSignal


def observations(network: Network, signals: Sequence[TrafficSignal], reads: StepReads) -> list[np.ndarray]:
    """Per signal, float32: [green-phase one-hot, min-green flag, lane densities, lane queues], all in [0, 1].

    Density and queue are vehicles (halted vehicles) over lane capacity, length / (MIN_GAP + mean vehicle
    length), capped at 1; the flag is 1 once the phase has been green for ``min_green`` (a change is allowed)."""
    capacity_div = MIN_GAP + reads.veh_length  # sumo-rl: n / (length / (MIN_GAP + mean vehicle length))
    density = np.minimum(1.0, reads.count / (network.lane_length / capacity_div))
    queue = np.minimum(1.0, reads.halting / (network.lane_length / capacity_div))
    out = []
    for lay, sig in zip(network.layouts, signals):
        head = np.zeros(lay.movements.num_phases + 1)
        head[sig.green_phase] = 1.0
        head[-1] = 0.0 if sig.time_since_last_phase_change < sig.min_green + sig.yellow_time else 1.0
        out.append(np.concatenate([head, density[lay.lane_index], queue[lay.lane_index]]).astype(np.float32))
    return out
