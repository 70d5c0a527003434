"""What lepton-sim reads once from a SUMO network, before any episode: signals, lanes, phases, spaces, the edges
feeding each signal, and the net's own programs (written out as actuated programs for ``control="actuated"``).

The probe always runs in a short-lived SUMO subprocess (traci) on the network alone, so creating an env never
touches the process's one libsumo simulation: envs can be created (e.g. to read their spaces) while another runs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.phases import PhaseMovements, phase_movements
from lepton_sim.envs.traffic.signals import new_signal
from lepton_sim.envs.traffic.sumo_setup import SumoLoadError, close_traci, start_traci, sumo_binary

ACTUATED_PROGRAM = "lepton-actuated"


@dataclass
class SignalLayout:
    """What a signal controls, read once from the network (the same in every episode)."""

    id: str
    lanes: list[str]  # incoming lanes (sumo-rl's order: observation order)
    lane_index: np.ndarray  # their positions in Network.in_lanes
    out_index: np.ndarray  # positions of its outgoing lanes in Network.out_lanes
    green_states: list[str]
    movements: PhaseMovements
    observation_space: spaces.Box
    action_space: spaces.Discrete


@dataclass
class Network:
    """Every signal of one net, with the lane lists that the per-step reads index into."""

    ts_ids: list[str]  # SUMO's signal order: the order of agents, observations and rewards
    in_lanes: list[str]  # incoming lanes of all signals, each once
    out_lanes: list[str]  # outgoing lanes of all signals, sorted
    lane_length: np.ndarray  # length of each in_lanes entry (m)
    layouts: list[SignalLayout]
    green_index: list[dict[str, int]]  # per signal: green state string -> green phase index
    feeder_signal: dict[str, int]  # queue-entry reward: edge -> index of the signal it feeds
    programs: dict[str, Any]  # the net's own program logic per signal (before sumo-rl replaced it)

    @property
    def feeder_edges(self) -> list[str]:
        return list(self.feeder_signal)

    @property
    def feeder_owner(self) -> np.ndarray:
        return np.array(list(self.feeder_signal.values()), int)


def probe_network(net: str, params: TrafficParams, log_path: Path) -> Network:
    """Read signals, lanes and phases from ``net`` alone (no demand) and derive the spaces.

    Raises SumoLoadError naming the file when SUMO cannot load it or it has no traffic lights."""
    try:
        conn, proc = start_traci([sumo_binary(), "-n", net, "--no-step-log", "--no-warnings"], log_path)
    except SumoLoadError as err:
        raise SumoLoadError(f"network file {net} could not be loaded: {err}") from None
    try:
        ts_ids = list(conn.trafficlight.getIDList())
        if not ts_ids:
            raise SumoLoadError(f"network file {net} has no traffic lights to control")
        programs = {ts: current_logic(conn, ts) for ts in ts_ids}  # before sumo-rl replaces them
        signals = {ts: new_signal(conn, ts, params, fixed_ts=False) for ts in ts_ids}
        links = {
            ts: [[(a, b) for a, b, _via in link] for link in conn.trafficlight.getControlledLinks(ts)] for ts in ts_ids
        }
        feeders = feeder_edges(conn, {ts: signals[ts].lanes for ts in ts_ids}) if params.reward == "queue-entry" else {}
    finally:
        close_traci(conn, proc)

    in_lanes = list(dict.fromkeys(lane for ts in ts_ids for lane in signals[ts].lanes))
    out_lanes = sorted({b for ts in ts_ids for link in links[ts] for _a, b in link})
    in_pos = {lane: i for i, lane in enumerate(in_lanes)}
    out_pos = {lane: j for j, lane in enumerate(out_lanes)}
    layouts = []
    for ts in ts_ids:
        sig = signals[ts]
        out_ids = sorted({b for link in links[ts] for _a, b in link})
        greens = [p.state for p in sig.green_phases]
        layouts.append(
            SignalLayout(
                id=ts,
                lanes=list(sig.lanes),
                lane_index=np.array([in_pos[x] for x in sig.lanes], int),
                out_index=np.array([out_pos[x] for x in out_ids], int),
                green_states=greens,
                movements=phase_movements(greens, links[ts], sig.lanes, out_ids),
                observation_space=sig.observation_space,
                action_space=sig.action_space,
            )
        )
    lengths = {}
    for sig in signals.values():
        for lane, length in sig.lanes_length.items():
            lengths.setdefault(lane, float(length))
    return Network(
        ts_ids=ts_ids,
        in_lanes=in_lanes,
        out_lanes=out_lanes,
        lane_length=np.array([lengths[lane] for lane in in_lanes], float),
        layouts=layouts,
        green_index=[{s: k for k, s in enumerate(lay.green_states)} for lay in layouts],
        feeder_signal={edge: ts_ids.index(ts) for edge, ts in feeders.items()},
        programs=programs,
    )


def current_logic(conn: Any, ts: str) -> Any:
    """The program logic SUMO is running for signal ``ts``."""
    program = conn.trafficlight.getProgram(ts)
    logics = conn.trafficlight.getAllProgramLogics(ts)
    return next((lg for lg in logics if lg.programID == program), logics[0])


def write_actuated_programs(path: Path, logics: dict[str, Any], min_green: int) -> None:
    """The net's own phase sequences as SUMO actuated programs (netconvert's defaults: minDur 5 s, maxDur 50 s)."""
    lines = ["<additional>"]
    for ts, logic in logics.items():
        lines.append(f'  <tlLogic id={quoteattr(ts)} type="actuated" programID="{ACTUATED_PROGRAM}" offset="0">')
        for phase in logic.phases:
            duration = float(phase.duration)
            if "y" in phase.state or all(c in "rs" for c in phase.state):
                lo = hi = duration
            else:
                lo, hi = min(float(max(min_green, 1)), duration), max(duration, 50.0)
            lines.append(
                f'    <phase duration="{duration:g}" minDur="{lo:g}" maxDur="{hi:g}" state={quoteattr(phase.state)}/>'
            )
        lines.append("  </tlLogic>")
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n")


def feeder_edges(conn: Any, signal_lanes: dict[str, list[str]]) -> dict[str, str]:
    """Assign every edge from which traffic reaches a signal to the nearest such signal downstream (multi-source
    BFS against the direction of travel, starting from each signal's incoming edges): the signal's approach,
    where its queue spills back, and where the vehicles it holds up wait to enter the network."""
    lane_api = conn.lane
    lanes = [x for x in lane_api.getIDList() if not x.startswith(":")]
    edge_of = {x: lane_api.getEdgeID(x) for x in lanes}
    predecessors: dict[str, set[str]] = {}
    for x in lanes:
        for link in lane_api.getLinks(x):
            to = link[0]
            if to in edge_of and edge_of[to] != edge_of[x]:
                predecessors.setdefault(edge_of[to], set()).add(edge_of[x])
    owner: dict[str, str] = {}
    queue: deque[str] = deque()
    for ts, in_lanes in signal_lanes.items():
        for lane in in_lanes:
            edge = edge_of.get(lane)
            if edge is not None and edge not in owner:
                owner[edge] = ts
                queue.append(edge)
    while queue:
        edge = queue.popleft()
        for pred in sorted(predecessors.get(edge, ())):  # sorted: set order follows PYTHONHASHSEED
            if pred not in owner:
                owner[pred] = owner[edge]
                queue.append(pred)
    return owner
