"""Models kept in the registry: a recorded run reloads (safetensors + JSON) and predicts what it recorded."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from skinlib import evaluation, inputs, registry
from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import FACTORIES, ModelSpec, ResidualCNN, build_model
from skinlib.registry import load_model, load_run, load_spec
from skinlib.train import FitConfig, fit, predict


@pytest.fixture(scope="module")
def data(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    catalog["split"] = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 32)
    return catalog, cache


def batches_of(cache, part, batch_size=64, shuffle=False):
    return Batches(cache, part["image_id"], part["label"], batch_size, shuffle=shuffle, seed=1, drop_last=shuffle)


def train_and_record(data, root, classes=None, grayscale=False):
    catalog, cache = data
    table = inputs.restrict_classes(catalog, classes)
    task = list(classes) if classes else None
    parts = inputs.by_split(table)
    mean, std = channel_stats(cache, parts["train"]["image_id"])
    pre = Preprocess(mean, std, grayscale=grayscale)
    kwargs = dict(num_classes=len(task) if task else 7, width=8, blocks=[1, 1])
    torch.manual_seed(0)
    model = ResidualCNN(**kwargs)
    fit(model, batches_of(cache, parts["train"], 32, True), batches_of(cache, parts["val"]), pre, pre,
        FitConfig(max_epochs=2, lr=3e-3, seed=0), log=io.StringIO())
    proba = {s: predict(model, batches_of(cache, parts[s]), pre) for s in ("val", "test")}
    extra = {"classes": task} if task else {}
    result = evaluation.evaluate_splits(parts, proba, n_boot=10, **extra)
    spec = ModelSpec("residual_cnn", kwargs, list(mean), list(std), 32, grayscale, classes=task)
    recorder = registry.record("custom_cnn", "tiny", {"width": 8}, parts, result, model=model, spec=spec, **extra)
    return recorder.folder, parts, proba


def test_reloaded_model_predicts_the_recorded_probabilities(data, monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    folder, parts, proba = train_and_record(data, tmp_path)
    assert (folder / "model.safetensors").is_file() and (folder / "model.json").is_file()
    assert b"pickle" not in (folder / "model.safetensors").read_bytes()[:200]
    model, preprocess = load_model("custom_cnn", "tiny")
    assert not model.training and not preprocess.training
    recorded = load_run("custom_cnn", "tiny").predictions
    for split in ("val", "test"):
        again = predict(model, batches_of(data[1], parts[split]), preprocess)
        stored = recorded[recorded["split"] == split].filter(like="p_").to_numpy()
        np.testing.assert_allclose(again, proba[split], atol=1e-6)          # the exact model
        np.testing.assert_allclose(again, stored, atol=1e-5)                # what the registry holds (6 digits)


def test_a_specialist_records_its_own_classes(data, monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    folder, parts, proba = train_and_record(data, tmp_path, classes=["mel", "nv"], grayscale=True)
    preds = load_run("custom_cnn", "tiny").predictions
    assert [c for c in preds if c.startswith("p_")] == ["p_mel", "p_nv"]
    assert set(preds["label"]) <= {0, 1} and not (folder / "isic_test_predictions.csv").exists()
    spec = load_spec("custom_cnn", "tiny")
    assert spec.classes == ["mel", "nv"] and spec.grayscale
    model, preprocess = load_model("custom_cnn", "tiny")
    assert preprocess.grayscale
    again = predict(model, batches_of(data[1], parts["test"]), preprocess)
    np.testing.assert_allclose(again, proba["test"], atol=1e-6)


def test_restrict_classes_reindexes_labels(data):
    table = inputs.restrict_classes(data[0], ["nv", "mel"])
    assert set(table["dx"]) == {"nv", "mel"}
    assert (table["label"] == (table["dx"] == "mel").astype(int)).all()
    assert inputs.restrict_classes(data[0], None) is data[0]
    with pytest.raises(ValueError, match="'melanoma'"):
        inputs.restrict_classes(data[0], ["melanoma", "nv"])


def test_spec_json_round_trip_and_errors():
    spec = ModelSpec("backbone", {"name": "resnet18", "num_classes": 2}, (0.5, 0.4, 0.3), [0.2, 0.2, 0.2], 64,
                     classes=["mel", "nv"])
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="residual_cnn"):
        build_model(ModelSpec("resnet", {}, [0] * 3, [1] * 3, 32))


def test_build_model_never_asks_for_pretrained_weights(monkeypatch):
    seen = {}

    def factory(num_classes: int = 2, pretrained: bool = True):
        seen["pretrained"] = pretrained
        return nn.Linear(3, num_classes)

    monkeypatch.setitem(FACTORIES, "probe", factory)
    build_model(ModelSpec("probe", {"num_classes": 2, "pretrained": True}, [0] * 3, [1] * 3, 32))
    assert seen["pretrained"] is False
    backbone = build_model(ModelSpec("backbone", {"name": "resnet18", "num_classes": 3, "pretrained": True},
                                     [0] * 3, [1] * 3, 32))
    assert backbone.head.out_features == 3


class Tied(nn.Module):
    """An encoder-decoder whose output layer shares the embedding's weight tensor."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.embed = nn.Linear(dim, 3, bias=False)
        self.out = nn.Linear(3, dim, bias=False)
        self.out.weight = nn.Parameter(self.embed.weight.T.contiguous())
        self.also = self.embed                                # the same module twice: shared tensors

    def forward(self, x):
        return self.out(self.also(x))


