"""The one bootstrap: it resamples lesions (or patients), so its intervals keep their promised coverage when a
lesion's images are correlated; every interval in skinlib comes from it, and the groups are recorded."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from skinlib import ensemble, evaluation, metrics, registry

LESIONS_PER_CLASS, IMAGES_PER_LESION = 40, 4
HARD_SHARE, RIGHT_ON_EASY, RIGHT_ON_HARD = 0.3, 0.9, 0.1
#: the simulated model's recall of each class, so its balanced accuracy in the population
TRUTH = (1 - HARD_SHARE) * RIGHT_ON_EASY + HARD_SHARE * RIGHT_ON_HARD


def simulated_test_set(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two classes of lesions with four images each; a lesion is hard or easy for the model, and all its images
    with it (images of one lesion are correlated, as HAM10000's are). Returns labels, predictions, lesions."""
    lesions = np.arange(2 * LESIONS_PER_CLASS)
    y_lesion = lesions % 2
    hard = rng.random(len(lesions)) < HARD_SHARE
    lesion = np.repeat(lesions, IMAGES_PER_LESION)
    right = rng.random(len(lesion)) < np.where(hard[lesion], RIGHT_ON_HARD, RIGHT_ON_EASY)
    y = y_lesion[lesion]
    return y, np.where(right, y, 1 - y), lesion


def test_group_bootstrap_covers_the_truth_and_the_image_bootstrap_does_not(capsys):
    rng = np.random.default_rng(0)
    repetitions, covered = 300, {"lesion": 0, "image": 0}
    started = time.perf_counter()
    for r in range(repetitions):
        y, pred, lesion = simulated_test_set(rng)
        proba = np.eye(2)[pred]
        for kind, groups in (("lesion", lesion), ("image", None)):
            ci = metrics.bootstrap_ci(y, proba, groups, keys=("balanced_accuracy",), n_boot=300, seed=r)
            covered[kind] += ci.loc["balanced_accuracy", "low"] <= TRUTH <= ci.loc["balanced_accuracy", "high"]
    coverage = {kind: n / repetitions for kind, n in covered.items()}
    with capsys.disabled():
        print(f"\n95% intervals covering the true balanced accuracy {TRUTH:.2f} in {repetitions} simulated test sets "
              f"of {IMAGES_PER_LESION} correlated images per lesion: resampling lesions {coverage['lesion']:.3f}, "
              f"resampling images {coverage['image']:.3f} ({time.perf_counter() - started:.1f} s)")
    assert 0.90 <= coverage["lesion"] <= 0.99
    assert coverage["image"] < 0.85
    assert coverage["lesion"] - coverage["image"] > 0.12


def test_resampled_label_metrics_equal_label_metrics_on_each_resample():
    rng = np.random.default_rng(1)
    y, pred, lesion = simulated_test_set(rng)
    pred[::7] = 2                                               # a class predicted but never true
    counts = metrics.bootstrap_counts(lesion, 50, seed=4)
    fast = metrics.resampled_label_metrics(y, pred, counts)
    rows = np.arange(len(y))
    for b in range(len(counts)):
        idx = np.repeat(rows, counts[b])
        slow = metrics.label_metrics(y[idx], pred[idx])
        for key, value in slow.items():
            assert fast[key][b] == pytest.approx(value, abs=1e-12), key


def test_bootstrap_counts_draw_whole_lesions():
    lesion = np.array(["a", "a", "a", "b", "c", "c"])
    counts = metrics.bootstrap_counts(lesion, 200, seed=0)
    assert counts.shape == (200, 6)
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 0] == counts[:, 2]).all()
    assert (counts[:, 4] == counts[:, 5]).all()
    per_lesion = counts[:, [0, 3, 4]]
    assert (per_lesion.sum(1) == 3).all()                        # as many lesions drawn as there are
    np.testing.assert_array_equal(counts, metrics.bootstrap_counts(lesion, 200, seed=0))


