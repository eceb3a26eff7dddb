"""Metrics equal scikit-learn's wherever it has them; ISIC scoring CSVs round-trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from skinlib import metrics
from skinlib.data.labels import CLASSES


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 300)
    logits = rng.normal(size=(300, 7)) + 2.0 * np.eye(7)[y] * rng.random((300, 1))
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, proba


def test_multiclass_metrics_equal_sklearn(predictions):
    y, proba = predictions
    pred = proba.argmax(1)
    m = metrics.classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    for avg in ("weighted", "macro"):
        assert m[f"precision_{avg}"] == pytest.approx(skm.precision_score(y, pred, average=avg, zero_division=0))
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(y, pred, average=avg, zero_division=0))
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(y, pred, average=avg, zero_division=0))
    assert m["auc_macro"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert m["recall_weighted"] == pytest.approx(m["accuracy"])     # study A's observation, as it must be
    assert 0 < m["balanced_accuracy"] < 1


def test_per_class_and_confusion_equal_sklearn(predictions):
    y, proba = predictions
    pred = proba.argmax(1)
    report = metrics.per_class_report(y, proba)
    assert list(report.index) == list(CLASSES)
    np.testing.assert_allclose(report["recall"], skm.recall_score(y, pred, average=None))
    np.testing.assert_allclose(report["precision"], skm.precision_score(y, pred, average=None, zero_division=0))
    assert report.loc["mel", "auc"] == pytest.approx(skm.roc_auc_score(y == 4, proba[:, 4]))
    counts = metrics.confusion(y, pred)
    np.testing.assert_array_equal(counts.to_numpy(), skm.confusion_matrix(y, pred))
    norm = metrics.confusion(y, pred, normalize=True)
    np.testing.assert_allclose(norm.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(norm), report["recall"])


def test_missing_classes_in_a_small_test_set():
    y = np.array([0, 0, 1, 1, 5])
    proba = np.eye(7)[[0, 2, 1, 1, 5]] * 0.9 + 0.1 / 7
    m = metrics.classification_metrics(y, proba)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, proba.argmax(1)))
    assert np.isfinite(m["auc_macro"])


def test_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    # bins: confidence 0.9 (2 images, both right: gap 0.1), 0.6 (wrong: gap 0.6), 0.8 (right: gap 0.2)
    assert metrics.expected_calibration_error(y, proba, n_bins=10) == pytest.approx((2 * 0.1 + 0.6 + 0.2) / 4)
    assert metrics.expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == pytest.approx(0.0)


def test_binary_metrics_equal_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    m = metrics.binary_metrics(y, p, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert m["specificity"] == pytest.approx(skm.recall_score(1 - y, 1 - pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert metrics.binary_metrics(y, p, threshold=0.9)["sensitivity"] < m["sensitivity"]


def test_bootstrap_interval_brackets_the_value_and_is_reproducible(predictions):
    y, proba = predictions
    a = metrics.bootstrap_ci(y, proba, np.arange(len(y)) // 2, n_boot=200, seed=3)
    b = metrics.bootstrap_ci(y, proba, np.arange(len(y)) // 2, n_boot=200, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert ((a["low"] <= a["value"]) & (a["value"] <= a["high"])).all()
    assert (a["high"] - a["low"] > 0).all()


def test_isic_csv_round_trip(tmp_path, predictions):
    y, proba = predictions
    ids = [f"ISIC_{i:07d}" for i in range(len(y))]
    path = metrics.to_isic_csv(ids, proba, tmp_path / "sub.csv")
    header = path.read_text().splitlines()[0]
    assert header == "image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"
    back_ids, back = metrics.read_isic_csv(path)
    assert back_ids == ids
    np.testing.assert_allclose(back, proba, atol=1e-6)
    table = pd.read_csv(path)
    np.testing.assert_allclose(table["MEL"], proba[:, CLASSES.index("mel")], atol=1e-6)
    pd.DataFrame({"image": ["a"], "MEL": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        metrics.read_isic_csv(tmp_path / "bad.csv")


def test_headline_metrics_equal_scikit_learns_on_resamples():
    """The fast path bootstrap_ci uses gives classification_metrics' numbers: missing classes, ties, one class."""
    from skinlib.metrics import HEADLINE, classification_metrics, headline_metrics

    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(5, 80))
        y = rng.choice(7, n, p=[0.05, 0.1, 0.1, 0.02, 0.1, 0.6, 0.03])
        proba = rng.dirichlet(np.ones(7), n)
        if trial % 3 == 0:
            proba = np.round(proba, 1)                          # ties between scores
        if trial % 10 == 0:
            y = np.full(n, 5)                                   # one class only: AUC undefined
        fast, slow = headline_metrics(y, proba), classification_metrics(y, proba)
        for key in HEADLINE:
            assert fast[key] == pytest.approx(slow[key], abs=1e-12, nan_ok=True), (trial, key)
