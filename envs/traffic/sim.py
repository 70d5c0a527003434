"""The simulation core of the traffic envs: sumo-rl's SumoEnvironment and TrafficSignal, driven by lepton-sim.

What comes from sumo-rl (1.4.5): the signal logic (``TrafficSignal``: green phases read from the net, yellow
transitions, min-green, ``set_next_phase``), its rewards (``diff-waiting-time``, ``pressure``, ``average-speed``)
and the definition of its density/queue observation. What lepton-sim changes, and why:

- SUMO is started here, not by ``SumoEnvironment.__init__`` (which starts a probe simulation through a
  process-wide libsumo/traci switch, and would clobber another env's libsumo simulation). libsumo is guarded
  (one simulation per process, :mod:`.sumo_setup`); traci uses unlabelled connections and a fast connect.
- One decision advances SUMO with at most two ``simulationStep(t)`` calls (to the end of yellow, then to the
  next decision) instead of one call plus Python bookkeeping per simulated second; results are identical.
- Lane reads happen once per step and feed the observation, the ``queue`` rewards, the per-step info and the
  optional phase info, instead of each consumer querying SUMO again.
- Episode metrics come from SUMO's tripinfo output, including unfinished and never-inserted vehicles
  (:mod:`.metrics`), not from vehicles currently in the network.
- ``control`` lets SUMO run the net's own program (``fixed-time``) or actuated control, with the same spaces.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.traffic.metrics import NOT_YET, EpisodeMetrics, episode_metrics, read_tripinfo
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.phases import PhaseMovements, phase_demand, phase_movements, phase_pressure
from lepton_sim.envs.traffic.sumo_setup import (SumoConnectionError, SumoError, SumoLoadError, check_xml,
                                                claim_libsumo, close_libsumo, close_traci, import_sumo_rl,
                                                release_libsumo, start_libsumo, start_traci, sumo_binary)

_sumo_rl_env = import_sumo_rl()  # sets SUMO_HOME / LIBSUMO_AS_TRACI first
from sumo_rl.environment.traffic_signal import TrafficSignal  # noqa: E402

SumoEnvironment = _sumo_rl_env.SumoEnvironment
MIN_GAP = TrafficSignal.MIN_GAP
ACTUATED_PROGRAM = "lepton-actuated"


@dataclass
class SignalLayout:
    """What a signal controls, read once from the network (the same in every episode)."""

    id: str
    lanes: list[str]  # incoming lanes (sumo-rl's order: observation order)
    lane_index: np.ndarray  # their positions in TrafficSim.in_lanes
    out_index: np.ndarray  # positions of its outgoing lanes in TrafficSim.out_lanes
    green_states: list[str]
    movements: PhaseMovements
    observation_space: spaces.Box
    action_space: spaces.Discrete


class TrafficSim(SumoEnvironment):
    """One SUMO network with all its signals; the envs in this package are thin views of it.

    Subclasses sumo-rl's SumoEnvironment so that sumo-rl's TrafficSignal objects (which call back into their
    env) work unchanged, but replaces its constructor, start-up, stepping and metrics (see the module docstring).
    """

    def __init__(self, params: TrafficParams, owner_description: str = "a lepton-sim traffic env") -> None:
        # SumoEnvironment.__init__ is deliberately not called (it would start SUMO through sumo_rl's global switch).
        self.params = params
        self._net = str(params.net_path)
        self._routes = [str(p) for p in params.route_paths]
        self._route = ",".join(self._routes)
        self.begin_time = params.begin
        self.sim_max_time = params.begin + params.duration
        self.delta_time = params.delta_time
        self.yellow_time = params.yellow_time
        self.min_green = params.min_green
        self.max_green = 10**9  # sumo-rl 1.4.5 ignores max_green
        self.single_agent = False
        self.fixed_ts = False
        self.reward_fn = "queue" if params.reward == "queue-entry" else params.reward
        self.observation_class = _sumo_rl_env.DefaultObservationFunction
        self.vehicles: dict[str, dict[str, float]] = {}
        self.sumo: Any = None
        self.backend = params.backend
        self._proc = None
        self._closed = False
        self._workdir = Path(tempfile.mkdtemp(prefix="lepton-sumo-"))
        self.tripinfo_path = self._workdir / "tripinfo.xml"
        self._log_path = self._workdir / "sumo.log"
        self.metrics: EpisodeMetrics | None = None
        self.final_snapshot: dict[str, Any] | None = None
        self.keep_final_snapshot = False
        self.sumo_seed: int | None = None
        self._owner_description = owner_description
        try:
            check_xml(self._net, "network")
            for route in self._routes:
                check_xml(route, "route")
            self._probe()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------ network probe
    def _probe(self) -> None:
        """Read signals, lanes and phases from the network alone (no demand) and derive the spaces.

        Always through a short-lived SUMO subprocess (traci), so that creating an env never touches the
        process's libsumo simulation: envs can be created (e.g. to read their spaces) while another runs."""
        try:
            conn, proc = start_traci([sumo_binary(), "-n", self._net, "--no-step-log", "--no-warnings"],
                                     self._log_path)
        except SumoLoadError as err:
            raise SumoLoadError(f"network file {self._net} could not be loaded: {err}") from None
        try:
            ts_ids = list(conn.trafficlight.getIDList())
            if not ts_ids:
                raise SumoLoadError(f"network file {self._net} has no traffic lights to control")
            programs = {ts: _current_logic(conn, ts) for ts in ts_ids}  # before sumo-rl replaces them
            signals = {ts: TrafficSignal(self, ts, self.delta_time, self.yellow_time, self.min_green,
                                         self.max_green, self.begin_time, self.reward_fn, conn) for ts in ts_ids}
            links = {ts: [[(a, b) for a, b, _via in link] for link in conn.trafficlight.getControlledLinks(ts)]
                     for ts in ts_ids}
            feeders = (_feeder_edges(conn, {ts: signals[ts].lanes for ts in ts_ids})
                       if self.params.reward == "queue-entry" else {})
        finally:
            close_traci(conn, proc)

        self.ts_ids = ts_ids
        self.in_lanes = list(dict.fromkeys(lane for ts in ts_ids for lane in signals[ts].lanes))
        self.out_lanes = sorted({b for ts in ts_ids for link in links[ts] for _a, b in link})
        in_pos = {lane: i for i, lane in enumerate(self.in_lanes)}
        out_pos = {lane: j for j, lane in enumerate(self.out_lanes)}
        self.lane_length = np.array([_lane_length(signals, lane) for lane in self.in_lanes], float)
        self.layouts: list[SignalLayout] = []
        for ts in ts_ids:
            sig = signals[ts]
            out_ids = sorted({b for link in links[ts] for _a, b in link})
            greens = [p.state for p in sig.green_phases]
            self.layouts.append(SignalLayout(
                id=ts, lanes=list(sig.lanes), lane_index=np.array([in_pos[x] for x in sig.lanes], int),
                out_index=np.array([out_pos[x] for x in out_ids], int), green_states=greens,
                movements=phase_movements(greens, links[ts], sig.lanes, out_ids),
                observation_space=sig.observation_space, action_space=sig.action_space))
        self._green_index = [{s: k for k, s in enumerate(lay.green_states)} for lay in self.layouts]
        self._feeder_signal = {edge: ts_ids.index(ts) for edge, ts in feeders.items()}
        self._feeder_edges = list(self._feeder_signal)  # queue-entry: halted vehicles counted on these edges
        self._feeder_owner = np.array(list(self._feeder_signal.values()), int)
        self._first_edge: dict[str, str] = {}
        self._actuated_file = None
        if self.params.control == "actuated":
            self._actuated_file = self._workdir / "actuated.add.xml"
            _write_actuated_programs(self._actuated_file, programs, self.params.min_green)
        self.fixed_ts = self.params.control != "agent"

    # ------------------------------------------------------------------------------------------ start / stop
    def _start_sumo(self, cmd: list[str]) -> Any:
        """Start this env's simulation; with libsumo, first claim the process's one libsumo slot."""
        if self.backend == "libsumo":
            claim_libsumo(self, self._owner_description)
            try:
                self.sumo = start_libsumo(cmd + ["--error-log", str(self._log_path)])
            except BaseException:
                release_libsumo(self)
                raise
        else:
            self.sumo, self._proc = start_traci(cmd, self._log_path)
        return self.sumo

    def _stop_sumo(self) -> None:
        conn, self.sumo = self.sumo, None
        if conn is None:
            return
        if self.backend == "libsumo":
            try:
                close_libsumo()
            finally:
                release_libsumo(self)
        else:
            proc, self._proc = self._proc, None
            close_traci(conn, proc)

    @property
    def running(self) -> bool:
        return self.sumo is not None

    def start(self, sumo_seed: int, demand_scale: float = 1.0) -> None:
        """Start a fresh simulation for a new episode (closing any running one, its outputs discarded)."""
        if self._closed:
            raise SumoError("this traffic env was closed; create a new one")
        self._stop_sumo()
        self.metrics, self.final_snapshot = None, None
        self.sumo_seed = int(sumo_seed)
        self.tripinfo_path.unlink(missing_ok=True)
        cmd = [sumo_binary(), "-n", self._net, "-r", self._route, "-b", str(self.begin_time),
               "--seed", str(self.sumo_seed), "--time-to-teleport", str(self.params.time_to_teleport),
               "--waiting-time-memory", "1000", "--no-step-log"]
        # Only options that are needed: with libsumo (one process, many simulations) some option sets, e.g.
        # "--scale 1.0" or "--duration-log.disable" alone, let one episode's state leak into the next (the
        # same seed then gives different results depending on the previous episode; SUMO 1.28).
        if demand_scale != 1.0:
            cmd += ["--scale", repr(float(demand_scale))]
        if self.params.episode_metrics:
            cmd += ["--tripinfo-output", str(self.tripinfo_path), "--tripinfo-output.write-unfinished",
                    "--tripinfo-output.write-undeparted"]
        if not self.params.sumo_warnings:
            cmd.append("--no-warnings")
        if self._actuated_file is not None:
            cmd += ["-a", str(self._actuated_file)]
        try:
            conn = self._start_sumo(cmd)
        except SumoLoadError as err:
            raise SumoLoadError(f"route file(s) {', '.join(self._routes)} could not be loaded with network "
                                f"{self._net}: {err}") from None
        try:
            self.vehicles = {}
            self._first_edge = {}
            self._arrived, self._trip_delay = None, NOT_YET
            self.traffic_signals = {ts: self._make_signal(ts, conn, lay) for ts, lay in zip(self.ts_ids, self.layouts)}
            if self._actuated_file is not None:
                for ts in self.ts_ids:
                    conn.trafficlight.setProgram(ts, ACTUATED_PROGRAM)
            self._read()
        except Exception as err:  # noqa: BLE001
            self._fail(err)

    def _make_signal(self, ts: str, conn: Any, layout: SignalLayout) -> TrafficSignal:
        sig = TrafficSignal(self, ts, self.delta_time, self.yellow_time, self.min_green, self.max_green,
                            self.begin_time, self.reward_fn, conn)
        if self.fixed_ts:  # sumo-rl left the program alone; give the signal the agent-mode phase table and spaces
            sig.num_green_phases = layout.movements.num_phases
            sig.observation_space, sig.action_space = layout.observation_space, layout.action_space
            sig.green_phase = self._green_index[self.ts_ids.index(ts)].get(
                conn.trafficlight.getRedYellowGreenState(ts), 0)
        return sig

    # ------------------------------------------------------------------------------------------ stepping
    def advance(self, actions: np.ndarray | None) -> None:
        """Apply one green-phase choice per signal (ignored unless control='agent') and simulate delta_time s."""
        try:
            t0 = self.sim_step
            signals = [self.traffic_signals[ts] for ts in self.ts_ids]
            if self.fixed_ts:
                self.sumo.simulationStep(t0 + self.delta_time)
                self._track_program_phases(signals)
            else:
                for sig, action in zip(signals, np.asarray(actions).reshape(-1)):
                    sig.set_next_phase(int(action))
                switching = [sig for sig in signals if sig.is_yellow]
                if switching:
                    if self.yellow_time > 0:
                        self.sumo.simulationStep(t0 + self.yellow_time)
                    for sig in switching:
                        self.sumo.trafficlight.setRedYellowGreenState(sig.id, sig.all_phases[sig.green_phase].state)
                        sig.is_yellow = False
                self.sumo.simulationStep(t0 + self.delta_time)
                for sig in signals:
                    sig.time_since_last_phase_change += self.delta_time
            self._read()
            self._rewards = self._compute_rewards()  # now: sumo-rl's rewards query SUMO, which _finish closes
            if self.done:
                self._finish()
        except SumoError:
            raise
        except Exception as err:  # noqa: BLE001  (TraCIException, FatalTraCIError, OSError from a dead socket)
            self._fail(err)

    def _track_program_phases(self, signals: list[TrafficSignal]) -> None:
        """fixed-time/actuated: keep the observation's phase one-hot and min-green flag in step with SUMO."""
        for k, sig in enumerate(signals):
            phase = self._green_index[k].get(self.sumo.trafficlight.getRedYellowGreenState(sig.id))
            if phase is not None and phase != sig.green_phase:
                sig.green_phase, sig.time_since_last_phase_change = phase, 0
            sig.time_since_last_phase_change += self.delta_time

    @property
    def done(self) -> bool:
        return self._time >= self.sim_max_time

    def _read(self) -> None:
        """One pass of lane reads per step, shared by observation, rewards and info."""
        lane = self.sumo.lane
        self._time = self.sumo.simulation.getTime()
        self._count = np.array([lane.getLastStepVehicleNumber(x) for x in self.in_lanes], float)
        self._halting = np.array([lane.getLastStepHaltingNumber(x) for x in self.in_lanes], float)
        self._veh_length = np.array([lane.getLastStepLength(x) for x in self.in_lanes], float)
        self._out_halting = (np.array([lane.getLastStepHaltingNumber(x) for x in self.out_lanes], float)
                             if self.params.phase_info else None)
        self._pending = self.sumo.simulation.getPendingVehicles()
        stats = "device.tripinfo.vehicleTripStatistics."
        arrived = self.sumo.simulation.getParameter("", stats + "count") if self.params.episode_metrics else "0"
        if arrived != self._arrived:  # the running mean changes only when trips complete
            self._arrived = arrived
            self._trip_delay = (float(self.sumo.simulation.getParameter("", stats + "timeLoss"))
                                + float(self.sumo.simulation.getParameter("", stats + "departDelay"))
                                if float(arrived) > 0 else NOT_YET)

    def observations(self) -> list[np.ndarray]:
        """sumo-rl's observation per signal: [phase one-hot, min-green flag, lane densities, lane queues]."""
        capacity_div = MIN_GAP + self._veh_length  # sumo-rl: n / (length / (MIN_GAP + mean vehicle length))
        density = np.minimum(1.0, self._count / (self.lane_length / capacity_div))
        queue = np.minimum(1.0, self._halting / (self.lane_length / capacity_div))
        out = []
        for lay, ts in zip(self.layouts, self.ts_ids):
            sig = self.traffic_signals[ts]
            head = np.zeros(lay.movements.num_phases + 1)
            head[sig.green_phase] = 1.0
            head[-1] = 0.0 if sig.time_since_last_phase_change < sig.min_green + sig.yellow_time else 1.0
            out.append(np.concatenate([head, density[lay.lane_index], queue[lay.lane_index]]).astype(np.float32))
        return out

    def rewards(self) -> np.ndarray:
        """Per-signal rewards of the last step (times reward_scale)."""
        return self._rewards

    def _compute_rewards(self) -> np.ndarray:
        kind = self.params.reward
        if kind == "queue":
            r = -np.array([self._halting[lay.lane_index].sum() for lay in self.layouts])
        elif kind == "queue-entry":
            edge = self.sumo.edge
            halted = np.array([edge.getLastStepHaltingNumber(e) for e in self._feeder_edges], float)
            r = -np.bincount(self._feeder_owner, weights=halted, minlength=len(self.ts_ids)) - self._entry_waiting()
        elif kind == "diff-waiting-time":
            r = np.array([self._diff_waiting_time(self.traffic_signals[ts]) for ts in self.ts_ids])
        else:
            r = np.array([self.traffic_signals[ts].compute_reward() for ts in self.ts_ids], float)
        return r * self.params.reward_scale

    def _diff_waiting_time(self, sig: TrafficSignal) -> float:
        """sumo-rl's diff-waiting-time reward (TrafficSignal._diff_waiting_time_reward), same bookkeeping and
        values, with one SUMO call per vehicle instead of two: a vehicle listed on a lane is on that lane."""
        vehicle, memory = self.sumo.vehicle, self.vehicles
        total = 0.0
        for lane in sig.lanes:
            for veh in self.sumo.lane.getLastStepVehicleIDs(lane):
                acc = vehicle.getAccumulatedWaitingTime(veh)
                seen = memory.get(veh)
                if seen is None:
                    memory[veh] = seen = {lane: acc}
                else:
                    seen[lane] = acc - sum(w for other, w in seen.items() if other != lane)
                total += seen[lane]
        measure = total / 100.0
        reward, sig.last_measure = sig.last_measure - measure, measure
        return reward

    def _entry_waiting(self) -> np.ndarray:
        """Vehicles waiting to be inserted, per signal whose upstream edges they would enter on."""
        counts = np.zeros(len(self.ts_ids))
        for veh in self._pending:
            edge = self._first_edge.get(veh)
            if edge is None:
                edge = self._first_edge[veh] = self.sumo.vehicle.getRoute(veh)[0]
            k = self._feeder_signal.get(edge)
            if k is not None:
                counts[k] += 1
        return counts

    def step_info(self) -> dict[str, float]:
        """Per-step values (same keys every step): simulated time, queues, vehicles waiting to enter."""
        return {"sim_time": float(self._time), "queue_length": float(self._halting.sum()),
                "waiting_vehicles": float(len(self._pending)), "trip_delay": self._trip_delay}

    def phase_info(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per signal: max-pressure weight (halted vehicles upstream minus downstream over each green phase's
        movements) and greedy demand (vehicles on the lanes it serves) of each green phase."""
        if self._out_halting is None:
            raise SumoError("phase information needs the env parameter phase_info=True")
        pressure = [phase_pressure(lay.movements, self._halting[lay.lane_index], self._out_halting[lay.out_index])
                    for lay in self.layouts]
        demand = [phase_demand(lay.movements, self._count[lay.lane_index]) for lay in self.layouts]
        return pressure, demand

    def metric_info(self) -> dict[str, float]:
        return self.metrics.as_info() if self.metrics is not None else EpisodeMetrics.nan_info()

    # ------------------------------------------------------------------------------------------ episode end
    def _finish(self) -> None:
        """End of the window: SUMO writes every vehicle's tripinfo (arrived, driving, never inserted) on close."""
        if self.keep_final_snapshot:
            self.final_snapshot = self.snapshot()
        self._stop_sumo()
        if self.params.episode_metrics:
            self.metrics = episode_metrics(read_tripinfo(self.tripinfo_path), grace=self.delta_time)

    def snapshot(self) -> dict[str, Any]:
        """Vehicle positions/speeds and signal states now (for rendering); the final one after the episode."""
        if self.sumo is None:
            return self.final_snapshot or {"xy": np.zeros((0, 2)), "speed": np.zeros(0), "states": {},
                                           "time": math.nan}
        veh = self.sumo.vehicle
        ids = veh.getIDList()
        xy = np.array([veh.getPosition(v) for v in ids], float).reshape(-1, 2)
        speed = np.array([veh.getSpeed(v) for v in ids], float)
        states = {ts: self.sumo.trafficlight.getRedYellowGreenState(ts) for ts in self.ts_ids}
        return {"xy": xy, "speed": speed, "states": states, "time": self.sumo.simulation.getTime()}

    # ------------------------------------------------------------------------------------------ errors / close
    def _fail(self, err: BaseException) -> None:
        """Turn a SUMO failure into a clear error and drop the simulation, so the next reset starts afresh."""
        proc = self._proc
        when = f"at simulated time {getattr(self, '_time', self.begin_time):g} s"
        try:
            self._stop_sumo()
        except Exception:  # noqa: BLE001
            pass
        exit_code = proc.poll() if proc is not None else None
        log = self._log_path.read_text(errors="replace") if self._log_path.exists() else ""
        errors = " ".join(ln.strip() for ln in log.splitlines() if ln.startswith("Error"))
        files = f"network {self._net}, route file(s) {', '.join(self._routes)}"
        if errors:
            raise SumoLoadError(f"SUMO stopped {when} on an input error ({files}): {errors}") from None
        if self.backend == "traci" and (exit_code is not None or "closed" in str(err).lower()):
            raise SumoConnectionError(
                f"the SUMO process (traci back end) stopped {when} (exit code {exit_code}): "
                f"{str(err).rstrip('.')}. The episode cannot continue; call reset() to start a fresh "
                "simulation.") from None
        raise SumoError(f"SUMO failed {when} ({files}): {err}. Call reset() to start a fresh simulation.") from None

    def close(self) -> None:
        """Stop SUMO, release the libsumo slot and delete the temporary output folder. Idempotent."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self._stop_sumo()
        except Exception:  # noqa: BLE001
            pass
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------------------------------------- helpers

def _lane_length(signals: dict[str, TrafficSignal], lane: str) -> float:
    for sig in signals.values():
        if lane in sig.lanes_length:
            return float(sig.lanes_length[lane])
    raise KeyError(lane)


def _current_logic(conn: Any, ts: str) -> Any:
    program = conn.trafficlight.getProgram(ts)
    logics = conn.trafficlight.getAllProgramLogics(ts)
    return next((lg for lg in logics if lg.programID == program), logics[0])


def _write_actuated_programs(path: Path, logics: dict[str, Any], min_green: int) -> None:
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
            lines.append(f'    <phase duration="{duration:g}" minDur="{lo:g}" maxDur="{hi:g}" '
                         f'state={quoteattr(phase.state)}/>')
        lines.append("  </tlLogic>")
    lines.append("</additional>")
    path.write_text("\n".join(lines) + "\n")


def _feeder_edges(conn: Any, signal_lanes: dict[str, list[str]]) -> dict[str, str]:
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
        for pred in predecessors.get(edge, ()):
            if pred not in owner:
                owner[pred] = owner[edge]
                queue.append(pred)
    return owner
