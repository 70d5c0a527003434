"""Scenario -> the env every RLlib env runner builds for itself (in its own process, from plain data).

RLlib calls :func:`create_env` (a module-level function, so a remote runner imports it by name instead of needing
a registration made in the driver) with ``env_config`` = :func:`env_config` of the run:

- single-agent: always through ``gym_env_vectorize_mode="vector_entry_point"``, so the call carries
  ``num_envs`` and returns a Gymnasium ``VectorEnv`` with NEXT_STEP autoreset (what RLlib's env runner expects):
  the native numpy-batched env where the spec has one for the obs mode (driving), else a ``SyncVectorEnv``;
- multi-agent (``multi_agent`` shared | independent): the scenario's PettingZoo parallel env through RLlib's
  ``ParallelPettingZooEnv``; for ``shared`` every agent's observation is zero-padded to the widest and its action
  is ``Discrete(max n)`` mapped into the agent's own range (lepton_sim.envs.padding, as SB3's shared training and
  :class:`lepton_sim.multi_agent.SharedPolicy` do).

Camera images (``obs_mode: pixels``, uint8 HWC) reach RLlib's CNN encoder as float32 in [0, 1]
(:class:`ScaledImages`); the loaded policy scales them the same way.

Seeds: RLlib resets a runner's env once with ``seed + worker_index`` and Gymnasium's vector envs would give
sub-env i ``seed + i``, so runner 1 / sub-env 1 would replay runner 2 / sub-env 0. :class:`DerivedSeeds` turns
the one seed into independent per-sub-env seeds (``numpy.random.SeedSequence(seed).spawn(n)``), so no two runners
or sub-envs share a seed.

Failures: an env that raises is reported once through :func:`record_env_error` (Ray's key-value store, so it
works from any node) before the error goes on to RLlib, and the trainer quotes it when runners stop sampling.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper

from lepton_sim.envs.padding import agent_actions, pad_rows, padded_action_space, padded_observation_space
from lepton_sim.errors import LeptonError
from lepton_sim.make import make, make_vec, vectorization_mode
from lepton_sim.scenario import Scenario, scenario_from_dict

ERROR_NAMESPACE = "lepton_sim_env_errors"  # Ray internal KV namespace: run id -> the last env error (one line)
FAIL_AFTER_KEY = "_lepton_fail_after_steps"  # tests: an env config key that makes the env raise after N steps


def env_config(scenario: Scenario, multi_agent: str | None, run_id: str, fail_after: int | None = None) -> dict:
    """The JSON-able ``env_config`` of a run: the resolved scenario, the multi-agent mode, the run's id."""
    config: dict[str, Any] = {
        "scenario": scenario.model_dump(mode="json"),
        "scenario_source": scenario.source,
        "multi_agent": multi_agent,
        "run_id": run_id,
    }
    if fail_after is not None:
        config[FAIL_AFTER_KEY] = int(fail_after)
    return config


def scenario_of(config: Mapping[str, Any]) -> Scenario:
    return scenario_from_dict(config["scenario"], source=config.get("scenario_source") or "<rllib env_config>")


