"""A synthetic perception dataset for the model tests: small images with one coloured square whose colour (3
classes), position (regression) and presence flag are the labels, written in the real on-disk format, so
training is fast and what the model must learn is known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lepton_sim.perception.dataset import FORMAT, SPLITS, VERSION, DatasetWriter, Episode, SplitAssigner, write_manifest
from lepton_sim.perception.labels import LabelSpec, StateLayout

COLOURS = np.array([[230, 40, 40], [40, 200, 40], [40, 80, 230]], np.uint8)
SCHEMA = [
    LabelSpec("state", "regression", (4,), description="square x, y (pixels) and the two flags"),
    LabelSpec("colour", "class", (), ("red", "green", "blue"), mask="square_present"),
    LabelSpec("square_present", "binary", (1,)),
    LabelSpec("position", "regression", (2,), unit="px", mask="square_present"),
    LabelSpec("quadrants", "binary", (4,)),
]


def synthetic_frame(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    img = np.full((size, size, 3), 60, np.uint8)
    present = rng.random() < 0.8
    colour = int(rng.integers(0, 3))
    side = max(3, size // 5)
    x, y = (int(v) for v in rng.integers(0, size - side, size=2))
    if present:
        img[y : y + side, x : x + side] = COLOURS[colour]
    cx, cy = x + side / 2, y + side / 2
    quadrants = np.zeros(4, np.uint8)
    if present:
        quadrants[int(cy >= size / 2) * 2 + int(cx >= size / 2)] = 1
    labels = {
        "state": np.array([cx, cy, float(present), float(colour)], np.float32),
        "colour": np.array(colour, np.int64),
        "square_present": np.array([present], np.uint8),
        "position": np.array([cx, cy], np.float32),
        "quadrants": quadrants,
    }
    return img, labels


def make_synthetic_dataset(root: Path, frames: int = 240, size: int = 32, seed: int = 0, episode: int = 12) -> Path:
    """``frames`` frames in episodes of ``episode`` frames (seeds seed, seed + 1, ...), split as collect splits."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, SCHEMA, (size, size, 3), shard_frames=50)
    assigner = SplitAssigner()
    episodes = []
    per_split = {s: 0 for s in SPLITS}
    for k in range(frames // episode):
        split = assigner.next()
        degradation, severity = ("clean", 0) if per_split[split] % 2 == 0 else ("noise@2", 2)  # cycled per split
        per_split[split] += 1
        for step in range(episode):
            img, labels = synthetic_frame(rng, size)
            if severity:
                img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            writer.add(split, img, seed + k, step, labels)
        writer.end_episode(split)
        assigner.add(split, episode)
        episodes.append(Episode(seed + k, split, episode, degradation, severity))
    writer.close()
    splits = {
        s: {
            "frames": sum(e.frames for e in episodes if e.split == s),
            "episodes": sum(1 for e in episodes if e.split == s),
            "seeds": [e.seed for e in episodes if e.split == s],
            "shards": writer.shards[s],
        }
        for s in SPLITS
    }
    write_manifest(
        root,
        {
            "format": FORMAT,
            "version": VERSION,
            "scenario": "synthetic/squares",
            "env": "none",
            "domain": "test",
            "image": {"shape": [size, size, 3], "cameras": ["fake"], "order": "HWC", "rgb_channels": [0, 1, 2]},
            "labels": [s.to_json() for s in SCHEMA],
            "state_layout": StateLayout(((None, (4,)),)).to_json(),
            "frames": frames // episode * episode,
            "splits": splits,
            "episodes": [e.to_json() for e in episodes],
            "collection": {"policy": "synthetic", "seconds": 0.0},
        },
    )
    return root


def save_random_encoder(folder: Path, size: int, seed: int = 1) -> Path:
    """A pretraining-style checkpoint in ``folder``: a small encoder for size x size RGB images, random weights."""
    import torch

    from lepton_sim.perception import checkpoint, models

    torch.manual_seed(seed)
    cfg = models.EncoderConfig.make("small", (size, size, 3))
    model = models.PerceptionModel(cfg, [LabelSpec("state", "regression", (4,))])
    meta = {"encoder": cfg.to_json(), "heads": [], "normalisation": {}}
    weights = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    checkpoint.save_checkpoint(folder / checkpoint.ENCODER_FILE, "encoder", meta, weights)
    return folder
