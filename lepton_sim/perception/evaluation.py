"""``lepton-sim perception evaluate MODEL DATA``: a perception model's metrics on a dataset split, overall and per
degradation and severity; written as ``report.json``, ``report.md`` and ``report.png``.

The model and the dataset must agree on the image (height, width, channels) and on every head's label (kind,
shape, classes): a model trained on other data is refused in one line instead of scored on meaningless
numbers. Groups: every frame's episode records the degradation it was collected with (``--sensor`` of
``perception collect``: ``clean``, ``blur@3``, ...) and its severity; the report has one row per degradation,
one per severity and the overall row.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lepton_sim.errors import LeptonError
from lepton_sim.io import write_atomic, write_text_atomic
from lepton_sim.perception.checkpoint import load_model
from lepton_sim.perception.dataset import SplitData, load_dataset
from lepton_sim.perception.labels import LabelSpec
from lepton_sim.perception.metrics import class_names, head_metrics
from lepton_sim.perception.predict import Perception
from lepton_sim.perception.runtime import torch_threads

REPORT = "report"


def check_compatible(model: Perception, schema: list[LabelSpec], image_shape: tuple[int, ...], where: str) -> None:
    """The model's input and heads against a dataset's image and labels (one line for the first mismatch)."""
    if tuple(image_shape) != model.image_shape:
        h, w, c = model.image_shape
        raise LeptonError(f"{model.file} takes {h}x{w}x{c} images; {where} has {'x'.join(map(str, image_shape))}")
    labels = {s.name: s for s in schema}
    for spec in model.labels:
        theirs = labels.get(spec.name)
        if theirs is None:
            raise LeptonError(f"{model.file} predicts {spec.name!r}, which {where} does not label")
        for what in ("kind", "shape", "classes"):
            if getattr(theirs, what) != getattr(spec, what):
                raise LeptonError(
                    f"{model.file}: head {spec.name!r} has {what} {getattr(spec, what)}, "
                    f"{where} labels it with {getattr(theirs, what)}"
                )


def _masked(spec: LabelSpec, data: SplitData, rows: np.ndarray) -> np.ndarray:
    if spec.mask is None:
        return rows
    return rows[data.labels[spec.mask][rows, 0] > 0]


def _groups(data: SplitData) -> list[tuple[str, str, np.ndarray]]:
    """(kind, name, frame indices): overall, then each degradation, then each severity."""
    everything = np.arange(len(data))
    out = [("overall", "all", everything)]
    for name in sorted(set(data.degradation.tolist())):
        out.append(("degradation", name, np.flatnonzero(data.degradation == name)))
    for sev in sorted(set(data.severity.tolist())):
        out.append(("severity", str(sev), np.flatnonzero(data.severity == sev)))
    return out


def predict_split(model: Perception, data: SplitData, progress: bool = True, batch: int = 512) -> dict[str, np.ndarray]:
    """The model's predictions for every frame of a split, by label name."""
    parts: dict[str, list[np.ndarray]] = {s.name: [] for s in model.labels}
    with tqdm(total=len(data), desc="frames", unit="frame", disable=not progress, leave=False) as bar:
        for start in range(0, len(data), batch):
            for name, value in model(data.frames[start : start + batch]).items():
                parts[name].append(value)
            bar.update(min(batch, len(data) - start))
    return {
        s.name: np.concatenate(parts[s.name]) if parts[s.name] else np.zeros((0, *s.shape), s.dtype)
        for s in model.labels
    }


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    device: str = "auto",
    threads: int | None = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``model`` (a ``perception train`` folder or its ``model.pt``) on ``data``'s ``split``; writes the
    report to ``out`` (default ``<model folder>/eval-<dataset name>-<split>``) and returns it."""
    perception = load_model(model, device=device)
    dataset = load_dataset(data)
    where = f"dataset {dataset.root}"
    check_compatible(perception, dataset.schema, dataset.image_shape, where)
    frames = dataset.split(split)
    if len(frames) == 0:
        raise LeptonError(f"{dataset.root}: the {split} split is empty")
    with torch_threads(perception.device, threads):
        predictions = predict_split(perception, frames, progress)
    heads: dict[str, Any] = {}
    for spec in perception.labels:
        rows = []
        for kind, name, index in _groups(frames):
            idx = _masked(spec, frames, index)
            metrics = head_metrics(spec, frames.labels[spec.name][idx], predictions[spec.name][idx])
            rows.append({"group": kind, "name": name, **metrics})
        heads[spec.name] = {"kind": spec.kind, "unit": spec.unit, "mask": spec.mask, "rows": rows}
    report = {
        "model": str(perception.file),
        "dataset": str(dataset.root),
        "scenario": dataset.manifest.get("scenario"),
        "split": split,
        "frames": len(frames),
        "encoder": perception.cfg.to_json(),
        "training": perception.meta.get("training", {}),
        "heads": heads,
    }
    folder = Path(out) if out is not None else perception.file.parent / f"eval-{dataset.root.name}-{split}"
    write_report(folder, report, perception.labels)
    report["out"] = str(folder)
    return report


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def group_label(row: dict[str, Any]) -> str:
    """``all``, a degradation's name (``blur@3``) or ``severity 3``."""
    return {"overall": "all", "degradation": row["name"]}.get(row["group"], f"{row['group']} {row['name']}")


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown(report: dict[str, Any], specs: list[LabelSpec]) -> str:
    """The report as Markdown: one table per head (rows: overall, degradations, severities), then the overall
    per-class table of each classification head."""
    lines = [
        f"# Perception evaluation: {report['scenario']} ({report['split']} split, {report['frames']} frames)",
        "",
        f"model `{report['model']}`, dataset `{report['dataset']}`",
        "",
    ]
    for spec in specs:
        head = report["heads"][spec.name]
        unit = f" [{spec.unit}]" if spec.unit else ""
        lines += [f"## {spec.name} ({spec.kind}{', where ' + spec.mask if spec.mask else ''})", ""]
        if spec.kind == "regression":
            lines += [f"| group | frames | MAE{unit} | RMSE{unit} |", "|---|---|---|---|"]
            for r in head["rows"]:
                lines.append(f"| {group_label(r)} | {r['frames']} | {_fmt(r['mae'], 4)} | {_fmt(r['rmse'], 4)} |")
        else:
            lines += ["| group | frames | accuracy | macro-F1 |", "|---|---|---|---|"]
            for r in head["rows"]:
                lines.append(f"| {group_label(r)} | {r['frames']} | {_fmt(r['accuracy'])} | {_fmt(r['macro_f1'])} |")
            overall = head["rows"][0]
            lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            for k, name in enumerate(overall["classes"]):
                lines.append(
                    f"| {name} | {_fmt(overall['precision'][k])} | {_fmt(overall['recall'][k])} | "
                    f"{_fmt(overall['f1'][k])} | {overall['support'][k]} |"
                )
            cm = overall["confusion_matrix"]
            lines += [
                "",
                "confusion matrix (rows: true, columns: predicted): "
                + "; ".join(f"{overall['classes'][i]}: {row}" for i, row in enumerate(cm)),
            ]
        lines.append("")
    return "\n".join(lines)


