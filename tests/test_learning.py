"""Models learn what there is to learn, and nothing when there is nothing: on a small set where the classes are
easy (a colour cast per class), the custom CNN and a timm backbone reach a test balanced accuracy far above chance,
and the same training on labels shuffled independently of the images stays near chance (what catches a label
mix-up, a leak of test labels, or a pipeline that never shows the model its images)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from skinlib.data.batches import Batches
from skinlib.data.cache import ImageCache, channel_stats
from skinlib.data.transforms import Preprocess
from skinlib.models import ResidualCNN, create_backbone
from skinlib.train import FitConfig, fit, predict

CLASSES = 3
SIZE = 16
PER_CLASS = {"train": 16, "val": 8, "test": 40}


def easy_set(seed: int = 0):
    """Noise images whose class is a colour cast (class k: channel k brighter), in an in-memory image cache."""
    rng = np.random.default_rng(seed)
    ids, labels, splits, images = [], [], [], []
    for split, n in PER_CLASS.items():
        for k in range(CLASSES):
            for i in range(n):
                image = rng.normal(110, 35, (SIZE, SIZE, 3))
                image[..., k] += 45
                images.append(np.clip(image, 0, 255).astype(np.uint8))
                ids.append(f"{split}-{k}-{i}")
                labels.append(k)
                splits.append(split)
    cache = ImageCache(Path("."), np.array(ids), SIZE, np.stack(images))
    ids, labels, splits = np.array(ids), np.array(labels), np.array(splits)
    return cache, {s: (ids[splits == s], labels[splits == s]) for s in PER_CLASS}


def shuffled(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Labels independent of the images: within each true class, every label equally often, in random order."""
    rng = np.random.default_rng(seed)
    out = labels.copy()
    for k in range(CLASSES):
        rows = np.flatnonzero(labels == k)
        out[rows] = rng.permutation(np.resize(np.arange(CLASSES), len(rows)))
    return out


def test_balanced_accuracy(labels_kind: str, model: torch.nn.Module, epochs: int = 5) -> float:
    cache, parts = easy_set()
    (train_ids, train_y), (val_ids, val_y), (test_ids, test_y) = parts["train"], parts["val"], parts["test"]
    if labels_kind == "shuffled":
        train_y, val_y = shuffled(train_y, 1), shuffled(val_y, 2)
    pre = Preprocess(*channel_stats(cache, train_ids))
    fit(model, Batches(cache, train_ids, train_y, 16, shuffle=True, seed=0), Batches(cache, val_ids, val_y, 64),
        pre, pre, FitConfig(max_epochs=epochs, lr=3e-3, seed=0, device="cpu"), log=io.StringIO())
    proba = predict(model, Batches(cache, test_ids, test_y, 64), pre)
    return balanced_accuracy_score(test_y, proba.argmax(1))


test_balanced_accuracy.__test__ = False        # a helper, not a test


def models():
    torch.manual_seed(0)
    return {"custom CNN": lambda: ResidualCNN(CLASSES, width=8, blocks=(1, 1)),
            "timm resnet10t": lambda: create_backbone("resnet10t", CLASSES)}


@pytest.mark.parametrize("name", list(models()))
def test_a_model_learns_easy_classes_and_nothing_from_shuffled_labels(name):
    make = models()[name]
    torch.manual_seed(0)
    learned = test_balanced_accuracy("true", make())
    torch.manual_seed(0)
    control = test_balanced_accuracy("shuffled", make())
    print(f"{name}: test balanced accuracy {learned:.3f} with the true labels, {control:.3f} with shuffled ones "
          f"(chance {1 / CLASSES:.3f})")
    assert learned >= 0.8, learned
    assert control <= 0.6, control
