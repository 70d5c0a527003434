"""Scenario -> SB3 VecEnv: native numpy-batched envs through an adapter, others through SB3's own VecEnvs; a suite
run's rows -> one VecEnv that concatenates each row's (:class:`ConcatVecEnv`)."""

from __future__ import annotations

from functools import partial
from typing import Any, Iterable, Sequence

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

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


class ConcatVecEnv(VecEnv):
    """Several VecEnvs with the same spaces as one: env i of the whole is env i - offset of the part it falls in.

    Each part keeps its own autoreset (SB3's: the next episode's first observation, the last one in the info's
    ``terminal_observation``), so the whole behaves as one VecEnv of the parts' envs side by side; a row of
    natively batched driving worlds stays one numpy batch (lane-keep and obstacle-avoid, 24 worlds each: ~12,000
    steps/s, 7-10x a DummyVecEnv of the same 48 single envs; one batch of 48 of either alone: 15,000-26,000,
    loaded 2-core machine, CPU time). Seeds given to the whole go to the parts by position: env i's first episode has
    seed ``seed + i``, as in one VecEnv of all the envs; steps go to all parts before any is awaited, so
    subprocess parts step in parallel."""

    def __init__(self, parts: Sequence[VecEnv]) -> None:
        if not parts:
            raise ValueError("ConcatVecEnv needs at least one VecEnv")
        first = parts[0]
        for part in parts[1:]:
            if part.observation_space != first.observation_space or part.action_space != first.action_space:
                raise ValueError("ConcatVecEnv: every part must have the same observation and action spaces")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [p.num_envs for p in self.parts]).tolist()
        super().__init__(self.offsets[-1], first.observation_space, first.action_space)

    def _slices(self) -> Iterable[tuple[VecEnv, int, int]]:
        for part, start, stop in zip(self.parts, self.offsets, self.offsets[1:]):
            yield part, start, stop

    def reset(self) -> VecEnvObs:
        for part, start, stop in self._slices():
            if any(s is not None for s in self._seeds):
                part._seeds = list(self._seeds[start:stop])
            part._options = list(self._options[start:stop])
        obs = [part.reset() for part in self.parts]
        self._reset_seeds()
        self._reset_options()
        return _concat_obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        for part, start, stop in self._slices():
            part.step_async(actions[start:stop])

    def step_wait(self) -> VecEnvStepReturn:
        results = [part.step_wait() for part in self.parts]
        obs = _concat_obs([r[0] for r in results])
        rewards = np.concatenate([r[1] for r in results])
        dones = np.concatenate([r[2] for r in results])
        infos = [info for r in results for info in r[3]]
        return obs, rewards, dones, infos

    def close(self) -> None:
        for part in self.parts:
            part.close()

    def _by_part(self, indices: VecEnvIndices) -> list[tuple[VecEnv, list[int], list[int]]]:
        """(part, local indices, positions in the answer) for each part the indices reach."""
        wanted = list(self._get_indices(indices))
        out = []
        for part, start, stop in self._slices():
            positions = [k for k, i in enumerate(wanted) if start <= i < stop]
            if positions:
                out.append((part, [wanted[k] - start for k in positions], positions))
        return out

    def _gather(self, indices: VecEnvIndices, call: Any) -> list[Any]:
        wanted = list(self._get_indices(indices))
        answer: list[Any] = [None] * len(wanted)
        for part, local, positions in self._by_part(wanted):
            for position, value in zip(positions, call(part, local)):
                answer[position] = value
        return answer

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return self._gather(indices, lambda part, local: part.get_attr(attr_name, local))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for part, local, _ in self._by_part(indices):
            part.set_attr(attr_name, value, local)

    def env_method(self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list[Any]:
        return self._gather(indices, lambda part, local: part.env_method(method_name, *args, indices=local, **kwargs))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return self._gather(indices, lambda part, local: part.env_is_wrapped(wrapper_class, local))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [image for part in self.parts for image in part.get_images()]


def _concat_obs(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(parts[0])))
    return np.concatenate(parts)


def make_sb3_mixture(rows: Sequence[tuple[Scenario, int]], seed: int, multi_agent: str | None = None) -> VecEnv:
    """One VecEnv over a suite run's rows, ``(scenario, envs)`` each, every row built as
    :func:`make_sb3_vec_env` builds one scenario (env i's first seed ``seed + i``). One row is that row's VecEnv."""
    if len(rows) == 1:
        return make_sb3_vec_env(rows[0][0], rows[0][1], seed, multi_agent)
    parts: list[VecEnv] = []
    try:
        for scenario, n_envs in rows:
            parts.append(make_sb3_vec_env(scenario, n_envs, seed + sum(p.num_envs for p in parts), multi_agent))
        venv = ConcatVecEnv(parts)
    except BaseException:
        for part in parts:
            part.close()
        raise
    venv.seed(seed)
    return venv