def test_groups_are_lesions_linked_through_patients_and_the_recorded_column_wins():
    table = pd.DataFrame({"image_id": ["i1", "i2", "i3", "i4", "i5"], "lesion_id": ["L2", "L2", "L1", "L3", ""],
                          "patient_id": ["", "", "P1", "P1", ""]})
    groups = metrics.bootstrap_groups(table)
    assert list(groups) == ["L2", "L2", "L1", "L1", "i5"]        # L1 and L3 share a patient; no lesion: itself
    assert list(metrics.bootstrap_groups(table.assign(group=list("abcde")))) == list("abcde")
    with pytest.raises(ValueError, match="no lesion_id or group column"):
        metrics.bootstrap_groups(table.drop(columns="lesion_id"))


def _parts(rng, n_lesions=60, per_lesion=3, classes=7):
    parts = {}
    for split in ("val", "test"):
        lesion = np.repeat(np.arange(n_lesions), per_lesion)
        y = (lesion % classes)
        parts[split] = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(len(y))], "label": y,
                                     "lesion_id": [f"{split}-L{k}" for k in lesion]})
    proba = {s: rng.dirichlet(np.ones(classes), len(p)) + 0.5 * np.eye(classes)[p["label"]] for s, p in parts.items()}
    return parts, {s: p / p.sum(1, keepdims=True) for s, p in proba.items()}


def test_recorded_groups_give_back_every_recorded_interval(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    rng = np.random.default_rng(2)
    parts, proba = _parts(rng)
    ev = evaluation.evaluate_splits(parts, proba, n_boot=100, seed=5)
    registry.record("exp", "multi", {}, parts, ev)
    binary_parts = {s: p.assign(target=(p["label"] == 0).astype(int)) for s, p in parts.items()}
    binary = evaluation.evaluate_binary(binary_parts, {s: p[:, 0] for s, p in proba.items()}, "akiec", n_boot=30,
                                        seed=5)
    registry.record("exp", "binary", {}, binary_parts, binary)

    run = registry.load_run("exp", "multi")
    test = run.predictions.query("split == 'test'")
    assert test["group"].nunique() == 60
    again = metrics.bootstrap_ci(test["label"], test.filter(like="p_").to_numpy(), test["group"], n_boot=100, seed=5)
    recorded = pd.DataFrame(run.metrics["test_ci"]).T[["value", "low", "high"]]
    pd.testing.assert_frame_equal(again.astype(float), recorded.loc[again.index].astype(float), check_names=False)
    image_level = metrics.bootstrap_ci(test["label"], test.filter(like="p_").to_numpy(), None, n_boot=100, seed=5)
    assert not np.allclose(again["low"], image_level["low"])     # the lesions made a difference
    b = registry.load_run("exp", "binary")
    assert b.metrics["test"]["youden_balanced_accuracy_low"] <= b.metrics["test"]["youden_balanced_accuracy"]
    assert b.predictions.query("split == 'test'")["group"].nunique() == 60


def test_paired_gain_resamples_lesions():
    rng = np.random.default_rng(3)
    y, pred, lesion = simulated_test_set(rng)
    better = np.where(rng.random(len(y)) < 0.3, y, pred)         # right more often, by image
    by_lesion = ensemble.paired_bootstrap_gain(y, np.eye(2)[better], np.eye(2)[pred], lesion, n_boot=400)
    by_image = ensemble.paired_bootstrap_gain(y, np.eye(2)[better], np.eye(2)[pred], None, n_boot=400)
    assert by_lesion["gain"] == by_image["gain"] > 0
    assert by_lesion["low"] <= by_lesion["gain"] <= by_lesion["high"]
    counts = metrics.bootstrap_counts(lesion, 400, seed=0)
    gains = (metrics.resampled_label_metrics(y, better, counts)["balanced_accuracy"]
             - metrics.resampled_label_metrics(y, pred, counts)["balanced_accuracy"])
    assert by_lesion["low"] == pytest.approx(np.quantile(gains, 0.025))
