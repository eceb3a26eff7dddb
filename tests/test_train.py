"""The fit loop: exact resume after an interruption, the best epoch truly restored, binary BCE."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch

from skinlib.data import load_catalog
from skinlib.data.batches import Batches, class_weights
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess, augmentation
from skinlib.models import ResidualCNN
from skinlib.checkpoints import KEEP_CHECKPOINTS
from skinlib.train import FitConfig, fit, predict, predict_splits


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
    kwargs.setdefault("log", io.StringIO())
    result = fit(model, train, val, Preprocess(mean, std, augmentation("study_a")), Preprocess(mean, std), config,
                 **kwargs)
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


def test_the_best_weights_are_saved_once(data, tmp_path):
    """When the last epoch is the best, the checkpoint holds its weights once (as "model"); a resume restores them."""
    config = FitConfig(max_epochs=1, seed=2)
    first, _ = run(data, config, checkpoint_dir=tmp_path)
    ckpt, = tmp_path.rglob("last.pt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["best_is_last"] and state["best_state"] is None
    again, result = run(data, config, model=tiny_model(), checkpoint_dir=tmp_path)
    assert result.resumed_from == 0
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_resumes_only_its_own_run(data, tmp_path):
    """Checkpoints are kept per run identity: another setting, augmentation, data or starting weights under the
    same checkpoint folder train from the start, saying in one line what changed; the identical run resumes."""
    _, _, parts, mean, std = data
    run(data, FitConfig(max_epochs=1, seed=1), checkpoint_dir=tmp_path)
    log = io.StringIO()
    train, val = batches(data)
    changed = fit(tiny_model(), train, val, Preprocess(mean, std, augmentation("study_a")), Preprocess(mean, std),
                   FitConfig(max_epochs=1, seed=1, lr=0.01), log=log, checkpoint_dir=tmp_path)
    assert changed.resumed_from is None
    assert log.getvalue().splitlines()[0] == "settings changed (lr): training from the start"
    log = io.StringIO()
    _, again = run(data, FitConfig(max_epochs=1, seed=1, lr=0.01), checkpoint_dir=tmp_path, log=log)
    assert again.resumed_from == 0, log.getvalue()                   # the identical run resumes
    for pre, model, match in [(Preprocess(mean, std, augmentation("study_e")), tiny_model(), "preprocessing changed"),
                              (Preprocess(mean, std, augmentation("study_a", "nearest")), tiny_model(), "preprocessing changed"),
                              (Preprocess(mean, std, augmentation("study_a")), ResidualCNN(7, width=8, blocks=(1, 1)), "model changed")]:
        log = io.StringIO()
        result = fit(model, train, val, pre, Preprocess(mean, std), FitConfig(max_epochs=1, seed=1), log=log,
                     checkpoint_dir=tmp_path)
        first = log.getvalue().splitlines()[0]
        assert result.resumed_from is None and match in first and first.endswith(": training from the start"), first
    fewer = Batches(data[1], parts["train"]["image_id"].iloc[:-1],
                    parts["train"]["label"].iloc[:-1], 32, shuffle=True, seed=3)
    log = io.StringIO()
    fit(tiny_model(), fewer, val, Preprocess(mean, std, augmentation("study_a")), Preprocess(mean, std),
        FitConfig(max_epochs=1, seed=1), log=log, checkpoint_dir=tmp_path)
    assert log.getvalue().startswith("model changed and data changed: training from the start")
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == KEEP_CHECKPOINTS       # old ones do not pile up
    log = io.StringIO()
    _, fresh = run(data, FitConfig(max_epochs=1, seed=2), checkpoint_dir=tmp_path, resume=False, log=log)
    assert fresh.resumed_from is None and log.getvalue().startswith("epoch")     # resume=False: silently afresh


def test_checkpoint_of_the_previous_layout_is_adopted(data, tmp_path):
    """A ``last.pt`` written straight into the checkpoint folder (before checkpoints were kept per run) still
    resumes its own run."""
    run(data, FitConfig(max_epochs=1, seed=1), checkpoint_dir=tmp_path)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (folder / "last.pt").rename(tmp_path / "last.pt")
    shutil.rmtree(folder)
    _, again = run(data, FitConfig(max_epochs=1, seed=1), checkpoint_dir=tmp_path)
    assert again.resumed_from == 0 and not (tmp_path / "last.pt").exists()


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


def test_validation_is_predicted_once_with_the_best_weights(data, tmp_path, monkeypatch):
    """fit keeps the best epoch's validation probabilities: exactly what predicting validation again with the
    restored weights gives (an early epoch is the best here, not the last), also after a resume; predict_splits
    takes them and predicts only the other splits."""
    import skinlib.train

    _, _, _, mean, std = data
    train, val = batches(data)
    config = FitConfig(max_epochs=8, lr=5.0, optimizer="sgd", monitor="loss", patience=2, seed=0)
    model, result = run(data, config, checkpoint_dir=tmp_path)
    assert result.best_epoch < len(result.history) and result.val_proba is not None
    again = predict(model, val, Preprocess(mean, std))
    assert np.array_equal(result.val_proba, again)
    _, resumed = run(data, config, model=tiny_model(), checkpoint_dir=tmp_path)
    assert resumed.resumed_from == len(result.history) - 1 and np.array_equal(resumed.val_proba, again)

    predicted = []
    monkeypatch.setattr(skinlib.train, "predict", lambda m, b, pre, amp=True: predicted.append(b) or predict(m, b, pre))
    proba = predict_splits(model, {"val": val, "train": train}, Preprocess(mean, std), result, splits=("val", "train"))
    assert proba["val"] is result.val_proba and predicted == [train]
    assert np.array_equal(predict_splits(model, {"val": val}, Preprocess(mean, std), splits=("val",))["val"], again)
    assert predicted == [train, val]


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


@pytest.mark.skipif(not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported(),
                    reason="this CPU has no native bf16")
def test_cpu_bf16_autocast_only_when_asked(data, monkeypatch):
    """$SKINLIB_CPU_BF16=1: fit and predict run under bf16 autocast on the CPU, as amp does on a GPU; else fp32."""
    from skinlib import train as train_module

    dtypes = []
    model = tiny_model()
    model.head.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    monkeypatch.delenv(train_module.CPU_BF16_ENV, raising=False)
    assert not train_module.cpu_bf16()
    run(data, FitConfig(max_epochs=1, seed=0, device="cpu"), model=model)
    assert set(dtypes) == {torch.float32}
    monkeypatch.setenv(train_module.CPU_BF16_ENV, "1")
    assert train_module.cpu_bf16()
    dtypes.clear()
    _, result = run(data, FitConfig(max_epochs=2, lr=3e-3, seed=0, device="cpu"), model=model)
    assert set(dtypes) == {torch.bfloat16}
    assert np.isfinite(result.history["train_loss"]).all() and result.val_proba.dtype == np.float32
    np.testing.assert_allclose(result.val_proba.sum(1), 1, atol=1e-3)
    dtypes.clear()
    run(data, FitConfig(max_epochs=1, seed=0, device="cpu", amp=False), model=model)
    assert set(dtypes) == {torch.float32}                                       # amp off: never


def test_frozen_parts_stay_frozen_through_a_fit(data):
    """freeze_fraction=1 is a linear probe: the frozen backbone's batch-norm running statistics do not drift with the
    training data and its outputs are unchanged after a fit (its parts stay in eval mode while the head trains)."""
    from skinlib.models import create_backbone

    torch.manual_seed(0)
    model = create_backbone("resnet18", 7, freeze_fraction=1.0)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    frozen_modules = [n for n, m in model.named_modules()
                      if list(m.parameters()) and all(f"{n}.{k}" in frozen for k, _ in m.named_parameters())]
    assert frozen_modules and "features.bn1" in frozen_modules
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        stem_before = model.features.bn1(model.features.conv1(probe)).clone()
    _, cache, parts, mean, std = data
    train = Batches(cache, parts["train"]["image_id"][:32], parts["train"]["label"][:32], 16, shuffle=True, seed=0)
    val = Batches(cache, parts["val"]["image_id"][:16], parts["val"]["label"][:16], 16)
    fit(model, train, val, Preprocess(mean, std), Preprocess(mean, std), FitConfig(max_epochs=1, lr=1e-2, seed=0),
        log=io.StringIO())
    after = model.state_dict()
    for name in before:
        owner = name.rsplit(".", 1)[0]
        if owner in frozen_modules:
            assert torch.equal(before[name], after[name]), f"{name} of a frozen part changed during the fit"
    assert not torch.equal(before["head.weight"], after["head.weight"]), "the head did not train"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.features.bn1(model.features.conv1(probe)), stem_before)


def test_a_finished_run_says_it_is_complete_and_tells_run_all_where_it_would_resume(data, tmp_path, monkeypatch):
    """Resumed with nothing left to train, fit says the run was already complete (not "resumed after epoch 2");
    after each epoch it tells run_all.py where a stopped run would resume (a line run_all.py does not echo)."""
    channel = tmp_path / "notices.txt"
    monkeypatch.setenv("SKINLIB_NOTICES", str(channel))
    config = FitConfig(max_epochs=2, seed=1)
    run(data, config, checkpoint_dir=tmp_path / "ckpt")
    from skinlib.notebook import RESUME_TAG

    assert channel.read_text() == f"{RESUME_TAG}from epoch 2\n{RESUME_TAG}after its training, which its checkpoint holds\n"
    log = io.StringIO()
    _, again = run(data, config, checkpoint_dir=tmp_path / "ckpt", log=log)
    assert again.resumed_from == 1 and "resumed" not in log.getvalue()
    assert log.getvalue().startswith("already complete: its checkpoint holds the finished training (all 2 epochs)")
