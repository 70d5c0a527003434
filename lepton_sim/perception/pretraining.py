"""``lepton-sim perception pretrain``: self-supervised encoders from unlabelled frames.

Two methods, both at batch 128 on one core (shared/reference/perception.md: ~600 / ~470 images/s for a 0.2M
encoder at 64x64):

- ``autoencoder``: the baseline. The encoder's features are decoded back to the (augmented) frame by
  transposed convolutions; loss: mean squared pixel error.
- ``simsiam`` (Chen & He 2021): two augmented views of each frame, encoder -> projector -> predictor, the
  negative cosine between one view's prediction and the other's (stop-gradient) projection, symmetrised. No
  negatives and no momentum encoder, so it works at small batches; SGD with momentum and a cosine schedule as
  in the paper. ``collapse`` in the history is the std of the normalised projections per dimension (1/sqrt(d)
  for spread features, 0 when every frame maps to one point).

Views are the camera issue's augmentations in its order: random shift, then photometric jitter (colour
channels only). Labels are never read. The encoder is saved alone (``encoder.pt``) for ``perception train
--init``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_text_atomic
from lepton_sim.perception.checkpoint import ENCODER_FILE, ENCODER_PREFIX, save_checkpoint
from lepton_sim.perception.dataset import SPLITS, load_dataset
from lepton_sim.perception.models import ARCHS, EncoderConfig, build_encoder, count_parameters, to_input
from lepton_sim.perception.runtime import augment, batches, resolve_device, seed_everything, torch_threads
from lepton_sim.perception.training import history_csv

METHODS: tuple[str, ...] = ("simsiam", "autoencoder")
PRETRAIN_JSON = "pretrain.json"
VIEWS = "shift+photometric"


@dataclass
class PretrainSettings:
    """How an encoder is pretrained (recorded in its checkpoint)."""

    method: str = "simsiam"
    arch: str = "small"
    epochs: int = 20
    batch_size: int = 128
    lr: float | None = None  # default: SimSiam 0.05 x batch / 256 (SGD), autoencoder 1e-3 (Adam)
    splits: tuple[str, ...] = ("train",)  # frames used (never the test split by default)
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1

    def check(self) -> None:
        if self.method not in METHODS:
            raise LeptonError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.arch not in ARCHS:
            raise LeptonError(f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise LeptonError("--epochs must be >= 1 and --batch-size >= 2")
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise LeptonError(f"unknown split {unknown[0]!r}; splits: {', '.join(SPLITS)}")


class Decoder(nn.Module):
    """Features -> image: a 4x4x64 map doubled in size by transposed convolutions (channels halving to 8, so
    the full-resolution layers stay cheap), resized to the input's size, then a 3x3 convolution and a sigmoid."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.size = (cfg.height, cfg.width)
        self.fc = nn.Sequential(nn.Linear(cfg.features, 64 * 4 * 4), nn.ReLU())
        layers: list[nn.Module] = []
        side, channels = 4, 64
        while side * 2 <= max(self.size):
            narrower = max(8, channels // 2) if side >= 8 else channels
            layers += [nn.ConvTranspose2d(channels, narrower, 4, stride=2, padding=1), nn.ReLU()]
            side, channels = side * 2, narrower
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, cfg.channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up(self.fc(z).view(len(z), 64, 4, 4))
        if tuple(x.shape[-2:]) != self.size:
            x = nn.functional.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.out(x))


