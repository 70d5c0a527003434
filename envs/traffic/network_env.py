"""``lepton/TrafficNetwork-v0``: every signal of a SUMO network as one Gymnasium env (joint control).

Why a joint env beside the PettingZoo one: lepton-sim's single evaluation loop, its policies (baselines and
trained models) and SB3 all speak Gymnasium. Signals may differ in phases and lanes (cologne3/8, ingolstadt*),
so observations are stacked into one array padded with zeros and actions are a MultiDiscrete vector.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.envs.padding import pad_rows
from lepton_sim.envs.traffic.base import TrafficEnvBase, green_phases


class TrafficNetworkEnv(TrafficEnvBase):
    """
    ## Description
    Choose the green phase of every traffic signal of a SUMO network (a grid, an arterial, RESCO's Cologne
    and Ingolstadt maps) every ``delta_time`` simulated seconds; the same simulation, timing, rewards and
    metrics as ``lepton/TrafficSignal-v0`` (see its docstring), for N signals at once. Signal order is SUMO's
    (``env.unwrapped.signal_ids``).

    ## Action Space
    ``MultiDiscrete([P_1, ..., P_N])``: the next green phase of each signal (ignored with
    ``control="fixed-time"`` or ``"actuated"``).

    ## Observation Space
    ``Box(0, 1, (N, D), float32)`` with D the largest per-signal observation size: row i is signal i's
    sumo-rl observation ([phase one-hot (P_i), min-green flag, densities (L_i), queues (L_i)], see
    TrafficSignal-v0) followed by zeros. In the camera obs modes (``obs_mode: pixels``), ``camera_image``
    (camera ``approaches``) gives every signal's image stacked along channels in signal order: uint8
    (H, W, 3N), one image SB3's CnnPolicy takes.

    ## Rewards
    The sum over signals of the per-signal reward (``reward``, times ``reward_scale``).

    ## Starting State
    As TrafficSignal-v0: SUMO seed = reset seed, demand scaled by ``demand_scale``.

    ## Episode End
    Truncated when the window has been simulated; the final info holds ``mean_delay``, ``never_inserted``,
    ``mean_delay_inserted``, ``mean_waiting_time``, ``mean_trip_time``, ``throughput``, ``is_success`` for the
    whole network (NaN before). Per step: ``sim_time``, ``queue_length``, ``waiting_vehicles``, ``trip_delay``,
    ``phase`` (N,: each signal's green phase); with ``phase_info=True`` ``phase_pressure`` and ``phase_demand``
    of shape (N, max P), padded with -inf.

    ## Arguments
    See :class:`lepton_sim.envs.traffic.params.TrafficParams`.

    ## Version History
    - v0: initial version (sumo-rl 1.4.5, SUMO 1.28).
    """

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(render_mode=render_mode, **kwargs)
        layouts = self.sim.layouts
        self.signal_ids = [lay.id for lay in layouts]
        self.obs_width = max(lay.observation_space.shape[0] for lay in layouts)
        self.num_phases = np.array([lay.action_space.n for lay in layouts], np.int64)
        self.observation_space = spaces.Box(0.0, 1.0, (len(layouts), self.obs_width), np.float32)
        self.action_space = spaces.MultiDiscrete(self.num_phases)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._start_episode(seed)
        return pad_rows(self.sim.observations(), self.obs_width), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.asarray(action, np.int64).reshape(-1)
        if action.shape != self.num_phases.shape or (action < 0).any() or (action >= self.num_phases).any():
            raise ValueError(f"action {action.tolist()} is outside the action space {self.action_space}")
        self._advance(action)
        obs = pad_rows(self.sim.observations(), self.obs_width)
        reward = float(self.sim.rewards().sum())
        return obs, reward, False, self.sim.done, self._info()

    def _phase(self) -> np.ndarray:
        return green_phases(self.sim)

    def _phase_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        pressure, demand = self.sim.phase_info()
        width = int(self.num_phases.max())
        return (
            pad_rows(pressure, width, fill=-np.inf, dtype=np.float64),
            pad_rows(demand, width, fill=-np.inf, dtype=np.float64),
        )
