"""One observation pipeline for every lepton-sim env: a scenario's ``obs_mode`` is built here, by wrappers.

Why: a base env produces its state observation (and, where it has cameras, named camera images); what an agent
observes is the ``obs_mode``. :func:`registration.register` points each id's Gymnasium ``entry_point`` at
:func:`make_env` and its ``vector_entry_point`` at :func:`make_vector_env` (with the id in the kwargs), so plain
``gymnasium.make(id, obs_mode=...)`` / ``gymnasium.make_vec`` and ``lepton_sim.make`` / ``make_vec`` give the
same observations. ``env.unwrapped`` is always the base env; mode ``state`` adds no wrapper at all.

Adding a mode: an entry in :data:`STAGES` (a wrapper for single envs; one for native vector envs, if any) and the
mode's name in the env's ``params_model.OBS_MODES`` (which ``LeptonEnvSpec.obs_modes`` reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import VectorEnv

from lepton_sim.envs.pixel_observation import pixel_observation
from lepton_sim.envs.registration import ENV_ID_KWARG, LEPTON_ENVS

__all__ = ["ENV_ID_KWARG", "STAGES", "ObsStage", "make_env", "make_vector_env"]


def _unchanged(env: Any) -> Any:
    return env


@dataclass(frozen=True)
class ObsStage:
    """How one obs mode is built on top of a base env (``single``) and a native vector env (``vector``).

    ``vector`` is None where no native vector form exists yet: a vector wrapper would also have to produce the
    final observation of an autoreset episode (``final_obs``), which only the vector env itself still sees.
    """

    single: Callable[[gymnasium.Env], gymnasium.Env]
    vector: Callable[[VectorEnv], VectorEnv] | None = None


STAGES: dict[str, ObsStage] = {
    "state": ObsStage(single=_unchanged, vector=_unchanged),
    "pixels": ObsStage(single=pixel_observation),
}


def make_env(**kwargs: Any) -> gymnasium.Env:
    """Gymnasium entry point: the base env of ``kwargs[ENV_ID_KWARG]`` with its ``obs_mode`` applied."""
    spec = LEPTON_ENVS[kwargs.pop(ENV_ID_KWARG)]
    env = load_env_creator(spec.entry_point)(**kwargs)  # validates every kwarg, obs_mode included
    return STAGES[env.params.obs_mode].single(env)


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """Gymnasium vector entry point: the native vector env of ``kwargs[ENV_ID_KWARG]`` with its ``obs_mode``."""
    spec = LEPTON_ENVS[kwargs.pop(ENV_ID_KWARG)]
    if spec.vector_entry_point is None:
        raise ValueError(f"{spec.id} has no native vector env; use vectorization_mode 'sync' or 'async'")
    venv = load_env_creator(spec.vector_entry_point)(num_envs=num_envs, **kwargs)
    mode = venv.params.obs_mode
    stage = STAGES[mode].vector
    if stage is None:
        venv.close()
        raise ValueError(
            f"obs_mode {mode!r} has no native vector form for {spec.id} yet; "
            f"use vectorization_mode 'sync' (lepton_sim.make_vec(..., mode='sync'))"
        )
    return stage(venv)
