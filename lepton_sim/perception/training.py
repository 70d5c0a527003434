"""``lepton-sim perception train``: supervised heads on a dataset's labels, from scratch or from a pretrained
encoder (fine-tuned with a lower learning rate, or frozen: a linear probe).

Losses per head, summed: mean squared error on standardised values (regression: each dimension scaled by the
labelled training frames' mean and std, so an 87-value state vector and a lane offset in metres weigh alike),
binary cross-entropy (binary), cross-entropy (class); a label with a mask counts only on its frames.
``label_fraction`` keeps a seeded random share of the training frames' labels (the label-efficiency
experiments); pretraining may still have seen every frame. The kept model is the epoch with the lowest
validation loss (the last epoch when the split is empty); ``train.json`` records every epoch.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_text_atomic
from lepton_sim.perception.checkpoint import MODEL_FILE, encoder_state, load_weights, save_checkpoint
from lepton_sim.perception.dataset import Dataset, SplitData, load_dataset
from lepton_sim.perception.labels import LabelSpec
from lepton_sim.perception.models import ARCHS, EncoderConfig, PerceptionModel, count_parameters
from lepton_sim.perception.runtime import (
    AUGMENTATIONS,
    augment,
    batches,
    resolve_device,
    seed_everything,
    torch_threads,
)

FINE_TUNE_ENCODER_LR = 0.1  # encoder learning rate = this x lr when starting from a pretrained encoder
TRAIN_JSON = "train.json"
HISTORY_CSV = "history.csv"


@dataclass
class TrainSettings:
    """How a perception model is trained (recorded in the checkpoint and train.json)."""

    heads: list[str] | None = None  # labels to predict (default: every label of the dataset)
    arch: str = "small"  # encoder: small (~0.35M parameters) or nature (NatureCNN)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3  # Adam, heads (and the encoder when training from scratch)
    encoder_lr: float | None = None  # default: lr, or FINE_TUNE_ENCODER_LR x lr with init
    linear_probe: bool = False  # freeze the encoder: only the linear heads learn
    augment: str = "photometric"  # none | shift | photometric | shift+photometric (shift moves positions)
    label_fraction: float = 1.0  # share of the training frames whose labels are used
    val_every: int = 1  # validate (and pick the kept model) every k epochs and at the last one
    seed: int = 0
    device: str = "auto"
    threads: int | None = 1  # torch CPU threads (None: torch's default)
    init: str | None = None  # a pretrained encoder (or any perception checkpoint) to start from

    def check(self) -> None:
        if self.arch not in ARCHS:
            raise LeptonError(f"--arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.augment not in AUGMENTATIONS:
            raise LeptonError(f"--augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if not 0.0 < self.label_fraction <= 1.0:
            raise LeptonError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        for name, value in (
            ("--epochs", self.epochs),
            ("--batch-size", self.batch_size),
            ("--val-every", self.val_every),
        ):
            if value < 1:
                raise LeptonError(f"{name} must be >= 1, got {value}")
        for name, lr in (("--lr", self.lr), ("--encoder-lr", self.encoder_lr)):
            if lr is not None and not (math.isfinite(lr) and lr >= 0):
                raise LeptonError(f"{name} must be a number >= 0, got {lr}")
        if self.linear_probe and self.init is None:
            raise LeptonError("--linear-probe trains heads on a frozen encoder: give it one with --init")


@dataclass
class Targets:
    """A split's labels as tensors: standardised regression values, masks, ready to index per batch."""

    values: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor | None]
    norm: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def normalisation(specs: list[LabelSpec], data: SplitData) -> dict[str, dict[str, list[float]]]:
    """Mean and std per regression value over the (masked-in) frames; a constant value gets std 1."""
    out = {}
    for s in specs:
        if s.kind != "regression":
            continue
        values = data.labels[s.name].astype(np.float64)
        if s.mask is not None:
            values = values[data.labels[s.mask][:, 0] > 0]
        if len(values) == 0:
            mean, std = np.zeros(s.shape), np.ones(s.shape)
        else:
            mean, std = values.mean(axis=0), values.std(axis=0)
            std = np.where(std > 1e-6, std, 1.0)
        out[s.name] = {
            "mean": np.asarray(mean, float).reshape(-1).tolist(),
            "std": np.asarray(std, float).reshape(-1).tolist(),
        }
    return out


