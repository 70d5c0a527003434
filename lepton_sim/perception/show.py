"""``lepton-sim perception show DIR``: what a dataset holds (counts per split and degradation, label statistics)
and a contact sheet of its frames (``DIR/contact_sheet.png``, or ``--out``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lepton_sim.io import write_atomic
from lepton_sim.perception.dataset import SPLITS, Dataset, SplitData, load_dataset
from lepton_sim.perception.labels import LabelSpec

SHEET = "contact_sheet.png"


def label_stats(spec: LabelSpec, data: SplitData) -> str:
    """One line: mean / std / range of a regression label, positive rate of a binary one, class counts."""
    values = data.labels[spec.name]
    if spec.mask is not None:
        values = values[data.labels[spec.mask][:, 0] > 0]
    if len(values) == 0:
        return "no frames"
    if spec.kind == "regression":
        v = values.astype(np.float64)
        unit = f" {spec.unit}" if spec.unit else ""
        return (
            f"mean {v.mean():.4g}, std {v.std():.4g}, min {v.min():.4g}, max {v.max():.4g}{unit} "
            f"({spec.size} values per frame)"
        )
    if spec.kind == "binary":
        per = values.reshape(len(values), -1).mean(axis=0)
        detail = "" if spec.size == 1 else " (per element: " + " ".join(f"{p:.2f}" for p in per) + ")"
        return f"positive {values.mean():.3f}{detail}"
    counts = np.bincount(values.reshape(-1), minlength=len(spec.classes))
    return ", ".join(f"{name} {int(c)}" for name, c in zip(spec.classes, counts))


def describe(dataset: Dataset) -> list[str]:
    m = dataset.manifest
    h, w, c = dataset.image_shape
    lines = [
        f"dataset {dataset.root}: {m['scenario']} ({m['env']}), {m['frames']} frames of {h}x{w}x{c} "
        f"(cameras {', '.join(m['image']['cameras'])}), policy {m.get('collection', {}).get('policy', '?')}",
    ]
    for split in SPLITS:
        s = m["splits"][split]
        seeds = s["seeds"]
        span = f"seeds {min(seeds)}-{max(seeds)}" if seeds else "no seeds"
        lines.append(f"  {split:<5} {s['frames']:>7} frames {s['episodes']:>5} episodes  {span}")
    by_deg: dict[str, int] = {}
    for e in dataset.episodes:
        by_deg[e.degradation] = by_deg.get(e.degradation, 0) + e.frames
    lines.append("  degradations: " + ", ".join(f"{k} {v} frames" for k, v in sorted(by_deg.items())))
    train = dataset.split("train")
    lines.append(f"labels (train split, {len(train)} frames):")
    for spec in dataset.schema:
        where = f", where {spec.mask}" if spec.mask else ""
        lines.append(f"  {spec.name:<20} {spec.kind:<10} {str(spec.shape):<8} {label_stats(spec, train)}{where}")
    return lines


def _viewable(frame: np.ndarray, rgb: list[int] | None) -> np.ndarray:
    """An (H, W, 3) view of a frame: its first colour image, else its first channels (grey for one)."""
    if rgb and len(rgb) >= 3:
        return frame[..., rgb[:3]]
    if frame.shape[-1] >= 3:
        return frame[..., :3]
    return np.repeat(frame[..., :1], 3, axis=-1)


def contact_sheet(dataset: Dataset, path: Path, count: int = 48, tile: int = 96) -> Path:
    """A grid of frames picked evenly over every split (enlarged to ``tile`` pixels, nearest neighbour), each
    captioned with split, seed, step and degradation; drawn with Pillow (a figure of 48 axes takes seconds)."""
    from PIL import Image, ImageDraw

    picks: list[tuple[str, SplitData, int]] = []
    total = sum(len(dataset.split(s)) for s in SPLITS)
    for split in SPLITS:
        data = dataset.split(split)
        k = max(1, round(count * len(data) / total)) if len(data) else 0
        for i in np.linspace(0, len(data) - 1, num=min(k, len(data))).astype(int):
            picks.append((split, data, int(i)))
    cols = min(8, max(1, len(picks)))
    rows = max(1, math.ceil(len(picks) / cols))
    caption, gap = 24, 4
    sheet = Image.new("RGB", (cols * (tile + gap) + gap, rows * (tile + caption + gap) + gap + 16), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 2), f"{dataset.manifest['scenario']}: {total} frames", fill=(230, 230, 230))
    rgb = dataset.manifest["image"].get("rgb_channels")
    for n, (split, data, i) in enumerate(picks):
        x = gap + (n % cols) * (tile + gap)
        y = 16 + gap + (n // cols) * (tile + caption + gap)
        view = Image.fromarray(np.ascontiguousarray(_viewable(data.frames[i], rgb))).resize(
            (tile, tile), Image.Resampling.NEAREST
        )
        sheet.paste(view, (x, y))
        draw.text((x, y + tile + 1), f"{split} s{int(data.seed[i])} t{int(data.step[i])}", fill=(230, 230, 230))
        draw.text((x, y + tile + 12), str(data.degradation[i]), fill=(180, 180, 180))
    write_atomic(path, lambda tmp: sheet.save(tmp, format="PNG"))
    return path


def show(root: str | Path, out: str | Path | None = None) -> tuple[list[str], Path]:
    """The summary lines and the contact sheet's path."""
    dataset = load_dataset(root)
    lines = describe(dataset)
    sheet = contact_sheet(dataset, Path(out) if out is not None else dataset.root / SHEET)
    return lines, sheet
