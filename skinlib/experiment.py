"""The steps the model notebooks share: read the saved split, make batches, evaluate, record the run.

Keeps notebooks 03-05 to their story; every run ends in the results registry the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .data.labels import CLASSES
from .data.source import open_catalog
from .data.splits import SPLITS, load_split
from .results import RunRecorder


def split_catalog(data_dir=None, layout=None, split_name: str = "lesion-75-10-15-seed0", *, seed: int = 0,
                  allow_missing: bool = False, localization: str | None = None) -> pd.DataFrame:
    """The catalog with a ``split`` column from the split saved by notebook 02 (checked against this catalog).

    Args:
        data_dir, layout, seed, allow_missing: as for :func:`skinlib.data.open_catalog`.
        split_name: a split saved by ``02_splits`` (``splits/<name>/`` in the workspace).
        localization: keep only images of this body site (study E's ``lower extremity`` subset); the
            split itself is unchanged, so the subset's train / val / test stay lesion-disjoint.
    """
    catalog = open_catalog(data_dir, layout, seed=seed, allow_missing=allow_missing)
    split = load_split(split_name, catalog)
    table = catalog.merge(split, on="image_id", validate="one_to_one")
    table.attrs = dict(catalog.attrs, split_name=split_name, normalization=split.attrs["manifest"].get("normalization"))
    if localization:
        table = table[table["localization"] == localization].reset_index(drop=True)
        if table.empty:
            raise ValueError(f"no images with localization {localization!r}; values: {sorted(catalog['localization'].unique())}")
    return table


def by_split(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """train / val / test parts of a split catalog."""
    return {name: table[table["split"] == name] for name in SPLITS}


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

    def summary(self) -> pd.DataFrame:
        """Headline metrics, one row per split."""
        keys = ["balanced_accuracy", "accuracy", "f1_macro", "f1_weighted", "precision_weighted", "recall_weighted",
                "auc_macro", "ece", "n"]
        if self.positive:
            keys = ["auc", "average_precision", "balanced_accuracy", "sensitivity", "specificity", "precision", "f1",
                    "threshold", "n"]
        return pd.DataFrame({s: {k: m.get(k) for k in keys} for s, m in self.metrics.items()}).T


def evaluate_splits(parts: dict[str, pd.DataFrame], proba: dict[str, np.ndarray], n_boot: int = 500,
                    seed: int = 0) -> Evaluation:
    """Metrics per split, and for test the per-class report, confusion matrix and bootstrap intervals."""
    results = {s: metrics.classification_metrics(parts[s]["label"].to_numpy(), p) for s, p in proba.items()}
    y_test, p_test = parts["test"]["label"].to_numpy(), proba["test"]
    return Evaluation(
        proba, results, metrics.per_class_report(y_test, p_test),
        metrics.confusion(y_test, p_test.argmax(1)), metrics.confusion(y_test, p_test.argmax(1), normalize=True),
        metrics.bootstrap_ci(y_test, p_test, n_boot=n_boot, seed=seed))


BINARY_CI = ("auc", "average_precision")
THRESHOLDED = ("sensitivity", "specificity", "precision", "f1", "balanced_accuracy")


def evaluate_binary(parts: dict[str, pd.DataFrame], proba: dict[str, np.ndarray], positive: str,
                    target: str = "target", negative: str = "rest", min_sensitivity: float = 0.90,
                    n_boot: int = 500, seed: int = 0) -> Evaluation:
    """Binary metrics per split; thresholds chosen on **validation** (Youden's J, and sensitivity >= `min_sensitivity`)
    and applied to test; AUC and average precision with bootstrap intervals.

    ``metrics["test"]`` holds the test metrics at 0.5 plus, per rule, ``<rule>_threshold`` and the thresholded
    ``<rule>_sensitivity``, ``_specificity``, ``_precision``, ``_f1``, ``_balanced_accuracy``, and
    ``auc_low`` / ``auc_high`` (95% bootstrap interval), so :func:`skinlib.results.gather` finds them all.

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
    ci = metrics.bootstrap_ci(y["test"], proba["test"], metric=metrics.ranking_metrics, keys=BINARY_CI,
                              n_boot=n_boot, seed=seed)
    for key in BINARY_CI:
        results["test"].update({f"{key}_low": float(ci.loc[key, "low"]), f"{key}_high": float(ci.loc[key, "high"])})
    names = (negative, positive)
    t = thresholds["youden"]
    return Evaluation(proba, results, pd.DataFrame.from_dict(rows, orient="index").rename_axis("rule (chosen on val)"),
                      metrics.binary_confusion(y["test"], proba["test"], t, names),
                      metrics.binary_confusion(y["test"], proba["test"], t, names, normalize=True),
                      ci, positive=positive, target=target)


def record(experiment: str, run: str, params: dict[str, Any], parts: dict[str, pd.DataFrame], evaluation: Evaluation,
           history: pd.DataFrame | None = None, figures: dict[str, Any] | None = None) -> RunRecorder:
    """Write a finished run to the registry: params, metrics, per-image predictions, tables, figures, and an
    ISIC-format CSV of the test predictions (multiclass runs; a binary run's predictions column is ``p_<positive>``
    and its table the thresholded test metrics). Returns the recorder (already finished)."""
    recorder = RunRecorder(experiment, run, params)
    rows = []
    binary = evaluation.positive is not None
    for split, p in evaluation.proba.items():
        frame = pd.DataFrame(p, columns=[f"p_{evaluation.positive}"] if binary else [f"p_{c}" for c in CLASSES])
        frame.insert(0, "label", parts[split][evaluation.target].to_numpy())
        frame.insert(0, "split", split)
        frame.insert(0, "image_id", parts[split]["image_id"].to_numpy())
        rows.append(frame)
    recorder.predictions(pd.concat(rows, ignore_index=True))
    recorder.metrics({**evaluation.metrics, "test_ci": evaluation.ci.to_dict(orient="index")})
    recorder.table(evaluation.per_class, "thresholds_test" if binary else "per_class_test")
    recorder.table(evaluation.confusion, "confusion_test")
    if history is not None:
        recorder.history(history)
    for name, fig in (figures or {}).items():
        recorder.figure(fig, name)
    if not binary:
        metrics.to_isic_csv(parts["test"]["image_id"], evaluation.proba["test"], recorder.file("isic_test_predictions.csv"))
    recorder.finish()
    return recorder
