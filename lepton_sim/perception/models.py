"""Encoders for 64x64 / 84x84 camera images and the task heads on top of them.

Why small: on one CPU core a 4-conv stride-2 encoder (~0.35M parameters) trains at ~4.7k images/s and infers at
~17k, NatureCNN (``nature``, 0.6M at 64x64, 1.7M at 84x84) at ~6k / ~21k, a ResNet-18 at 90 / 206
(shared/reference/perception.md): the default keeps 20k frames x 30 epochs within minutes. The ``small``
encoder pools its last feature map to 4x4, so 64 and 84 pixel images give the same parameter count.

Heads are linear on the encoder's features (its last layer is already a 256-unit hidden layer), one per
label: ``regression`` outputs the label's values (standardised with the training set's mean and std),
``binary`` one logit per element, ``class`` one logit per class and element. A linear probe is these heads on
a frozen encoder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from lepton_sim.errors import LeptonError
from lepton_sim.perception.labels import LabelSpec

ARCHS: tuple[str, ...] = ("small", "nature")
FEATURES = {"small": 256, "nature": 512}
MIN_SIDE = {"small": 16, "nature": 36}  # NatureCNN's 8/4, 4/2, 3/1 convolutions need 36 pixels


@dataclass(frozen=True)
class EncoderConfig:
    """What an encoder takes and gives: recorded in every checkpoint, checked when one is loaded."""

    arch: str
    height: int
    width: int
    channels: int
    features: int

    @classmethod
    def make(cls, arch: str, image_shape: tuple[int, int, int]) -> "EncoderConfig":
        if arch not in ARCHS:
            raise LeptonError(f"unknown encoder {arch!r}; allowed: {', '.join(ARCHS)}")
        h, w, c = image_shape
        if min(h, w) < MIN_SIDE[arch]:
            raise LeptonError(
                f"the {arch} encoder needs images of at least {MIN_SIDE[arch]} pixels a side, got {h}x{w}"
            )
        return cls(arch, int(h), int(w), int(c), FEATURES[arch])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EncoderConfig":
        return cls(
            str(data["arch"]), int(data["height"]), int(data["width"]), int(data["channels"]), int(data["features"])
        )

    def describe(self) -> str:
        return f"{self.arch} encoder for {self.height}x{self.width}x{self.channels} images"


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


class SmallEncoder(nn.Module):
    """Four 3x3 stride-2 convolutions (32, 64, 64, 64 channels), pooled to 4x4, then 256 features."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(64 * 16, cfg.features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class NatureEncoder(nn.Module):
    """NatureCNN (Mnih et al. 2015; SB3's default CNN): 8x8/4, 4x4/2, 3x3/1 convolutions, 512 features."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cfg.channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n = self.conv(torch.zeros(1, cfg.channels, cfg.height, cfg.width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, cfg.features), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """The encoder: float (N, C, H, W) in [0, 1] -> (N, features)."""
    return {"small": SmallEncoder, "nature": NatureEncoder}[cfg.arch](cfg)


def head_outputs(spec: LabelSpec) -> int:
    """Outputs of a label's linear head."""
    if spec.kind == "class":
        return spec.size * len(spec.classes)
    return spec.size


class PerceptionModel(nn.Module):
    """Encoder + one linear head per label: uint8 images (N, H, W, C) -> raw outputs by label name
    (standardised values, logits; see :func:`lepton_sim.perception.predict.decode`)."""

    def __init__(self, cfg: EncoderConfig, heads: list[LabelSpec]) -> None:
        super().__init__()
        self.cfg = cfg
        self.specs = {s.name: s for s in heads}
        self.encoder = build_encoder(cfg)
        self.heads = nn.ModuleDict({s.name: nn.Linear(cfg.features, head_outputs(s)) for s in heads})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(to_input(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.features(images)
        out = {}
        for name, head in self.heads.items():
            spec = self.specs[name]
            y = head(z)
            if spec.kind == "class":
                y = y.view(len(y), *spec.shape, len(spec.classes))
            else:
                y = y.view(len(y), *spec.shape)
            out[name] = y
        return out


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
