"""What the studies' image-level split adds to a result: the same model cross-fitted on lesion-grouped and on
image-level folds, each recorded in the registry (experiment ``split_cost``); :func:`skinlib.report.split_cost`
compares them image by image.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from .data.labels import CLASSES
from .data.splits import DEFAULTS, make_folds
from .evaluation import evaluate_splits
from .registry import SPLIT_COST, record


def cross_fit(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, make_model: Callable[[], Any],
              n_classes: int = len(CLASSES)) -> np.ndarray:
    """Out-of-fold probabilities: for each fold, a new model from `make_model` (scikit-learn style: ``fit``,
    ``predict_proba``, ``classes_``) is fitted on the other folds' rows and predicts this fold's rows. Every row is
    predicted once, by a model that never saw it.

    Args:
        features: one row per image.
        labels: class index per row.
        folds: fold number per row (:func:`skinlib.data.splits.make_folds`).
        make_model: returns an unfitted model.
        n_classes: columns of the result (a class missing from a fold's training rows gets probability 0).
    """
    labels, folds = np.asarray(labels), np.asarray(folds)
    if not (len(features) == len(labels) == len(folds)):
        raise ValueError(f"features, labels and folds differ in length: {len(features)}, {len(labels)}, {len(folds)}")
    proba = np.zeros((len(labels), n_classes))
    for fold in np.unique(folds):
        held_out = folds == fold
        model = make_model().fit(features[~held_out], labels[~held_out])
        proba[np.ix_(held_out, np.asarray(model.classes_, dtype=int))] = model.predict_proba(features[held_out])
    return proba


def measure_split_cost(table: pd.DataFrame, features: np.ndarray, make_model: Callable[[], Any], name: str,
                       params: dict[str, Any], *, folds: int = 5, seed: int = 0) -> dict[str, str]:
    """What the studies' image-level split adds to a result, measured with `k`-fold cross-fitting on every image of
    `table`: the same model on lesion-grouped folds (as 02 groups) and on image-level folds (as the studies split),
    each image predicted by a model that did not train on it. Each kind is recorded as a run
    ``split_cost/<name>-<kind>-<k>fold`` (predictions with ``lesion_id`` and ``fold``), which
    :func:`skinlib.report.split_cost` compares image by image. Returns ``{kind: "split_cost/<run>"}``.

    Args:
        table: the images (a split catalog: every split is used), with ``label`` and ``lesion_id``.
        features: one row per row of `table`.
        make_model: returns an unfitted scikit-learn style model.
        name: the measured model's run name; params: its resolved parameters (recorded with ``folds``).
        folds: number of folds (at least 2).
        seed: seed of the folds.
    """
    runs = {}
    for group_by in (DEFAULTS["group_by"], "image"):
        kind = "image" if group_by == "image" else "lesion"
        division = make_folds(table, folds, seed=seed, group_by=group_by, stratify=DEFAULTS["stratify"])
        everything = table.assign(fold=division["fold"].to_numpy(), split="test").reset_index(drop=True)
        proba = cross_fit(features, everything["label"].to_numpy(), everything["fold"].to_numpy(), make_model)
        parts = {"test": everything}
        evaluation = evaluate_splits(parts, {"test": proba}, seed=seed)
        run = f"{name}-{kind}-{folds}fold"
        record(SPLIT_COST, run, {**params, "folds": folds, "fold_group_by": group_by}, parts, evaluation,
               columns=("lesion_id", "fold"), isic_csv=False)
        runs[kind] = f"{SPLIT_COST}/{run}"
    return runs


