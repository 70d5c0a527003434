"""RLlib RLModules behind lepton-sim's Policy interface, for inference only and without Ray running.

What RLlib's env-runner pipeline does around the module, done here the same way (so the actions equal those
RLlib's own pipeline takes for the same observations; tests/test_rllib_training.py checks it):

1. env-to-module: Dict (goal-conditioned) observations flattened as ``FlattenObservations`` flattens them
   (``gymnasium.spaces.flatten``: Dict keys in the space's order), as float32; uint8 camera images scaled to
   [0, 1] as the training env did (lepton_sim.agents.rllib.envs.ScaledImages); with ``normalize: true`` then
   normalised with the checkpoint's frozen MeanStdFilter statistics (per agent in multi-agent runs);
2. ``forward_inference`` -> ``action_dist_inputs`` -> the module's inference distribution, made deterministic
   (argmax for Discrete/MultiDiscrete, the mean for PPO's Gaussian, ``tanh(mean)`` for SAC's squashed one);
3. module-to-env: with ``normalize_actions`` (RLlib's default) Box actions are unsquashed from [-1, 1] to the
   env's bounds and clipped (``unsquash_action``); with ``clip_actions`` clipped; integer spaces shifted by
   their ``start``.

Modules are rebuilt from the checkpoint's lepton-sim record (RLlib's own classes from an allow-list, the spaces
and model_config as JSON, the weights as npz), so loading unpickles nothing; ``trust_pickle`` loads the module
with ``RLModule.from_checkpoint`` instead.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from lepton_sim.agents.rllib.envs import scale_images
from lepton_sim.agents.rllib.record import (
    CATALOG_CLASSES,
    MODULE_CLASSES,
    CheckpointRecord,
    ModuleRecord,
    ObsNormalization,
    read_record,
    read_weights,
)
from lepton_sim.errors import LeptonError
from lepton_sim.policy import Policy

MODULE_DIR = ("learner_group", "learner", "rl_module")  # inside an algorithm checkpoint


def _import(path: str, allowed: set[str], what: str) -> Any:
    if path not in allowed:
        raise LeptonError(
            f"the checkpoint record names {what} {path!r}, which lepton-sim does not build without unpickling "
            f"(allowed: {', '.join(sorted(allowed))}); load it with --trust-pickle if it comes from a trusted source"
        )
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def build_module(module: ModuleRecord) -> Any:
    """An inference-only RLModule of the recorded class, spaces and model_config (random weights)."""
    from lepton_sim.agents.rllib.perception_encoder import inference_model_config

    module_class = _import(module.module_class, MODULE_CLASSES, "the RLModule class")
    rl_module = module_class(
        observation_space=module.observation_space,
        action_space=module.action_space,
        inference_only=True,
        model_config=inference_model_config(dict(module.model_config)),
        catalog_class=_import(module.catalog_class, CATALOG_CLASSES, "the catalog class"),
    )
    rl_module.eval()
    return rl_module


def load_modules(folder: Path, record: CheckpointRecord, trust_pickle: bool = False) -> dict[str, Any]:
    """Every module of the checkpoint at ``folder``, with its weights."""
    modules = {}
    for mid, module in record.modules.items():
        if trust_pickle:
            from ray.rllib.core.rl_module.rl_module import RLModule

            path = Path(folder).resolve().joinpath(*MODULE_DIR, mid)
            if not path.is_dir():
                raise LeptonError(f"{folder}: no RLModule folder {path}")
            rl_module = RLModule.from_checkpoint(str(path))
            rl_module.eval()
        else:
            rl_module = build_module(module)
            rl_module.set_state(read_weights(folder, module))
        modules[mid] = rl_module
    return modules


def flatten_batch(space: spaces.Space, observation: Any) -> np.ndarray:
    """A batch of observations of ``space`` flattened as RLlib's FlattenObservations does, as float32."""
    if isinstance(space, spaces.Dict):
        n = len(next(iter(observation.values())))
        return np.concatenate(
            [flatten_batch(sub, observation[key]).reshape(n, -1) for key, sub in space.spaces.items()], axis=1
        ).astype(np.float32)
    if isinstance(space, spaces.Box):
        obs = np.asarray(observation, np.float32)
        return obs.reshape(len(obs), -1)
    return np.stack([spaces.flatten(space, o) for o in observation]).astype(np.float32)


def postprocess(actions: np.ndarray, space: spaces.Space, normalize: bool, clip: bool) -> np.ndarray:
    """RLlib's module-to-env step for one batch of actions of ``space`` (see the module docstring)."""
    from ray.rllib.utils.spaces.space_utils import clip_action, unsquash_action

    if isinstance(space, spaces.Box):
        if normalize:
            return np.stack([unsquash_action(a, space) for a in actions]).astype(space.dtype)
        if clip:
            return np.stack([clip_action(a, space) for a in actions]).astype(space.dtype)
        return actions.astype(space.dtype)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return (np.asarray(actions, np.int64) + np.asarray(space.start, np.int64)).astype(np.int64)
    return actions


