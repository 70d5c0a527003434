"""Scenario -> SB3 VecEnv: native numpy-batched envs through an adapter, others through SB3's own VecEnvs."""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from lepton_sim.agents.sb3.pettingzoo_vec import make_shared_vec_env
from lepton_sim.evaluation import sub_env_info
from lepton_sim.make import make, make_vec, vectorization_mode
from lepton_sim.scenario import Scenario


class GymnasiumVecEnvAdapter(VecEnv):
    """Present a Gymnasium ``VectorEnv`` (same-step autoreset) as an SB3 ``VecEnv``.

    SB3 wants, for a finished episode, the next episode's first observation plus ``terminal_observation`` in
    that env's info: exactly Gymnasium's SAME_STEP autoreset with ``final_obs`` / ``final_info``.
    """

    def __init__(self, venv: VectorEnv) -> None:
        if venv.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError("GymnasiumVecEnvAdapter needs a vector env with autoreset_mode=SAME_STEP")
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    def reset(self) -> Any:
        seeds = [s for s in self._seeds] if any(s is not None for s in self._seeds) else None
        obs, _ = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        infos = [sub_env_info(info, i) for i in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            final = info.get("final_info", {})
            infos[i] = {**infos[i], **sub_env_info(final, i)} if final else infos[i]
            infos[i]["terminal_observation"] = _index(info["final_obs"], i)
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        result = getattr(self.venv, method_name)(*args, **kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


def _index(batch: Any, i: int) -> Any:
    if isinstance(batch, dict):
        return {k: _index(v, i) for k, v in batch.items()}
    return batch[i]


def make_sb3_vec_env(scenario: Scenario, n_envs: int, seed: int, multi_agent: str | None = None) -> VecEnv:
    """The fastest SB3 VecEnv for the scenario: native batched env, subprocesses for simulators that allow one
    simulation per process (libsumo), else SB3's in-process DummyVecEnv. ``multi_agent="shared"``: one slot per
    agent of one simulation (n_envs does not apply)."""
    if multi_agent == "shared":
        return make_shared_vec_env(scenario, seed=seed, monitor=False)
    mode = vectorization_mode(scenario, n_envs)
    if mode == "vector_entry_point":
        venv: VecEnv = GymnasiumVecEnvAdapter(make_vec(scenario, n_envs, autoreset_mode=AutoresetMode.SAME_STEP))
    elif scenario.spec.max_envs_per_process is not None:  # training and eval envs must not share a process
        venv = SubprocVecEnv([partial(make, scenario) for _ in range(n_envs)], start_method="spawn")
    else:
        venv = DummyVecEnv([partial(make, scenario) for _ in range(n_envs)])
    venv.seed(seed)
    return venv
