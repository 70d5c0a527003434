"""Lane-level movements of each green phase, and the per-phase quantities classical controllers use.

A *movement* is a distinct (incoming lane, outgoing lane) pair of a signal's controlled links; it is served by a
green phase when any of its links shows ``G`` or ``g``.

- max-pressure (Varaiya 2013, unit saturation flows), with queues ``q`` = halted vehicles per lane:
  ``pressure[p] = sum over movements (in, out) served by p of (q[in] - q[out])``, i.e.
  ``up @ q_in - down @ q_out``. (Queues, not all vehicles on the lane: with vehicle counts a short approach
  lane, like ingolstadt1's 9 m one, never looks loaded and is starved.) Adding a constant c to every downstream count lowers
  each phase's pressure by c times its number of movements, so the choice is unchanged whenever the phases serve
  equally many movements (the usual symmetric case, and the hand-checked one in the tests).
- greedy / longest queue: with ``x`` = vehicles (queued or approaching) per lane, ``demand[p] = vehicles on
  the distinct incoming lanes p serves``, i.e. ``serve @ x_in``.

Both are matrix-vector products over counts read once per step, so they cost no Python loop over vehicles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

GREEN = frozenset("Gg")


@dataclass(frozen=True)
class PhaseMovements:
    """Incidence of one signal's green phases on its lanes (indices into the caller's lane lists)."""

    up: np.ndarray  # (phases, in_lanes): number of served movements leaving each incoming lane
    down: np.ndarray  # (phases, out_lanes): number of served movements entering each outgoing lane
    serve: np.ndarray  # (phases, in_lanes): 1 where the phase serves the incoming lane

    @property
    def num_phases(self) -> int:
        return self.up.shape[0]


def phase_movements(
    green_states: Sequence[str],
    links: Sequence[Sequence[tuple[str, str]]],
    in_lanes: Sequence[str],
    out_lanes: Sequence[str],
) -> PhaseMovements:
    """Build the incidence matrices from SUMO's controlled links (one list of (in, out) per link index)."""
    in_index = {lane: i for i, lane in enumerate(in_lanes)}
    out_index = {lane: j for j, lane in enumerate(out_lanes)}
    up = np.zeros((len(green_states), len(in_lanes)))
    down = np.zeros((len(green_states), len(out_lanes)))
    for p, state in enumerate(green_states):
        movements = {(a, b) for k, link in enumerate(links) if k < len(state) and state[k] in GREEN for a, b in link}
        for a, b in movements:
            up[p, in_index[a]] += 1
            down[p, out_index[b]] += 1
    return PhaseMovements(up=up, down=down, serve=(up > 0).astype(float))


def phase_pressure(movements: PhaseMovements, in_queues: np.ndarray, out_queues: np.ndarray) -> np.ndarray:
    """Max-pressure weight of each green phase (upstream minus downstream queues over its movements)."""
    return movements.up @ np.asarray(in_queues, float) - movements.down @ np.asarray(out_queues, float)


def phase_demand(movements: PhaseMovements, in_counts: np.ndarray) -> np.ndarray:
    """Vehicles on the incoming lanes each green phase serves (greedy / longest-queue weight)."""
    return movements.serve @ np.asarray(in_counts, float)
