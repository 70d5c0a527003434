"""The on-disk format of a perception dataset, its writer and its loader.

A dataset is a folder::

    DIR/manifest.json                  format, scenario (resolved), image layout, label schema, state layout,
                                       splits (frames, episodes, seeds, shards), one record per episode
                                       (seed, split, frames, degradation name, severity, sensor settings)
    DIR/shards/<split>-<k>.npz         frames uint8 (N, H, W, C); seed int64 (N,); step int32 (N,);
                                       label.<name> per label (N, *shape): float32 regression, uint8 binary,
                                       int64 class

Why this way: plain ``.npz`` arrays load with ``allow_pickle=False`` (no code runs), a shard holds whole
episodes of one split, so a split is a list of files, and the manifest alone says what a model trained on the
data must output (the label schema) without reading any frame. Splits are by episode seed: an episode's
frames are all in one split, and no seed is in two (frames of one episode are strongly correlated, so a
frame-level split would leak). The manifest is written last: a folder without one is an unfinished collection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic, write_text_atomic
from lepton_sim.perception.labels import LabelSpec, StateLayout

FORMAT = "lepton-sim-perception-dataset"
VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
DEFAULT_SHARD_FRAMES = 2048
LABEL_PREFIX = "label."


class DatasetError(LeptonError):
    """A dataset folder that cannot be read as one (missing, unfinished, corrupt, another format)."""


@dataclass
class Episode:
    """What the manifest records about one episode."""

    seed: int
    split: str
    frames: int = 0
    degradation: str = "clean"
    severity: int = 0
    sensor: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "split": self.split,
            "frames": self.frames,
            "degradation": self.degradation,
            "severity": self.severity,
            "sensor": self.sensor,
        }


class SplitAssigner:
    """Which split the next episode goes to: the one furthest below its share of the frames so far (ties: the
    first), so splits keep their fractions whatever the episode lengths and the first three episodes go to
    train, val and test."""

    def __init__(self, fractions: Iterable[float] = DEFAULT_FRACTIONS) -> None:
        f = np.asarray(list(fractions), float)
        if f.shape != (len(SPLITS),) or (f < 0).any() or not np.isclose(f.sum(), 1.0):
            raise LeptonError(f"split fractions must be {len(SPLITS)} numbers >= 0 summing to 1, got {list(f)}")
        self.fractions = f
        self.frames = np.zeros(len(SPLITS))
        self.used = np.zeros(len(SPLITS), bool)

    def next(self) -> str:
        total = self.frames.sum()
        deficit = self.fractions * total - self.frames
        deficit[self.fractions == 0] = -np.inf
        deficit[(~self.used) & (self.fractions > 0)] = np.inf  # every split gets an episode first
        return SPLITS[int(np.argmax(deficit))]

    def add(self, split: str, frames: int) -> None:
        k = SPLITS.index(split)
        self.frames[k] += frames
        self.used[k] = True


class DatasetWriter:
    """Frames and labels in, shards out: buffered per split, a shard written (atomically) per ``shard_frames``."""

    def __init__(self, root: Path, schema: list[LabelSpec], image_shape: tuple[int, ...], shard_frames: int) -> None:
        self.root = Path(root)
        self.schema = schema
        self.image_shape = tuple(image_shape)
        self.shard_frames = shard_frames
        self._buffers: dict[str, list[tuple[np.ndarray, int, int, dict[str, np.ndarray]]]] = {s: [] for s in SPLITS}
        self.shards: dict[str, list[str]] = {s: [] for s in SPLITS}

    def add(self, split: str, frame: np.ndarray, seed: int, step: int, labels: dict[str, np.ndarray]) -> None:
        if frame.shape != self.image_shape or frame.dtype != np.uint8:
            raise RuntimeError(f"frame {frame.shape} {frame.dtype}, expected {self.image_shape} uint8")
        self._buffers[split].append((frame, seed, step, labels))

    def end_episode(self, split: str) -> None:
        """Shards hold whole episodes: flush once the buffer is full at an episode's end."""
        if len(self._buffers[split]) >= self.shard_frames:
            self._flush(split)

    def close(self) -> None:
        for split in SPLITS:
            if self._buffers[split]:
                self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self._buffers[split]
        name = f"{SHARDS}/{split}-{len(self.shards[split]):05d}.npz"
        arrays: dict[str, np.ndarray] = {
            "frames": np.stack([r[0] for r in rows]),
            "seed": np.array([r[1] for r in rows], np.int64),
            "step": np.array([r[2] for r in rows], np.int32),
        }
        for spec in self.schema:
            arrays[LABEL_PREFIX + spec.name] = np.stack([np.asarray(r[3][spec.name], spec.dtype) for r in rows])
        write_atomic(self.root / name, lambda tmp: _save_npz(tmp, arrays))
        self.shards[split].append(name)
        self._buffers[split] = []


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    text = json.dumps(manifest, indent=1, allow_nan=False) + "\n"
    return write_text_atomic(root / MANIFEST, text)


# ------------------------------------------------------------------------------------------------- loading
@dataclass
class SplitData:
    """One split in memory: ``frames`` (N, H, W, C) uint8, ``labels`` by name, and per frame its episode seed,
    step, degradation name and severity."""

    name: str
    frames: np.ndarray
    labels: dict[str, np.ndarray]
    seed: np.ndarray
    step: np.ndarray
    degradation: np.ndarray  # str per frame
    severity: np.ndarray  # int per frame

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def subset(self, index: np.ndarray) -> "SplitData":
        """The frames at ``index`` (e.g. a labelled fraction), as a new SplitData."""
        return SplitData(
            self.name,
            self.frames[index],
            {k: v[index] for k, v in self.labels.items()},
            self.seed[index],
            self.step[index],
            self.degradation[index],
            self.severity[index],
        )


