"""Perception checkpoints: weights plus what they were made for, loaded without running any code.

A checkpoint is one ``torch.save`` file holding plain data only: ``format``, ``version``, ``kind`` (``model``: an
encoder with heads, from ``perception train``; ``encoder``: an encoder alone, from ``perception pretrain``),
``meta`` (a JSON string: the encoder's architecture, input height, width and channels, the heads and their label
schema, the regression targets' normalisation, the state layout, the dataset and the training settings) and
``state_dict`` (tensors). It is read with ``torch.load(weights_only=True)``, which refuses anything but tensors
and plain containers, so a checkpoint from elsewhere cannot run code when loaded. Whatever does not fit (another
file, a truncated one, other heads or input size than asked for) is a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lepton_sim import __version__
from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic
from lepton_sim.perception.labels import LabelSpec, StateLayout
from lepton_sim.perception.models import EncoderConfig, PerceptionModel

if TYPE_CHECKING:
    from lepton_sim.perception.predict import Perception

FORMAT = "lepton-sim-perception-checkpoint"
VERSION = 1
KINDS = ("model", "encoder")
MODEL_FILE = "model.pt"
ENCODER_FILE = "encoder.pt"
ENCODER_PREFIX = "encoder."


class CheckpointError(LeptonError):
    """A perception checkpoint that is missing, unreadable, or made for other inputs or heads."""


def save_checkpoint(path: str | Path, kind: str, meta: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> Path:
    """Write a checkpoint atomically (``meta`` must be JSON: it is stored as text)."""
    assert kind in KINDS, kind
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "meta": json.dumps({**meta, "lepton_sim": __version__}, allow_nan=False),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
    }
    return write_atomic(path, lambda tmp: torch.save(payload, tmp))


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file, or the one inside a model or pretraining folder (``model.pt``, else ``encoder.pt``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in (MODEL_FILE, ENCODER_FILE):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no {MODEL_FILE} or {ENCODER_FILE} in this folder (not a perception model)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such perception checkpoint")
    return path


def read_checkpoint(path: str | Path) -> tuple[Path, str, dict[str, Any], dict[str, torch.Tensor]]:
    """``(file, kind, meta, state_dict)`` of a checkpoint, checked to be one of ours."""
    file = checkpoint_file(path)
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only refused something: not plain data
        first = " ".join(str(err).split())[:160]
        raise CheckpointError(f"{file}: refused, it holds more than weights ({first})") from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"{file}: not a readable perception checkpoint ({' '.join(str(err).split())[:160]})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{file}: not a lepton-sim perception checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{file}: checkpoint version {payload.get('version')}, this lepton-sim reads {VERSION}")
    kind, state = payload.get("kind"), payload.get("state_dict")
    if kind not in KINDS or not isinstance(state, dict):
        raise CheckpointError(f"{file}: malformed checkpoint (kind {kind!r})")
    try:
        meta = json.loads(payload["meta"])
        EncoderConfig.from_json(meta["encoder"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: malformed checkpoint metadata ({err})") from None
    return file, str(kind), meta, state


def encoder_for_images(
    path: str | Path, hwc: tuple[int, ...], field: str, hint: str
) -> tuple[Path, EncoderConfig, dict[str, torch.Tensor]]:
    """A checkpoint's file, encoder config and encoder weights, checked to take the (H, W, C) images a policy
    sees: another size or channel count is one line naming the hyperparameter ``field`` and what sets the shape
    (``hint``), before any training starts."""
    file, _, meta, state = read_checkpoint(path)
    cfg = EncoderConfig.from_json(meta["encoder"])
    if tuple(hwc) != (cfg.height, cfg.width, cfg.channels):
        h, w, c = hwc
        raise CheckpointError(f"{field} {file}: a {cfg.describe()}, but the policy sees {h}x{w}x{c} images ({hint})")
    weights = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    if not weights:
        raise CheckpointError(f"{file}: holds no encoder weights")
    return file, cfg, weights


def encoder_state(path: str | Path, cfg: EncoderConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The encoder weights of any perception checkpoint (pretrained, or another supervised model's: transfer),
    checked against the encoder they are to initialise; and the checkpoint's metadata."""
    file, _, meta, state = read_checkpoint(path)
    theirs = EncoderConfig.from_json(meta["encoder"])
    if theirs != cfg:
        raise CheckpointError(f"{file}: a {theirs.describe()}, but this model needs a {cfg.describe()}")
    weights = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    if not weights:
        raise CheckpointError(f"{file}: holds no encoder weights")
    return weights, meta


def load_encoder(path: str | Path) -> tuple[torch.nn.Module, EncoderConfig]:
    """The encoder of any perception checkpoint (``encoder.pt`` from pretraining, or a trained model's) as a
    torch module on the CPU: float (N, C, H, W) in [0, 1] -> (N, features), what SB3 hands a features extractor
    (its images already divided by 255); and its config (input size, channels, feature size)."""
    from lepton_sim.perception.models import build_encoder

    file, _, meta, state = read_checkpoint(path)
    cfg = EncoderConfig.from_json(meta["encoder"])
    encoder = build_encoder(cfg)
    weights = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    load_weights(encoder, weights, str(file))
    return encoder, cfg


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with its mismatch (missing, unexpected or reshaped weights) as one line."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or reshaped:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:3])}")
        if reshaped:
            k = reshaped[0]
            parts.append(f"{k} is {tuple(state[k].shape)}, expected {tuple(own[k].shape)}")
        raise CheckpointError(f"{where}: weights do not fit the recorded architecture ({'; '.join(parts)})")
    module.load_state_dict(state)


def model_from_checkpoint(path: str | Path) -> tuple[PerceptionModel, dict[str, Any], Path]:
    """The supervised model of a ``model`` checkpoint (on the CPU), its metadata and its file."""
    file, kind, meta, state = read_checkpoint(path)
    if kind != "model":
        raise CheckpointError(
            f"{file}: a pretrained encoder without heads; train a model on it first (perception train --init {file})"
        )
    try:
        cfg = EncoderConfig.from_json(meta["encoder"])
        heads = [LabelSpec.from_json(s) for s in meta["heads"]]
        model = PerceptionModel(cfg, heads)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{file}: malformed checkpoint metadata ({err})") from None
    load_weights(model, state, str(file))
    return model, meta, file


def load_model(path: str | Path, device: str = "cpu") -> "Perception":
    """A trained perception model (``perception train``'s folder or its ``model.pt``) as a callable:
    ``model(images)`` maps a batch of uint8 images (N, H, W, C) (or (N, C, H, W)) to predictions by label name;
    ``model.state(images)`` gives the state observation's layout (see :class:`Perception`)."""
    from lepton_sim.perception.predict import Perception
    from lepton_sim.perception.runtime import resolve_device

    model, meta, file = model_from_checkpoint(path)
    layout = StateLayout.from_json(meta["state_layout"]) if meta.get("state_layout") else None
    return Perception(model, meta, file, resolve_device(device), layout)
