"""One place that knows every lepton-sim environment: its Gymnasium id, entry points and parameter schema.

Each domain package (``driving``, ``manufacturing``, ``traffic``) calls :func:`register` for its envs on import.
The scenario loader uses :data:`LEPTON_ENVS` to validate a scenario's ``params`` against the env's pydantic model,
so a wrong field is reported with the scenario file and field path before any simulator starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium
from pydantic import BaseModel


@dataclass(frozen=True)
class LeptonEnvSpec:
    """What lepton-sim needs to know about an env beyond Gymnasium's own registry entry."""

    id: str
    domain: str  # "driving" | "manufacturing" | "traffic"
    entry_point: str  # "module:Class", imported lazily by Gymnasium
    params_model: type[BaseModel]  # validates the env's keyword arguments (scenario ``params``)
    max_episode_steps: int | None = None
    vector_entry_point: str | None = None  # native numpy-batched VectorEnv, if the env has one
    max_envs_per_process: int | None = None  # e.g. 1 for libsumo: vectorise with subprocesses
    # the simulator keeps state from one episode to the next inside a process (libsumo, SUMO 1.28: the same seed
    # can give another result after other episodes), so evaluation runs each batch in fresh worker processes
    isolate_episodes: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)


LEPTON_ENVS: dict[str, LeptonEnvSpec] = {}


def register(spec: LeptonEnvSpec) -> None:
    """Register ``spec`` with Gymnasium and with lepton-sim's own table."""
    LEPTON_ENVS[spec.id] = spec
    if spec.id in gymnasium.registry:
        return
    gymnasium.register(
        id=spec.id,
        entry_point=spec.entry_point,
        vector_entry_point=spec.vector_entry_point,
        max_episode_steps=spec.max_episode_steps,
        kwargs=dict(spec.kwargs),
    )