def create_env(config: Mapping[str, Any]) -> Any:
    """RLlib's env creator (see the module docstring)."""
    import lepton_sim  # noqa: F401  (registers the envs in a fresh runner process)

    scenario = scenario_of(config)
    run_id = str(config.get("run_id", ""))
    fail_after = config.get(FAIL_AFTER_KEY)
    if config.get("multi_agent") in ("shared", "independent"):
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        par_env = make_parallel_env(scenario, padded=config["multi_agent"] == "shared")
        if fail_after is not None:
            par_env = _FailingParallel(par_env, int(fail_after))
        return _Reporting(ParallelPettingZooEnv(par_env), run_id)
    num_envs = int(config.get("num_envs", 1))
    if vectorization_mode(scenario, num_envs) == "vector_entry_point":  # natively batched in this obs mode
        venv: VectorEnv = make_vec(
            scenario, num_envs, mode="vector_entry_point", autoreset_mode=AutoresetMode.NEXT_STEP
        )
    else:
        if scenario.spec.max_envs_per_process is not None and num_envs > scenario.spec.max_envs_per_process:
            raise LeptonError(
                f"{scenario.env} runs at most {scenario.spec.max_envs_per_process} simulation(s) per process; "
                f"got {num_envs} envs per env runner"
            )
        venv = SyncVectorEnv([lambda: make(scenario) for _ in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP)
    venv = DerivedSeeds(venv)
    if is_uint8_image(venv.single_observation_space):
        venv = ScaledImages(venv)
    if fail_after is not None:
        venv = _FailingVector(venv, int(fail_after))
    return _ReportingVector(venv, run_id)


def derived_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 31-bit seeds from one (numpy's SeedSequence spawning)."""
    return [int(child.generate_state(1)[0] >> 1) for child in np.random.SeedSequence(int(seed)).spawn(n)]


class DerivedSeeds(VectorWrapper):
    """``reset(seed=int)`` seeds sub-env i with ``derived_seeds(seed, n)[i]`` instead of ``seed + i``."""

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> Any:
        if isinstance(seed, (int, np.integer)):
            seed = derived_seeds(int(seed), self.num_envs)
        return self.env.reset(seed=seed, options=options)


def is_uint8_image(space: spaces.Space) -> bool:
    """A camera image (``obs_mode: pixels``): a uint8 Box of height x width x channels."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class ScaledImages(VectorWrapper):
    """uint8 camera images as float32 in [0, 1] (RLlib's CNN encoder takes float input and does not scale;
    the loaded policy scales the same way, lepton_sim.agents.rllib.policy)."""

    def __init__(self, env: VectorEnv) -> None:
        super().__init__(env)
        shape = env.single_observation_space.shape
        self.single_observation_space = spaces.Box(0.0, 1.0, shape, np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (env.num_envs, *shape), np.float32)

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        return scale_images(obs), info

    def step(self, actions: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return scale_images(obs), reward, terminated, truncated, info


def scale_images(obs: Any) -> np.ndarray:
    return np.asarray(obs, np.float32) / np.float32(255.0)


# ------------------------------------------------------------------------------------------------ multi-agent
def make_parallel_env(scenario: Scenario, padded: bool) -> Any:
    """The scenario's PettingZoo parallel env (one agent per signal), padded for parameter sharing if asked."""
    from gymnasium.envs.registration import load_env_creator

    entry = scenario.spec.parallel_entry_point
    if entry is None:
        raise LeptonError(f"{scenario.env} has a single agent; multi-agent modes need a PettingZoo parallel env")
    par_env = load_env_creator(entry)(**scenario.params)
    return PaddedParallelEnv(par_env) if padded else par_env


class PaddedParallelEnv:
    """A PettingZoo parallel env whose agents all see one padded Box and act in ``Discrete(max n)``."""

    def __init__(self, par_env: Any) -> None:
        self.par_env = par_env
        self.possible_agents = list(par_env.possible_agents)
        self.agents: list[str] = []
        self.metadata = getattr(par_env, "metadata", {})
        self.render_mode = getattr(par_env, "render_mode", None)
        obs_spaces = [par_env.observation_space(a) for a in self.possible_agents]
        act_spaces = [par_env.action_space(a) for a in self.possible_agents]
        self._obs_space = padded_observation_space(obs_spaces)
        self._act_space = padded_action_space(act_spaces)
        self.width = int(self._obs_space.shape[0])
        self.num_actions = {a: int(s.n) for a, s in zip(self.possible_agents, act_spaces)}

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def _pad(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {a: pad_rows([np.asarray(o, np.float32).ravel()], self.width)[0] for a, o in obs.items()}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self.agents = list(self.par_env.agents)
        return self._pad(obs), infos

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        own = {
            a: int(agent_actions(np.int64(act), np.int64(self.num_actions[a])))
            for a, act in actions.items()
            if a in self.num_actions
        }
        obs, rewards, terminations, truncations, infos = self.par_env.step(own)
        self.agents = list(self.par_env.agents)
        return self._pad(obs), rewards, terminations, truncations, infos

    def render(self) -> Any:
        return self.par_env.render()

    def close(self) -> None:
        self.par_env.close()

    @property
    def unwrapped(self) -> Any:
        return self.par_env


# ------------------------------------------------------------------------------------------------ failures
def record_env_error(run_id: str, err: BaseException) -> None:
    """Put one line about ``err`` where the trainer finds it (best effort; never raises)."""
    if not run_id:
        return
    try:
        from ray.experimental import internal_kv

        if internal_kv._internal_kv_initialized():
            text = " ".join(f"{type(err).__name__}: {err}".split())[:500]
            internal_kv._internal_kv_put(run_id, text, overwrite=True, namespace=ERROR_NAMESPACE)
    except Exception:  # noqa: BLE001  (reporting must not replace the env's own error)
        pass


def read_env_error(run_id: str) -> str | None:
    """The last env error recorded for ``run_id`` (None if there was none)."""
    try:
        from ray.experimental import internal_kv

        if not internal_kv._internal_kv_initialized():
            return None
        value = internal_kv._internal_kv_get(run_id, namespace=ERROR_NAMESPACE)
    except Exception:  # noqa: BLE001
        return None
    return value.decode() if isinstance(value, bytes) else value


class _ReportingVector(VectorWrapper):
    def __init__(self, env: VectorEnv, run_id: str) -> None:
        super().__init__(env)
        self.run_id = run_id

    def reset(self, **kwargs: Any) -> Any:
        try:
            return self.env.reset(**kwargs)
        except Exception as err:
            record_env_error(self.run_id, err)
            raise

    def step(self, actions: Any) -> Any:
        try:
            return self.env.step(actions)
        except Exception as err:
            record_env_error(self.run_id, err)
            raise


def _reporting_class() -> type:
    from ray.rllib.env.multi_agent_env import MultiAgentEnv

    class Reporting(MultiAgentEnv):
        """RLlib's multi-agent env with its errors recorded (see :func:`record_env_error`)."""

        def __init__(self, env: Any, run_id: str) -> None:
            super().__init__()
            self.env, self.run_id = env, run_id
            self.observation_space, self.action_space = env.observation_space, env.action_space
            self.agents, self.possible_agents = env.agents, env.possible_agents

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
            try:
                out = self.env.reset(seed=seed, options=options)
            except Exception as err:
                record_env_error(self.run_id, err)
                raise
            self.agents = self.env.agents
            return out

        def step(self, action_dict: Any) -> Any:
            try:
                out = self.env.step(action_dict)
            except Exception as err:
                record_env_error(self.run_id, err)
                raise
            self.agents = self.env.agents
            return out

        def close(self) -> None:
            self.env.close()

        def render(self) -> Any:
            return self.env.render()

    return Reporting


def _Reporting(env: Any, run_id: str) -> Any:  # noqa: N802  (a class built lazily: ray is imported here only)
    return _reporting_class()(env, run_id)


class _FailingVector(VectorWrapper):
    """Tests: raises after ``fail_after`` steps (an env crashing inside a remote runner)."""

    def __init__(self, env: VectorEnv, fail_after: int) -> None:
        super().__init__(env)
        self.fail_after, self.steps = fail_after, 0

    def step(self, actions: Any) -> Any:
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError(f"simulated env crash after {self.fail_after} steps")
        return self.env.step(actions)


class _FailingParallel:
    """Tests: a PettingZoo parallel env that raises after ``fail_after`` steps."""

    def __init__(self, par_env: Any, fail_after: int) -> None:
        self.inner, self.fail_after, self.steps = par_env, fail_after, 0
        self.possible_agents, self.agents = par_env.possible_agents, []
        self.metadata = getattr(par_env, "metadata", {})
        self.render_mode = getattr(par_env, "render_mode", None)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.inner.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.inner.action_space(agent)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        out = self.inner.reset(seed=seed, options=options)
        self.agents = list(self.inner.agents)
        return out

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.steps += 1
        if self.steps > self.fail_after:
            raise RuntimeError(f"simulated env crash after {self.fail_after} steps")
        out = self.inner.step(actions)
        self.agents = list(self.inner.agents)
        return out

    def close(self) -> None:
        self.inner.close()
