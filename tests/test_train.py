"""The fit loop: exact resume after an interruption, the best epoch truly restored, binary BCE."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from skinlib.data import load_catalog
from skinlib.data.batches import Batches, class_weights
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess, augmentation
from skinlib.models import ResidualCNN
from skinlib.train import FitConfig, fit, predict


@pytest.fixture(scope="module")
def data(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 32)
    parts = {s: catalog[split == s] for s in ("train", "val")}
    mean, std = channel_stats(cache, parts["train"]["image_id"])
    return catalog, cache, parts, mean, std


def batches(data, target="label"):
    _, cache, parts, _, _ = data
    return (Batches(cache, parts["train"]["image_id"], parts["train"][target], 32, shuffle=True, seed=3),
            Batches(cache, parts["val"]["image_id"], parts["val"][target], 64))


def tiny_model(outputs=7):
    torch.manual_seed(0)
    return ResidualCNN(outputs, width=8, blocks=(1, 1))


def run(data, config, model=None, **kwargs):
    _, _, parts, mean, std = data
    train, val = batches(data)
    model = model or tiny_model()
    result = fit(model, train, val, Preprocess(mean, std, augmentation("study_a")), Preprocess(mean, std), config,
                 log=io.StringIO(), **kwargs)
    return model, result


def test_interrupted_and_resumed_equals_uninterrupted(data, tmp_path):
    config = FitConfig(max_epochs=4, lr=3e-3, scheduler="step", step_size=2, seed=5)
    straight, straight_result = run(data, config)

    def crash(epoch, row, model):
        if epoch == 1:
            raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        run(data, config, checkpoint_dir=tmp_path, on_epoch_end=crash)
    resumed, resumed_result = run(data, config, model=tiny_model(), checkpoint_dir=tmp_path)
    assert resumed_result.resumed_from == 1
    assert list(resumed_result.history["epoch"]) == [1, 2, 3, 4]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed_result.best_epoch == straight_result.best_epoch


def test_checkpoint_of_another_run_is_refused(data, tmp_path):
    """A checkpoint resumes only the run that wrote it: other settings, augmentation, data or starting weights
    are refused with a message naming what differs, instead of silently reporting the old run."""
    _, _, parts, mean, std = data
    run(data, FitConfig(max_epochs=1, seed=1), checkpoint_dir=tmp_path)
    with pytest.raises(RuntimeError, match="other settings; pass resume=False"):
        run(data, FitConfig(max_epochs=1, seed=2), checkpoint_dir=tmp_path)
    train, val = batches(data)
    for pre, model, match in [(Preprocess(mean, std, augmentation("study_e")), tiny_model(), "other preprocessing"),
                              (Preprocess(mean, std, augmentation("study_a", "nearest")), tiny_model(), "other preprocessing"),
                              (Preprocess(mean, std, augmentation("study_a")), ResidualCNN(7, width=8, blocks=(1, 1)), "other model")]:
        with pytest.raises(RuntimeError, match=match):
            fit(model, train, val, pre, Preprocess(mean, std), FitConfig(max_epochs=1, seed=1), log=io.StringIO(),
                checkpoint_dir=tmp_path)
    fewer = Batches(data[1], parts["train"]["image_id"].iloc[:-1],
                    parts["train"]["label"].iloc[:-1], 32, shuffle=True, seed=3)
    with pytest.raises(RuntimeError, match="other data"):
        fit(tiny_model(), fewer, val, Preprocess(mean, std, augmentation("study_a")), Preprocess(mean, std),
            FitConfig(max_epochs=1, seed=1), log=io.StringIO(), checkpoint_dir=tmp_path)
    _, again = run(data, FitConfig(max_epochs=1, seed=1), checkpoint_dir=tmp_path)       # the same run resumes
    assert again.resumed_from == 0
    run(data, FitConfig(max_epochs=1, seed=2), checkpoint_dir=tmp_path, resume=False)


def test_early_stopping_restores_a_copy_of_the_best_epoch(data):
    snapshots = {}

    def keep(epoch, row, model):
        snapshots[epoch + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # a learning rate far too high: the first epoch has the lowest validation loss, later ones diverge
    config = FitConfig(max_epochs=8, lr=5.0, optimizer="sgd", monitor="loss", patience=2, seed=0)
    model, result = run(data, config, on_epoch_end=keep)
    assert result.stopped_early and len(result.history) < 8
    best = result.best_epoch
    assert best < len(result.history)
    state = model.state_dict()
    for k in state:
        assert torch.equal(state[k], snapshots[best][k]), k
    last = snapshots[len(result.history)]
    assert any(not torch.equal(state[k], last[k]) for k in state)   # not the live, last-epoch weights


def test_training_learns_and_class_weights_come_from_train(data):
    _, _, parts, mean, std = data
    weights = class_weights(parts["train"]["label"], 7).tolist()
    model, result = run(data, FitConfig(max_epochs=3, lr=3e-3, class_weights=weights, seed=0))
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    train, val = batches(data)
    proba = predict(model, val, Preprocess(mean, std))
    assert proba.shape == (len(parts["val"]), 7)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)


def test_binary_single_logit_with_positive_weight(data):
    catalog, cache, parts, mean, std = data
    for part in parts.values():
        part.loc[:, "mel"] = (part["dx"] == "mel").astype(int)
    train, val = batches(data, target="mel")
    model = tiny_model(outputs=1)
    result = fit(model, train, val, Preprocess(mean, std), Preprocess(mean, std),
                 FitConfig(max_epochs=2, pos_weight=8.0, monitor="auc", seed=0), log=io.StringIO())
    assert "val_auc" in result.history and "val_sensitivity" in result.history
    proba = predict(model, val, Preprocess(mean, std))
    assert proba.shape == (len(parts["val"]),) and ((0 <= proba) & (proba <= 1)).all()
