"""The lepton-sim record beside (inside) every RLlib checkpoint: what evaluation needs besides the weights.

An RLlib checkpoint is an algorithm's whole state, cloudpickled (``class_and_ctor_args.pkl``), and its
RLModule alone does not say how to talk to the env: whether observations were flattened by an env-to-module
connector, how Box actions are unsquashed, which module acts for which agent. So every checkpoint folder a run
writes (``model/``, ``best_model/``, ``checkpoints/ckpt_<steps>_steps/``) also holds::

    lepton.json          format, Ray version, algorithm, scenario, the env's observation and action spaces (JSON),
                         observation flattening and image scaling, normalize_actions / clip_actions, the agents in env order, the
                         agent-to-module map, per module: RLlib class and catalog, its spaces, model_config, and
                         (``normalize: true``) how observations are normalised
    lepton_weights/      one .npz per module: the module's state dict as plain arrays (no pickle); with
                         ``normalize: true`` also obs_normalization.npz: the MeanStdFilter's mean and std per filter
                         (one per agent in multi-agent runs), frozen as they were when the checkpoint was written

With it a policy is rebuilt from RLlib's own classes (an allow-list) and plain arrays, without unpickling
anything and without Ray running (lepton_sim.agents.rllib.policy); ``--trust-pickle`` uses
``RLModule.from_checkpoint`` instead, on the same checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic, write_json_atomic
from lepton_sim.space_json import space_from_json, space_to_json

RECORD = "lepton.json"
WEIGHTS = "lepton_weights"
FORMAT = 1
NORMALIZATION = "obs_normalization.npz"  # in lepton_weights/
# the RLModule classes and catalogs a record may name (built without unpickling anything)
MODULE_CLASSES = {
    "ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module:DefaultPPOTorchRLModule",
    "ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module:DefaultSACTorchRLModule",
}
CATALOG_CLASSES = {
    "ray.rllib.algorithms.ppo.ppo_catalog:PPOCatalog",
    "ray.rllib.algorithms.sac.sac_catalog:SACCatalog",
    "lepton_sim.agents.rllib.perception_encoder:PerceptionPPOCatalog",  # PPO's, with a pretrained image encoder
}


@dataclass
class ModuleRecord:
    module_id: str
    module_class: str
    catalog_class: str
    observation_space: spaces.Space
    action_space: spaces.Space
    model_config: dict[str, Any]
    weights: str  # file name in lepton_weights/


@dataclass
class ObsNormalization:
    """RLlib's ``MeanStdFilter`` (env-to-module connector) frozen: per filter (``None`` for a single-agent run, else
    each agent id) the running mean (float64) and std (float32, from the unbiased variance), applied as
    :meth:`apply` does, which is the filter's own arithmetic with ``update_stats=False``."""

    clip: float
    epsilon: float
    keys: list[str | None]  # filter keys: [None] single-agent, else agent ids in env order
    means: dict[str | None, np.ndarray] = field(default_factory=dict)
    stds: dict[str | None, np.ndarray] = field(default_factory=dict)
    counts: dict[str | None, int] = field(default_factory=dict)  # observations the statistics saw

    def apply(self, key: str | None, observation: np.ndarray) -> np.ndarray:
        """``clip((obs - mean) / (std + epsilon))`` in the observation's own dtype, as the filter computes it."""
        if key not in self.means:
            raise LeptonError(f"the checkpoint's observation normalisation has no statistics for {key!r}")
        x = np.asarray(observation)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
        out = (x - self.means[key]) / (self.stds[key] + self.epsilon)
        if self.clip:
            out = np.clip(out, -self.clip, self.clip)
        return out.astype(dtype)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "MeanStdFilter",
            "clip": self.clip,
            "epsilon": self.epsilon,
            "keys": list(self.keys),
            "counts": [int(self.counts.get(k, 0)) for k in self.keys],
            "file": NORMALIZATION,
        }


