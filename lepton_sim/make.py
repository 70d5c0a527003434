"""Scenario -> Gymnasium env: the one way every domain's envs are built (CLI, training, evaluation, users)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from lepton_sim.envs.observation_pipeline import native_vector_form
from lepton_sim.envs.perceived_observation import PERCEIVED, VectorPerceivedObservation
from lepton_sim.errors import LeptonError, ScenarioError
from lepton_sim.scenario import Scenario, load_scenario

ScenarioLike = str | Path | Scenario


def make(scenario: ScenarioLike, render_mode: str | None = None, **param_overrides: Any) -> gymnasium.Env:
    """Build the scenario's env (with its episode limit). Keyword arguments override env params."""
    sc = load_scenario(scenario, **param_overrides)
    with building(sc):
        return gymnasium.make(sc.env, max_episode_steps=sc.max_episode_steps, render_mode=render_mode, **sc.params)


@contextmanager
def building(scenario: Scenario) -> Iterator[None]:
    """An env constructor's refusal (a network with the wrong number of signals, a file SUMO cannot load, a
    second libsumo simulation) as one ScenarioError naming the scenario, instead of a traceback."""
    try:
        yield
    except LeptonError:
        raise
    except (ValueError, RuntimeError) as err:
        raise ScenarioError(
            f"{scenario.source or scenario.name}: cannot build {scenario.env}: {' '.join(str(err).split())}"
        ) from err


def vectorization_mode(scenario: Scenario, num_envs: int) -> str:
    """'vector_entry_point' for envs batched natively in numpy (in an obs mode their vector env can produce),
    'async' for one-simulation-per-process simulators (libsumo), else 'sync'."""
    spec = scenario.spec
    if native_vector_form(spec.id, scenario.params.get("obs_mode", "state")):
        return "vector_entry_point"
    if spec.max_envs_per_process is not None and num_envs > spec.max_envs_per_process:
        return "async"
    return "sync"


def make_vec(
    scenario: ScenarioLike,
    num_envs: int,
    render_mode: str | None = None,
    mode: str | None = None,
    autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP,
    **param_overrides: Any,
) -> VectorEnv:
    """A Gymnasium vector env of ``num_envs`` copies of the scenario.

    ``mode`` forces 'sync', 'async' or 'vector_entry_point'; by default :func:`vectorization_mode` picks.
    ``autoreset_mode`` is Gymnasium's (SB3 training uses SAME_STEP, which keeps the final observation in info).
    """
    sc = load_scenario(scenario, **param_overrides)
    mode = mode or vectorization_mode(sc, num_envs)
    if mode == "vector_entry_point":
        with building(sc):
            return gymnasium.make_vec(
                sc.env,
                num_envs=num_envs,
                vectorization_mode="vector_entry_point",
                max_episode_steps=sc.max_episode_steps,
                render_mode=render_mode,
                autoreset_mode=autoreset_mode,
                **sc.params,
            )
    if sc.params.get("obs_mode") == PERCEIVED:
        return _perceived_vec(sc, num_envs, render_mode, mode, autoreset_mode)
    env_fns = [partial(make, sc, render_mode) for _ in range(num_envs)]
    if mode == "async":
        return AsyncVectorEnv(env_fns, context="spawn", autoreset_mode=autoreset_mode)
    if mode == "sync":
        return SyncVectorEnv(env_fns, autoreset_mode=autoreset_mode)
    raise ValueError(f"unknown vectorization mode {mode!r}; allowed: sync, async, vector_entry_point")


def _perceived_vec(
    scenario: Scenario, num_envs: int, render_mode: str | None, mode: str, autoreset_mode: AutoresetMode
) -> VectorEnv:
    """``perceived`` on a sync or async vector env: the worlds render ``state+pixels`` and the perception model
    runs here, once per step on every world's image (not once per world on one image each)."""
    if mode not in ("sync", "async"):
        raise ValueError(f"unknown vectorization mode {mode!r}; allowed: sync, async, vector_entry_point")
    pixels = scenario.with_params({"obs_mode": "state+pixels", "perception": None})
    env_fns = [partial(make, pixels, render_mode) for _ in range(num_envs)]
    if mode == "async":
        venv: VectorEnv = AsyncVectorEnv(env_fns, context="spawn", autoreset_mode=autoreset_mode)
    else:
        venv = SyncVectorEnv(env_fns, autoreset_mode=autoreset_mode)
    try:
        with building(scenario):
            return VectorPerceivedObservation(venv, scenario.spec.params_model(**scenario.params))
    except BaseException:
        venv.close()
        raise
