"""Perception metrics (lepton_sim/perception/metrics.py): confusion matrices, precision, recall and F1 match
hand-computed values, empty classes included (listed with support 0, no precision or recall, left out of
macro-F1 as scikit-learn's macro average leaves them out), cross-checked against scikit-learn and numpy;
binary heads with several elements are pooled and scored per element; MAE and RMSE per element; evaluation
groups frames by degradation and severity and scores masked heads on their frames only."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from lepton_sim.perception.evaluation import _groups, _masked, group_label
from lepton_sim.perception.labels import LabelSpec
from lepton_sim.perception.metrics import classification, head_metrics, regression


def test_a_hand_computed_confusion_matrix_with_an_empty_class():
    # classes a, b, c, d; d never occurs; c occurs once and is never predicted
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    m = classification(y_true, y_pred, ["a", "b", "c", "d"])
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    assert m["support"] == [3, 2, 1, 0]
    assert m["frames"] == m["values"] == 6
    # a: TP 2, FP 1 (the c), FN 1 -> P 2/3, R 2/3; b: TP 2, FP 1, FN 0 -> P 2/3, R 1; c: P undefined, R 0
    np.testing.assert_allclose(m["precision"][:2], [2 / 3, 2 / 3])
    np.testing.assert_allclose(m["recall"][:3], [2 / 3, 1.0, 0.0])
    assert math.isnan(m["precision"][2]) and math.isnan(m["precision"][3]) and math.isnan(m["recall"][3])
    np.testing.assert_allclose(m["f1"][:3], [2 / 3, 0.8, 0.0])
    assert math.isnan(m["f1"][3])
    np.testing.assert_allclose(m["macro_f1"], (2 / 3 + 0.8 + 0.0) / 3)  # d is in neither truth nor predictions
    np.testing.assert_allclose(m["accuracy"], 4 / 6)


def test_metrics_match_scikit_learn_and_numpy_on_random_labels():
    rng = np.random.default_rng(3)
    for trial in range(20):
        k = int(rng.integers(2, 6))
        y_true = rng.integers(0, k, size=int(rng.integers(5, 80)))
        y_pred = np.where(rng.random(len(y_true)) < 0.6, y_true, rng.integers(0, k, size=len(y_true)))
        if trial % 3 == 0:  # a class that never occurs in the truth
            y_true = np.where(y_true == k - 1, 0, y_true)
        m = classification(y_true, y_pred, [str(c) for c in range(k)])
        labels = list(range(k))
        cm = np.zeros((k, k), int)
        np.add.at(cm, (y_true, y_pred), 1)  # numpy: rows true, columns predicted
        assert m["confusion_matrix"] == cm.tolist() == confusion_matrix(y_true, y_pred, labels=labels).tolist()
        np.testing.assert_allclose(m["macro_f1"], f1_score(y_true, y_pred, average="macro", zero_division=0))
        for c in labels:
            tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c].sum() - cm[c, c]
            if tp + fp:
                np.testing.assert_allclose(m["precision"][c], tp / (tp + fp))
                np.testing.assert_allclose(
                    m["precision"][c], precision_score(y_true, y_pred, labels=[c], average=None, zero_division=0)[0]
                )
            if tp + fn:
                np.testing.assert_allclose(m["recall"][c], tp / (tp + fn))
                np.testing.assert_allclose(
                    m["recall"][c], recall_score(y_true, y_pred, labels=[c], average=None, zero_division=0)[0]
                )


def test_binary_heads_with_several_elements_are_pooled_and_scored_per_element():
    spec = LabelSpec("occupancy", "binary", (3,))
    y_true = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], np.uint8)
    y_pred = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]], np.uint8)
    m = head_metrics(spec, y_true, y_pred)
    assert m["frames"] == 4 and m["values"] == 12
    assert m["confusion_matrix"] == [[8, 1], [1, 2]]
    f = m["positive_f1_per_element"]
    np.testing.assert_allclose(f[:2], [2 / 3, 1.0])
    assert f[2] == 0.0  # predicted once, never true
    empty = head_metrics(spec, np.zeros((2, 3), np.uint8), np.zeros((2, 3), np.uint8))
    assert math.isnan(empty["positive_f1_per_element"][0]) and empty["macro_f1"] == 1.0  # only class 0, all right


def test_regression_errors_overall_and_per_element():
    y_true = np.array([[0.0, 1.0], [2.0, 3.0]])
    y_pred = np.array([[1.0, 1.0], [2.0, 0.0]])
    m = regression(y_true, y_pred)
    assert m["mae"] == pytest.approx(1.0) and m["rmse"] == pytest.approx(math.sqrt(10 / 4))
    assert m["mae_per_element"] == pytest.approx([0.5, 1.5])
    assert m["rmse_per_element"] == pytest.approx([math.sqrt(0.5), math.sqrt(4.5)])
    assert math.isnan(regression(np.zeros((0, 2)), np.zeros((0, 2)))["mae"])


def test_groups_by_degradation_and_severity_and_masks(tmp_path):
    from perception_fixtures import make_synthetic_dataset

    from lepton_sim.perception.dataset import load_dataset

    ds = load_dataset(make_synthetic_dataset(tmp_path / "d", frames=120))
    test = ds.split("train")
    groups = _groups(test)
    names = [group_label({"group": g, "name": n}) for g, n, _ in groups]
    assert names == ["all", "clean", "noise@2", "severity 0", "severity 2"]
    assert len(groups[0][2]) == len(test) == len(groups[1][2]) + len(groups[2][2])
    rows = _masked(ds.label("position"), test, groups[0][2])
    assert len(rows) == int(test.labels["square_present"].sum()) < len(test)
