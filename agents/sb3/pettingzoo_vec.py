"""Parameter-shared multi-agent training: a PettingZoo Parallel env seen by SB3 as a VecEnv, one slot per agent.

Every agent (every signal of a traffic network) becomes one VecEnv "env", so a single SB3 policy (PPO) is trained
on the experience of all of them at once (parameter sharing, as in RESCO's IPPO/MPLight-style baselines). Agents
may differ (cologne3/8, ingolstadt*): observations are zero-padded to the widest and actions are ``Discrete(max
n)`` (lepton_sim.envs.padding). The same padding is used by the joint env's stacked observation, so
lepton_sim.multi_agent.SharedPolicy evaluates the trained model there with the ordinary evaluation loop.

All agents share one simulation, so their episodes end together; the VecEnv then resets the simulation and
returns each agent's final observation as ``terminal_observation`` (a time-limit truncation).
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from lepton_sim.envs.padding import agent_actions, pad_rows, padded_action_space, padded_observation_space
from lepton_sim.scenario import Scenario


class PettingZooVecEnv(VecEnv):
    """SB3 VecEnv over the agents of one PettingZoo Parallel env (all agents act at every step)."""

    def __init__(self, par_env: Any) -> None:
        self.par_env = par_env
        self.agents = list(par_env.possible_agents)
        obs_spaces = [par_env.observation_space(a) for a in self.agents]
        act_spaces = [par_env.action_space(a) for a in self.agents]
        observation_space = padded_observation_space(obs_spaces)
        action_space = padded_action_space(act_spaces)
        self.width = int(observation_space.shape[0])
        self.num_actions = np.array([s.n for s in act_spaces], np.int64)
        super().__init__(len(self.agents), observation_space, action_space)
        self._actions: np.ndarray | None = None

    def _stack(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return pad_rows([np.asarray(obs[a], np.float32).ravel() for a in self.agents], self.width)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, infos = self.par_env.reset(seed=seed)
        self.reset_infos = [dict(infos.get(a, {})) for a in self.agents]
        self._reset_seeds()
        self._reset_options()
        return self._stack(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, np.int64).reshape(self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        phases = agent_actions(self._actions, self.num_actions)
        obs, rewards, terminations, truncations, infos = self.par_env.step(
            {a: int(p) for a, p in zip(self.agents, phases)}
        )
        stacked = self._stack(obs)
        reward = np.array([rewards[a] for a in self.agents], np.float32)
        term = np.array([bool(terminations.get(a, False)) for a in self.agents])
        trunc = np.array([bool(truncations.get(a, False)) for a in self.agents])
        done = term | trunc
        out_infos: list[dict[str, Any]] = [dict(infos.get(a, {})) for a in self.agents]
        if done.any():  # one simulation: every agent's episode ends at the same step
            for i, info in enumerate(out_infos):
                info["terminal_observation"] = stacked[i]
                info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
            reset_obs, _ = self.par_env.reset()
            stacked = self._stack(reset_obs)
            done = np.ones(self.num_envs, bool)
        return stacked, reward, done, out_infos

    def close(self) -> None:
        self.par_env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.par_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.par_env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        result = getattr(self.par_env, method_name)(*args, **kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frame = self.par_env.render() if getattr(self.par_env, "render_mode", None) == "rgb_array" else None
        return [frame] * self.num_envs


def make_shared_vec_env(scenario: Scenario, seed: int = 0, monitor: bool = True) -> VecEnv:
    """A parameter-sharing VecEnv (one slot per agent) over the scenario env's PettingZoo parallel entry point.

    The simulation runs in this process (one libsumo simulation); with ``monitor`` the result is wrapped in SB3's
    VecMonitor so each agent's episode return and length are logged.
    """
    entry = scenario.spec.parallel_entry_point
    if entry is None:
        raise ValueError(f"{scenario.env} declares no PettingZoo parallel entry point: it has a single agent")
    module, name = entry.split(":")
    venv: VecEnv = PettingZooVecEnv(getattr(importlib.import_module(module), name)(**dict(scenario.params)))
    venv.seed(seed)
    return VecMonitor(venv) if monitor else venv