@dataclass
class CheckpointRecord:
    algo: str
    scenario: str
    env_id: str
    observation_space: spaces.Space  # the scenario env's (joint, for multi-agent scenarios)
    action_space: spaces.Space
    flatten_observations: bool
    normalize_actions: bool
    clip_actions: bool
    multi_agent: str | None
    modules: dict[str, ModuleRecord]
    agents: list[str] = field(default_factory=list)  # env order (multi-agent)
    agent_to_module: dict[str, str] = field(default_factory=dict)
    timesteps: int = 0
    ray_version: str = ""
    scale_images: bool = False  # uint8 camera images divided by 255 before the module
    obs_normalization: ObsNormalization | None = None  # normalize: true (after flattening / image scaling)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "ray_version": self.ray_version,
            "algo": self.algo,
            "scenario": self.scenario,
            "env_id": self.env_id,
            "timesteps": int(self.timesteps),
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "flatten_observations": self.flatten_observations,
            "scale_images": self.scale_images,
            "normalize_actions": self.normalize_actions,
            "clip_actions": self.clip_actions,
            "obs_normalization": None if self.obs_normalization is None else self.obs_normalization.to_json(),
            "multi_agent": self.multi_agent,
            "agents": list(self.agents),
            "agent_to_module": dict(self.agent_to_module),
            "modules": {
                mid: {
                    "module_class": m.module_class,
                    "catalog_class": m.catalog_class,
                    "observation_space": space_to_json(m.observation_space),
                    "action_space": space_to_json(m.action_space),
                    "model_config": m.model_config,
                    "weights": m.weights,
                }
                for mid, m in self.modules.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> "CheckpointRecord":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LeptonError(f"{where}: not a lepton-sim RLlib checkpoint record (format {FORMAT})")
        try:
            modules = {
                mid: ModuleRecord(
                    module_id=mid,
                    module_class=m["module_class"],
                    catalog_class=m["catalog_class"],
                    observation_space=space_from_json(m["observation_space"], f"{where}: modules.{mid}"),
                    action_space=space_from_json(m["action_space"], f"{where}: modules.{mid}"),
                    model_config=dict(m["model_config"]),
                    weights=str(m["weights"]),
                )
                for mid, m in data["modules"].items()
            }
            return cls(
                algo=data["algo"],
                scenario=data["scenario"],
                env_id=data["env_id"],
                observation_space=space_from_json(data["observation_space"], f"{where}: observation_space"),
                action_space=space_from_json(data["action_space"], f"{where}: action_space"),
                flatten_observations=bool(data["flatten_observations"]),
                normalize_actions=bool(data["normalize_actions"]),
                clip_actions=bool(data["clip_actions"]),
                multi_agent=data.get("multi_agent"),
                modules=modules,
                agents=list(data.get("agents") or []),
                agent_to_module=dict(data.get("agent_to_module") or {}),
                timesteps=int(data.get("timesteps", 0)),
                ray_version=str(data.get("ray_version", "")),
                scale_images=bool(data.get("scale_images", False)),
                obs_normalization=_normalization_header(data.get("obs_normalization")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise LeptonError(f"{where}: malformed record ({type(err).__name__}: {err})") from None


def _normalization_header(data: Any) -> ObsNormalization | None:
    """The JSON part of the normalisation (its arrays are read from the npz by :func:`read_record`)."""
    if data is None:
        return None
    if data.get("method") != "MeanStdFilter":
        raise ValueError(f"unknown observation normalisation {data.get('method')!r}")
    keys = [None if k is None else str(k) for k in data["keys"]]
    return ObsNormalization(
        clip=float(data["clip"]),
        epsilon=float(data["epsilon"]),
        keys=keys,
        counts=dict(zip(keys, (int(c) for c in data["counts"]))),
    )


def class_path(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def write_record(folder: Path, record: CheckpointRecord, weights: dict[str, dict[str, np.ndarray]]) -> None:
    """Write lepton.json and one npz per module into ``folder`` (an RLlib checkpoint folder)."""
    wdir = folder / WEIGHTS
    wdir.mkdir(parents=True, exist_ok=True)
    for mid, module in record.modules.items():
        state = {k: np.asarray(v) for k, v in weights[mid].items()}
        write_atomic(wdir / module.weights, lambda tmp, state=state: _savez(tmp, state))
    norm = record.obs_normalization
    if norm is not None:
        arrays = {}
        for i, key in enumerate(norm.keys):
            arrays[f"mean_{i}"], arrays[f"std_{i}"] = norm.means[key], norm.stds[key]
        write_atomic(wdir / NORMALIZATION, lambda tmp: _savez(tmp, arrays))
    try:
        write_json_atomic(folder / RECORD, record.to_json())
    except TypeError as err:  # a model_config value JSON cannot hold (a callable from Python code)
        raise LeptonError(f"cannot write {folder / RECORD}: {err}") from None


def _savez(tmp: Path, state: dict[str, np.ndarray]) -> None:
    with open(tmp, "wb") as f:
        np.savez(f, **state)


def has_record(folder: Path) -> bool:
    return (Path(folder) / RECORD).is_file()


def read_record(folder: Path) -> CheckpointRecord:
    path = Path(folder) / RECORD
    if not path.is_file():
        raise LeptonError(
            f"{folder}: no {RECORD} (the lepton-sim record written beside every RLlib checkpoint of a run); "
            "is this a checkpoint of a lepton-sim rllib run?"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LeptonError(f"{path}: cannot read the checkpoint record: {err}") from None
    record = CheckpointRecord.from_json(data, str(path))
    if record.obs_normalization is not None:
        _read_normalization(Path(folder) / WEIGHTS / NORMALIZATION, record.obs_normalization)
    return record


def _read_normalization(path: Path, norm: ObsNormalization) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            for i, key in enumerate(norm.keys):
                norm.means[key], norm.stds[key] = data[f"mean_{i}"], data[f"std_{i}"]
    except (OSError, ValueError, KeyError) as err:
        raise LeptonError(f"{path}: cannot read the observation normalisation statistics: {err}") from None


def read_weights(folder: Path, module: ModuleRecord) -> dict[str, np.ndarray]:
    """A module's weights as arrays (``allow_pickle=False``: plain numbers only)."""
    path = Path(folder) / WEIGHTS / module.weights
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise LeptonError(f"{path}: cannot read module {module.module_id!r}'s weights: {err}") from None
