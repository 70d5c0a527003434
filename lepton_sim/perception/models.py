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

ARCHS: tuple[str, ...] = ("small", "nature", "keypoint")
KEYPOINTS = 32  # the keypoint encoder's feature maps, each one (x, y) point
FEATURES = {"small": 256, "nature": 512, "keypoint": 256 + 2 * KEYPOINTS}
MIN_SIDE = {"small": 16, "nature": 36, "keypoint": 16}  # NatureCNN's 8/4, 4/2, 3/1 convolutions need 36 pixels


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
        """A recorded config; an architecture this version does not build (or builds with other features) is a
        ValueError, which the checkpoint reader turns into one line."""
        cfg = cls(
            str(data["arch"]), int(data["height"]), int(data["width"]), int(data["channels"]), int(data["features"])
        )
        if cfg.arch not in ARCHS:
            raise ValueError(f"encoder architecture {cfg.arch!r} unknown to this lepton-sim ({', '.join(ARCHS)})")
        if cfg.features != FEATURES[cfg.arch]:
            raise ValueError(
                f"a {cfg.arch} encoder with {cfg.features} features; this lepton-sim builds {FEATURES[cfg.arch]}"
            )
        return cfg

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


class SpatialSoftmax(nn.Module):
    """Soft-argmax of each feature map (Levine et al. 2016; Finn et al. 2016): a softmax over its pixels with a
    learned temperature, then the expected (x, y) in [-1, 1] (pixel centres; -1 / 1 the image's outer edges).
    Why: a position read from where a map peaks is sub-pixel and translates with the image, which pooled
    features are not (their 4x4 grid quantises a 64-pixel image to 16-pixel cells)."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
        ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        self.grid_x: torch.Tensor
        self.grid_y: torch.Tensor
        self.register_buffer("grid_x", gx.reshape(-1), persistent=False)
        self.register_buffer("grid_y", gy.reshape(-1), persistent=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) -> (N, 2K): x_1, y_1, x_2, y_2, ..."""
        n, k = maps.shape[:2]
        attention = torch.softmax(maps.reshape(n, k, -1) / self.log_temperature.exp(), dim=-1)
        x = (attention * self.grid_x).sum(-1)
        y = (attention * self.grid_y).sum(-1)
        return torch.stack([x, y], dim=-1).reshape(n, 2 * k)


class KeypointEncoder(nn.Module):
    """Two stride-2 and two stride-1 3x3 convolutions (32, 32, 64, KEYPOINTS channels) to a quarter-resolution
    map (16x16 at 64 pixels, 21x21 at 84), read two ways: a spatial softmax gives each of the KEYPOINTS maps an
    (x, y) point, and the third layer's features pooled to 4x4 give 256 appearance features (what, not where).
    The encoder's features are both: 256 + 2 x KEYPOINTS, so a linear head reads positions directly."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(cfg.channels, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.maps = nn.Conv2d(64, KEYPOINTS, 3, stride=1, padding=1)
        with torch.no_grad():
            h, w = self.trunk(torch.zeros(1, cfg.channels, cfg.height, cfg.width)).shape[2:]
        self.keypoints = SpatialSoftmax(int(h), int(w))
        self.appearance = nn.Sequential(
            nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, cfg.features - 2 * KEYPOINTS), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.cat([self.appearance(h), self.keypoints(self.maps(h))], dim=1)


def build_encoder(cfg: EncoderConfig) -> nn.Module:
    """The encoder: float (N, C, H, W) in [0, 1] -> (N, features)."""
    return {"small": SmallEncoder, "nature": NatureEncoder, "keypoint": KeypointEncoder}[cfg.arch](cfg)


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
