"""A pretrained perception encoder as SB3's features extractor, frozen or fine-tuned, for training from pixels.

Why: the encoder ``lepton-sim perception pretrain`` (or ``train``) learned on simulator frames turns an image
into features a small MLP policy can act on; frozen, PPO trains only the policy and value heads (state-training
speed per update, the encoder's forward pass aside); fine-tuned, the encoder adapts to the task.

Selected in the hyperparameters (YAML or ``--set``)::

    policy_kwargs:
      features_extractor_class: perception
      features_extractor_kwargs: {checkpoint: models/oa-ssl, freeze: true}

SB3 hands the extractor channels-first float images in [0, 1] (it transposes and scales uint8 image spaces),
which is what the encoder takes. A ``Dict`` observation (``state+pixels``, goal envs) runs the encoder on
``pixels`` and appends the other keys, flattened. The checkpoint (a model's or a pretrained encoder's) must fit
the images: another size or channel count is a one-line error. The encoder's weights are part of the policy's
(a run folder reloads without the checkpoint's weights being read again, but its architecture is read from it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from lepton_sim.errors import LeptonError

NAME = "perception"  # features_extractor_class: perception
PIXELS = "pixels"


def _image_space(space: gymnasium.Space) -> tuple[spaces.Box, list[str]]:
    """The image part (channels-first, as SB3 gives it) and the other keys of a Dict, in its order."""
    if isinstance(space, spaces.Dict):
        if PIXELS not in space.spaces:
            raise LeptonError(f"features_extractor_class {NAME}: a Dict observation needs a {PIXELS!r} image key")
        image = space[PIXELS]
        others = [k for k in space.spaces if k != PIXELS]
    else:
        image, others = space, []
    if not isinstance(image, spaces.Box) or len(image.shape) != 3:
        raise LeptonError(
            f"features_extractor_class {NAME}: needs camera images, the observations are "
            f"{type(image).__name__} {getattr(image, 'shape', '')}"
        )
    return image, others


class PerceptionExtractor(BaseFeaturesExtractor):
    """The encoder of a perception checkpoint over the observation's image (plus any other Dict keys)."""

    def __init__(self, observation_space: gymnasium.Space, checkpoint: str, freeze: bool = True) -> None:
        from lepton_sim.perception.checkpoint import encoder_for_images
        from lepton_sim.perception.models import build_encoder

        image, others = _image_space(observation_space)
        c, h, w = image.shape
        file, cfg, weights = encoder_for_images(
            Path(checkpoint),
            (h, w, c),
            "features_extractor_kwargs.checkpoint",
            "frame_stack multiplies the channels; camera_size sets the side",
        )
        extra = {k: spaces.flatdim(observation_space[k]) for k in others}  # type: ignore[index]
        super().__init__(observation_space, cfg.features + sum(extra.values()))
        self.encoder = build_encoder(cfg)
        self.encoder.load_state_dict(weights)
        self.freeze = bool(freeze)
        self.encoder.requires_grad_(not self.freeze)
        self.others = others
        self.checkpoint = str(file)

    def apply(self, fn: Any) -> "PerceptionExtractor":
        """Everything but the encoder: SB3's policies re-initialise their extractor's layers this way (orthogonal
        init, ``ortho_init``), which would wipe out the pretrained weights."""
        for name, child in self.named_children():
            if name != "encoder":
                child.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> "PerceptionExtractor":
        super().train(mode)
        if self.freeze:
            self.encoder.eval()  # a frozen encoder never changes, whatever mode the policy is in
        return self

    def forward(self, observations: Any) -> torch.Tensor:
        images = observations[PIXELS] if isinstance(observations, dict) else observations
        if self.freeze:
            with torch.no_grad():
                features = self.encoder(images)
        else:
            features = self.encoder(images)
        if not self.others:
            return features
        rest = [observations[k].flatten(start_dim=1).float() for k in self.others]
        return torch.cat([features, *rest], dim=1)


def resolve(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``features_extractor_class: perception`` (a name in YAML) -> :class:`PerceptionExtractor`, its kwargs
    checked (a checkpoint path, ``freeze`` true or false)."""
    if policy_kwargs.get("features_extractor_class") != NAME:
        return policy_kwargs
    kwargs = policy_kwargs.get("features_extractor_kwargs") or {}
    if not isinstance(kwargs, dict) or not isinstance(kwargs.get("checkpoint"), str):
        raise LeptonError(
            f"policy_kwargs.features_extractor_kwargs: features_extractor_class {NAME} needs "
            "{checkpoint: PATH (a perception model or pretrained encoder), freeze: true|false}"
        )
    unknown = sorted(set(kwargs) - {"checkpoint", "freeze"})
    if unknown or not isinstance(kwargs.get("freeze", True), bool):
        raise LeptonError(
            f"policy_kwargs.features_extractor_kwargs: {NAME} takes checkpoint and freeze (true|false), got {kwargs}"
        )
    return {**policy_kwargs, "features_extractor_class": PerceptionExtractor}
