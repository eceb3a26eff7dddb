"""Grad-CAM: maps with the image's shape, finite and not constant, for a trained CNN and a trained ViT."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from skinlib import explain
from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import ResidualCNN, create_backbone
from skinlib.models.backbones import Backbone
from skinlib.train import FitConfig, fit


@pytest.fixture(scope="module")
def data(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 32)
    parts = {s: catalog[split == s] for s in ("train", "val", "test")}
    mean, std = channel_stats(cache, parts["train"]["image_id"])
    return cache, parts, Preprocess(mean, std)


def trained(model, data):
    cache, parts, pre = data
    train = Batches(cache, parts["train"]["image_id"], parts["train"]["label"], 32, shuffle=True, seed=0, drop_last=True)
    val = Batches(cache, parts["val"]["image_id"], parts["val"]["label"], 64)
    fit(model, train, val, pre, pre, FitConfig(max_epochs=2, lr=2e-3, seed=0), log=io.StringIO())
    return model.eval()


def inputs_of(data, n=8):
    cache, parts, pre = data
    images = torch.from_numpy(cache.images(parts["test"]["image_id"].to_numpy()[:n])).permute(0, 3, 1, 2)
    return pre.eval()(images).clone()


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_maps_have_the_image_shape_are_finite_and_not_constant(data, kind):
    torch.manual_seed(0)
    if kind == "cnn":
        model = ResidualCNN(7, width=8, blocks=(1, 1, 1))
        assert explain.layer_names(model) == "stages.2"
    else:
        from timm.models.vision_transformer import VisionTransformer

        model = Backbone(VisionTransformer(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=0),
                         nn.Linear(48, 7))                             # a small timm ViT: 4 x 4 patch tokens + class token
        assert explain.cam_target(model).reshape_transform is not None
        assert explain.layer_names(model) == "features.blocks.1.norm1"
        assert isinstance(create_backbone("vit_tiny_patch16_224", 7, image_size=32).features, VisionTransformer)
    model = trained(model, data)
    x = inputs_of(data)
    predicted = model(x).argmax(1).tolist()
    maps = explain.gradcam(model, x, predicted)
    assert maps.shape == (8, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    # a Grad-CAM bug makes every map constant; a model trained for 2 epochs may find no positive evidence in an image
    # (its map is all zeros after Grad-CAM's ReLU): most maps must vary
    assert sum(m.std() > 1e-3 for m in maps) >= len(maps) // 2, [float(m.std()) for m in maps]
    table = explain.faithfulness(model, x, maps, predicted, percentile=80)
    assert len(table) == 8 and np.isfinite(table.to_numpy()).all()
    assert (table["p"] > 0).all() and (table["p"] <= 1).all()
    summary = explain.faithfulness_summary(table)
    assert 0 <= summary["share_cam_hurts_more"] <= 1


def test_overlay_and_random_maps():
    maps = explain.random_maps(3, (16, 12), seed=1)
    assert maps.shape == (3, 16, 12) and maps.min() == 0 and maps.max() == pytest.approx(1, abs=1e-5)
    assert not np.allclose(maps[0], explain.random_maps(3, (16, 12), seed=2)[0])
    image = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    out = explain.overlay(image, maps[0])
    assert out.shape == (16, 12, 3) and out.dtype == np.uint8


def test_other_model_kinds_plug_in():
    class Tower(nn.Module):                   # a transformer-like tower: (B, 1 + 4, C) tokens
        def __init__(self):
            super().__init__()
            self.block = nn.Linear(3, 5)
            self.head = nn.Linear(5, 2)

        def forward(self, x):
            tokens = self.block(torch.cat([x.mean((2, 3))[:, None], x.flatten(2)[:, :, :4].transpose(1, 2)], 1))
            return self.head(tokens[:, 0] + tokens[:, 1:].mean(1))

    with pytest.raises(TypeError, match="register_target"):
        explain.cam_target(Tower())
    explain.register_target(Tower, lambda m: explain.CamTarget([m.block], explain.token_reshape(1, (2, 2))))
    try:
        maps = explain.gradcam(Tower(), torch.randn(2, 3, 8, 8), [0, 1])
        assert maps.shape == (2, 8, 8) and np.isfinite(maps).all()
    finally:
        del explain.TARGETS[Tower]


def test_a_frozen_model_is_explained_and_stays_frozen():
    torch.manual_seed(0)
    model = ResidualCNN(7, width=8, blocks=(1, 1)).eval()
    for p in model.stages.parameters():
        p.requires_grad_(False)
    maps = explain.gradcam(model, torch.randn(2, 3, 32, 32), [0, 3])
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.std() > 0
    assert not any(p.requires_grad for p in model.stages.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_passes_shrink_with_the_image_and_do_not_change_the_maps():
    """Large images go through Grad-CAM a few at a time (its backward pass keeps every activation: 32 images at
    384 px through BLIP's ViT ran a 24 GB machine out of memory); the maps are the same whatever the pass's size."""
    assert [explain.gradcam_batch_size((1, 3, s, s)) for s in (64, 224, 299, 512, 2000)] == [392, 32, 17, 6, 1]
    torch.manual_seed(0)
    model = ResidualCNN(7, width=8, blocks=(1, 1)).eval()
    x, classes = torch.randn(5, 3, 32, 32), [0, 3, 6, 1, 2]
    whole = explain.gradcam(model, x, classes, batch_size=5)
    assert whole.std() > 0
    for size in (1, 2, None):
        np.testing.assert_allclose(explain.gradcam(model, x, classes, batch_size=size), whole, atol=1e-5)


@pytest.mark.parametrize("family", ["clip", "blip"])
def test_vision_language_towers_have_grad_cam_maps(family):
    """CLIP's and BLIP's image towers: image-shaped, finite maps through the registered targets."""
    from skinlib.models import TINY_BLIP, TINY_CLIP, create_blip, create_clip

    torch.manual_seed(0)
    model = (create_clip("ViT-B-32", 7, config=TINY_CLIP, image_size=64) if family == "clip"
             else create_blip(num_classes=7, config=TINY_BLIP, image_size=64)).eval()
    maps = explain.gradcam(model, torch.randn(3, 3, 64, 64), [0, 3, 6])
    assert maps.shape == (3, 64, 64) and np.isfinite(maps).all()


class RegionModel(nn.Module):
    """A model whose evidence is known: it looks only at the top-left quadrant, where a bright square means class 1.
    One logit (binary) or two (softmax)."""

    def __init__(self, outputs: int):
        super().__init__()
        self.outputs = outputs
        self.features = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.fill_(1 / 3)
            self.features[0].bias.zero_()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., :16, :16] = 1
        self.register_buffer("mask", mask)

    def forward(self, x):
        evidence = (self.features(x) * self.mask).sum((2, 3)) / self.mask.sum()
        logit = 10 * (evidence - 0.3)
        return logit if self.outputs == 1 else torch.cat([torch.zeros_like(logit), logit], 1)


def squares(n=16, seed=0):
    """Noise images (n, 3, 32, 32); the first half carry a bright square in the region the model reads."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(n, 3, 32, 32, generator=g)
    x[: n // 2, :, 4:12, 4:12] += 2
    return x


@pytest.mark.parametrize("outputs", [1, 2], ids=["one logit (sigmoid)", "two logits (softmax)"])
def test_maps_and_faithfulness_on_a_model_whose_evidence_is_known(monkeypatch, outputs):
    """Grad-CAM points at the square the model reads, and removing the map's area (ROAD) lowers the probability of
    the class far more than removing random areas of the same size. With one logit, a softmax target would make
    every probability 1 and every drop 0: the sigmoid target is what makes a binary model's test mean something."""
    monkeypatch.setitem(explain.TARGETS, RegionModel, lambda m: explain.CamTarget([m.features]))
    model = RegionModel(outputs).eval()
    x = squares()
    positives = list(range(8))
    assert explain.is_binary(model, x) == (outputs == 1)
    proba = explain.probabilities(model, x)
    assert proba.shape == (16, 2) and (proba[:8, 1] > 0.5).all() and (proba[8:, 1] < 0.5).all()
    maps = explain.gradcam(model, x[positives], [1] * 8)
    inside = np.zeros((32, 32), bool)
    inside[4:12, 4:12] = True
    assert (maps[:, inside].mean(1) > 3 * maps[:, ~inside].mean(1)).all()
    table = explain.faithfulness(model, x[positives], maps, [1] * 8, percentile=80, seed=0)
    np.testing.assert_allclose(table["p"], proba[:8, 1], rtol=1e-5)
    summary = explain.faithfulness_summary(table)
    assert summary["drop_cam"] > 0.3 and summary["cam_minus_random"] > 0.2, summary
    assert summary["share_cam_hurts_more"] >= 0.75, summary
    elsewhere = explain.faithfulness(model, x[positives], np.ascontiguousarray(maps[:, ::-1, ::-1]), [1] * 8)
    assert explain.faithfulness_summary(elsewhere)["cam_minus_random"] < 0.1     # a map off the evidence does not


def test_a_binary_run_is_explained_on_its_own_test_images_at_its_threshold(synthetic_small):
    """09 on a binary run of 07 (study B's melanoma vs rest): its own recorded test images and 0 / 1 targets, not
    the 7-class split's; probabilities (1 - p, p) equal to the recorded ones; predictions at the threshold 07 chose
    on validation; Grad-CAM maps and faithfulness through the one logit."""
    from skinlib import binary, evaluation, inputs, registry
    from skinlib.models import ModelSpec
    from skinlib.train import predict

    catalog = binary.with_target(load_catalog(synthetic_small, layout="ham10000"), "melanoma")
    catalog["split"] = make_split(catalog, seed=1)["split"].to_numpy()
    cache = build_cache(catalog, 32)
    parts = inputs.by_split(catalog)
    model = binary.make_model("image", 0, "small_cnn", image_size=32, seed=0)
    mean, std = channel_stats(cache, parts["train"]["image_id"])
    pre = Preprocess(mean, std)
    proba = {s: predict(model, Batches(cache, parts[s]["image_id"], parts[s]["target"], 64), pre) for s in ("val", "test")}
    factory, kwargs = binary.model_factory("image", 0, "small_cnn", image_size=32)
    registry.record("binary", "mel", {"backbone": "small_cnn"}, parts, evaluation.evaluate_binary(parts, proba, "mel", n_boot=5),
                    model=model, spec=ModelSpec(factory, kwargs, list(mean), list(std), 32, classes=["rest", "mel"]))
    other_test = catalog[make_split(catalog, seed=0)["split"].to_numpy() == "test"]
    subject = explain.load_subject("binary", "mel", other_test, catalog)
    recorded = registry.load_run("binary", "mel").predictions.query("split == 'test'")
    assert subject.classes == ["rest", "mel"] and subject.binary
    assert list(subject.image_ids) == list(recorded["image_id"]) and list(subject.labels) == list(recorded["label"])
    np.testing.assert_allclose(subject.proba[:, 1], recorded["p_mel"], atol=1e-5)
    np.testing.assert_allclose(subject.proba.sum(1), 1, atol=1e-6)
    assert subject.threshold == registry.load_run("binary", "mel").metrics["test"]["youden_threshold"]
    assert (subject.predicted == (subject.proba[:, 1] >= subject.threshold)).all()
    assert explain.layer_names(subject.model) == "encoder.stages"          # study D's CNN: its last conv / pool stage
    maps = subject.maps(range(4))
    assert maps.shape == (4, 32, 32) and np.isfinite(maps).all()
    table = explain.faithfulness(subject.model, subject.inputs[:4], maps, subject.predicted[:4])
    np.testing.assert_allclose(table["p"], subject.proba[np.arange(4), subject.predicted[:4]], rtol=1e-5)


def test_a_subject_makes_its_inputs_when_indexed_not_all_at_once():
    """09 on the full profile held seven subjects' preprocessed test splits at once and ran out of memory: the
    inputs are made from the uint8 images a batch at a time, the same tensors as preprocessing them all."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    pre = Preprocess(np.full(3, 0.5), np.full(3, 0.25))
    lazy = explain.Preprocessed(images, pre)
    eager = pre(torch.from_numpy(images).permute(0, 3, 1, 2))
    assert len(lazy) == 10 and lazy.shape == tuple(eager.shape)
    torch.testing.assert_close(lazy[2:7], eager[2:7])
    torch.testing.assert_close(lazy[np.array([9, 0, 4])], eager[[9, 0, 4]])
    torch.testing.assert_close(lazy[3], eager[3])
    assert lazy[np.array([], int)].shape == (0, 3, 16, 16)               # no image: 09 picks none where none fit
    torch.manual_seed(0)
    model = ResidualCNN(7, width=4, blocks=(1,)).eval()
    np.testing.assert_allclose(explain.probabilities(model, lazy, batch_size=3),
                               explain.probabilities(model, eager, batch_size=3), atol=1e-6)


def test_faithfulness_in_chunks_is_faithfulness_in_one_call(monkeypatch):
    """The metric runs FAITHFULNESS_CHUNK images at a time (so that --estimate can cut it short); the imputation's
    noise is drawn image by image, so the drops are those of one call over every image."""
    torch.manual_seed(0)
    model = ResidualCNN(7, width=4, blocks=(1,)).eval()
    x = torch.randn(70, 3, 32, 32)
    classes = list(explain.probabilities(model, x).argmax(1))
    maps = explain.gradcam(model, x, classes)
    torch.manual_seed(5)
    chunked = explain.faithfulness(model, x, maps, classes)
    monkeypatch.setattr(explain, "FAITHFULNESS_CHUNK", 1000)
    torch.manual_seed(5)
    whole = explain.faithfulness(model, x, maps, classes)
    np.testing.assert_allclose(chunked.to_numpy(), whole.to_numpy(), atol=1e-5)
