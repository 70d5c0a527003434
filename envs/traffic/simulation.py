"""The simulation core of the traffic envs: one SUMO network with all its signals, whose process lepton-sim owns.

The envs in this package are thin views of :class:`TrafficSim`. What it does, and why:

- SUMO is started here (libsumo guarded, one simulation per process, :mod:`.sumo_setup`; traci with unlabelled
  connections and a fast connect), not by sumo-rl's ``SumoEnvironment``, whose constructor starts a probe
  simulation through a process-wide libsumo/traci switch and would clobber another env's libsumo simulation.
  sumo-rl contributes its public ``TrafficSignal`` (:mod:`.signals`).
- One decision advances SUMO with at most two ``simulationStep(t)`` calls (to the end of yellow, then to the
  next decision) instead of one call plus Python bookkeeping per simulated second; results are identical.
- SUMO is read once per step (:mod:`.reads`); that feeds the observation (:mod:`.observations`), the rewards
  (:mod:`.rewards`), the per-step info and the optional phase info.
- Episode metrics come from SUMO's tripinfo output, including unfinished and never-inserted vehicles
  (:mod:`.metrics`), not from vehicles currently in the network.
- ``control`` lets SUMO run the net's own program (``fixed-time``) or actuated control, with the same spaces.
- A SUMO failure becomes a clear error (:class:`SumoError` and subclasses) and drops the simulation, so the
  next ``start`` begins afresh.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions
from lepton_sim.envs.traffic.metrics import EpisodeMetrics, episode_metrics, read_tripinfo
from lepton_sim.envs.traffic.network import ACTUATED_PROGRAM, SignalLayout, probe_network, write_actuated_programs
from lepton_sim.envs.traffic.observations import observations
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.phases import phase_demand, phase_pressure
from lepton_sim.envs.traffic.reads import EMPTY_VEHICLES, StepReads, VehicleReads, read_step, read_vehicles
from lepton_sim.envs.traffic.rewards import EpisodeRewards
from lepton_sim.envs.traffic.signals import TrafficSignal, apply_decisions, episode_signal, follow_program
from lepton_sim.envs.traffic.sumo_setup import (
    SumoConnectionError,
    SumoError,
    SumoLoadError,
    check_xml,
    claim_libsumo,
    close_libsumo,
    close_traci,
    new_workdir,
    release_libsumo,
    remove_workdir,
    start_libsumo,
    start_traci,
    sumo_binary,
)


class TrafficSim:
    """One SUMO network with all its signals: start an episode, advance it one decision at a time, read the
    observation, rewards and info, and at the window's end the episode metrics."""

    def __init__(self, params: TrafficParams, owner_description: str = "a lepton-sim traffic env") -> None:
        self.params = params
        self.backend = params.backend
        self._net = str(params.net_path)
        self._routes = [str(p) for p in params.route_paths]
        self.sim_max_time = params.begin + params.duration
        self.fixed_ts = params.control != "agent"
        self.sumo: Any = None  # the running simulation's connection (libsumo module or traci Connection)
        self._proc = None  # traci: the SUMO process
        self._closed = False
        self._workdir = new_workdir()  # removed by close(), at exit, or after a crash (sumo_setup)
        self.tripinfo_path = self._workdir / "tripinfo.xml"
        self._log_path = self._workdir / "sumo.log"
        self._actuated_file: Path | None = None
        self._owner_description = owner_description
        self.signals: list[TrafficSignal] = []
        self._reads: StepReads | None = None
        self._vehicles: VehicleReads | None = None  # camera reads, for the step whose reads are _vehicles_at
        self._vehicles_at: StepReads | None = None
        self._vehicle_lengths: dict[str, float] = {}  # vehicle id -> length (m), read once per episode
        self._camera: Any = None  # camera.ApproachCamera, built on the first image
        self._rewards = np.zeros(0)
        self._reward_fn: EpisodeRewards | None = None
        self.metrics: EpisodeMetrics | None = None
        self.final_snapshot: dict[str, Any] | None = None
        self.keep_final_snapshot = False
        self.sumo_seed: int | None = None
        try:
            check_xml(self._net, "network")
            for route in self._routes:
                check_xml(route, "route")
            self.network = probe_network(self._net, params, self._log_path)
            if params.control == "actuated":
                self._actuated_file = self._workdir / "actuated.add.xml"
                write_actuated_programs(self._actuated_file, self.network.programs, params.min_green)
        except BaseException:
            self.close()
            raise

    @property
    def ts_ids(self) -> list[str]:
        return self.network.ts_ids

    @property
    def layouts(self) -> list[SignalLayout]:
        return self.network.layouts

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

    def _command(self, demand_scale: float) -> list[str]:
        p = self.params
        cmd = [
            sumo_binary(),
            "-n",
            self._net,
            "-r",
            ",".join(self._routes),
            "-b",
            str(p.begin),
            "--seed",
            str(self.sumo_seed),
            "--time-to-teleport",
            str(p.time_to_teleport),
            "--waiting-time-memory",
            "1000",
            "--no-step-log",
        ]
        # Only options that are needed: with libsumo (one process, many simulations) some option sets, e.g.
        # "--scale 1.0" or "--duration-log.disable" alone, let one episode's state leak into the next (the
        # same seed then gives different results depending on the previous episode; SUMO 1.28).
        if demand_scale != 1.0:
            cmd += ["--scale", repr(float(demand_scale))]
        if p.episode_metrics:
            cmd += [
                "--tripinfo-output",
                str(self.tripinfo_path),
                "--tripinfo-output.write-unfinished",
                "--tripinfo-output.write-undeparted",
            ]
        if not p.sumo_warnings:
            cmd.append("--no-warnings")
        if self._actuated_file is not None:
            cmd += ["-a", str(self._actuated_file)]
        return cmd

    def start(self, sumo_seed: int, demand_scale: float = 1.0) -> None:
        """Start a fresh simulation for a new episode (closing any running one, its outputs discarded)."""
        if self._closed:
            raise SumoError("this traffic env was closed; create a new one")
        self._stop_sumo()
        self.metrics, self.final_snapshot, self._reads = None, None, None
        self._vehicles = self._vehicles_at = None
        self._vehicle_lengths = {}
        self.sumo_seed = int(sumo_seed)
        self.tripinfo_path.unlink(missing_ok=True)
        try:
            conn = self._start_sumo(self._command(demand_scale))
        except SumoLoadError as err:
            raise SumoLoadError(
                f"route file(s) {', '.join(self._routes)} could not be loaded with network {self._net}: {err}"
            ) from None
        try:
            net = self.network
            self.signals = [
                episode_signal(conn, lay, net.green_index[k], self.params, self.fixed_ts)
                for k, lay in enumerate(net.layouts)
            ]
            if self._actuated_file is not None:
                for ts in net.ts_ids:
                    conn.trafficlight.setProgram(ts, ACTUATED_PROGRAM)
            self._reward_fn = EpisodeRewards(self.params.reward, net, self.params.reward_scale)
            self._rewards = np.zeros(len(net.ts_ids))
            self._read()
        except Exception as err:  # noqa: BLE001
            self._fail(err)

    # ------------------------------------------------------------------------------------------ stepping
    def advance(self, actions: np.ndarray | None) -> None:
        """Apply one green-phase choice per signal (ignored unless control='agent') and simulate delta_time s."""
        try:
            t0 = self.sumo.simulation.getTime()
            if self.fixed_ts:
                self.sumo.simulationStep(t0 + self.params.delta_time)
                follow_program(self.sumo, self.signals, self.network.green_index, self.params.delta_time)
            else:
                apply_decisions(self.sumo, self.signals, actions, t0, self.params)
            self._read()
            self._rewards = self._reward_fn(self.sumo, self.signals, self._reads)  # before _finish closes SUMO
            if self.done:
                self._finish()
        except SumoError:
            raise
        except Exception as err:  # noqa: BLE001  (TraCIException, FatalTraCIError, OSError from a dead socket)
            self._fail(err)

    def _read(self) -> None:
        self._reads = read_step(
            self.sumo, self.network, self.params.phase_info, self.params.episode_metrics, self._reads
        )
        if self.params.uses_camera:  # camera modes: read now, while SUMO runs (it closes at the window's end)
            self._read_vehicles()

    def _read_vehicles(self) -> None:
        lanes = self.camera.lane_ids
        self._vehicles = read_vehicles(self.sumo, lanes, self.network.ts_ids, self._vehicle_lengths)
        self._vehicles_at = self._reads

    @property
    def camera(self) -> Any:
        """The ``approaches`` camera (:class:`.camera.ApproachCamera`), built on first use (sumolib reads the net)."""
        if self._camera is None:
            from lepton_sim.envs.traffic.camera import ApproachCamera

            self._camera = ApproachCamera(self._net, self.network, self.params.camera_range)
        return self._camera

    @property
    def done(self) -> bool:
        return self._reads is not None and self._reads.time >= self.sim_max_time

    def observations(self) -> list[np.ndarray]:
        """sumo-rl's observation per signal: [phase one-hot, min-green flag, lane densities, lane queues]."""
        return observations(self.network, self.signals, self._reads)

    def rewards(self) -> np.ndarray:
        """Per-signal rewards of the last step (times reward_scale)."""
        return self._rewards

    def step_info(self) -> dict[str, float]:
        """Per-step values (same keys every step): simulated time, queues, vehicles waiting to enter."""
        reads = self._reads
        return {
            "sim_time": float(reads.time),
            "queue_length": float(reads.halting.sum()),
            "waiting_vehicles": float(len(reads.pending)),
            "trip_delay": reads.trip_delay,
        }

    def phase_info(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per signal: max-pressure weight (halted vehicles upstream minus downstream over each green phase's
        movements) and greedy demand (vehicles on the lanes it serves) of each green phase."""
        reads = self._reads
        if reads.out_halting is None:
            raise SumoError("phase information needs the env parameter phase_info=True")
        layouts = self.network.layouts
        pressure = [
            phase_pressure(lay.movements, reads.halting[lay.lane_index], reads.out_halting[lay.out_index])
            for lay in layouts
        ]
        demand = [phase_demand(lay.movements, reads.count[lay.lane_index]) for lay in layouts]
        return pressure, demand

    def approach_images(
        self,
        signals: list[int],
        width: int,
        height: int,
        conditions: CameraConditions | Sequence[CameraConditions] = NOMINAL,
    ) -> np.ndarray:
        """The ``approaches`` camera of ``signals`` (indices in SUMO's signal order) stacked along channels:
        uint8 (height, width, 3 * len(signals)), a fresh array (a frame stack may keep it). ``conditions``: one for
        every signal's camera or one per signal.

        Vehicles are read once per decision step (in camera obs modes while stepping; otherwise on the first image
        of a step). After the window's end an env in state mode has no reads of the last step: its image then
        shows the signal states and vehicles of the last step that was read (none if no step was)."""
        if self._vehicles_at is not self._reads and self.sumo is not None and self._reads is not None:
            try:
                self._read_vehicles()
            except Exception as err:  # noqa: BLE001
                self._fail(err)
        vehicles = self._vehicles if self._vehicles is not None else EMPTY_VEHICLES
        return self.camera.frame(signals, width, height, vehicles, conditions)

    def metric_info(self) -> dict[str, float]:
        return self.metrics.as_info() if self.metrics is not None else EpisodeMetrics.nan_info()

    # ------------------------------------------------------------------------------------------ episode end
    def _finish(self) -> None:
        """End of the window: SUMO writes every vehicle's tripinfo (arrived, driving, never inserted) on close."""
        if self.keep_final_snapshot:
            self.final_snapshot = self.snapshot()
        self._stop_sumo()
        if self.params.episode_metrics:
            self.metrics = episode_metrics(read_tripinfo(self.tripinfo_path), grace=self.params.delta_time)

    def snapshot(self) -> dict[str, Any]:
        """Vehicle positions/speeds and signal states now (for rendering); the final one after the episode."""
        if self.sumo is None:
            return self.final_snapshot or {"xy": np.zeros((0, 2)), "speed": np.zeros(0), "states": {}, "time": math.nan}
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
        when = f"at simulated time {self._reads.time if self._reads is not None else self.params.begin:g} s"
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
                "simulation."
            ) from None
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
            remove_workdir(self._workdir)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
