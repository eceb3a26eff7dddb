"""Evaluate a model's probabilities on val and test: metrics per split, per-class report, confusion matrices,
bootstrap intervals; binary tasks with thresholds chosen on validation.

One path for every kind of prediction: a fresh model's (:func:`skinlib.train.predict_splits`), an ensemble's, or
a registry run's read back (:func:`skinlib.registry.load_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from . import metrics
from .data.labels import CLASSES


@dataclass
class Evaluation:
    """Predictions and metrics of one model on val and test."""

    proba: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    confusion_normalized: pd.DataFrame
    ci: pd.DataFrame
    positive: str | None = None        # binary tasks: the positive class (predictions column ``p_<positive>``)
    target: str = "label"              # the parts' column holding the true labels
    groups: dict[str, np.ndarray] | None = None   # per split, the bootstrap's group of each image (recorded)

    def summary(self) -> pd.DataFrame:
        """Headline metrics, one row per split."""
        keys = ["balanced_accuracy", "accuracy", "f1_macro", "f1_weighted", "precision_weighted", "recall_weighted",
                "auc_macro", "ece", "n"]
        if self.positive:
            keys = ["auc", "average_precision", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1",
                    "threshold", "n"]
        return pd.DataFrame({s: {k: m.get(k) for k in keys} for s, m in self.metrics.items()}).T


def evaluate_splits(parts: dict[str, pd.DataFrame], proba: dict[str, np.ndarray], n_boot: int = 500,
                    seed: int = 0, classes: Sequence[str] = CLASSES,
                    ci_keys: Sequence[str] = metrics.HEADLINE) -> Evaluation:
    """Metrics per split, and for test the per-class report, confusion matrix and bootstrap intervals.

    Args:
        parts: the splits' tables (``label``: index into `classes`).
        proba: (n, len(classes)) probabilities per split, rows in the tables' order.
        n_boot, seed: bootstrap resamples and their seed.
        classes: class codes of the probability columns (a subset for a specialist, see
            :func:`skinlib.inputs.restrict_classes`).
        ci_keys: metrics given bootstrap intervals (:func:`skinlib.metrics.headline_metrics`' keys; only label
            metrics, :data:`skinlib.metrics.LABEL_KEYS`, are computed for all resamples at once).

    The intervals resample lesions (:func:`skinlib.metrics.bootstrap_groups`: the tables need ``lesion_id``, or
    ``group``); the groups are kept in the evaluation and recorded with the predictions.
    """
    results = {s: metrics.classification_metrics(parts[s]["label"].to_numpy(), p) for s, p in proba.items()}
    groups = {s: metrics.bootstrap_groups(parts[s]) for s in proba}
    y_test, p_test = parts["test"]["label"].to_numpy(), proba["test"]
    return Evaluation(
        proba, results, metrics.per_class_report(y_test, p_test, classes),
        metrics.confusion(y_test, p_test.argmax(1), classes),
        metrics.confusion(y_test, p_test.argmax(1), classes, normalize=True),
        metrics.bootstrap_ci(y_test, p_test, groups["test"], n_boot=n_boot, seed=seed, keys=tuple(ci_keys)),
        groups=groups)


#: binary metrics given bootstrap intervals: the ranking ones, and the balanced accuracy at the Youden threshold
#: chosen on validation (the binary runs' headline, e.g. in the report's forest plot)
BINARY_CI = ("auc", "average_precision", "youden_balanced_accuracy")
THRESHOLDED = ("accuracy", "sensitivity", "specificity", "precision", "f1", "balanced_accuracy")


def evaluate_binary(parts: dict[str, pd.DataFrame], proba: dict[str, np.ndarray], positive: str,
                    target: str = "target", negative: str = "rest", min_sensitivity: float = 0.90,
                    n_boot: int = 500, seed: int = 0) -> Evaluation:
    """Binary metrics per split; thresholds chosen on **validation** (Youden's J, and sensitivity >= `min_sensitivity`)
    and applied to test; AUC, average precision and the balanced accuracy at the Youden threshold with bootstrap
    intervals that resample lesions (:func:`skinlib.metrics.bootstrap_groups`).

    ``metrics["test"]`` holds the test metrics at 0.5 plus, per rule, ``<rule>_threshold`` and the thresholded
    ``<rule>_accuracy``, ``_sensitivity``, ``_specificity``, ``_precision``, ``_f1``, ``_balanced_accuracy``, and
    ``<key>_low`` / ``<key>_high`` (95% bootstrap interval) for each key of :data:`BINARY_CI`, so
    :func:`skinlib.registry.gather` finds them all.

    Args:
        parts: train / val / test tables with the `target` column (0 / 1).
        proba: positive-class probabilities for ``val`` and ``test``.
        positive, negative: class names (predictions column ``p_<positive>``, confusion labels).
        target: the column of `parts` holding the labels.
        min_sensitivity: the sensitivity the ``sensitivity`` rule must reach on validation.
        n_boot, seed: bootstrap resamples and their seed.
    """
    y = {s: parts[s][target].to_numpy().astype(int) for s in proba}
    results = {s: metrics.binary_metrics(y[s], p) for s, p in proba.items()}
    thresholds = {rule: metrics.choose_threshold(y["val"], proba["val"], rule, min_sensitivity)
                  for rule in metrics.THRESHOLD_RULES}
    rows = {}
    for rule, t in thresholds.items():
        at = metrics.binary_metrics(y["test"], proba["test"], threshold=t)
        rows[rule] = {"threshold": t, **{k: at[k] for k in THRESHOLDED}}
        results["test"].update({f"{rule}_threshold": t, **{f"{rule}_{k}": at[k] for k in THRESHOLDED}})
    groups = {s: metrics.bootstrap_groups(parts[s]) for s in proba}
    youden = thresholds["youden"]

    def scores(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
        ba = metrics.balanced_accuracy(t, (p >= youden).astype(int))
        return {**metrics.ranking_metrics(t, p), "youden_balanced_accuracy": ba}

    ci = metrics.bootstrap_ci(y["test"], proba["test"], groups["test"], metric=scores, keys=BINARY_CI,
                              n_boot=n_boot, seed=seed)
    for key in BINARY_CI:
        results["test"].update({f"{key}_low": float(ci.loc[key, "low"]), f"{key}_high": float(ci.loc[key, "high"])})
    names = (negative, positive)
    t = thresholds["youden"]
    return Evaluation(proba, results, pd.DataFrame.from_dict(rows, orient="index").rename_axis("rule (chosen on val)"),
                      metrics.binary_confusion(y["test"], proba["test"], t, names),
                      metrics.binary_confusion(y["test"], proba["test"], t, names, normalize=True),
                      ci, positive=positive, target=target, groups=groups)


