"""Input pipeline: batches from the cache, per-sample random augmentation, deterministic evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skinlib.data import load_catalog
from skinlib.data.batches import Batches, class_weights
from skinlib.data.cache import build_cache
from skinlib.data.transforms import Preprocess, StudyAAugment, StudyEAugment, augmentation


@pytest.fixture(scope="module")
def cached(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    return catalog, build_cache(catalog, 32)


def test_batches_cover_every_image_once_in_a_seeded_order(cached):
    catalog, cache = cached
    ids = catalog["image_id"].iloc[:50]
    batches = Batches(cache, ids, catalog["label"].iloc[:50], 16, shuffle=True, seed=1)
    batches.set_epoch(0)
    first = torch.cat([y for _, y in batches])
    assert sorted(first.tolist()) == sorted(catalog["label"].iloc[:50].tolist())
    images, _ = next(iter(batches))
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 32, 32)
    again = torch.cat([y for _, y in batches])
    assert torch.equal(batches.order(), Batches(cache, ids, catalog["label"].iloc[:50], 16, shuffle=True, seed=1).order())
    batches.set_epoch(1)
    assert not torch.equal(batches.order(), Batches(cache, ids, catalog["label"].iloc[:50], 16, shuffle=True, seed=1).order())
    assert torch.equal(first, again)
    plain = Batches(cache, ids, catalog["label"].iloc[:50], 16)
    x, _ = next(iter(plain))
    np.testing.assert_array_equal(x[0].permute(1, 2, 0).numpy(), cache.images(ids.iloc[:1])[0])


def test_weighted_sampler_favours_rare_classes(cached):
    catalog, cache = cached
    labels = catalog["label"].to_numpy()
    w = class_weights(labels, 7)[labels]
    batches = Batches(cache, catalog["image_id"], labels, 64, weights=w, seed=0)
    drawn = torch.cat([y for _, y in batches]).numpy()
    share = np.bincount(drawn, minlength=7) / len(drawn)
    assert share.min() > 0.08 and share.max() < 0.25                # about 1/7 each, instead of half nv
    assert np.bincount(labels, minlength=7).max() / len(labels) > 0.45


def test_class_weights_are_balanced():
    w = class_weights([0, 0, 0, 1], 3)
    np.testing.assert_allclose(w, [4 / 6, 4 / 2, 0.0])


@pytest.mark.parametrize("augment", [StudyAAugment(), StudyEAugment()], ids=["study_a", "study_e"])
def test_augmentation_draws_parameters_per_sample(augment):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 48, 48)
    out = augment(image.repeat(8, 1, 1, 1))
    assert out.shape == (8, 3, 48, 48) and 0 <= out.min() and out.max() <= 1
    flat = out.view(8, -1)
    distances = torch.cdist(flat, flat)
    assert (distances + torch.eye(8) * 1e9).min() > 1e-3           # no two images got the same transform


def test_evaluation_is_never_augmented():
    x = (torch.rand(4, 3, 16, 16) * 255).to(torch.uint8)
    pre = Preprocess((0.5, 0.4, 0.3), (0.2, 0.2, 0.2), augmentation("study_a"))
    pre.eval()
    a, b = pre(x), pre(x)
    torch.testing.assert_close(a, b)
    expected = (x.float() / 255 - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / 0.2
    torch.testing.assert_close(a, expected)
    pre.train()
    assert not torch.allclose(pre(x), a)


def test_grayscale_gives_three_equal_channels():
    x = (torch.rand(2, 3, 8, 8) * 255).to(torch.uint8)
    out = Preprocess((0, 0, 0), (1, 1, 1), grayscale=True).eval()(x)
    torch.testing.assert_close(out[:, 0], out[:, 1])
    torch.testing.assert_close(out[:, 1], out[:, 2])
    grey = (x.float() / 255 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    normalised = Preprocess((0.5, 0.4, 0.3), (0.2, 0.1, 0.3), grayscale=True).eval()(x)
    expected = (grey - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.1, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised, expected)


@pytest.mark.parametrize("kind", ["study_a", "study_e", "none"])
@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "gray"])
def test_fused_normalisation_equals_augment_then_normalise(kind, grayscale):
    """Preprocess folds 1/255 and (x - mean) / std into the augmentation's passes: same numbers as doing
    each step on its own, clamping and noise included."""
    x = (torch.rand(6, 3, 40, 40) * 255).to(torch.uint8)
    mean, std = torch.tensor([0.6, 0.5, 0.4]), torch.tensor([0.2, 0.15, 0.1])
    torch.manual_seed(3)
    fused = Preprocess(mean.tolist(), std.tolist(), augmentation(kind), grayscale=grayscale).train()(x)
    torch.manual_seed(3)
    steps = augmentation(kind)(x.float() / 255)
    assert 0 <= steps.min() and steps.max() <= 1
    if grayscale:
        steps = (steps * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True).repeat(1, 3, 1, 1)
    expected = (steps - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(fused, expected, atol=1e-4, rtol=1e-4)
    if kind != "none":
        assert not torch.allclose(fused, Preprocess(mean.tolist(), std.tolist(), grayscale=grayscale).eval()(x))


@pytest.mark.parametrize("kind", ["study_a", "study_e"])
def test_nearest_interpolation_only_copies_pixels(kind):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 24, 24)
    out = augmentation(kind, interpolation="nearest")(image.repeat(6, 1, 1, 1))
    flat = out.view(6, -1)
    assert (torch.cdist(flat, flat) + torch.eye(6) * 1e9).min() > 1e-3      # still per-sample parameters
    if kind == "study_e":                      # geometric only: every output pixel is one of the input's
        assert torch.isin(out, image).all()
        bilinear = augmentation(kind)(image.repeat(6, 1, 1, 1))
        assert not torch.isin(bilinear, image).all()


def test_unknown_interpolation():
    with pytest.raises(ValueError, match="bilinear, nearest"):
        augmentation("study_a", interpolation="bicubic")


def test_unknown_augmentation():
    with pytest.raises(ValueError, match="study_a, study_e, none"):
        augmentation("heavy")


@pytest.mark.parametrize("kind", ["study_a", "study_e", "none"])
@pytest.mark.parametrize("grayscale", [False, True], ids=["rgb", "gray"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_reused_buffers_never_leak_into_results(kind, grayscale, training):
    """Intermediate buffers are reused between batches: a batch already returned must not change when the
    next one (of any size) is made."""
    pre = Preprocess((0.5, 0.5, 0.5), (0.2, 0.2, 0.2), augmentation(kind), grayscale=grayscale).train(training)
    first = pre((torch.rand(4, 3, 16, 16) * 255).to(torch.uint8))
    kept = first.clone()
    for n in (4, 2, 4):
        second = pre((torch.rand(n, 3, 16, 16) * 255).to(torch.uint8))
        assert second.data_ptr() != first.data_ptr()
        torch.testing.assert_close(first, kept, rtol=0, atol=0)
