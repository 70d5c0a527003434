"""Multi-intersection traffic control as a PettingZoo Parallel env: one agent per signal of a SUMO network.

Built on the same core as the Gymnasium envs (sumo-rl's signal logic, lepton-sim's start-up, metrics and
libsumo guard), so rewards, timing, info and metrics are identical to ``lepton/TrafficNetwork-v0``. sumo-rl's
own ``parallel_env`` fails with pettingzoo >= 1.25 (``agent_selector``); this one implements the Parallel API
directly and does not use that helper. Agents may have different observation/action sizes (RESCO's Cologne and
Ingolstadt maps); ``lepton_sim.agents.traffic.pettingzoo_vec`` pads them for parameter sharing.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from lepton_sim.envs.camera_image import NOMINAL, CameraConditions, CameraImage
from lepton_sim.envs.rendering import check_render_mode
from lepton_sim.envs.traffic.agent_cameras import AgentCameras
from lepton_sim.envs.traffic.base import check_camera, common_info, green_phases, render_frame, start_episode
from lepton_sim.envs.traffic.params import TrafficParams
from lepton_sim.envs.traffic.simulation import TrafficSim
from lepton_sim.envs.traffic.sumo_setup import SumoError


class TrafficGridEnv(ParallelEnv):
    """One agent per traffic signal; agent ids are SUMO's signal ids.

    Per agent: observation and action as ``lepton/TrafficSignal-v0`` (sumo-rl's density/queue observation,
    ``Discrete(P_i)`` green phase), reward = that signal's reward. Every agent's info carries the network-wide
    keys of TrafficSignal-v0 (``mean_delay``, ``never_inserted``, ... NaN until the window ends; ``sim_time``,
    ``queue_length``, ``waiting_vehicles``, ``trip_delay``) and, with ``phase_info=True``, its own
    ``phase_pressure`` / ``phase_demand``. All agents are truncated together at the end of the window.
    Camera modes (``obs_mode: pixels`` / ``state+pixels``): each agent observes its own signal's ``approaches``
    image (uint8 (H, W, 3), channel order from ``channel_order``), or a Dict of ``state`` and ``pixels``
    (:mod:`.agent_cameras`), with the ``sensor`` degradations of the observation pipeline (agent k's image equals
    slice k of the joint env's for the same seed and actions).
    Keyword arguments: :class:`lepton_sim.envs.traffic.params.TrafficParams`.
    """

    metadata = {
        "render_modes": ["rgb_array"],
        "name": "lepton_traffic_grid_v0",
        "is_parallelizable": True,
        "render_fps": 0.1,
    }

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.params = TrafficParams(**kwargs)
        self.render_mode = check_render_mode(render_mode, self.metadata)
        self.metadata = {**self.metadata, "render_fps": 1.0 / self.params.delta_time}
        self._cameras = AgentCameras(self.params) if self.params.uses_camera else None
        self.sim = TrafficSim(self.params, owner_description=f"TrafficGridEnv on {self.params.net}")
        self.sim.keep_final_snapshot = render_mode == "rgb_array"
        self.possible_agents = list(self.sim.ts_ids)
        self.agents: list[str] = []
        cameras = self._cameras
        self._spaces = {
            lay.id: (
                cameras.space(lay.observation_space) if cameras else lay.observation_space,
                lay.action_space,
            )
            for lay in self.sim.layouts
        }
        self._np_random: np.random.Generator | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][0]

    def action_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][1]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        start_episode(self.sim, self._np_random, seed)
        if self._cameras is not None:
            self._cameras.begin_episode(seed)
        self.agents = list(self.possible_agents)
        return self._observations(), self._infos()

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        if not self.sim.running:
            raise SumoError("the episode has ended (or SUMO stopped): call reset() before step()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for agent(s) {', '.join(missing)}")
        for agent in self.agents:
            if not self.action_space(agent).contains(np.int64(actions[agent])):
                raise ValueError(f"action {actions[agent]!r} of agent {agent} is outside {self.action_space(agent)}")
        self.sim.advance(np.array([int(actions[a]) for a in self.possible_agents]))
        obs, infos = self._observations(), self._infos()
        rewards = dict(zip(self.possible_agents, map(float, self.sim.rewards())))
        done = self.sim.done
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def _observations(self) -> dict[str, Any]:
        states = self.sim.observations()
        if self._cameras is not None:  # camera modes: each agent sees its own signal's image
            return dict(zip(self.possible_agents, self._cameras.observations(self.sim, states)))
        return dict(zip(self.possible_agents, states))

    def _infos(self) -> dict[str, dict[str, Any]]:
        shared = common_info(self.sim)
        phases = green_phases(self.sim)
        infos = {a: {**shared, "phase": int(phases[k])} for k, a in enumerate(self.possible_agents)}
        if self.params.phase_info:
            pressure, demand = self.sim.phase_info()
            for k, agent in enumerate(self.possible_agents):
                infos[agent]["phase_pressure"], infos[agent]["phase_demand"] = pressure[k], demand[k]
        return infos

    def render(self) -> np.ndarray | None:
        return render_frame(self.sim, self.render_mode)

    def camera_image(
        self,
        name: str,
        width: int,
        height: int,
        *,
        agent: str | None = None,
        depth: bool = False,
        segmentation: bool = False,
        conditions: CameraConditions | Sequence[CameraConditions] = NOMINAL,
    ) -> CameraImage:
        """Camera ``approaches``: ``agent``'s signal image (H, W, 3), or with no agent every signal's, stacked along
        channels in ``possible_agents`` order (H, W, 3 x agents), as ``lepton/TrafficNetwork-v0`` gives it."""
        check_camera(name, depth, segmentation)
        if agent is not None and agent not in self.possible_agents:
            raise ValueError(f"unknown agent {agent!r}; agents: {', '.join(self.possible_agents)}")
        signals = [self.possible_agents.index(agent)] if agent is not None else list(range(len(self.possible_agents)))
        return CameraImage(rgb=self.sim.approach_images(signals, width, height, conditions))

    def close(self) -> None:
        self.sim.close()


def parallel_env(render_mode: str | None = None, **kwargs: Any) -> TrafficGridEnv:
    """PettingZoo-style constructor: ``parallel_env(net=..., route=..., ...)``."""
    return TrafficGridEnv(render_mode=render_mode, **kwargs)
