"""Variants of one model in the registry, compared with it: its test-time-augmented prediction (same weights, another
prediction; :mod:`skinlib.tta`) with a paired interval, and its runs on shares of the training labels
(``train_fraction``: label-efficiency curves).

A TTA variant is recorded as its own run whose parameters name the plain run (``tta_of``) and the views (``tta``);
both predicted the same test images, so their difference is bootstrapped on the same resampled lesions
(:func:`skinlib.ensemble.paired_bootstrap_gain`, the one paired group bootstrap). A run on a share of the training
labels records ``train_fraction`` and its name ends with ``-frac<share>`` (:func:`skinlib.inputs.fraction_suffix`):
dropping that suffix names the curve it belongs to.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .ensemble import paired_bootstrap_gain
from .metrics import balanced_accuracy, binary_metrics
from .registry import gather, load_run

_FRACTION = re.compile(r"-frac[0-9.e+-]+?(?=-|$)")


def _test(experiment: str, run: str, root: Path | None) -> pd.DataFrame:
    pred = load_run(experiment, run, root).predictions
    return pred[pred["split"] == "test"].set_index("image_id")


def tta_effect(root: Path | None = None, experiments: list[str] | None = None, n_boot: int = 1000,
               seed: int = 0) -> pd.DataFrame:
    """One row per test-time-augmented variant in the registry: the plain run's test score, the variant's, and the
    gain with a 95% paired bootstrap interval that resamples lesions (``p_not_better``: the share of resamples
    without a gain). Multiclass runs: balanced accuracy; binary runs (one ``p_<positive>`` column): ROC-AUC
    (threshold-free, so the comparison does not depend on a threshold chosen on either's validation).

    Args:
        root: the registry folder (default: the workspace's).
        experiments: the experiments to look in (None: all).
        n_boot, seed: bootstrap resamples and their seed.

    Raises:
        ValueError: a variant and its plain run predicted different test images (they must share a split).
    """
    frames = [gather(e, root=root, params=("tta", "tta_of")) for e in (experiments or [None])]
    runs = pd.concat([f for f in frames if not f.empty], ignore_index=True) if any(not f.empty for f in frames) \
        else pd.DataFrame()
    columns = ["experiment", "run", "tta", "metric", "plain", "with tta", "gain", "low", "high", "p_not_better"]
    if runs.empty or "tta_of" not in runs:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, variant in runs[runs["tta_of"].notna()].iterrows():
        experiment, plain_run = variant["experiment"], variant["tta_of"]
        try:
            plain, tta = _test(experiment, plain_run, root), _test(experiment, variant["run"], root)
        except FileNotFoundError:
            continue                              # the plain run was removed; the variant alone says nothing here
        if set(plain.index) != set(tta.index):
            raise ValueError(f"{experiment}/{variant['run']} and its plain run {plain_run} predicted different test "
                             "images; rerun both on one split")
        tta = tta.loc[plain.index]
        proba = [c for c in plain.columns if c.startswith("p_")]
        y = plain["label"].to_numpy(int)
        a, b = tta[proba].to_numpy(float), plain[proba].to_numpy(float)
        groups = plain["group"].astype(str).to_numpy()
        if len(proba) > 1:
            gain = paired_bootstrap_gain(y, a, b, groups, metric="balanced_accuracy", n_boot=n_boot, seed=seed)
            label, base = "balanced accuracy", balanced_accuracy(y, b.argmax(1))
        else:
            gain = paired_bootstrap_gain(y, a[:, 0], b[:, 0], groups, metric="auc", n_boot=n_boot, seed=seed)
            label, base = "auc", binary_metrics(y, b[:, 0])["auc"]
        rows.append({"experiment": experiment, "run": plain_run, "tta": variant["tta"], "metric": label,
                     "plain": base, "with tta": base + gain["gain"], **{k: gain[k] for k in
                                                                        ("gain", "low", "high", "p_not_better")}})
    return pd.DataFrame(rows, columns=columns)


def curve_of(run: str) -> str:
    """The label-efficiency curve a run belongs to: its name without the ``-frac<share>`` part."""
    return _FRACTION.sub("", run)


def label_efficiency(runs: pd.DataFrame) -> pd.DataFrame:
    """The points of the label-efficiency curves: one row per run of a curve with at least two shares of the
    training labels (``train_fraction``; a run that records none trained on all of them), with its test headline
    balanced accuracy and 95% interval (:func:`skinlib.report.runs_table`'s ``headline``: a binary run's at its
    validation-chosen threshold). Test-time-augmented variants are left out (they share their plain run's
    training labels).

    Args:
        runs: :func:`skinlib.report.runs_table`'s rows (``params``, ``headline``, ``headline_low``,
            ``headline_high``, ``task``).
    """
    columns = ["experiment", "curve", "task", "train_fraction", "run", "balanced_accuracy", "low", "high"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for _, run in runs.iterrows():
        params = run["params"] if isinstance(run.get("params"), dict) else {}
        if params.get("tta_of"):
            continue
        fraction = params.get("train_fraction")
        rows.append({"experiment": run["experiment"], "curve": curve_of(run["run"]), "task": run.get("task"),
                     "train_fraction": 1.0 if fraction is None else float(fraction), "run": run["run"],
                     "balanced_accuracy": run["headline"], "low": run["headline_low"], "high": run["headline_high"]})
    table = pd.DataFrame(rows, columns=columns)
    shares = table.groupby(["experiment", "curve"])["train_fraction"].transform("nunique")
    return table[shares >= 2].sort_values(["experiment", "curve", "train_fraction"]).reset_index(drop=True)


def label_efficiency_plot(points: pd.DataFrame, ax=None):
    """Test balanced accuracy against the share of the training labels (log scale), one line per curve, with the
    95% bootstrap intervals as error bars; a note in the axes when no curve has two shares yet."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    if points.empty:
        ax.text(0.5, 0.5, "no model was run on two or more shares of the training labels (train_fraction)",
                ha="center", va="center", fontsize=9, wrap=True)
        ax.set_axis_off()
        return ax.figure
    for (experiment, curve), part in points.groupby(["experiment", "curve"]):
        y = part["balanced_accuracy"].to_numpy(float)
        err = np.vstack([y - part["low"].to_numpy(float), part["high"].to_numpy(float) - y])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        ax.errorbar(part["train_fraction"], y, yerr=err, marker="o", capsize=3, label=f"{experiment}/{curve}")
    ax.set_xscale("log")
    ax.set_xlabel("share of the training labels (train_fraction, log scale)")
    ax.set_ylabel("test balanced accuracy (95% CI)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return ax.figure

