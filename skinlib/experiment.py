"""The steps the model notebooks share: read the saved split, make batches, evaluate, record the run.

Keeps notebooks 03-05 to their story; every run ends in the results registry the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from . import metrics, paths
from .data.labels import CLASSES
from .data.source import open_catalog
from .data.splits import DEFAULT_SPLIT, DEFAULTS, SPLITS, load_split, make_and_save_splits, make_folds
from .results import SPLIT_COST, RunRecorder

if TYPE_CHECKING:
    from torch import nn

    from .models.spec import ModelSpec


SMOKE_ENV = "SKINLIB_SMOKE"


def smoke_subset(table: pd.DataFrame, per_class: int | None = None, by: str | list = "label") -> pd.DataFrame:
    """In a smoke run (``run_all.py --smoke`` sets ``$SKINLIB_SMOKE`` to a count), keep at most that many images
    of each class in each split, so every run of a profile finishes in seconds with its real settings otherwise.
    Outside a smoke run, `table` unchanged.

    Args:
        table: a split catalog (with a ``split`` column).
        per_class: images kept per class and split; None: ``$SKINLIB_SMOKE`` (unset or empty: no subset).
        by: the class column (``label``, or a binary target), or a list of columns / Series (each combination kept).
    """
    if per_class is None:
        text = os.environ.get(SMOKE_ENV, "").strip()
        if not text:
            return table
        per_class = int(text)
    keep = table.groupby(["split", *(by if isinstance(by, list) else [by])], sort=False, group_keys=False).head(per_class)
    subset = table.loc[sorted(keep.index)].reset_index(drop=True)
    subset.attrs = dict(table.attrs, smoke=per_class)
    print(f"SMOKE RUN: {len(subset)} of {len(table)} images kept ({per_class} per class and split); "
          "the numbers below only show that the run gets through")
    return subset


def split_catalog(data_dir=None, layout=None, split_name: str = DEFAULT_SPLIT, *, seed: int = 0,
                  allow_missing: bool = False, localization: str | None = None) -> pd.DataFrame:
    """The catalog with a ``split`` column from the split saved by notebook 02 (checked against this catalog).

    Args:
        data_dir, layout, seed, allow_missing: as for :func:`skinlib.data.open_catalog`.
        split_name: a split saved by ``02_splits`` (``splits/<name>/`` in the workspace). The default split,
            when missing, is made here with 02's defaults (saying so in one line); another missing split is an error.
        localization: keep only images of this body site (study E's ``lower extremity`` subset); the
            split itself is unchanged, so the subset's train / val / test stay lesion-disjoint.
    """
    catalog = open_catalog(data_dir, layout, seed=seed, allow_missing=allow_missing)
    if split_name == DEFAULT_SPLIT and not (paths.splits_dir() / split_name / "split.csv").is_file():
        folder = make_and_save_splits(catalog)[split_name]
        print(f"no split {split_name!r} saved yet: made it as 02_splits does with its defaults, in "
              f"{paths.display_path(folder)}", flush=True)
    split = load_split(split_name, catalog)
    table = catalog.merge(split, on="image_id", validate="one_to_one")
    table.attrs = dict(catalog.attrs, split_name=split_name, normalization=split.attrs["manifest"].get("normalization"))
    if localization:
        table = table[table["localization"] == localization].reset_index(drop=True)
        if table.empty:
            raise ValueError(f"no images with localization {localization!r}; values: {sorted(catalog['localization'].unique())}")
    return smoke_subset(table)


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
                    seed: int = 0, classes: Sequence[str] = CLASSES) -> Evaluation:
    """Metrics per split, and for test the per-class report, confusion matrix and bootstrap intervals.

    Args:
        parts: the splits' tables (``label``: index into `classes`).
        proba: (n, len(classes)) probabilities per split, rows in the tables' order.
        n_boot, seed: bootstrap resamples and their seed.
        classes: class codes of the probability columns (a subset for a specialist, see :func:`restrict_classes`).
    """
    results = {s: metrics.classification_metrics(parts[s]["label"].to_numpy(), p) for s, p in proba.items()}
    y_test, p_test = parts["test"]["label"].to_numpy(), proba["test"]
    return Evaluation(
        proba, results, metrics.per_class_report(y_test, p_test, classes),
        metrics.confusion(y_test, p_test.argmax(1), classes),
        metrics.confusion(y_test, p_test.argmax(1), classes, normalize=True),
        metrics.bootstrap_ci(y_test, p_test, n_boot=n_boot, seed=seed))


def restrict_classes(table: pd.DataFrame, classes: Sequence[str] | None) -> pd.DataFrame:
    """The images of `classes` only, with ``label`` re-indexed to the position in `classes` (a specialist's task).

    Args:
        table: a split catalog (``dx`` column of class codes).
        classes: class codes, e.g. ``["mel", "nv"]``; None or all seven: `table` unchanged.
    """
    if classes is None or list(classes) == list(CLASSES):
        return table
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be at least two distinct codes of {list(CLASSES)}, got {list(classes)}")
    out = table[table["dx"].isin(classes)].reset_index(drop=True)
    out["label"] = out["dx"].map({c: i for i, c in enumerate(classes)}).astype(int)
    out.attrs = dict(table.attrs, classes=list(classes))
    return out


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
           history: pd.DataFrame | None = None, figures: dict[str, Any] | None = None,
           model: nn.Module | None = None, spec: ModelSpec | None = None,
           classes: Sequence[str] = CLASSES, columns: Sequence[str] = (), isic_csv: bool = True) -> RunRecorder:
    """Write a finished run to the registry: params, metrics, per-image predictions, tables, figures, an
    ISIC-format CSV of the test predictions, and the model (weights + spec) when given. Returns the recorder
    (already finished).

    Args:
        experiment, run: where the run goes (``results/<experiment>/<run>/``).
        params: the notebook's resolved parameters.
        parts: the splits' tables, rows in the order of `evaluation`'s probabilities.
        evaluation: from :func:`evaluate_splits`.
        history: per-epoch training history.
        figures: name -> matplotlib figure.
        model: the trained model: its weights go to ``model.safetensors`` (rebuilt by
            :func:`skinlib.results.load_model`).
        spec: how to rebuild `model` (``model.json``); required with `model`.
        classes: class codes of the probability columns (a specialist's subset; the ISIC CSV needs all seven).
        columns: more columns of `parts` kept in the predictions table (e.g. ``lesion_id``, ``fold``).
        isic_csv: write the ISIC-format CSV of the test predictions (cross-fitted predictions are not a test split).

    A binary run (:func:`evaluate_binary`) has one predictions column ``p_<positive>`` and no ISIC CSV.
    """
    if model is not None and spec is None:
        raise ValueError("record(model=...) needs spec=ModelSpec(...) saying how to rebuild the model "
                         "(factory, kwargs, mean, std, image_size)")
    if spec is not None and model is None:
        raise ValueError("record(spec=...) given without model=")
    classes = list(classes)
    recorder = RunRecorder(experiment, run, params)
    rows = []
    binary = evaluation.positive is not None
    for split, p in evaluation.proba.items():
        frame = pd.DataFrame(p, columns=[f"p_{evaluation.positive}"] if binary else [f"p_{c}" for c in classes])
        frame.insert(0, "label", parts[split][evaluation.target].to_numpy())
        for i, column in enumerate(columns):
            frame.insert(i, column, parts[split][column].to_numpy())
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
    if isic_csv and not binary and classes == list(CLASSES):
        metrics.to_isic_csv(parts["test"]["image_id"], evaluation.proba["test"], recorder.file("isic_test_predictions.csv"))
    if model is not None:
        recorder.model(model, spec)
    recorder.finish()
    return recorder


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


def predict_recorded(experiment: str, run: str, table: pd.DataFrame, splits: Sequence[str] = ("val", "test"), *,
                     batch_size: int = 64, device: str = "auto", root=None) -> dict[str, np.ndarray]:
    """Probabilities of a model kept in the registry on every image of `splits`, without retraining.

    Args:
        experiment, run: the run (it must have been recorded with ``model=``).
        table: the split catalog (:func:`split_catalog`); its image cache at the model's size is used or built.
        splits: which splits to predict, rows in the order of ``by_split(table)[split]`` (all classes: a
            specialist sees every image it is asked about).
        batch_size: images per batch.
        device: auto (GPU when present), cpu or cuda.
        root: the registry folder (default: the workspace's).
    """
    from .data.batches import Batches
    from .data.cache import build_cache
    from .results import load_model, load_spec
    from .train import predict, resolve_device

    dev = resolve_device(device)
    spec = load_spec(experiment, run, root)
    model, preprocess = load_model(experiment, run, root, device=str(dev))
    cache = build_cache(table, spec.image_size, resample=spec.resample)
    parts = by_split(table)
    return {split: predict(model, Batches(cache, parts[split]["image_id"], np.zeros(len(parts[split]), dtype=int),
                                          batch_size, device=dev), preprocess) for split in splits}
