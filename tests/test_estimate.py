"""run_all.py --estimate: a fit estimating trains a warm-up step and a few timed steps, validates once, and notes
what the whole fit would take; the runner's projection adds that to the rest of the run as measured."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import torch

from skinlib import estimate
from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import ResidualCNN
from skinlib.train import FitConfig, fit, predict


def test_an_estimating_fit_times_a_few_steps_and_projects_every_epoch(synthetic_small, tmp_path, monkeypatch):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 24)
    train, val = catalog[split == "train"], catalog[split == "val"]
    pre = Preprocess(*channel_stats(cache, train["image_id"]))
    batches = Batches(cache, train["image_id"], train["label"], 8, shuffle=True, seed=1)
    assert len(batches) > 6
    notes = tmp_path / "run.estimate.jsonl"
    monkeypatch.setenv(estimate.STEPS_ENV, "3")
    monkeypatch.setenv(estimate.FILE_ENV, str(notes))
    seen = []
    real_iter = Batches.__iter__

    def counted(self):
        for item in real_iter(self):
            if self is batches:
                seen.append(1)
            yield item

    monkeypatch.setattr(Batches, "__iter__", counted)
    torch.manual_seed(0)
    result = fit(ResidualCNN(7, width=4, blocks=(1,)), batches, Batches(cache, val["image_id"], val["label"], 64), pre,
                 pre, FitConfig(max_epochs=30, seed=0), log=io.StringIO())
    assert len(seen) == 4 and len(result.history) == 1             # 1 warm-up + 3 timed steps, one validation
    val_pass, entry = [json.loads(line) for line in notes.read_text().splitlines()]
    assert val_pass["kind"] == "pass" and entry["kind"] == "fit"
    assert entry["steps_per_epoch"] == len(batches) and entry["epochs"] == 30
    assert entry["val_seconds"] == val_pass["projected_seconds"]
    # the validation pass noted itself once: the fit adds the other 29 epochs' passes
    expected = 30 * len(batches) * entry["seconds_per_step"] + 29 * entry["val_seconds"]
    assert np.isclose(entry["projected_seconds"], expected) and entry["peak_memory_gb"] > 0

    # the run's projection: measured time, less what its cut-short fit and passes took, plus their projections
    row = estimate.projection(notes, measured_seconds=entry["seconds"] + val_pass["seconds"] + 12.0)
    assert np.isclose(row["projected_seconds"], 12.0 + expected + val_pass["projected_seconds"])
    assert row["fits"] == 1 and row["passes"] == 1 and row["steps"] == 30 * len(batches)
    text = estimate.table([("05_transfer_learning--x", row)])
    assert "05_transfer_learning--x" in text and "total (one run at a time)" in text
    assert estimate.projection(tmp_path / "none.jsonl", 5.0)["projected_seconds"] == 5.0      # no fit: as measured


def test_a_pass_is_cut_short_timed_and_projected(tmp_path, monkeypatch):
    notes = tmp_path / "run.estimate.jsonl"
    assert list(estimate.sampled(range(10), 10, "predict")) == list(range(10))      # not estimating: every batch
    monkeypatch.setenv(estimate.STEPS_ENV, "2")
    monkeypatch.setenv(estimate.FILE_ENV, str(notes))

    def slow(n):
        for i in range(n):
            time.sleep(0.05 if i == 0 else 0.01)                                     # a slow first (warm-up) batch
            yield i

    assert list(estimate.sampled(slow(100), 100, "predict")) == [0, 1, 2]           # 1 warm-up + 2 timed
    entry = estimate.last_pass()
    assert entry["kind"] == "pass" and entry["batches"] == 100 and entry["ran"] == 3 and entry["peak_memory_gb"] > 0
    # the warm-up batch as measured, plus the timed batches' mean for each of the other 99
    assert 0.05 + 99 * 0.01 <= entry["projected_seconds"] < 0.05 + 99 * 0.03
    assert list(estimate.sampled(range(2), 2, "predict")) == [0, 1]                  # shorter than the budget: all
    assert estimate.last_pass()["projected_seconds"] == estimate.last_pass()["seconds"]
    assert len(notes.read_text().splitlines()) == 2


def test_padded_fills_a_cut_short_pass_to_its_true_size():
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert estimate.padded(rows, 3) is rows
    filled = estimate.padded(rows, 7)
    assert filled.shape == (7, 2) and filled.dtype == np.float32 and (filled[3:6] == rows).all()
    noisy = estimate.padded(rows, 50, noise=True)
    assert noisy.shape == (50, 2) and (noisy[:3] == rows).all()
    assert not any((noisy[3:] == row).all(1).any() for row in rows)                  # no repeats: no false duplicates


def test_an_estimating_prediction_runs_a_few_batches_and_returns_every_row(synthetic_small, tmp_path, monkeypatch):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    cache = build_cache(catalog, 24)
    batches = Batches(cache, catalog["image_id"], catalog["label"], 4)
    pre = Preprocess(*channel_stats(cache, catalog["image_id"]))
    model = ResidualCNN(7, width=4, blocks=(1,))
    monkeypatch.setenv(estimate.STEPS_ENV, "2")
    monkeypatch.setenv(estimate.FILE_ENV, str(tmp_path / "notes.jsonl"))
    proba = predict(model, batches, pre)
    assert proba.shape == (len(catalog), 7) and np.allclose(proba.sum(1), 1, atol=1e-4)
    assert estimate.last_pass()["ran"] == 3 and estimate.last_pass()["batches"] == len(batches)
    monkeypatch.delenv(estimate.STEPS_ENV)
    assert np.allclose(predict(model, batches, pre)[:12], proba[:12], atol=1e-5)     # the rows it did compute


def test_an_estimating_grad_cam_explains_a_few_batches_and_fills_the_rest(tmp_path, monkeypatch):
    from skinlib import explain

    torch.manual_seed(0)
    model = ResidualCNN(7, width=4, blocks=(1,)).eval()
    inputs = torch.randn(20, 3, 32, 32)
    monkeypatch.setenv(estimate.STEPS_ENV, "1")
    monkeypatch.setenv(estimate.FILE_ENV, str(tmp_path / "notes.jsonl"))
    proba = explain.probabilities(model, inputs, batch_size=4)
    assert proba.shape == (20, 7) and estimate.last_pass()["ran"] == 2 and estimate.last_pass()["batches"] == 5
    maps = explain.gradcam(model, inputs, list(proba.argmax(1)), batch_size=4)
    assert maps.shape == (20, 32, 32) and estimate.last_pass()["what"] == "gradcam"
    monkeypatch.delenv(estimate.STEPS_ENV)
    assert np.allclose(explain.probabilities(model, inputs, batch_size=4)[:8], proba[:8], atol=1e-5)


def test_run_all_estimate_prints_the_table_in_a_workspace_of_its_own_and_resumes(synthetic_small, workspace, capfd):
    """The command a user types, end to end on a small HAM10000 folder: 02 and 04 execute with their passes cut
    short, each noting its estimate; the table has 04's fit; nothing is written where real runs go; a second call
    estimates nothing again and prints the same table."""
    from test_datasets import _main

    argv = ["--data", str(synthetic_small / "ham10000"), "--estimate", "1", "--no-progress", "--only", "02", "04"]
    assert _main(argv) == 0
    said = capfd.readouterr().out
    out = workspace / "estimate" / "outputs" / "default-1steps"
    assert f"executed notebooks in {out}" in said and not (workspace / "outputs").exists()
    table = said[said.index("estimate on this machine"):]
    row = next(line.split() for line in table.splitlines() if line.startswith("04_custom_cnn "))
    assert row[1] == "1" and int(row[2]) > 0, table                           # one fit, its steps projected
    assert "02_splits " in table and "total (one run at a time)" in table
    entries = [json.loads(line) for line in (out / "04_custom_cnn.estimate.jsonl").read_text().splitlines()]
    assert [e["kind"] for e in entries].count("fit") == 1 and any(e["kind"] == "pass" for e in entries)
    assert _main(argv) == 0
    again = capfd.readouterr().out
    assert again.count("already done") == 2 and "04_custom_cnn " in again[again.index("estimate on this machine"):]
