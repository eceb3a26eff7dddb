"""The GPU path's options, exercised on this CPU: ``torch.compile`` (inductor, compiled with the machine's C compiler)
and channels-last memory fit the same model as the plain path, and what they write (the checkpoint, the registry's
model) loads into a plain model that predicts the same.

SGD, not Adam, in these comparisons: Adam divides each step by the gradient's running magnitude, so a parameter with
a gradient near zero moves by about the learning rate whatever the sign of a rounding difference, and two
numerically equal paths drift apart by lr x steps. SGD keeps the difference as small as the gradients' own.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache, channel_stats
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import ModelSpec, ResidualCNN
from skinlib.registry import RunRecorder, load_model
from skinlib.train import FitConfig, fit, predict

KWARGS = dict(num_classes=7, width=4, blocks=[1])


@pytest.fixture(scope="module")
def data(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 32)
    parts = {s: catalog[split == s] for s in ("train", "val")}
    mean, std = channel_stats(cache, parts["train"]["image_id"])
    return cache, parts, Preprocess(mean, std)


def batches(data):
    cache, parts, _ = data
    train = parts["train"]
    # drop_last: every training batch has one shape, so torch.compile compiles one graph
    return (Batches(cache, train["image_id"], train["label"], 16, shuffle=True, seed=1, drop_last=True),
            Batches(cache, parts["val"]["image_id"], parts["val"]["label"], 64))


def fit_with(data, **options):
    torch.manual_seed(0)
    model = ResidualCNN(**KWARGS)
    train, val = batches(data)
    checkpoint_dir = options.pop("checkpoint_dir", None)
    config = FitConfig(max_epochs=2, lr=0.05, optimizer="sgd", seed=0, amp=False, **options)
    fit(model, train, val, data[2], data[2], config, log=io.StringIO(), checkpoint_dir=checkpoint_dir)
    return model, config, val


@pytest.fixture
def environment_kept():
    """torch.compile's inductor sets variables in this process's environment (its cache folder, the libraries'
    path): restored afterwards, so that kernels started later by other tests of this worker see the environment
    the kernel zygote was started with (tests/test_forked_kernels.py)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def one_thread():
    """Both fits on one thread. With torch's 2 threads on this 2-core machine, channels-last's sums come out in
    another order, and over the fit the difference grows past the tolerances below (a batch-norm running variance
    3.5e-4 relative, probabilities 1.2e-3): the test compares the option, not the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("option", ["channels_last", "compile"])
def test_an_option_fits_the_plain_paths_model_and_its_files_load_plainly(data, tmp_path, monkeypatch, option,
                                                                         environment_kept, one_thread):
    plain, _, val = fit_with(data, channels_last=False)
    if option == "compile":
        torch._dynamo.reset()
        from torch._dynamo.utils import counters

        counters.clear()
    other, _, _ = fit_with(data, channels_last=option == "channels_last", compile=option == "compile",
                                checkpoint_dir=tmp_path / "checkpoints")
    # the option took effect
    if option == "compile":
        assert counters["stats"]["unique_graphs"] >= 1, "torch.compile compiled nothing"
    else:
        assert other.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert not plain.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    # ... and fitted the same model
    for (name, a), (_, b) in zip(plain.state_dict().items(), other.state_dict().items()):
        np.testing.assert_allclose(b.float().numpy(), a.float().numpy(), rtol=1e-4, atol=2e-4, err_msg=name)
    expected = predict(plain, val, data[2], amp=False)
    np.testing.assert_allclose(predict(other, val, data[2], amp=False), expected, atol=2e-4)

    # the last checkpoint loads, strictly, into a plain model (no "_orig_mod." keys, any memory format)
    [checkpoint] = (tmp_path / "checkpoints").glob("*/last.pt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    fresh = ResidualCNN(**KWARGS)
    fresh.load_state_dict(state["model"], strict=True)
    np.testing.assert_allclose(predict(fresh.eval(), val, data[2], amp=False), predict(other, val, data[2], amp=False),
                               atol=1e-6)

    # the registry keeps it (safetensors) and load_model rebuilds a plain model that predicts the same
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path))
    recorder = RunRecorder("options", option, {})
    recorder.model(other, ModelSpec("residual_cnn", KWARGS, data[2].mean.flatten().tolist(),
                                    data[2].std.flatten().tolist(), 32))
    recorder.finish()
    loaded, preprocess = load_model("options", option)
    np.testing.assert_allclose(predict(loaded, val, preprocess, amp=False), predict(other, val, data[2], amp=False),
                               atol=1e-6)