class SimSiamHead(nn.Module):
    """Projector (2 layers with batch norm, as the paper's, narrower) and predictor (bottleneck 4x)."""

    def __init__(self, features: int, dim: int = 512) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(features, dim, bias=False),
            nn.BatchNorm1d(dim),
            nn.ReLU(),
            nn.Linear(dim, dim, bias=False),
            nn.BatchNorm1d(dim, affine=False),
        )
        self.predictor = nn.Sequential(
            nn.Linear(dim, dim // 4, bias=False), nn.BatchNorm1d(dim // 4), nn.ReLU(), nn.Linear(dim // 4, dim)
        )


def simsiam_loss(head: SimSiamHead, z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Symmetrised negative cosine similarity with stop-gradient; and the collapse measure."""
    p1, p2 = head.projector(z1), head.projector(z2)
    q1, q2 = head.predictor(p1), head.predictor(p2)
    cos = nn.functional.cosine_similarity
    loss = -0.5 * (cos(q1, p2.detach(), dim=-1).mean() + cos(q2, p1.detach(), dim=-1).mean())
    spread = float(nn.functional.normalize(p1.detach(), dim=-1).std(dim=0).mean())
    return loss, spread


def pretrain(
    data: str | Path,
    out: str | Path,
    settings: PretrainSettings | None = None,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Pretrain an encoder on ``data``'s frames into the folder ``out`` (``encoder.pt``, ``pretrain.json``);
    returns ``out``. ``options`` set :class:`PretrainSettings` fields (``method="autoencoder", epochs=5``)."""
    settings = settings or PretrainSettings()
    for key, value in options.items():
        if not hasattr(settings, key):
            raise LeptonError(f"unknown pretraining setting {key!r}; allowed: {', '.join(asdict(settings))}")
        setattr(settings, key, tuple(value) if key == "splits" else value)
    settings.check()
    out = Path(out).expanduser()
    if (out / ENCODER_FILE).exists():
        raise LeptonError(f"--out {out}: already holds an encoder ({ENCODER_FILE}); choose another folder")
    dataset = load_dataset(data)
    frames = np.concatenate([dataset.split(s).frames for s in settings.splits])
    if len(frames) < 2:
        raise LeptonError(
            f"{dataset.root}: {len(frames)} frames in {', '.join(settings.splits)}; pretraining needs >= 2"
        )
    cfg = EncoderConfig.make(settings.arch, dataset.image_shape)
    device = resolve_device(settings.device)
    rgb = dataset.manifest["image"].get("rgb_channels")
    simsiam = settings.method == "simsiam"
    with torch_threads(device, settings.threads):
        rng = seed_everything(settings.seed)
        encoder = build_encoder(cfg).to(device)
        head: nn.Module = (SimSiamHead(cfg.features) if simsiam else Decoder(cfg)).to(device)
        params = [*encoder.parameters(), *head.parameters()]
        if simsiam:
            lr = settings.lr if settings.lr is not None else 0.05 * settings.batch_size / 256
            optimiser: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
        else:
            lr = settings.lr if settings.lr is not None else 1e-3
            optimiser = torch.optim.Adam(params, lr=lr)
        steps_per_epoch = math.ceil(len(frames) / settings.batch_size)
        total = settings.epochs * steps_per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total)) if simsiam else 1.0
        )
        history: list[dict[str, Any]] = []
        started, seen = time.monotonic(), 0
        bar = tqdm(total=settings.epochs, desc=settings.method, unit="epoch", disable=not progress, leave=False)
        for epoch in range(1, settings.epochs + 1):
            encoder.train()
            head.train()
            losses, spreads = [], []
            for index in batches(len(frames), settings.batch_size, rng):
                if len(index) < 2:  # batch norm needs two samples
                    continue
                view1 = augment(frames[index], VIEWS, rng, rgb)
                x1 = to_input(torch.from_numpy(view1).to(device))
                if simsiam:
                    view2 = augment(frames[index], VIEWS, rng, rgb)
                    x2 = to_input(torch.from_numpy(view2).to(device))
                    assert isinstance(head, SimSiamHead)
                    loss, spread = simsiam_loss(head, encoder(x1), encoder(x2))
                    spreads.append(spread)
                else:
                    loss = nn.functional.mse_loss(head(encoder(x1)), x1)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                losses.append(float(loss.detach()))
                seen += len(index)
            row: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan")}
            if spreads:
                row["collapse"] = float(np.mean(spreads))
            row["seconds"] = round(time.monotonic() - started, 3)
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            bar.update(1)
        bar.close()
        elapsed = time.monotonic() - started
    record = {
        "method": settings.method,
        "dataset": str(dataset.root),
        "scenario": dataset.manifest.get("scenario"),
        "frames": int(len(frames)),
        "splits": list(settings.splits),
    }
    meta = {
        "encoder": cfg.to_json(),
        "rgb_channels": rgb,
        "pretraining": record,
        "settings": {**asdict(settings), "splits": list(settings.splits), "lr_used": lr, "device_used": str(device)},
        "parameters": count_parameters(encoder),
        "seconds": round(elapsed, 2),
        "images_per_second": round(seen / max(elapsed, 1e-9), 1),
        "final_loss": history[-1]["loss"],
    }
    out.mkdir(parents=True, exist_ok=True)
    state = {ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()}
    save_checkpoint(out / ENCODER_FILE, "encoder", meta, state)
    text = json.dumps({**meta, "history": history}, indent=1) + "\n"
    write_text_atomic(out / PRETRAIN_JSON, text)
    write_text_atomic(out / "history.csv", history_csv(history))
    return out
