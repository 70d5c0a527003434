"""Metrics of perception heads: scikit-learn's for classification, numpy's for regression.

Classification (class heads, and binary heads as classes 0 / 1; a head with several elements, e.g. eight
occupancy sectors, pools its elements): per-class precision, recall, F1 and support, the confusion matrix
(rows: true class, columns: predicted, every class listed even when empty), accuracy and macro-F1. A class
never predicted has no precision (NaN, ``null`` in JSON) and one absent from the truth no recall; macro-F1
averages the F1 of the classes present in the truth or the predictions (scikit-learn's ``average="macro"``),
so a class that never occurs neither helps nor hurts. Binary heads also give the positive class's F1 per
element. Regression: mean absolute error and root mean squared error in the label's unit, overall and per
element.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from lepton_sim.perception.labels import LabelSpec


def class_names(spec: LabelSpec) -> list[str]:
    return list(spec.classes) if spec.kind == "class" else ["0", "1"]


def classification(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Metrics of integer labels ``0 .. len(classes) - 1``, ``(N, ...)``: every element of every frame counts
    once (``values``), ``frames`` is N."""
    frames = len(y_true)
    y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
    labels = list(range(len(classes)))
    cm = confusion_matrix(y_true, y_pred, labels=labels) if len(y_true) else np.zeros((len(labels),) * 2, int)
    if len(y_true):
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=np.nan)
    else:
        p = r = f = np.full(len(labels), np.nan)
        s = np.zeros(len(labels), int)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f = np.where(present & np.isnan(f), 0.0, f)  # in the truth but never predicted (or the reverse): F1 0
    return {
        "classes": classes,
        "frames": int(frames),
        "values": int(len(y_true)),
        "accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan"),
        "macro_f1": float(np.mean(f[present])) if present.any() else float("nan"),
        "precision": [float(v) for v in p],
        "recall": [float(v) for v in r],
        "f1": [float(v) for v in f],
        "support": [int(v) for v in s],
        "confusion_matrix": cm.astype(int).tolist(),
    }


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """MAE and RMSE over every value, and per element, of ``(N, ...)`` arrays."""
    n = len(y_true)
    if n == 0:
        nan = float("nan")
        return {"frames": 0, "mae": nan, "rmse": nan, "mae_per_element": [], "rmse_per_element": []}
    err = (np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)).reshape(n, -1)
    return {
        "frames": int(n),
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "mae_per_element": np.abs(err).mean(axis=0).tolist(),
        "rmse_per_element": np.sqrt((err**2).mean(axis=0)).tolist(),
    }


def head_metrics(spec: LabelSpec, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """The metrics a head's kind calls for (``y_*`` already restricted to the masked-in frames)."""
    if spec.kind == "regression":
        return regression(y_true, y_pred)
    out = classification(y_true, y_pred, class_names(spec))
    if spec.kind == "binary" and spec.size > 1:
        t, p = np.asarray(y_true).reshape(len(y_true), -1), np.asarray(y_pred).reshape(len(y_pred), -1)
        per = []
        for k in range(t.shape[1]):
            _, _, f, _ = (
                precision_recall_fscore_support(t[:, k], p[:, k], labels=[1], zero_division=np.nan)
                if len(t)
                else (None, None, [np.nan], None)
            )
            per.append(float(f[0]))
        out["positive_f1_per_element"] = per
    return out


def headline(spec: LabelSpec, metrics: dict[str, Any]) -> float:
    """The one number per head in summaries: macro-F1 (classification) or MAE (regression)."""
    return float(metrics["mae"] if spec.kind == "regression" else metrics["macro_f1"])