def targets(specs: list[LabelSpec], data: SplitData, norm: dict[str, dict[str, list[float]]]) -> Targets:
    values: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor | None] = {}
    for s in specs:
        y = data.labels[s.name]
        if s.kind == "regression":
            mean = np.asarray(norm[s.name]["mean"]).reshape(s.shape)
            std = np.asarray(norm[s.name]["std"]).reshape(s.shape)
            values[s.name] = torch.as_tensor((y - mean) / std, dtype=torch.float32)
        elif s.kind == "binary":
            values[s.name] = torch.as_tensor(y, dtype=torch.float32)
        else:
            values[s.name] = torch.as_tensor(y, dtype=torch.int64)
        masks[s.name] = torch.as_tensor(data.labels[s.mask][:, 0] > 0) if s.mask is not None else None
    return Targets(values, masks, norm)


def head_loss(spec: LabelSpec, out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The head's mean loss over the batch's (masked-in) frames; 0 when none is."""
    if mask is not None:
        out, target = out[mask], target[mask]
    if len(out) == 0:
        return out.sum() * 0.0
    if spec.kind == "regression":
        return nn.functional.mse_loss(out, target)
    if spec.kind == "binary":
        return nn.functional.binary_cross_entropy_with_logits(out, target)
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))


def batch_loss(
    model: PerceptionModel, images: torch.Tensor, t: Targets, index: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(images)
    idx = torch.as_tensor(index)
    total = torch.zeros((), device=device)
    parts = {}
    for name, spec in model.specs.items():
        mask = t.masks[name]
        loss = head_loss(
            spec, out[name], t.values[name][idx].to(device), None if mask is None else mask[idx].to(device)
        )
        parts[name] = float(loss.detach())
        total = total + loss
    return total, parts


def select_heads(dataset: Dataset, heads: list[str] | None) -> list[LabelSpec]:
    """The label specs to train heads for (masks they need must be in the dataset; they need no head)."""
    if not heads:
        return list(dataset.schema)
    names = [s.name for s in dataset.schema]
    unknown = [h for h in heads if h not in names]
    if unknown:
        raise LeptonError(f"--head {unknown[0]!r}: no such label in {dataset.root}; labels: {', '.join(names)}")
    return [dataset.label(h) for h in dict.fromkeys(heads)]


def labelled_subset(data: SplitData, fraction: float, seed: int) -> SplitData:
    """A seeded random ``fraction`` of the frames (at least one)."""
    if fraction >= 1.0:
        return data
    n = max(1, int(round(fraction * len(data))))
    rng = np.random.default_rng([seed, 7])
    return data.subset(np.sort(rng.choice(len(data), size=n, replace=False)))


def evaluate_loss(
    model: PerceptionModel, data: SplitData, t: Targets, device: torch.device, batch_size: int
) -> tuple[float, dict[str, float]]:
    """Mean loss over a split (no augmentation, no gradients), weighted by batch size."""
    model.eval()
    total, parts, n = 0.0, {k: 0.0 for k in model.specs}, 0
    with torch.no_grad():
        for index in batches(len(data), batch_size, None):
            images = torch.from_numpy(data.frames[index]).to(device)
            loss, p = batch_loss(model, images, t, index, device)
            total += float(loss) * len(index)
            for k, v in p.items():
                parts[k] += v * len(index)
            n += len(index)
    return (total / max(n, 1), {k: v / max(n, 1) for k, v in parts.items()})


def train(
    data: str | Path,
    out: str | Path,
    settings: TrainSettings | None = None,
    progress: bool = True,
    **options: Any,
) -> Path:
    """Train a perception model on ``data`` (a dataset folder) into the folder ``out``; returns ``out``.
    ``options`` set :class:`TrainSettings` fields (``epochs=5, init="models/ssl"``)."""
    settings = settings or TrainSettings()
    for key, value in options.items():
        if not hasattr(settings, key):
            raise LeptonError(f"unknown training setting {key!r}; allowed: {', '.join(asdict(settings))}")
        setattr(settings, key, value)
    settings.check()
    out = Path(out).expanduser()
    if (out / MODEL_FILE).exists():
        raise LeptonError(f"--out {out}: already holds a model ({MODEL_FILE}); choose another folder")
    dataset = load_dataset(data)
    specs = select_heads(dataset, settings.heads)
    cfg = EncoderConfig.make(settings.arch, dataset.image_shape)
    device = resolve_device(settings.device)
    full_train = dataset.split("train")
    if len(full_train) == 0:
        raise LeptonError(f"{dataset.root}: the train split is empty")
    with torch_threads(device, settings.threads):
        rng = seed_everything(settings.seed)
        model = PerceptionModel(cfg, specs)
        init_meta: dict[str, Any] | None = None
        if settings.init is not None:
            weights, init_meta = encoder_state(settings.init, cfg)
            load_weights(model.encoder, weights, str(settings.init))
        model.to(device)
        train_data = labelled_subset(full_train, settings.label_fraction, settings.seed)
        val_data = dataset.split("val")
        norm = normalisation(specs, train_data)
        t_train, t_val = targets(specs, train_data, norm), targets(specs, val_data, norm)
        encoder_lr = settings.encoder_lr
        if encoder_lr is None:
            encoder_lr = settings.lr * (FINE_TUNE_ENCODER_LR if settings.init is not None else 1.0)
        if settings.linear_probe:
            for p in model.encoder.parameters():
                p.requires_grad_(False)
            groups = [{"params": model.heads.parameters(), "lr": settings.lr}]
        else:
            groups = [
                {"params": model.encoder.parameters(), "lr": encoder_lr},
                {"params": model.heads.parameters(), "lr": settings.lr},
            ]
        optimiser = torch.optim.Adam(groups)
        rgb = dataset.manifest["image"].get("rgb_channels")
        history: list[dict[str, Any]] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        started = time.monotonic()
        seen = 0
        bar = tqdm(total=settings.epochs, desc="epochs", unit="epoch", disable=not progress, leave=False)
        for epoch in range(1, settings.epochs + 1):
            model.train()
            if settings.linear_probe:
                model.encoder.eval()
            losses = []
            for index in batches(len(train_data), settings.batch_size, rng):
                frames = augment(train_data.frames[index], settings.augment, rng, rgb)
                loss, _ = batch_loss(model, torch.from_numpy(frames).to(device), t_train, index, device)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()) * len(index))
                seen += len(index)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": sum(losses) / len(train_data)}
            checkpoint = epoch % settings.val_every == 0 or epoch == settings.epochs
            if len(val_data) and checkpoint:
                row["val_loss"], parts = evaluate_loss(model, val_data, t_val, device, 256)
                row.update({f"val_{k}": v for k, v in parts.items()})
            row["seconds"] = round(time.monotonic() - started, 3)
            history.append(row)
            score = row.get("val_loss", row["train_loss"])
            if checkpoint and (best is None or score < best[0] or not len(val_data)):
                best = (score, epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{row.get('val_loss', float('nan')):.4f}")
            bar.update(1)
        bar.close()
        elapsed = time.monotonic() - started
    assert best is not None
    meta = {
        "encoder": cfg.to_json(),
        "heads": [s.to_json() for s in specs],
        "normalisation": norm,
        "state_layout": dataset.manifest["state_layout"],
        "rgb_channels": rgb,
        "dataset": _dataset_record(dataset),
        "training": {
            **asdict(settings),
            "device_used": str(device),
            "encoder_lr_used": 0.0 if settings.linear_probe else encoder_lr,
            "labelled_frames": len(train_data),
            "best_epoch": best[1],
            "parameters": count_parameters(model),
            "seconds": round(elapsed, 2),
            "images_per_second": round(seen / max(elapsed, 1e-9), 1),
            "init_from": None if init_meta is None else init_meta.get("pretraining", init_meta.get("dataset")),
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / MODEL_FILE, "model", meta, best[2])
    write_text_atomic(out / TRAIN_JSON, json.dumps({**meta, "history": history}, indent=1) + "\n")
    write_text_atomic(out / HISTORY_CSV, history_csv(history))
    return out


def _dataset_record(dataset: Dataset) -> dict[str, Any]:
    m = dataset.manifest
    return {
        "path": str(dataset.root),
        "scenario": m.get("scenario"),
        "env": m.get("env"),
        "image": m.get("image"),
        "frames": {s: m["splits"][s]["frames"] for s in m["splits"]},
    }


def history_csv(history: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()