def figure(path: Path, report: dict[str, Any], specs: list[LabelSpec]) -> None:
    """One panel per head: the overall confusion matrix (classification) or the error by group (regression)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(specs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.9 * rows), squeeze=False)
    for ax, spec in zip(axes.ravel(), specs):
        head = report["heads"][spec.name]
        if spec.kind == "regression":
            names = [group_label(r) for r in head["rows"]]
            mae = [r["mae"] if r["mae"] is not None else np.nan for r in head["rows"]]
            rmse = [r["rmse"] if r["rmse"] is not None else np.nan for r in head["rows"]]
            x = np.arange(len(names))
            ax.bar(x - 0.2, mae, 0.4, label="MAE")
            ax.bar(x + 0.2, rmse, 0.4, label="RMSE")
            ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(f"error [{spec.unit}]" if spec.unit else "error")
            ax.set_title(f"{spec.name}: error by degradation / severity", fontsize=9)
            ax.legend(fontsize=8)
        else:
            overall = head["rows"][0]
            cm = np.asarray(overall["confusion_matrix"], float)
            share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
            ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            names = class_names(spec)
            ticks = np.arange(len(names))
            ax.set_xticks(ticks, names, rotation=30, ha="right", fontsize=8)
            ax.set_yticks(ticks, names, fontsize=8)
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(
                        j,
                        i,
                        f"{int(cm[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black",
                    )
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{spec.name}: macro-F1 {_fmt(overall['macro_f1'])}", fontsize=9)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{report['scenario']}: {report['split']} split, {report['frames']} frames", fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def write_report(folder: Path, report: dict[str, Any], specs: list[LabelSpec]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n"
    write_text_atomic(folder / f"{REPORT}.json", text)
    md = markdown(_json_safe(report), specs)
    write_text_atomic(folder / f"{REPORT}.md", md)
    figure(folder / f"{REPORT}.png", _json_safe(report), specs)


def summary(report: dict[str, Any]) -> list[str]:
    """One line per head for the terminal: the overall headline metric."""
    lines = []
    for name, head in report["heads"].items():
        overall = head["rows"][0]
        if head["kind"] == "regression":
            what = f"MAE {_fmt(overall['mae'], 4)} {head['unit']}".rstrip()
        else:
            what = f"macro-F1 {_fmt(overall['macro_f1'])}"
        lines.append(f"  {name:<20} {what}  ({overall['frames']} frames)")
    return lines
