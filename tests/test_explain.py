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
    assert all(m.std() > 1e-3 for m in maps), [float(m.std()) for m in maps]
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


@pytest.mark.parametrize("family", ["clip", "blip"])
def test_vision_language_towers_have_grad_cam_maps(family):
    """CLIP's and BLIP's image towers: image-shaped, finite maps through the registered targets."""
    from skinlib.models import TINY_BLIP, TINY_CLIP, create_blip, create_clip

    torch.manual_seed(0)
    model = (create_clip("ViT-B-32", 7, config=TINY_CLIP, image_size=64) if family == "clip"
             else create_blip(num_classes=7, config=TINY_BLIP, image_size=64)).eval()
    maps = explain.gradcam(model, torch.randn(3, 3, 64, 64), [0, 3, 6])
    assert maps.shape == (3, 64, 64) and np.isfinite(maps).all()
