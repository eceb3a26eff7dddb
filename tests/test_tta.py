"""Test-time augmentation (skinlib.tta): the views, their average, and its variant in the registry beside the plain
run (skinlib.variants.tta_effect, the paired group bootstrap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skinlib import tta
from skinlib.data.batches import Batches
from skinlib.train import predict


class _Cache:
    """The part of an image cache Batches reads: ``images(ids)`` -> (n, S, S, 3) uint8."""

    def __init__(self, images: np.ndarray):
        self.data = images

    def images(self, ids):
        return self.data[np.asarray(ids, int)]


def _batches(n: int = 12, size: int = 16, seed: int = 0) -> Batches:
    images = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return Batches(_Cache(images), np.arange(n), np.zeros(n, int), 5)


class _Scale(nn.Module):
    def forward(self, x):
        return x.float() / 255.0


def _invariant() -> nn.Module:
    """Pointwise features, global average pooling, a linear head: the same output for every dihedral view."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _positional(size: int = 16) -> nn.Module:
    """A linear model of the flattened pixels: it sees where things are, so views change its output."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 4))


def test_the_eight_flips_are_the_dihedral_group():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    seen = [v(x) for v in tta.views("flips")]
    assert len(seen) == 8 and torch.equal(seen[0], x)
    assert len({tuple(v.flatten().tolist()) for v in seen}) == 8                  # all distinct
    assert any(torch.equal(v, torch.flip(x, dims=(-1,))) for v in seen)           # mirror left-right
    assert any(torch.equal(v, torch.flip(x, dims=(-2,))) for v in seen)           # upside down
    assert any(torch.equal(v, x.transpose(-1, -2)) for v in seen)                 # transpose
    for v in tta.views("flips"):                                                  # closed: composing stays inside
        assert any(torch.equal(v(seen[1]), w) for w in seen)
    assert len(tta.views("flips+crops")) == 13 and len(tta.views("none")) == 1
    with pytest.raises(ValueError, match="flips\\+crops"):
        tta.views("rotate")


def test_ordered_crops_take_the_corners_and_centre():
    x = torch.zeros(1, 1, 8, 8)
    x[..., :4, :4] = 1.0                                       # the top-left quarter lit
    top_left, bottom_right = tta.crop("top_left", 0.5)(x), tta.crop("bottom_right", 0.5)(x)
    assert top_left.shape == x.shape and torch.allclose(top_left, torch.ones_like(x))
    assert torch.allclose(bottom_right, torch.zeros_like(x))


def test_flips_of_an_invariant_model_change_nothing():
    batches, pre = _batches(), _Scale()
    model = _invariant()
    plain = predict(model, batches, pre, amp=False)
    assert np.allclose(tta.predict_tta(model, batches, pre, "flips", amp=False), plain, atol=1e-6)
    assert np.allclose(tta.predict_tta(model, batches, pre, "none", amp=False), plain)


def test_flips_of_a_positional_model_are_the_mean_over_the_views():
    """The same call on a model that sees positions: a different prediction, exactly the views' average."""
    batches, pre = _batches(), _Scale()
    model = _positional()
    plain = predict(model, batches, pre, amp=False)
    averaged = tta.predict_tta(model, batches, pre, "flips", amp=False)
    assert not np.allclose(averaged, plain, atol=1e-3)
    by_hand = np.mean([predict(model, batches, tta._Viewed(pre, v), amp=False) for v in tta.views("flips")], axis=0)
    assert np.allclose(averaged, by_hand, atol=1e-6) and np.allclose(averaged.sum(1), 1)


def test_variant_names_and_params():
    assert tta.variant_name("resnet18-scratch-rgb-noaug", "flips+crops") == "resnet18-scratch-rgb-noaug-tta_flips_crops"
    params = tta.variant_params({"seed": 0, "tta": "flips"}, "r", "flips")
    assert params["tta_of"] == "r" and params["run_name"] == "r-tta_flips" and tta.plain_params(params)["tta"] == "none"
    with pytest.raises(ValueError):
        tta.variant_name("r", "none")


def _record(root, run, proba, params):
    from skinlib.registry import RunRecorder

    n = len(proba)
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "split": "test",
                          "group": [f"l{k // 2}" for k in range(n)], "label": np.arange(n) % 2})
    for c in range(proba.shape[1]):
        table[f"p_{c}"] = proba[:, c]
    recorder = RunRecorder("transfer", run, params, root=root)
    recorder.predictions(table)
    recorder.metrics({"test": {}})
    recorder.finish()


def test_tta_effect_pairs_the_variant_with_its_plain_run(tmp_path):
    from skinlib.variants import tta_effect

    n = 40
    y = np.arange(n) % 2
    wrong = np.column_stack([y, 1 - y]).astype(float)          # always wrong: balanced accuracy 0
    half = wrong.copy()
    half[: n // 2] = 1 - half[: n // 2]                        # right on the first half: 0.5
    _record(tmp_path, "m", wrong, {"tta": "none"})
    _record(tmp_path, "m-tta_flips", half, {"tta": "flips", "tta_of": "m"})
    table = tta_effect(tmp_path, n_boot=200)
    assert list(table["run"]) == ["m"] and table.loc[0, "tta"] == "flips"
    row = table.iloc[0]
    assert row["plain"] == pytest.approx(0.0) and row["with tta"] == pytest.approx(0.5)
    assert row["gain"] == pytest.approx(0.5) and 0 < row["low"] <= 0.5 <= row["high"] and row["p_not_better"] == 0


def test_tta_effect_of_a_binary_run_is_its_auc_gain(tmp_path):
    from skinlib.variants import tta_effect

    n = 60
    y = np.arange(n) % 2
    noise = np.random.default_rng(0).random(n)
    _record(tmp_path, "b", (0.5 * y + noise)[:, None] / 1.5, {"tta": "none"})        # AUC below 1
    _record(tmp_path, "b-tta_flips", (y + 0.1 * noise)[:, None] / 1.1, {"tta": "flips", "tta_of": "b"})   # AUC 1
    row = tta_effect(tmp_path, n_boot=100).iloc[0]
    assert row["metric"] == "auc" and row["with tta"] == pytest.approx(1.0) and 0 < row["gain"] < 0.5
    assert row["low"] <= row["gain"] <= row["high"] and row["low"] >= 0


def test_08_leaves_variants_out_of_its_members(tmp_path):
    """A TTA variant (same weights) and a run on a share of the training labels are no ensemble members."""
    from skinlib.data.labels import CLASSES
    from skinlib.members import registry_runs

    proba = np.full((14, len(CLASSES)), 1 / len(CLASSES))
    _record(tmp_path, "m", proba, {"tta": "none"})
    _record(tmp_path, "m-tta_flips", proba, {"tta": "flips", "tta_of": "m"})
    _record(tmp_path, "m-frac0.1", proba, {"tta": "none", "train_fraction": 0.1})
    for run in ("m", "m-tta_flips", "m-frac0.1"):                     # predictions named by class code
        file = tmp_path / "transfer" / run / "predictions.csv"
        table = pd.read_csv(file)
        file.write_text(table.rename(columns={f"p_{k}": f"p_{c}" for k, c in enumerate(CLASSES)}).to_csv(index=False))
    assert list(registry_runs(tmp_path)["run"]) == ["m"]
