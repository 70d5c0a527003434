"""sumo-rl's signal logic, used through its public ``TrafficSignal`` class on a SUMO connection lepton-sim owns.

From sumo-rl (1.4.5) comes what a signal *is*: its green phases read from the net, the yellow phase between two
greens, min-green, ``set_next_phase``, its lanes and spaces, and the ``pressure`` / ``average-speed`` measures.
lepton-sim does not subclass or start sumo-rl's ``SumoEnvironment``: it starts SUMO itself
(:mod:`.simulation`) and hands each ``TrafficSignal`` a :class:`SignalHost` in place of that environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.sumo_setup import prepare_environment

prepare_environment()  # SUMO_HOME and LIBSUMO_AS_TRACI before sumo_rl is imported
from sumo_rl.environment.observations import DefaultObservationFunction  # noqa: E402
from sumo_rl.environment.traffic_signal import TrafficSignal  # noqa: E402

if TYPE_CHECKING:
    from lepton_sim.envs.traffic.network import SignalLayout

MIN_GAP = TrafficSignal.MIN_GAP  # m; sumo-rl's lane capacity is length / (MIN_GAP + mean vehicle length)
MAX_GREEN = 10**9  # sumo-rl 1.4.5 stores max_green but never enforces it


@dataclass
class SignalHost:
    """The ``env`` a ``TrafficSignal`` is given: exactly the attributes sumo-rl 1.4.5's TrafficSignal reads.

    - ``observation_class``: called once by the constructor; its ``observation_space()`` is the signal's
      observation space (sumo-rl's density/queue definition, which :mod:`.observations` computes).
    - ``fixed_ts``: read when the phases are built; True leaves the net's own program running (fixed-time and
      actuated control) instead of replacing it with the green/yellow table actions choose from.
    - ``sim_step``: the simulated time, read by ``set_next_phase`` (and ``time_to_act``).

    Not provided: ``vehicles``, read only by ``get_accumulated_waiting_time_per_lane``, which lepton-sim does not
    call (the diff-waiting-time reward keeps its own memory, :mod:`.rewards`).
    """

    conn: Any  # the SUMO connection (libsumo module or traci Connection)
    fixed_ts: bool
    observation_class: type = DefaultObservationFunction

    @property
    def sim_step(self) -> float:
        return self.conn.simulation.getTime()


def _rewards_are_not_computed_here(signal: TrafficSignal) -> float:
    raise NotImplementedError(
        "lepton-sim computes rewards in lepton_sim.envs.traffic.rewards, not through TrafficSignal.compute_reward"
    )


def new_signal(conn: Any, ts_id: str, params: TrafficParams, fixed_ts: bool) -> TrafficSignal:
    """A sumo-rl TrafficSignal on ``conn``; in agent mode (``fixed_ts=False``) it installs its own phase table."""
    return TrafficSignal(
        SignalHost(conn, fixed_ts),
        ts_id,
        params.delta_time,
        params.yellow_time,
        params.min_green,
        MAX_GREEN,
        params.begin,
        _rewards_are_not_computed_here,
        conn,
    )


def episode_signal(
    conn: Any, layout: SignalLayout, green_index: dict[str, int], params: TrafficParams, fixed_ts: bool
) -> TrafficSignal:
    """The signal for one episode. Under fixed-time/actuated control sumo-rl leaves the program alone and builds
    no phase table, so the signal gets the agent-mode phase count and spaces, and the green phase SUMO shows."""
    sig = new_signal(conn, layout.id, params, fixed_ts)
    if fixed_ts:
        sig.num_green_phases = layout.movements.num_phases
        sig.observation_space, sig.action_space = layout.observation_space, layout.action_space
        sig.green_phase = green_index.get(conn.trafficlight.getRedYellowGreenState(layout.id), 0)
    return sig


def apply_decisions(
    conn: Any, signals: list[TrafficSignal], actions: np.ndarray, t0: float, params: TrafficParams
) -> None:
    """Show each signal's chosen green for one decision: through yellow where it changes, with at most two
    ``simulationStep`` calls (end of yellow, end of the decision) instead of sumo-rl's one per simulated second;
    the resulting states and timings are sumo-rl's."""
    for sig, action in zip(signals, np.asarray(actions).reshape(-1)):
        sig.set_next_phase(int(action))
    switching = [sig for sig in signals if sig.is_yellow]
    if switching:
        if params.yellow_time > 0:
            conn.simulationStep(t0 + params.yellow_time)
        for sig in switching:
            conn.trafficlight.setRedYellowGreenState(sig.id, sig.all_phases[sig.green_phase].state)
            sig.is_yellow = False
    conn.simulationStep(t0 + params.delta_time)
    for sig in signals:
        sig.time_since_last_phase_change += params.delta_time


def follow_program(conn: Any, signals: list[TrafficSignal], green_index: list[dict[str, int]], delta_time: int) -> None:
    """fixed-time/actuated: keep each signal's green phase and time-in-phase (observation: phase one-hot and
    min-green flag) in step with the program SUMO runs."""
    for k, sig in enumerate(signals):
        phase = green_index[k].get(conn.trafficlight.getRedYellowGreenState(sig.id))
        if phase is not None and phase != sig.green_phase:
            sig.green_phase, sig.time_since_last_phase_change = phase, 0
        sig.time_since_last_phase_change += delta_time
