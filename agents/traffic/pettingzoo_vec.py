"""Parameter-shared multi-agent training: a PettingZoo Parallel env seen by SB3 as a VecEnv, one slot per agent.

Every signal of the network becomes one VecEnv "env", so a single SB3 policy (PPO) is trained on the experience
of all intersections at once (parameter sharing, as in RESCO's IPPO/MPLight-style baselines). Intersections can
differ (cologne3/8, ingolstadt*): observations are zero-padded to the widest and actions are ``Discrete(max P)``;
an action ``a`` for a signal with ``P_i`` phases means phase ``a mod P_i``. The same padding is used by
``lepton/TrafficNetwork-v0``'s stacked observation, so :class:`SharedPolicy` evaluates the trained model there
with lepton-sim's ordinary evaluation loop.

All agents share one simulation, so their episodes end together; the VecEnv then resets the simulation and
returns each agent's final observation as ``terminal_observation`` (a time-limit truncation).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from lepton_sim.agents.policy import Policy


def _pad(obs: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros(width, np.float32)
    out[:len(obs)] = obs
    return out


class PettingZooVecEnv(VecEnv):
    """SB3 VecEnv over the agents of one PettingZoo Parallel env (all agents act at every step)."""

    def __init__(self, par_env: Any) -> None:
        self.par_env = par_env
        self.agents = list(par_env.possible_agents)
        obs_spaces = [par_env.observation_space(a) for a in self.agents]
        act_spaces = [par_env.action_space(a) for a in self.agents]
        if not all(isinstance(s, spaces.Discrete) for s in act_spaces):
            raise ValueError("parameter sharing here needs Discrete actions for every agent")
        self.width = max(int(np.prod(s.shape)) for s in obs_spaces)
        self.num_phases = np.array([s.n for s in act_spaces], np.int64)
        low = min(float(np.min(s.low)) for s in obs_spaces)
        high = max(float(np.max(s.high)) for s in obs_spaces)
        observation_space = spaces.Box(min(low, 0.0), max(high, 0.0), (self.width,), np.float32)
        super().__init__(len(self.agents), observation_space, spaces.Discrete(int(self.num_phases.max())))
        self._actions: np.ndarray | None = None

    def _stack(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.stack([_pad(np.asarray(obs[a], np.float32).ravel(), self.width) for a in self.agents])

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
        phases = self._actions % self.num_phases
        obs, rewards, terminations, truncations, infos = self.par_env.step(
            {a: int(p) for a, p in zip(self.agents, phases)})
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


def make_shared_vec_env(scenario_params: Mapping[str, Any], seed: int = 0, monitor: bool = True) -> VecEnv:
    """A parameter-sharing VecEnv (one slot per signal) for a traffic scenario's env params.

    ``scenario_params`` are the scenario's ``params`` (TrafficParams keyword arguments). The simulation runs in
    this process (one libsumo simulation); with ``monitor`` the result is wrapped in SB3's VecMonitor so each
    agent's episode return and length are logged.
    """
    from lepton_sim.envs.traffic.grid_env import TrafficGridEnv

    venv: VecEnv = PettingZooVecEnv(TrafficGridEnv(**dict(scenario_params)))
    venv.seed(seed)
    return VecMonitor(venv) if monitor else venv


class SharedPolicy(Policy):
    """A model trained with :func:`make_shared_vec_env`, acting for every signal of ``lepton/TrafficNetwork-v0``
    (or ``TrafficSignal-v0``): each signal's padded observation row goes through the same network."""

    observation_space = None  # per-signal model: the evaluator's whole-observation shape check does not apply

    def __init__(self, model: Any, name: str = "shared-ppo", deterministic: bool = True,
                 obs_normalizer: Any = None) -> None:
        self.model, self.name, self.deterministic = model, name, deterministic
        self.obs_normalizer = obs_normalizer
        self._phases: np.ndarray | None = None
        self._discrete = False

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "SharedPolicy":
        """A PPO .zip; VecNormalize statistics saved beside it (``<stem>_vecnormalize.pkl``, lepton-sim's
        convention) are applied to observations."""
        import pickle

        from stable_baselines3 import PPO

        from lepton_sim.agents.sb3.callbacks import normalizer_path

        path = Path(path)
        stats = normalizer_path(path)
        normalizer = None
        if stats.is_file():
            with open(stats, "rb") as f:
                normalizer = pickle.load(f)
            normalizer.training = False
        return cls(PPO.load(str(path), device=device), name=f"shared-ppo:{path.stem}", obs_normalizer=normalizer)

    def reset(self, env: gymnasium.vector.VectorEnv, seeds: list[int]) -> None:
        space = env.single_action_space
        self._discrete = isinstance(space, spaces.Discrete)
        self._phases = np.atleast_1d(space.n if self._discrete else space.nvec).astype(np.int64)

    def act(self, observation: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        obs = np.asarray(observation, np.float32)
        if obs.ndim == 2:  # TrafficSignal-v0: (n_envs, D) -> one signal per env
            obs = obs[:, None, :]
        n_envs, n_signals, width = obs.shape
        expected = self.model.observation_space.shape[0]
        rows = np.zeros((n_envs * n_signals, expected), np.float32)
        rows[:, :min(width, expected)] = obs.reshape(n_envs * n_signals, width)[:, :expected]
        if self.obs_normalizer is not None:
            rows = self.obs_normalizer.normalize_obs(rows)
        action, _ = self.model.predict(rows, deterministic=self.deterministic)
        action = np.asarray(action, np.int64).reshape(n_envs, n_signals)
        if self._phases is not None:
            action = action % self._phases[None, :]
        return action[:, 0] if self._discrete else action