def test_shared_tensors_survive_the_round_trip(data, monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    monkeypatch.setitem(FACTORIES, "tied", Tied)
    from skinlib.registry import RunRecorder

    torch.manual_seed(1)
    model = Tied()
    rec = RunRecorder("exp", "tied", {})
    rec.model(model, ModelSpec("tied", {"dim": 4}, [0] * 3, [1] * 3, 8))
    rec.finish()
    again, _ = load_model("exp", "tied")
    x = torch.randn(2, 4)
    assert again.also is again.embed
    torch.testing.assert_close(again(x), model(x))


def test_record_needs_a_spec_with_a_model_and_load_model_needs_a_model(data, monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    catalog, _ = data
    parts = inputs.by_split(catalog)
    proba = {s: np.full((len(parts[s]), 7), 1 / 7) for s in ("val", "test")}
    result = evaluation.evaluate_splits(parts, proba, n_boot=5)
    with pytest.raises(ValueError, match="spec=ModelSpec"):
        registry.record("exp", "r", {}, parts, result, model=ResidualCNN(7, width=8, blocks=(1,)))
    registry.record("exp", "r", {}, parts, result)
    with pytest.raises(FileNotFoundError, match="kept no model"):
        load_model("exp", "r")
    with pytest.raises(FileNotFoundError, match="runs of 'exp': \\['r'\\]"):
        load_model("exp", "other")


@pytest.mark.parametrize("backbone, num_classes", [("clip-tiny", 1), ("small_cnn", 3)])
def test_binary_notebook_models_reload_through_the_registry(data, monkeypatch, tmp_path, backbone, num_classes):
    """07's CLIP image branch (study B) and a multiclass head (the malignant subtypes) rebuild from model.json."""
    from skinlib import binary

    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    catalog, cache = data
    table = binary.with_target(catalog, "melanoma")
    if num_classes > 1:
        table = table.assign(label=table["label"] % num_classes)
    parts = inputs.by_split(table)
    model = binary.make_model("image", 0, backbone, image_size=32, num_classes=num_classes, seed=0)
    mean, std = binary.normalization(model, "image", backbone, False, cache, parts["train"]["image_id"])
    pre = Preprocess(mean, std)
    target = "target" if num_classes == 1 else "label"
    batches = {s: Batches(cache, parts[s]["image_id"], parts[s][target], 64) for s in ("val", "test")}
    proba = {s: predict(model, batches[s], pre) for s in ("val", "test")}
    classes = ["rest", "mel"] if num_classes == 1 else ["a", "b", "c"]
    result = (evaluation.evaluate_binary(parts, proba, "mel", n_boot=5) if num_classes == 1 else
                  evaluation.evaluate_splits(parts, proba, n_boot=5, classes=classes))
    factory, kwargs = binary.model_factory("image", 0, backbone, image_size=32, num_classes=num_classes)
    registry.record("binary", "reload", {"backbone": backbone}, parts, result, model=model,
                      spec=ModelSpec(factory, kwargs, list(mean), list(std), 32, classes=classes),
                      **({} if num_classes == 1 else {"classes": classes}))
    again, preprocess = load_model("binary", "reload")
    if backbone.startswith("clip"):
        assert kwargs["head"] == "mlp" and load_spec("binary", "reload").mean[0] == pytest.approx(0.48145466)
    np.testing.assert_allclose(predict(again, batches["test"], preprocess), proba["test"], atol=1e-6)
