"""Evaluation: every model's predictions go through here, so all studies' numbers are comparable.

Multiclass: accuracy, balanced accuracy (the ISIC 2018 headline: mean per-class recall), weighted
(study A) and macro (study E) precision / recall / F1, macro one-vs-rest ROC-AUC, expected calibration
error, per-class report, confusion matrices, bootstrap confidence intervals. Binary: ROC-AUC, average
precision, sensitivity / specificity at a threshold. Where scikit-learn has a metric, it computes it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .data.labels import CLASSES, ISIC2018_COLUMNS

HEADLINE = ("balanced_accuracy", "accuracy", "f1_macro", "f1_weighted", "auc_macro")


@contextmanager
def _quiet():
    """Silence sklearn's note that a prediction names a class absent from y_true: routine on small or
    bootstrapped test sets, where rare classes are often missing, and the metrics here handle it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        yield


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """ECE: gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by size."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:                                     # binary: probability of the positive class
        proba = np.stack([1 - proba, proba], 1)
    confidence = proba.max(1)
    correct = proba.argmax(1) == np.asarray(y_true)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def _auc_macro(y_true: np.ndarray, proba: np.ndarray) -> float:
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    # one-vs-rest over the classes present in y_true (sklearn refuses absent ones)
    return float(np.mean([skm.roc_auc_score(y_true == k, proba[:, k]) for k in present]))


def classification_metrics(y_true: Sequence[int], proba: np.ndarray) -> dict[str, float]:
    """Headline multiclass metrics from integer labels and an (n, k) probability matrix."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    y_pred = proba.argmax(1)
    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "auc_macro": _auc_macro(y_true, proba),
        "ece": expected_calibration_error(y_true, proba),
        "n": len(y_true),
    }
    for avg in ("weighted", "macro"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=np.unique(y_true), average=avg,
                                                         zero_division=0)
        out.update({f"precision_{avg}": p, f"recall_{avg}": r, f"f1_{avg}": f})
    return {k: float(v) for k, v in out.items()}


def label_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    """Balanced accuracy, accuracy, macro precision / recall / F1 and weighted F1 from predicted labels, over the
    classes present in `y_true` (as scikit-learn computes them), from one confusion count: the one path every
    balanced accuracy in skinlib takes (fast enough for thousands of bootstrap resamples).

    Args:
        y_true: true labels (integers).
        y_pred: predicted labels.
    """
    y, pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    counts = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    present = np.flatnonzero(counts.sum(1))
    tp = np.diag(counts)[present].astype(float)
    support, predicted = counts.sum(1)[present], counts.sum(0)[present]
    recall = tp / support
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    return {"balanced_accuracy": float(recall.mean()), "accuracy": float(tp.sum() / len(y)),
            "precision_macro": float(precision.mean()), "recall_macro": float(recall.mean()),
            "f1_macro": float(f1.mean()), "f1_weighted": float((f1 * support).sum() / len(y))}


def balanced_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Mean recall over the classes present in `y_true` (:func:`label_metrics`)."""
    return label_metrics(y_true, y_pred)["balanced_accuracy"]


#: the keys of :func:`label_metrics`
LABEL_KEYS = ("balanced_accuracy", "accuracy", "f1_macro", "precision_macro", "recall_macro")


def headline_metrics(y_true: Sequence[int], proba: np.ndarray) -> dict[str, float]:
    """The :data:`HEADLINE` metrics of :func:`classification_metrics` (and every key of :func:`label_metrics`),
    equal to scikit-learn's, computed in a few numpy passes: what :func:`bootstrap_ci` evaluates on every resample."""
    from scipy.stats import rankdata

    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    present = np.unique(y_true)
    auc = float("nan")
    if len(present) > 1:
        truth = y_true[:, None] == present[None, :]                   # (n, classes present)
        support = truth.sum(0)
        ranks = rankdata(proba[:, present], axis=0)                   # ties share their average rank
        u = (ranks * truth).sum(0) - support * (support + 1) / 2     # Mann-Whitney U of each class vs the rest
        auc = float(np.mean(u / (support * (len(y_true) - support))))
    return {**label_metrics(y_true, proba.argmax(1)), "auc_macro": auc}


def per_class_report(y_true: Sequence[int], proba: np.ndarray, classes: Sequence[str] = CLASSES) -> pd.DataFrame:
    """Precision, recall (sensitivity), F1, one-vs-rest AUC and support for each class."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    y_pred = proba.argmax(1)
    labels = np.arange(len(classes))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    auc = [skm.roc_auc_score(y_true == k, proba[:, k]) if 0 < (y_true == k).sum() < len(y_true) else np.nan
           for k in labels]
    return pd.DataFrame({"precision": p, "recall": r, "f1": f, "auc": auc, "support": s},
                        index=pd.Index(list(classes), name="class"))


def confusion(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str] = CLASSES,
              normalize: bool = False) -> pd.DataFrame:
    """Confusion matrix (rows: true class, columns: predicted), counts or row-normalised."""
    matrix = skm.confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)),
                                  normalize="true" if normalize else None)
    if normalize:
        matrix = np.nan_to_num(matrix)
    return pd.DataFrame(matrix, index=pd.Index(list(classes), name="true"), columns=pd.Index(list(classes), name="predicted"))


def bootstrap_ci(
    y_true: Sequence[int],
    proba: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]] = classification_metrics,
    keys: Sequence[str] = HEADLINE,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals (resampling images with replacement) for the headline metrics."""
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    rng = np.random.default_rng(seed)
    point = metric(y_true, proba)
    if metric is classification_metrics and set(keys) <= set(HEADLINE):
        metric = headline_metrics                                     # the same numbers, computed faster
    samples = {k: [] for k in keys}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), len(y_true))
        values = metric(y_true[idx], proba[idx])
        for k in keys:
            samples[k].append(values[k])
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return pd.DataFrame({
        "value": [point[k] for k in keys],
        "low": [np.nanquantile(samples[k], lo) for k in keys],
        "high": [np.nanquantile(samples[k], hi) for k in keys],
    }, index=pd.Index(list(keys), name="metric"))


