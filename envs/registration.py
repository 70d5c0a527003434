"""One place that knows every lepton-sim environment: its Gymnasium id, entry points and parameter schema.

Each domain package (``driving``, ``manufacturing``, ``traffic``) calls :func:`register` for its envs on import.
The scenario loader uses :data:`LEPTON_ENVS` to validate a scenario's ``params`` against the env's pydantic model,
so a wrong field is reported with the scenario file and field path before any simulator starts.

Gymnasium's registry gets the observation pipeline's factories (``observation_pipeline.make_env`` /
``make_vector_env``, with the id in the kwargs) instead of the base classes, so ``obs_mode`` is applied the same
way by ``gymnasium.make``, ``gymnasium.make_vec`` and ``lepton_sim.make``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium
from pydantic import BaseModel

PIPELINE = "lepton_sim.envs.observation_pipeline"
ENV_ID_KWARG = "lepton_id"  # the registry kwarg that tells the pipeline's factories which env to build


@dataclass(frozen=True)
class LeptonEnvSpec:
    """What lepton-sim needs to know about an env beyond Gymnasium's own registry entry."""

    id: str
    domain: str  # "driving" | "manufacturing" | "traffic"
    entry_point: str  # the base env, "module:Class" (state observation and cameras), imported lazily
    params_model: type[BaseModel]  # validates the env's keyword arguments (scenario ``params``)
    max_episode_steps: int | None = None
    vector_entry_point: str | None = None  # native numpy-batched VectorEnv, if the env has one
    max_envs_per_process: int | None = None  # e.g. 1 for libsumo: vectorise with subprocesses
    # the simulator keeps state from one episode to the next inside a process (libsumo, SUMO 1.28: the same seed
    # can give another result after other episodes), so evaluation runs each batch in fresh worker processes
    isolate_episodes: bool = False
    # several agents: a PettingZoo ParallelEnv class ("module:Class") over the same simulation, one agent each
    # (training with one policy shared by every agent uses it); None for single-agent envs
    parallel_entry_point: str | None = None
    # what the info metrics are, so evaluation's confidence intervals fit them (lepton_sim.stats): the range a
    # metric lies in, e.g. {"route_completion": (0, 1), "never_inserted": (0, inf)} (intervals are clipped to it),
    # and the 0/1 flags, e.g. {"collision"} (Wilson intervals, as for the success rate)
    metric_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    binary_metrics: frozenset[str] = frozenset()
    # each metric's unit where it has one, e.g. {"mean_delay": "s", "parts_per_minute": "1/min"}: reports and
    # comparisons name their columns with it ("mean_delay [s]"); shares and 0/1 flags have none
    metric_units: dict[str, str] = field(default_factory=dict)
    # the info keys ``lepton-sim rollout`` writes over its video, each with its unit ("" for none), e.g.
    # {"speed": "m/s"}: the domain's key signal, read at every step beside time, step and reward
    overlay_keys: dict[str, str] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def obs_modes(self) -> tuple[str, ...]:
        """The observation modes the env supports (its params schema validates ``obs_mode`` against them)."""
        return tuple(getattr(self.params_model, "OBS_MODES", ("state",)))


LEPTON_ENVS: dict[str, LeptonEnvSpec] = {}


def register(spec: LeptonEnvSpec) -> None:
    """Register ``spec`` with Gymnasium (through the observation pipeline) and with lepton-sim's own table."""
    from lepton_sim.envs.observation_pipeline import STAGES

    unknown = [mode for mode in spec.obs_modes if mode not in STAGES]
    if unknown:
        raise ValueError(
            f"{spec.id}: obs modes {unknown} have no stage in the observation pipeline; known: {', '.join(STAGES)}"
        )
    LEPTON_ENVS[spec.id] = spec
    if spec.id in gymnasium.registry:
        return
    gymnasium.register(
        id=spec.id,
        entry_point=f"{PIPELINE}:make_env",
        vector_entry_point=f"{PIPELINE}:make_vector_env" if spec.vector_entry_point else None,
        max_episode_steps=spec.max_episode_steps,
        kwargs={ENV_ID_KWARG: spec.id, **spec.kwargs},
    )
