"""A pretrained perception encoder as the RLModule's encoder (RLlib PPO), frozen or fine-tuned.

Why: the encoder ``lepton-sim perception pretrain`` (or ``train``) learned on simulator frames turns a camera image
into features the PPO heads act on, as SB3's ``features_extractor_class: perception`` does on the other back end.
Selected in the RLlib hyperparameters (YAML or ``--set``)::

    perception: {checkpoint: models/oa-ssl, freeze: true}

How it plugs into RLlib: :class:`PerceptionPPOCatalog` (PPO's catalog; the RLModuleSpec names it) returns a
:class:`PerceptionEncoderConfig` instead of RLlib's CNN config when the module's ``model_config`` carries
:data:`KEY`. A frozen encoder is shared by PPO's actor and critic (``vf_share_layers`` defaults to true then:
two frozen copies would compute the same features twice). RLlib hands the encoder channels-last float images in [0, 1]
(lepton_sim.agents.rllib.envs scales the camera's uint8); the encoder takes channels-first, so it permutes.

Frozen, the encoder's weights are buffers, not parameters: RLlib's learner hands every parameter's gradient to
its optimizer and clipping (a frozen parameter's is None), and buffers still travel in the module's state (weight
sync to the env runners, checkpoints, the record's npz). Fine-tuned, they are ordinary parameters.

The checkpoint is read where the module is built for training (driver, learners, env runners; on a cluster the
path must be readable on every node, like the scenario's files). Evaluation rebuilds the architecture from the
encoder config recorded in ``model_config`` and takes the weights from the run's checkpoint: it never reads the
perception checkpoint again (:func:`inference_model_config`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT, Encoder
from ray.rllib.core.models.configs import ModelConfig
from ray.rllib.core.models.torch.base import TorchModel

from lepton_sim.errors import LeptonError

HYPERPARAMETER = "perception"  # perception: {checkpoint: PATH, freeze: true|false}
KEY = "lepton_perception"  # in model_config: {"encoder": EncoderConfig JSON, "checkpoint": str | None, "freeze": bool}


def check_spec(spec: Any, algo: str) -> None:
    """The ``perception`` hyperparameter's shape (the checkpoint itself is read by :func:`model_config_entry`)."""
    if algo != "ppo":
        raise LeptonError(f"{HYPERPARAMETER}: a pretrained perception encoder trains with rllib ppo only, not {algo}")
    if not isinstance(spec, dict) or not isinstance(spec.get("checkpoint"), str):
        raise LeptonError(
            f"hyperparameter {HYPERPARAMETER} must be {{checkpoint: PATH (a perception model or pretrained encoder), "
            f"freeze: true|false}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - {"checkpoint", "freeze"})
    if unknown or not isinstance(spec.get("freeze", True), bool):
        raise LeptonError(f"hyperparameter {HYPERPARAMETER} takes checkpoint and freeze (true|false), got {spec!r}")


def model_config_entry(spec: dict[str, Any], observation_space: spaces.Space) -> dict[str, Any]:
    """The ``model_config`` entry for a run whose module sees ``observation_space`` (HWC camera images): the
    checkpoint's encoder config, checked against the images (another size or channel count is a one-line error)."""
    from lepton_sim.perception.checkpoint import encoder_for_images

    space = observation_space
    if not isinstance(space, spaces.Box) or len(space.shape) != 3:
        raise LeptonError(
            f"{HYPERPARAMETER}: the encoder needs camera images (obs_mode: pixels), the observations are "
            f"{type(space).__name__} {getattr(space, 'shape', '')}"
        )
    file, cfg, _ = encoder_for_images(
        Path(spec["checkpoint"]), space.shape, f"{HYPERPARAMETER}.checkpoint", "camera_size sets the side"
    )
    return {"encoder": cfg.to_json(), "checkpoint": str(file.resolve()), "freeze": bool(spec.get("freeze", True))}


def with_perception(
    model_config: dict[str, Any], spec: dict[str, Any], observation_space: spaces.Space
) -> dict[str, Any]:
    """``model_config`` with the encoder entry; frozen, actor and critic share it unless ``vf_share_layers`` says."""
    entry = model_config_entry(spec, observation_space)
    out = {**model_config, KEY: entry}
    if entry["freeze"]:
        out.setdefault("vf_share_layers", True)
    return out


def inference_model_config(model_config: dict[str, Any]) -> dict[str, Any]:
    """``model_config`` for rebuilding a trained module: its weights come from the run's checkpoint, so the
    perception checkpoint is not read (it may have moved since)."""
    if KEY not in model_config:
        return model_config
    return {**model_config, KEY: {**model_config[KEY], "checkpoint": None}}


@dataclasses.dataclass
class PerceptionEncoderConfig(ModelConfig):
    encoder: dict[str, Any] = dataclasses.field(default_factory=dict)  # EncoderConfig JSON
    checkpoint: str | None = None  # the pretrained weights; None: random (they are about to be overwritten)
    freeze: bool = True

    @property
    def output_dims(self) -> tuple[int, ...]:
        return (int(self.encoder["features"]),)

    def build(self, framework: str = "torch") -> "TorchPerceptionEncoder":
        if framework != "torch":
            raise ValueError(f"the perception encoder is a torch model, not {framework}")
        return TorchPerceptionEncoder(self)


def _freeze(module: torch.nn.Module) -> None:
    """Every parameter of ``module`` becomes a buffer of the same name (see the module docstring)."""
    for child in module.modules():
        for name, param in list(child.named_parameters(recurse=False)):
            delattr(child, name)
            child.register_buffer(name, param.detach().clone())


class TorchPerceptionEncoder(TorchModel, Encoder):
    def __init__(self, config: PerceptionEncoderConfig) -> None:
        from lepton_sim.perception.checkpoint import encoder_state
        from lepton_sim.perception.models import EncoderConfig, build_encoder

        TorchModel.__init__(self, config)
        Encoder.__init__(self, config)
        cfg = EncoderConfig.from_json(config.encoder)
        self.net = build_encoder(cfg)
        if config.checkpoint is not None:
            weights, _ = encoder_state(Path(config.checkpoint), cfg)
            self.net.load_state_dict(weights)
        self.freeze = bool(config.freeze)
        if self.freeze:
            _freeze(self.net)

    def _forward(self, inputs: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        # frozen, the weights are buffers: no gradient reaches them and no graph is built for them
        images = inputs[Columns.OBS].permute(0, 3, 1, 2)  # RLlib's (N, H, W, C) -> the encoder's (N, C, H, W)
        return {ENCODER_OUT: self.net(images)}


class PerceptionPPOCatalog(PPOCatalog):
    """PPO's catalog with the perception encoder where ``model_config`` asks for it (else PPO's own)."""

    @classmethod
    def _get_encoder_config(
        cls, observation_space: Any, model_config_dict: dict[str, Any], action_space: Any = None
    ) -> ModelConfig:
        spec = model_config_dict.get(KEY)
        if spec is None:
            return super()._get_encoder_config(observation_space, model_config_dict, action_space)
        return PerceptionEncoderConfig(
            input_dims=tuple(observation_space.shape),
            encoder=dict(spec["encoder"]),
            checkpoint=spec.get("checkpoint"),
            freeze=bool(spec.get("freeze", True)),
        )