def binary_metrics(y_true: Sequence[int], p_positive: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """ROC-AUC, average precision, and accuracy, sensitivity, specificity, precision, F1 at `threshold`."""
    y_true = np.asarray(y_true).astype(int)
    p = np.asarray(p_positive, dtype=float)
    y_pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    both = len(np.unique(y_true)) == 2
    return {
        "auc": float(skm.roc_auc_score(y_true, p)) if both else float("nan"),
        "average_precision": float(skm.average_precision_score(y_true, p)) if both else float("nan"),
        "accuracy": float((tp + tn) / len(y_true)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "precision": float(tp / (tp + fp)) if tp + fp else 0.0,
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "ece": expected_calibration_error(y_true, p),
        "threshold": float(threshold),
        "n": len(y_true),
    }


def to_isic_csv(image_ids: Sequence[str], proba: np.ndarray, path: str | Path,
                classes: Sequence[str] = CLASSES) -> Path:
    """Write predictions in the ISIC 2018 Task 3 scoring format: ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, unrounded
    (every probability reads back as the value the run's metrics were computed from)."""
    proba = np.asarray(proba, dtype=float)
    order = [list(classes).index(c.lower()) for c in ISIC2018_COLUMNS]
    table = pd.DataFrame(proba[:, order], columns=list(ISIC2018_COLUMNS))
    table.insert(0, "image", list(image_ids))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)                 # full precision: the file gives back the metrics exactly
    return path


def read_isic_csv(path: str | Path, classes: Sequence[str] = CLASSES) -> tuple[list[str], np.ndarray]:
    """Image ids and an (n, 7) probability matrix in `classes` order from an ISIC scoring CSV."""
    table = pd.read_csv(path)
    missing = [c for c in ("image", *ISIC2018_COLUMNS) if c not in table]
    if missing:
        raise ValueError(f"{path}: not an ISIC 2018 scoring CSV, missing column(s) {missing}")
    return list(table["image"]), table[[c.upper() for c in classes]].to_numpy(float)


THRESHOLD_RULES: tuple[str, ...] = ("youden", "sensitivity")


def choose_threshold(y_true: Sequence[int], p_positive: Sequence[float], rule: str = "youden",
                     min_sensitivity: float = 0.90) -> float:
    """A decision threshold chosen on the given (validation) predictions, from the ROC curve.

    Args:
        y_true, p_positive: binary labels and positive-class probabilities of the **validation** split.
        rule: ``youden`` (maximise sensitivity + specificity - 1) or ``sensitivity`` (the highest threshold
            whose sensitivity reaches `min_sensitivity`, i.e. the best specificity at that sensitivity).
        min_sensitivity: the sensitivity the ``sensitivity`` rule must reach.
    """
    y_true = np.asarray(y_true).astype(int)
    p = np.asarray(p_positive, dtype=float)
    if len(np.unique(y_true)) < 2:
        raise ValueError("choosing a threshold needs both classes in the validation split")
    fpr, tpr, thresholds = skm.roc_curve(y_true, p, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)                 # sklearn's first threshold is max + 1 (inf)
    if rule == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if rule == "sensitivity":
        return float(thresholds[int(np.flatnonzero(tpr >= min_sensitivity)[0])])
    raise ValueError(f"unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}")


def binary_confusion(y_true: Sequence[int], p_positive: Sequence[float], threshold: float, names: tuple[str, str],
                     normalize: bool = False) -> pd.DataFrame:
    """2 x 2 confusion matrix at `threshold` (rows: true, columns: predicted), labelled with `names` (negative, positive)."""
    y_pred = (np.asarray(p_positive, dtype=float) >= threshold).astype(int)
    matrix = skm.confusion_matrix(np.asarray(y_true).astype(int), y_pred, labels=[0, 1],
                                  normalize="true" if normalize else None)
    index = pd.Index(list(names), name="true")
    return pd.DataFrame(np.nan_to_num(matrix), index=index, columns=pd.Index(list(names), name="predicted"))


def ranking_metrics(y_true: Sequence[int], p_positive: Sequence[float]) -> dict[str, float]:
    """ROC-AUC and average precision only (threshold-free; cheap enough to bootstrap); NaN with one class."""
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return {"auc": float("nan"), "average_precision": float("nan")}
    return {"auc": float(skm.roc_auc_score(y_true, p_positive)),
            "average_precision": float(skm.average_precision_score(y_true, p_positive))}
