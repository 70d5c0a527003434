"""One observation pipeline for every lepton-sim env: a scenario's ``obs_mode`` is built here, by wrappers.

Why: a base env produces its state observation (and, where it has cameras, named camera images); what an agent
observes is the ``obs_mode``. :func:`registration.register` points each id's Gymnasium ``entry_point`` at
:func:`make_env` and its ``vector_entry_point`` at :func:`make_vector_env` (with the id in the kwargs), so plain
``gymnasium.make(id, obs_mode=...)`` / ``gymnasium.make_vec`` and ``lepton_sim.make`` / ``make_vec`` give the
same observations. ``env.unwrapped`` is always the base env; mode ``state`` adds no wrapper at all.

Adding a mode: an entry in :data:`STAGES` (a wrapper for single envs; one for native vector envs, if any) and the
mode's name in the env's ``params_model.OBS_MODES`` (which ``LeptonEnvSpec.obs_modes`` reports).

Camera modes on a native vector env need its batched ``camera_images``; where it has none,
:func:`native_vector_form` says so and ``lepton_sim.make_vec`` vectorises with ``sync`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv

from lepton_sim.envs.perceived_observation import perceived_observation, vector_perceived_observation
from lepton_sim.envs.pixel_observation import pixel_observation, state_pixel_observation
from lepton_sim.envs.registration import ENV_ID_KWARG, LEPTON_ENVS
from lepton_sim.envs.vector_pixel_observation import has_batched_cameras, vector_pixel_observation

__all__ = ["ENV_ID_KWARG", "STAGES", "ObsStage", "make_env", "make_vector_env", "native_vector_form"]


def _unchanged(env: Any) -> Any:
    return env


def _unchanged_vector(venv: VectorEnv, autoreset_mode: AutoresetMode) -> VectorEnv:
    return venv


@dataclass(frozen=True)
class ObsStage:
    """How one obs mode is built on top of a base env (``single``) and a native vector env (``vector``).

    ``vector`` (None where there is no native vector form) gets the vector env and the autoreset mode the caller
    asked for; a stage with ``same_step_inside`` produces SAME_STEP's ``final_obs`` itself, from an inner env
    built with DISABLED autoreset (a wrapper cannot see a final observation the env has already reset away).
    ``needs_batched_cameras``: the native vector env must have ``camera_images``.
    """

    single: Callable[[gymnasium.Env], gymnasium.Env]
    vector: Callable[[VectorEnv, AutoresetMode], VectorEnv] | None = None
    same_step_inside: bool = False
    needs_batched_cameras: bool = False


STAGES: dict[str, ObsStage] = {
    "state": ObsStage(single=_unchanged, vector=_unchanged_vector),
    "pixels": ObsStage(
        single=pixel_observation,
        vector=vector_pixel_observation(include_state=False),
        same_step_inside=True,
        needs_batched_cameras=True,
    ),
    "state+pixels": ObsStage(
        single=state_pixel_observation,
        vector=vector_pixel_observation(include_state=True),
        same_step_inside=True,
        needs_batched_cameras=True,
    ),
    # a perception model's state estimate from state+pixels' image (perceived_observation)
    "perceived": ObsStage(
        single=perceived_observation,
        vector=vector_perceived_observation,
        same_step_inside=True,
        needs_batched_cameras=True,
    ),
}


def native_vector_form(env_id: str, obs_mode: str) -> bool:
    """Whether ``env_id`` has a native vector env that can produce ``obs_mode`` (else vectorise with 'sync')."""
    spec = LEPTON_ENVS[env_id]
    stage = STAGES.get(obs_mode)
    if spec.vector_entry_point is None or stage is None or stage.vector is None:
        return False
    return not stage.needs_batched_cameras or has_batched_cameras(load_env_creator(spec.vector_entry_point))


def make_env(**kwargs: Any) -> gymnasium.Env:
    """Gymnasium entry point: the base env of ``kwargs[ENV_ID_KWARG]`` with its ``obs_mode`` applied."""
    spec = LEPTON_ENVS[kwargs.pop(ENV_ID_KWARG)]
    env: Any = load_env_creator(spec.entry_point)(**kwargs)  # validates every kwarg, obs_mode included
    return STAGES[env.params.obs_mode].single(env)


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """Gymnasium vector entry point: the native vector env of ``kwargs[ENV_ID_KWARG]`` with its ``obs_mode``."""
    spec = LEPTON_ENVS[kwargs.pop(ENV_ID_KWARG)]
    if spec.vector_entry_point is None:
        raise ValueError(f"{spec.id} has no native vector env; use vectorization_mode 'sync' or 'async'")
    mode = kwargs.get("obs_mode", "state")
    stage = STAGES.get(mode)
    if stage is not None and not native_vector_form(spec.id, mode):
        raise ValueError(
            f"obs_mode {mode!r} has no native vector form for {spec.id} yet; "
            f"use vectorization_mode 'sync' (lepton_sim.make_vec(..., mode='sync'))"
        )
    autoreset = AutoresetMode(kwargs.get("autoreset_mode", AutoresetMode.NEXT_STEP))
    if stage is not None and stage.same_step_inside and autoreset == AutoresetMode.SAME_STEP:
        kwargs["autoreset_mode"] = AutoresetMode.DISABLED
    venv: Any = load_env_creator(spec.vector_entry_point)(num_envs=num_envs, **kwargs)  # validates obs_mode
    assert stage is not None and stage.vector is not None  # a mode without a stage fails validation above
    return stage.vector(venv, autoreset)
