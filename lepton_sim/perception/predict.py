"""A trained perception model as a plain callable: uint8 images in, predictions by label name out.

This is what an env wrapper (``obs_mode: perceived``), an SB3 features extractor or a script uses: it batches,
runs without gradients on its device, turns raw head outputs into label values (regression de-standardised,
binary thresholded at 0.5, classes by argmax) and, with a ``state`` head, gives the state observation in the
env's own layout (:meth:`Perception.state`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lepton_sim.errors import LeptonError
from lepton_sim.perception.labels import STATE, LabelSpec, StateLayout
from lepton_sim.perception.models import EncoderConfig, PerceptionModel
from lepton_sim.perception.runtime import torch_threads

BATCH = 256


def decode(spec: LabelSpec, raw: torch.Tensor, norm: dict[str, list[float]] | None) -> np.ndarray:
    """A head's raw outputs as label values (the dataset's dtype and shape)."""
    if spec.kind == "regression":
        y = raw.float()
        if norm is not None:
            mean = torch.as_tensor(norm["mean"], dtype=y.dtype, device=y.device).view(spec.shape)
            std = torch.as_tensor(norm["std"], dtype=y.dtype, device=y.device).view(spec.shape)
            y = y * std + mean
        return y.cpu().numpy().astype(np.float32)
    if spec.kind == "binary":
        return (raw > 0).cpu().numpy().astype(np.uint8)
    return raw.argmax(dim=-1).cpu().numpy().astype(np.int64)


def probabilities(spec: LabelSpec, raw: torch.Tensor) -> np.ndarray | None:
    """P(1) per element for binary heads, class probabilities for class heads, None for regression."""
    if spec.kind == "binary":
        return torch.sigmoid(raw).cpu().numpy()
    if spec.kind == "class":
        return torch.softmax(raw, dim=-1).cpu().numpy()
    return None


class Perception:
    """``perception(images) -> {label: values}`` for a batch of uint8 images.

    Attributes: ``cfg`` (encoder architecture and input size), ``labels`` (the heads' label specs),
    ``state_layout`` (where each part of the state observation sits, if the model has a ``state`` head),
    ``meta`` (everything the checkpoint records), ``model`` (the torch module, on ``device``)."""

    def __init__(
        self, model: PerceptionModel, meta: dict[str, Any], file: Path, device: torch.device, layout: StateLayout | None
    ) -> None:
        self.model = model.to(device).eval()
        self.meta = meta
        self.file = file
        self.device = device
        self.cfg: EncoderConfig = model.cfg
        self.labels: list[LabelSpec] = list(model.specs.values())
        self.state_layout = layout
        self.normalisation: dict[str, dict[str, list[float]]] = meta.get("normalisation", {})
        # torch CPU threads per call (None: torch's setting), restored after: inside an env step on a loaded machine
        # two threads made a batch of 4 images 17x slower than one (365 vs 22 ms)
        self.threads: int | None = 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.cfg.image_shape

    @property
    def encoder(self) -> torch.nn.Module:
        """The encoder module: float (N, C, H, W) in [0, 1] -> (N, cfg.features) (e.g. for an SB3 extractor)."""
        return self.model.encoder

    def _images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        h, w, c = self.image_shape
        if images.ndim == 3:
            images = images[None]
        if images.dtype != np.uint8:
            raise LeptonError(f"{self.file}: expects uint8 images, got {images.dtype}")
        if images.shape[1:] == (h, w, c):
            return images
        if images.shape[1:] == (c, h, w):
            return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        raise LeptonError(f"{self.file}: the model takes {h}x{w}x{c} images, got shape {images.shape[1:]}")

    def raw(self, images: np.ndarray) -> dict[str, torch.Tensor]:
        """Raw head outputs (standardised regression values, logits) for a batch, on the CPU."""
        x = self._images(images)
        parts: dict[str, list[torch.Tensor]] = {s.name: [] for s in self.labels}
        with torch.no_grad(), torch_threads(self.device, self.threads):
            for start in range(0, len(x), BATCH):
                batch = torch.from_numpy(x[start : start + BATCH]).to(self.device)
                for name, y in self.model(batch).items():
                    parts[name].append(y.cpu())
        return {k: torch.cat(v) if v else torch.zeros(0) for k, v in parts.items()}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Predictions by label name: float32 regression values, uint8 0/1 binary flags, int64 class indices,
        each ``(N, *label shape)``."""
        raw = self.raw(images)
        return {s.name: decode(s, raw[s.name], self.normalisation.get(s.name)) for s in self.labels}

    def state(self, images: np.ndarray) -> Any:
        """The model's estimate of the state observation, batched, in the env's layout (an array, or a dict of
        arrays for a goal-conditioned env)."""
        if STATE not in self.model.specs or self.state_layout is None:
            raise LeptonError(f"{self.file}: the model has no {STATE!r} head (train it with --head {STATE})")
        return self.state_layout.unflatten(self(images)[STATE])

    def features(self, images: np.ndarray) -> np.ndarray:
        """Encoder features (N, cfg.features), float32."""
        x = self._images(images)
        out = []
        with torch.no_grad(), torch_threads(self.device, self.threads):
            for start in range(0, len(x), BATCH):
                out.append(self.model.features(torch.from_numpy(x[start : start + BATCH]).to(self.device)).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.cfg.features), np.float32)
