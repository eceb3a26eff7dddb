"""run_all.py --estimate: a fit estimating trains a warm-up step and a few timed steps, validates once, and notes
what the whole fit would take; the runner's projection adds that to the rest of the run as measured."""

from __future__ import annotations

import io
import json

import numpy as np
import torch

from skinlib import estimate
from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import ResidualCNN
from skinlib.train import FitConfig, fit


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
    [entry] = [json.loads(line) for line in notes.read_text().splitlines()]
    assert entry["steps_per_epoch"] == len(batches) and entry["epochs"] == 30
    expected = 30 * (len(batches) * entry["seconds_per_step"] + entry["val_seconds"])
    assert np.isclose(entry["projected_seconds"], expected) and entry["peak_memory_gb"] > 0

    # the run's projection: measured time, less its fits' few steps, plus the fits' projections
    row = estimate.projection(notes, measured_seconds=entry["fit_seconds"] + 12.0)
    assert np.isclose(row["projected_seconds"], 12.0 + expected) and row["fits"] == 1
    assert row["steps"] == 30 * len(batches)
    text = estimate.table([("05_transfer_learning--x", row)])
    assert "05_transfer_learning--x" in text and "total (one run at a time)" in text
    assert estimate.projection(tmp_path / "none.jsonl", 5.0)["projected_seconds"] == 5.0      # no fit: as measured