class ModuleActor:
    """One RLModule: a batch of (flat) observations -> a batch of the module's raw deterministic actions."""

    def __init__(self, rl_module: Any) -> None:
        self.module = rl_module

    def set_weights(self, state: Mapping[str, np.ndarray]) -> None:
        self.module.set_state(dict(state))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        import torch
        from ray.rllib.core import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)})
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            return dist.to_deterministic().sample().cpu().numpy()


class RLlibPolicy(Policy):
    """A single-agent RLlib module acting in the env it was trained on (or, for ``multi_agent: shared``, one
    agent's padded observation -> one agent's action; lepton_sim.multi_agent.SharedPolicy acts for all)."""

    def __init__(self, record: CheckpointRecord, module_id: str, actor: ModuleActor, per_agent: bool = False) -> None:
        self.record, self.module_id, self.actor = record, module_id, actor
        self.name = f"rllib-{record.algo}"
        module = record.modules[module_id]
        if per_agent:  # the shared module's own spaces (the padded agent view)
            self.observation_space, self.action_space = module.observation_space, module.action_space
        else:
            self.observation_space, self.action_space = record.observation_space, record.action_space
        self._module_action_space = module.action_space
        self._flatten = record.flatten_observations and not per_agent
        self._scale = record.scale_images and not per_agent
        self._per_agent = per_agent

    def _normalize_rows(self, norm: ObsNormalization, rows: np.ndarray) -> np.ndarray:
        """Shared module: RLlib keeps one filter per agent, and lepton_sim.multi_agent.SharedPolicy hands over
        every env's agents in env order (row k is agent k mod n_agents)."""
        agents = self.record.agents
        if rows.ndim != 2 or len(rows) % len(agents):
            raise LeptonError(
                f"a shared policy with per-agent observation normalisation for {len(agents)} agents got rows of "
                f"shape {rows.shape}; expected (n_envs * {len(agents)}, width), agents in env order"
            )
        grid = rows.reshape(-1, len(agents), rows.shape[1])
        out = np.stack([norm.apply(a, grid[:, i]) for i, a in enumerate(agents)], axis=1)
        return out.reshape(rows.shape)

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        space = self.observation_space
        assert space is not None
        if self._flatten:
            obs = flatten_batch(space, observation)
        elif self._scale:
            obs = scale_images(observation)
        else:
            obs = np.asarray(observation)
        norm = self.record.obs_normalization
        if norm is not None:
            obs = self._normalize_rows(norm, obs) if self._per_agent else norm.apply(None, obs)
        raw = self.actor(np.asarray(obs, np.float32))
        return postprocess(raw, self.action_space, self.record.normalize_actions, self.record.clip_actions), state


class IndependentPolicy(Policy):
    """One RLlib module per agent (``multi_agent: independent``) acting in the joint env: agent i's row of the
    stacked, zero-padded observation, cut to its own width, goes through its module; actions are stacked in env
    order into the joint MultiDiscrete action."""

    def __init__(self, record: CheckpointRecord, actors: Mapping[str, ModuleActor]) -> None:
        self.record, self.actors = record, dict(actors)
        self.name = f"rllib-{record.algo}-independent"
        self.observation_space, self.action_space = record.observation_space, record.action_space
        self.agents = list(record.agents)
        self.modules = [record.agent_to_module[a] for a in self.agents]
        self.widths = [int(np.prod(record.modules[m].observation_space.shape)) for m in self.modules]

    def act(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        *,
        info: Mapping[str, Any] | None = None,
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation, np.float32)
        if obs.ndim != 3 or obs.shape[1] != len(self.agents):
            raise LeptonError(
                f"an independent multi-agent policy for {len(self.agents)} agents got observations of shape "
                f"{obs.shape}; expected (n_envs, {len(self.agents)}, width)"
            )
        columns = []
        norm = self.record.obs_normalization
        for i, (mid, width) in enumerate(zip(self.modules, self.widths)):
            rows = obs[:, i, :width] if norm is None else norm.apply(self.agents[i], obs[:, i, :width])
            raw = self.actors[mid](np.asarray(rows, np.float32))
            columns.append(postprocess(raw, self.record.modules[mid].action_space, False, False).reshape(-1))
        return np.stack(columns, axis=1).astype(np.int64), state


def policy_from_actors(record: CheckpointRecord, actors: Mapping[str, ModuleActor]) -> Policy:
    """The Policy for a record's modules: per-agent for shared (the core wraps it in SharedPolicy when it
    loads a run), joint for independent, the env's own otherwise."""
    if record.multi_agent == "independent":
        return IndependentPolicy(record, actors)
    (mid,) = record.modules
    return RLlibPolicy(record, mid, actors[mid], per_agent=record.multi_agent == "shared")


def load_rllib_policy(folder: Path, trust_pickle: bool = False) -> Policy:
    """A Policy from a checkpoint folder of a lepton-sim rllib run (model/, best_model/ or a checkpoint)."""
    folder = Path(folder)
    record = read_record(folder)
    modules = load_modules(folder, record, trust_pickle)
    return policy_from_actors(record, {mid: ModuleActor(m) for mid, m in modules.items()})