@dataclass
class Dataset:
    """A collected dataset: its manifest, label schema and state layout; :meth:`split` loads a split's frames."""

    root: Path
    manifest: dict[str, Any]
    schema: list[LabelSpec]
    state_layout: StateLayout
    _cache: dict[str, SplitData] = field(default_factory=dict, repr=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self.manifest["image"]["shape"]
        return int(h), int(w), int(c)

    @property
    def episodes(self) -> list[Episode]:
        return [Episode(**e) for e in self.manifest["episodes"]]

    def label(self, name: str) -> LabelSpec:
        for spec in self.schema:
            if spec.name == name:
                return spec
        raise LeptonError(f"{self.root}: no label {name!r}; labels: {', '.join(s.name for s in self.schema)}")

    def split(self, name: str) -> SplitData:
        """All frames of split ``name`` (train, val or test), read once and kept."""
        if name not in SPLITS:
            raise LeptonError(f"unknown split {name!r}; splits: {', '.join(SPLITS)}")
        if name not in self._cache:
            self._cache[name] = self._read_split(name)
        return self._cache[name]

    def _read_split(self, name: str) -> SplitData:
        shards = self.manifest["splits"][name]["shards"]
        parts = [self._read_shard(s) for s in shards]
        h, w, c = self.image_shape
        frames = np.concatenate([p["frames"] for p in parts]) if parts else np.zeros((0, h, w, c), np.uint8)
        labels = {
            s.name: (
                np.concatenate([p[LABEL_PREFIX + s.name] for p in parts]) if parts else np.zeros((0, *s.shape), s.dtype)
            )
            for s in self.schema
        }
        seed = np.concatenate([p["seed"] for p in parts]) if parts else np.zeros(0, np.int64)
        step = np.concatenate([p["step"] for p in parts]) if parts else np.zeros(0, np.int32)
        by_seed = {e.seed: e for e in self.episodes}
        missing = sorted(set(seed.tolist()) - set(by_seed))
        if missing:
            raise DatasetError(
                f"{self.root}: split {name} has frames of seeds {missing[:5]} the manifest does not list"
            )
        degradation = np.array([by_seed[s].degradation for s in seed.tolist()], dtype=object).astype(str)
        severity = np.array([by_seed[s].severity for s in seed.tolist()], np.int64)
        expected = self.manifest["splits"][name]["frames"]
        if len(frames) != expected:
            raise DatasetError(f"{self.root}: split {name} has {len(frames)} frames, the manifest says {expected}")
        return SplitData(name, frames, labels, seed, step, degradation, severity)

    def _read_shard(self, rel: str) -> dict[str, np.ndarray]:
        path = self.root / rel
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise DatasetError(f"{path}: shard missing (the dataset was moved or truncated)") from None
        except (OSError, ValueError, EOFError) as err:
            raise DatasetError(f"{path}: unreadable shard ({' '.join(str(err).split())})") from None
        needed = ["frames", "seed", "step", *(LABEL_PREFIX + s.name for s in self.schema)]
        lacking = [k for k in needed if k not in data]
        if lacking:
            raise DatasetError(f"{path}: shard lacks {', '.join(lacking)}")
        n = len(data["frames"])
        if data["frames"].shape[1:] != self.image_shape or data["frames"].dtype != np.uint8:
            raise DatasetError(
                f"{path}: frames {data['frames'].shape[1:]} {data['frames'].dtype}, expected {self.image_shape} uint8"
            )
        for s in self.schema:
            arr = data[LABEL_PREFIX + s.name]
            if arr.shape != (n, *s.shape):
                raise DatasetError(f"{path}: label {s.name} has shape {arr.shape}, expected {(n, *s.shape)}")
        return data


def load_dataset(root: str | Path) -> Dataset:
    """Open a dataset folder (``lepton-sim perception collect``); frames are read per split, on first use."""
    root = Path(root).expanduser()
    path = root / MANIFEST
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    if not path.is_file():
        raise DatasetError(f"{root}: not a perception dataset (no {MANIFEST}; an unfinished collection?)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable ({' '.join(str(err).split())})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a lepton-sim perception dataset manifest")
    if manifest.get("version") != VERSION:
        raise DatasetError(f"{path}: format version {manifest.get('version')}, this lepton-sim reads {VERSION}")
    try:
        schema = [LabelSpec.from_json(s) for s in manifest["labels"]]
        layout = StateLayout.from_json(manifest["state_layout"])
        for split in SPLITS:
            manifest["splits"][split]["shards"]
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: malformed manifest ({err})") from None
    return Dataset(root, manifest, schema, layout)


def check_splits(manifest: dict[str, Any]) -> None:
    """No episode seed in two splits (the collector guarantees it; a hand-edited manifest may not)."""
    seen: dict[int, str] = {}
    for e in manifest["episodes"]:
        other = seen.setdefault(int(e["seed"]), e["split"])
        if other != e["split"]:
            raise DatasetError(f"seed {e['seed']} is in splits {other} and {e['split']}")
