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


#: Bins of the expected calibration error, everywhere (the registry's ``ece`` and the report's reliability diagram).
ECE_BINS = 15


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> pd.DataFrame:
    """Top-class confidence against accuracy in equal-width confidence bins: one row per non-empty bin (index: the
    bin's range) with ``n``, mean ``confidence`` and ``accuracy``; what :func:`expected_calibration_error` averages.

    Args:
        y_true: labels.
        proba: (n, k) probabilities, or (n,) probabilities of the positive class.
        n_bins: equal-width bins over [0, 1] (:data:`ECE_BINS`).
    """
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:                                     # binary: probability of the positive class
        proba = np.stack([1 - proba, proba], 1)
    confidence = proba.max(1)
    correct = (proba.argmax(1) == np.asarray(y_true)).astype(float)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    table = pd.DataFrame({"bin": bins, "confidence": confidence, "correct": correct}).groupby("bin").agg(
        n=("correct", "size"), confidence=("confidence", "mean"), accuracy=("correct", "mean"))
    table.index = [f"{b / n_bins:.2f}-{(b + 1) / n_bins:.2f}" for b in table.index]
    return table


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: gap between confidence and accuracy, averaged over equal-width confidence bins, weighted by size
    (:func:`calibration_bins`)."""
    table = calibration_bins(y_true, proba, n_bins)
    if table.empty:
        return 0.0
    return float((table["n"] * (table["accuracy"] - table["confidence"]).abs()).sum() / table["n"].sum())


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


_BLOCK = 256           # resamples handled at once


def bootstrap_groups(table: pd.DataFrame) -> np.ndarray:
    """The unit the bootstrap resamples, one label per row of `table`: its ``group`` column when it has one (as
    the registry's predictions do), else the lesion, linked through the patient where patient ids are known
    (:func:`skinlib.data.splits.groups_of`): images of one lesion (or one patient) are drawn together, since they
    are not independent evidence. A table from data without lesion ids has one image per lesion (the layouts give
    such images their image id as lesion id), so there each image is its own group.

    Raises:
        ValueError: the table has neither ``group`` nor ``lesion_id`` (pass the catalog's columns along).
    """
    if "group" in table:
        return table["group"].astype(str).to_numpy()
    if "lesion_id" not in table:
        raise ValueError(f"a table with columns {list(table.columns)[:8]} has no lesion_id or group column: the "
                         "bootstrap resamples lesions, so keep the catalog's lesion_id (and patient_id) in the "
                         "splits' tables (inputs.by_split does)")
    from .data.splits import groups_of

    lesions = table["lesion_id"].fillna("").astype(str).reset_index(drop=True)
    ids = table["image_id"].astype(str).reset_index(drop=True) if "image_id" in table else lesions.index.astype(str)
    named = lesions.where(lesions != "", ids)
    linked = table.assign(lesion_id=lesions, patient_id=table["patient_id"].fillna("").astype(str).to_numpy()
                          if "patient_id" in table else "")
    components = groups_of(linked.reset_index(drop=True), "auto")
    return named.groupby(components).transform("min").to_numpy()       # a group is named by its first lesion


def bootstrap_counts(groups: Sequence, n_boot: int, seed: int = 0) -> np.ndarray:
    """The one bootstrap of skinlib: ``(n_boot, n)`` counts of how often each image is drawn, when each resample
    draws as many groups as there are, with replacement, and takes every image of a drawn group.

    Every interval in skinlib comes from these draws (:func:`bootstrap_ci`,
    :func:`skinlib.ensemble.paired_bootstrap_gain`, :func:`skinlib.report.split_cost`); resampled images are
    ``np.repeat(np.arange(n), counts[b])``.

    Args:
        groups: one label per image (:func:`bootstrap_groups`); all distinct labels resample images.
        n_boot: resamples.
        seed: seed of the draws.
    """
    codes = pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max(initial=-1)) + 1
    rng = np.random.default_rng(seed)
    counts = np.empty((n_boot, len(codes)), np.int32)
    for start in range(0, n_boot, _BLOCK):                          # blocks keep the memory small on real data
        rows = min(_BLOCK, n_boot - start)
        drawn = rng.integers(0, max(n_groups, 1), (rows, n_groups)) + (np.arange(rows) * n_groups)[:, None]
        per_group = np.bincount(drawn.ravel(), minlength=rows * n_groups).reshape(rows, n_groups)
        counts[start:start + rows] = per_group[:, codes]
    return counts


def resampled_label_metrics(y_true: Sequence[int], y_pred: Sequence[int], counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`label_metrics` of every resample at once, from :func:`bootstrap_counts`' counts (one matrix product).

    Args:
        y_true, y_pred: labels and predicted labels of the n images.
        counts: ``(n_boot, n)`` times each image is drawn.
    """
    y, pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    cell = np.zeros((len(y), k * k))
    cell[np.arange(len(y)), y * k + pred] = 1.0
    counts = np.asarray(counts)
    table = np.concatenate([counts[b:b + _BLOCK] @ cell for b in range(0, len(counts), _BLOCK)] or
                           [np.zeros((0, k * k))]).reshape(-1, k, k)      # (n_boot, true, predicted)
    tp = np.diagonal(table, axis1=1, axis2=2)
    support, predicted = table.sum(2), table.sum(1)
    present = support > 0
    total = table.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(present, tp / np.where(present, support, 1), np.nan)
        precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / np.where(support + predicted > 0, support + predicted, 1), 0.0)
        per_present = lambda v: np.where(present, v, 0).sum(1) / present.sum(1)  # noqa: E731
        ba = per_present(np.nan_to_num(recall))
        return {"balanced_accuracy": ba, "accuracy": tp.sum(1) / total, "precision_macro": per_present(precision),
                "recall_macro": ba, "f1_macro": per_present(f1), "f1_weighted": (f1 * support).sum(1) / total}


def _quantiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    samples = np.asarray(samples, float)
    finite = np.isfinite(samples)
    if not finite.any():
        return float("nan"), float("nan")
    low, high = np.quantile(samples[finite], [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def bootstrap_ci(
    y_true: Sequence[int],
    proba: np.ndarray,
    groups: Sequence | None,
    metric: Callable[[np.ndarray, np.ndarray], dict[str, float]] = classification_metrics,
    keys: Sequence[str] = HEADLINE,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentile bootstrap intervals that resample groups (lesions, or patients; :func:`bootstrap_counts`).

    Label metrics (:data:`LABEL_KEYS`) of ``proba.argmax(1)`` are computed for every resample at once; other
    keys call `metric` on each resample.

    Args:
        y_true, proba: labels and (n, k) probabilities (or (n,) for a binary `metric`).
        groups: one group label per image (:func:`bootstrap_groups`); None only where every image is known to be
            its own lesion.
        metric: ``metric(y, proba) -> dict`` giving `keys` (and the point values).
        keys: the metrics to give intervals.
        n_boot, level, seed: resamples, interval level and seed.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    groups = np.arange(len(y_true)) if groups is None else np.asarray(groups)
    if len(groups) != len(y_true):
        raise ValueError(f"{len(groups)} group labels for {len(y_true)} images")
    counts = bootstrap_counts(groups, n_boot, seed)
    label_only = set(keys) <= set(LABEL_KEYS) and metric in (classification_metrics, headline_metrics)
    point = label_metrics(y_true, proba.argmax(1)) if label_only else metric(y_true, proba)   # the same numbers
    if label_only:
        resampled = resampled_label_metrics(y_true, proba.argmax(1), counts)
        samples = {k: resampled[k] for k in keys}
    else:
        if metric is classification_metrics and set(keys) <= set(HEADLINE):
            metric = headline_metrics                                 # the same numbers, computed faster
        rows = np.arange(len(y_true))
        draws = [metric(y_true[idx], proba[idx]) for idx in (np.repeat(rows, c) for c in counts)]
        samples = {k: np.array([d[k] for d in draws], float) for k in keys}
    bounds = {k: _quantiles(samples[k], level) for k in keys}
    return pd.DataFrame({
        "value": [point[k] for k in keys],
        "low": [bounds[k][0] for k in keys],
        "high": [bounds[k][1] for k in keys],
    }, index=pd.Index(list(keys), name="metric"))


def binary_metrics(y_true: Sequence[int], p_positive: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """ROC-AUC, average precision, and accuracy, sensitivity, specificity, precision, F1 and the confusion counts
    (``tp``, ``fn``, ``fp``, ``tn``) at `threshold`."""
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
        "tp": int(tp), "fn": int(fn), "fp": int(fp), "tn": int(tn),
    }


def to_isic_csv(image_ids: Sequence[str], proba: np.ndarray, path: str | Path,
                classes: Sequence[str] = CLASSES) -> Path:
    """Write predictions in the ISIC 2018 Task 3 scoring format: ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, unrounded
    (every probability reads back as the value the run's metrics were computed from).

    The scorer takes each row's largest value as the decision. Where a row's largest value is tied (a vote's shares,
    e.g. three members voting three classes), the run decided by ``argmax`` in `classes` order (the lowest class
    index wins, the voting rule's tie-break), while the file's column order differs: the decided class is raised by
    the smallest step a float has, so the scorer reads the decision the run's metrics came from
    (:func:`isic_decisions` reads it back)."""
    proba = np.array(proba, dtype=float)
    top = proba.max(1, keepdims=True)
    tied = (proba == top).sum(1) > 1
    rows = np.flatnonzero(tied)
    winner = proba.argmax(1)[rows]
    proba[rows, winner] = np.nextafter(top[rows, 0], np.inf)
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


def isic_decisions(path: str | Path, classes: Sequence[str] = CLASSES) -> tuple[list[str], np.ndarray]:
    """Image ids and the class index (in `classes`) an ISIC scorer reads from a scoring CSV: each row's largest value,
    the first column of the file on a tie (``DataFrame.idxmax``)."""
    table = pd.read_csv(path)
    ids, _ = read_isic_csv(path, classes)                           # checks the columns
    columns = [c for c in table.columns if c != "image"]
    picked = table[columns].astype(float).idxmax(axis=1)
    return ids, np.array([list(classes).index(c.lower()) for c in picked])


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
