"""``lepton/TrafficSignal-v0``: one signalised intersection of a real SUMO network, as a Gymnasium env."""

from __future__ import annotations

from typing import Any

import numpy as np

from lepton_sim.envs.traffic.base import TrafficEnvBase, green_phases


class TrafficSignalEnv(TrafficEnvBase):
    """
    ## Description
    Choose the green phase of the only traffic signal of a SUMO network every ``delta_time`` simulated seconds
    (RESCO timing: 10 s, with a 3 s yellow inserted when the phase changes, and ``min_green``). The network and
    its demand are real SUMO files (e.g. sumo-rl's single-intersection, RESCO cologne1 / ingolstadt1), simulated
    by SUMO through libsumo (default) or traci. Built on sumo-rl's TrafficSignal (the signal logic).
    Networks with several signals are rejected: use ``lepton/TrafficNetwork-v0`` or the PettingZoo env.

    ## Action Space
    ``Discrete(P)``: the index of the green phase to show next (the net's green phases in program order).
    With ``control="fixed-time"`` or ``"actuated"`` SUMO runs the signal and actions are ignored.

    ## Observation Space
    ``Box(0, 1, (P + 1 + 2L,), float32)``, sumo-rl's density/queue observation; L incoming lanes:

    | index | meaning |
    |---|---|
    | 0 .. P-1 | one-hot of the current green phase |
    | P | 1 if the phase has been green for at least ``min_green`` (a change is allowed), else 0 |
    | P+1 .. P+L | vehicles on each incoming lane / lane capacity (length / (2.5 m + mean vehicle length)) |
    | P+L+1 .. P+2L | halted vehicles (< 0.1 m/s) on each incoming lane / lane capacity |

    With ``obs_mode: pixels`` (or ``state+pixels``) the observation pipeline shows the camera ``approaches``
    instead (beside): a top-down uint8 image of the signal's incoming lanes, vehicles (queued ones orange) and
    stop-line strips in the signal's colours (:mod:`lepton_sim.envs.traffic.camera`, ``camera_image``).

    ## Rewards
    Per step, times ``reward_scale``: ``queue-entry`` (default) = -(vehicles queued upstream of the signal:
    halted on the edges leading to it, back to the previous signal or the network's edge, plus vehicles waiting
    there to be inserted), so spill-back and blocked entrances are penalised, not hidden;
    sumo-rl's ``diff-waiting-time`` (decrease of accumulated waiting time / 100), ``queue`` (-halted),
    ``pressure`` (vehicles out minus in, i.e. minus the usual pressure) and ``average-speed``.

    ## Starting State
    SUMO starts at ``begin`` with seed = the reset seed (drawn from ``np_random`` when reset without one) and
    the route demand scaled by ``demand_scale`` (sampled per episode); the first green phase is shown.

    ## Episode End
    Truncated when the window ``[begin, begin + duration]`` has been simulated (``duration / delta_time`` steps);
    never terminated. The final info then holds the episode metrics from SUMO's tripinfo output (NaN before):

    | info key | meaning |
    |---|---|
    | ``mean_delay`` | mean over vehicles of timeLoss + departDelay (s); vehicles due in the window but never inserted are charged end of window - scheduled depart |
    | ``never_inserted`` | vehicles due in the window that never entered the network |
    | ``mean_delay_inserted`` | the same mean over inserted vehicles only (RESCO's metric, blind to blocking) |
    | ``mean_waiting_time`` | SUMO waitingTime per inserted vehicle (s) |
    | ``mean_trip_time`` | duration of completed trips (s) |
    | ``throughput`` | completed trips |
    | ``is_success`` | the window ended with every due vehicle inserted |

    Every step's info also has ``sim_time``, ``queue_length`` (halted vehicles on the controlled incoming
    lanes), ``waiting_vehicles`` (waiting to be inserted) and ``trip_delay`` (mean delay of trips completed so
    far), ``phase`` (the green phase shown, or switched to during yellow), and with ``phase_info=True``
    ``phase_pressure`` / ``phase_demand`` arrays (one value per phase).

    ## Arguments
    See :class:`lepton_sim.envs.traffic.params.TrafficParams` (net, route, begin, duration, demand_scale,
    delta_time, yellow_time, min_green, observation, reward, reward_scale, control, phase_info, backend,
    time_to_teleport, sumo_warnings, render_size, obs_mode). ``render_mode="rgb_array"`` draws the network.

    ## Version History
    - v0: initial version (sumo-rl 1.4.5, SUMO 1.28).
    """

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(render_mode=render_mode, **kwargs)
        if len(self.sim.ts_ids) != 1:
            n = len(self.sim.ts_ids)
            self.sim.close()
            raise ValueError(
                f"network {self.params.net} has {n} traffic signals; lepton/TrafficSignal-v0 controls "
                "exactly one: use lepton/TrafficNetwork-v0 (or the PettingZoo env) for networks"
            )
        layout = self.sim.layouts[0]
        self.signal_id = layout.id
        self.observation_space = layout.observation_space
        self.action_space = layout.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._start_episode(seed)
        return self.sim.observations()[0], self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        flat = np.asarray(action).reshape(-1)
        if (
            flat.size != 1
            or flat.dtype.kind not in "iuf"
            or not 0 <= flat[0] < self.action_space.n
            or flat[0] != int(flat[0])
        ):
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        self._advance((int(flat[0]),))
        obs = self.sim.observations()[0]
        reward = float(self.sim.rewards()[0])
        return obs, reward, False, self.sim.done, self._info()

    def _phase_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        pressure, demand = self.sim.phase_info()
        return pressure[0], demand[0]

    def _phase(self) -> int:
        return int(green_phases(self.sim)[0])
