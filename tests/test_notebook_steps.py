"""The steps the notebooks hand to the package (issue 19, "notebooks thinner still"): setup reading the parameters
cell, 04-06's inputs in one call, 05's run name, 07's models x regimes, 08's and 09's choice of runs."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from skinlib import binary, explain, inputs, members, metadata
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache
from skinlib.data.labels import CLASSES
from skinlib.data import load_catalog
from skinlib.notebook import parameter_names, setup
from skinlib.registry import RunRecorder
from skinlib.train import FitConfig  # imported here: fit prints to the sys.stdout of its import

PARAMETERS = 'data_dir = None  # the data\nseed = 0  # the seed\nratios = [0.7, 0.15, 0.15]  # fractions\nlr = -1e-3  # rate'
SETUP = "from skinlib.notebook import setup\nparams = setup(globals(), seed=seed)"


@pytest.fixture(scope="module")
def archive_table(synthetic_small):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return binary.with_target(load_catalog(synthetic_small, layout="isic_archive"), "isic_archive")


# --- setup(globals()) -------------------------------------------------------------------------------------------

def test_parameter_names_come_from_the_cells_run_before_setup():
    # nbval / nbclient / JupyterLab "run all": the parameters cell, then the cell calling setup
    assert parameter_names({"_ih": ["", PARAMETERS, SETUP]}) == ["data_dir", "seed", "ratios", "lr"]
    # papermill: its injected cell right after the parameters cell (some names, maybe a new order)
    injected = "# Parameters\nlr = 0.01\ndata_dir = \"/data\"\n"
    assert parameter_names({"_ih": ["", PARAMETERS, injected, SETUP]}) == ["data_dir", "seed", "ratios", "lr"]
    assert parameter_names({"_ih": ["", PARAMETERS, "# Parameters\n", SETUP]}) == ["data_dir", "seed", "ratios", "lr"]
    # earlier cells that are not parameters cells end the search; a later rerun of the parameters cell counts
    assert parameter_names({"_ih": ["", "x = 1", "import os", PARAMETERS, SETUP]}) == ["data_dir", "seed", "ratios", "lr"]
    assert parameter_names({"_ih": ["", PARAMETERS, SETUP, "y = f(2)", "seed = 3  # s", SETUP]}) == ["seed"]


def test_parameter_names_without_history_come_from_the_cell_run_last():
    """nbval executes cells with store_history=False: IPython still keeps the last cell it ran."""
    def shell(previous):
        result = SimpleNamespace(info=SimpleNamespace(raw_cell=previous))
        return lambda: SimpleNamespace(last_execution_result=result)

    assert parameter_names({"_ih": [""], "get_ipython": shell(PARAMETERS)}) == ["data_dir", "seed", "ratios", "lr"]
    with pytest.raises(RuntimeError, match="found no parameters cell"):
        parameter_names({"_ih": [""], "get_ipython": shell("import os")})


def test_parameter_names_come_from_the_notebook_file_when_the_kernel_knows_it(tmp_path, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"),
                                         nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(SETUP)])
    path = tmp_path / "07_x.ipynb"
    nbformat.write(nb, path)
    # JupyterLab: ipykernel's __session__ (absolute, or relative to the server root: found beside the kernel's cwd)
    history = ["", "ratios = [1]  # edited, not saved", SETUP]
    assert parameter_names({"__session__": str(path), "_ih": history}) == ["data_dir", "seed", "ratios", "lr"]
    monkeypatch.chdir(tmp_path)
    assert parameter_names({"__session__": "course/07_x.ipynb", "_ih": []}) == ["data_dir", "seed", "ratios", "lr"]
    assert parameter_names({"__vsc_ipynb_file__": str(path)}) == ["data_dir", "seed", "ratios", "lr"]
    # a session name that is no notebook file: the history
    assert parameter_names({"__session__": "console-1", "_ih": ["", "a = 1  # a", SETUP]}) == ["a"]


def test_setup_records_the_namespace_values_and_says_what_is_missing(capsys):
    namespace = {"__builtins__": {}, "_ih": ["", PARAMETERS, SETUP], "data_dir": None, "seed": 0,
                 "ratios": [0.7, 0.15, 0.15], "lr": 0.5, "np": np, "other": 3}
    params = setup(namespace, seed=0, resolved={"data_dir": "/made"})
    assert params == {"data_dir": "/made", "seed": 0, "ratios": [0.7, 0.15, 0.15], "lr": 0.5}
    assert list(params) == ["data_dir", "seed", "ratios", "lr"]
    out = capsys.readouterr().out
    assert "data_dir = '/made'" in out and "lr       = 0.5" in out and "other" not in out
    with pytest.raises(RuntimeError, match=r"\['lr'\] are not defined: run the parameters cell first"):
        setup({k: v for k, v in namespace.items() if k != "lr"})
    with pytest.raises(RuntimeError, match="found no parameters cell"):
        setup({"__builtins__": {}, "_ih": ["", "import os", SETUP]})
    assert setup({"seed": 1}) == {"seed": 1}            # a dict of the parameters themselves


# --- 04-06's inputs -----------------------------------------------------------------------------------------------

def _first_epoch(batches: Batches) -> list[tuple[np.ndarray, np.ndarray]]:
    batches.set_epoch(1)
    return [(x.numpy() if not isinstance(x, tuple) else x[1].numpy(), y.numpy()) for x, y in batches]


def test_prepare_is_the_block_04_to_06_repeated(synthetic_small, capsys):
    data = inputs.prepare(synthetic_small, "ham10000", image_size=16, batch_size=8, seed=3, device="cpu")
    assert "made it as 02_splits does" in capsys.readouterr().out
    table = inputs.split_catalog(synthetic_small, "ham10000", seed=3)     # the notebooks' block, as it was
    parts = inputs.by_split(table)
    cache = build_cache(table, 16)
    old = {name: Batches(cache, part["image_id"], part["label"], 8, shuffle=name == "train", seed=3,
                         drop_last=name == "train", device="cpu") for name, part in parts.items()}
    pd.testing.assert_frame_equal(data.table, table)
    assert list(data.parts) == ["train", "val", "test"] and data.classes == list(CLASSES)
    assert data.device.type == "cpu" and data.cache.images(table["image_id"][:3]).shape == (3, 16, 16, 3)
    for split in old:
        pd.testing.assert_frame_equal(data.parts[split], parts[split])
        new_epoch, old_epoch = _first_epoch(data.batches[split]), _first_epoch(old[split])
        assert len(new_epoch) == len(old_epoch) and data.batches[split].labels.dtype == old[split].labels.dtype
        assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(new_epoch, old_epoch)), split


def test_prepare_a_specialist_keeps_the_whole_cache(synthetic_small):
    data = inputs.prepare(synthetic_small, "ham10000", image_size=16, batch_size=8, device="cpu", classes=["mel", "nv"])
    assert data.classes == ["mel", "nv"] and set(data.table["dx"]) == {"mel", "nv"}
    assert set(data.table["label"]) == {0, 1} and sum(len(b.image_ids) for b in data.batches.values()) == len(data.table)
    other = inputs.split_catalog(synthetic_small, "ham10000").query("dx == 'bcc'")["image_id"][:2]
    assert data.cache.images(other).shape[0] == 2


def test_binary_batches_are_what_fit_network_built(archive_table):
    table = archive_table.iloc[:60].reset_index(drop=True)
    table["split"] = np.where(np.arange(60) < 40, "train", np.where(np.arange(60) < 50, "val", "test"))
    parts = inputs.by_split(table)
    cache = build_cache(table, 16, jobs=1)
    feats = metadata.MetadataFeatures(*metadata.columns(table)).fit(parts["train"])
    weights = binary.balanced_weights(parts["train"]["target"])
    new = inputs.split_batches(cache, parts, 16, seed=2, target="target", dtype=np.float32, train_weights=weights,
                               features=feats.transform)
    for split, part in parts.items():                      # binary.fit_network's own batches, as it built them
        train = split == "train"
        old = Batches(cache, part["image_id"], part["target"].to_numpy(np.float32), 16, shuffle=train,
                      weights=weights if train else None, seed=2, drop_last=train and len(part) > 16,
                      features=feats.transform(part))
        assert len(new[split]) == len(old) and new[split].labels.dtype == old.labels.dtype
        assert all((a[0] == b[0]).all() and (a[1] == b[1]).all()
                   for a, b in zip(_first_epoch(new[split]), _first_epoch(old))), split


def test_transfer_run_name():
    assert inputs.transfer_run_name("resnet18", pretrained=False) == "resnet18-scratch-rgb-noaug"
    assert inputs.transfer_run_name("resnet18", pretrained=True, augment="study_a") == "resnet18-pre-rgb-study_a"
    assert inputs.transfer_run_name("vgg19", pretrained=True, augment="study_e", interpolation="nearest",
                                    grayscale=True) == "vgg19-pre-gray-study_e-nearest"
    assert inputs.transfer_run_name("resnet18", pretrained=False, interpolation="nearest",
                                    localization="lower extremity", classes=["mel", "nv"]) == \
        "resnet18-scratch-rgb-noaug-lower_extremity-mel_vs_nv"


# --- 07's models x regimes ------------------------------------------------------------------------------------------

def test_fit_models_trains_every_kind_on_every_regime(archive_table, workspace, capsys):

    table = archive_table.iloc[:80].reset_index(drop=True)
    table["split"] = np.where(np.arange(80) < 50, "train", np.where(np.arange(80) < 65, "val", "test"))
    parts = inputs.by_split(table)
    cache = build_cache(table, 16, jobs=1)
    feats = metadata.MetadataFeatures(*metadata.columns(table)).fit(parts["train"])
    config = FitConfig(max_epochs=1, monitor="auc", device="cpu")
    branch = binary.ImageBranch(image_size=16)
    runs = list(binary.fit_models("isic_archive", ["logreg", "mlp"], ["natural", "undersampled"], parts, feats, cache,
                                  branch, config, batch_size=16, resume=False, n_boot=20))
    assert [(r.name, r.kind, r.regime) for r in runs] == [
        ("isic-logreg-natural", "logreg", "natural"), ("isic-logreg-undersampled", "logreg", "undersampled"),
        ("isic-mlp-natural", "mlp", "natural"), ("isic-mlp-undersampled", "mlp", "undersampled")]
    out = capsys.readouterr().out
    assert "isic-mlp-natural:" in out and "isic-logreg-natural:" not in out
    logreg, mlp = runs[0], runs[2]
    assert logreg.history is None and logreg.saved == {} and "auc" in logreg.evaluation.metrics["test"]
    assert len(mlp.history) == 1 and mlp.best_epoch == 1
    assert mlp.saved["spec"].factory == "metadata_mlp" and mlp.saved["spec"].classes == ["benign", "malignant"]
    assert (workspace / "checkpoints" / "binary" / "isic-mlp-natural").is_dir()
    # the same numbers as the steps it replaces
    model = binary.make_model("mlp", len(feats.names), image_size=16)
    mean, std = binary.normalization(model, "mlp", "small_cnn", False, cache, parts["train"]["image_id"])
    from skinlib.data.transforms import Preprocess, augmentation

    proba, _, _ = binary.fit_network(model, parts, parts["train"], cache, feats, "natural",
                                  (Preprocess(mean, std, augmentation("none")), Preprocess(mean, std)), config,
                                  batch_size=16, checkpoint_dir=workspace / "direct", resume=False)
    assert np.allclose(proba["test"], mlp.evaluation.proba["test"])
    named = next(binary.fit_models("isic_archive", ["logreg"], ["balanced"], parts, feats, cache, branch, config,
                                   batch_size=16, run_name_prefix="mine", n_boot=20))
    assert named.name == "mine-logreg-balanced"


# --- 08's and 09's choice of runs -----------------------------------------------------------------------------------

def _run(root, experiment, run, grayscale=False, ba=0.5, n=12):
    rng = np.random.default_rng(len(run))
    y = np.arange(n) % len(CLASSES)
    p = rng.dirichlet(np.ones(len(CLASSES)), n)
    p[np.arange(n), y] += ba * 3
    p /= p.sum(1, keepdims=True)
    rec = RunRecorder(experiment, run, {"grayscale": grayscale, "backbone": run}, root=root)
    rec.predictions(pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "split": "val", "label": y,
                                  **{f"p_{c}": p[:, i] for i, c in enumerate(CLASSES)}}))
    rec.metrics({})
    rec.finish()


def test_candidate_runs_of_the_colours_asked_for_and_at_least_two(tmp_path):
    for run, gray, ba in (("a", False, 0.9), ("b", True, 0.8), ("c", False, 0.1), ("d", True, 0.5)):
        _run(tmp_path, "transfer", run, gray, ba)
    assert sorted(members.candidate_runs(root=tmp_path)["run"]) == ["a", "c"]
    assert sorted(members.candidate_runs(root=tmp_path, colours="grey")["run"]) == ["b", "d"]
    assert sorted(members.candidate_runs(root=tmp_path, colours="any")["run"]) == ["a", "b", "c", "d"]
    with pytest.raises(RuntimeError, match="2 rgb candidate run"):
        members.candidate_runs(root=tmp_path, at_least=3)
    with pytest.raises(ValueError, match="colours = 'gray': use one of rgb, grey, any"):
        members.candidate_runs(root=tmp_path, colours="gray")


def test_best_member_and_best_per_kind():
    assert members.best_member(["a", "b", "c"], {"a": 0.2, "b": 0.7, "c": 0.7, "d": 0.9}) == "b"
    runs = pd.DataFrame({"experiment": "binary", "run": ["x-dino", "y", "z", "clip-w"],
                         "backbone": ["vit_small_patch16_224.dino", "vit_small_patch16_224.DINO", "clip-ViT-B-32", ""],
                         "column": "p_mel", "val_auc": [0.6, 0.8, 0.5, 0.7]})
    assert [r["run"] for r in members.best_per_kind(runs, ("dino", "clip"))] == ["y", "clip-w"]
    assert members.best_per_kind(runs[runs["run"] != "z"].iloc[:2], ("dino", "clip")) is None
    assert members.missing_kinds(runs[runs["run"] != "z"].iloc[:2], ("dino", "clip")) == ["clip"]
    assert members.missing_kinds(runs, ("dino", "clip")) == [] and members.missing_kinds(runs.iloc[:0], ("dino",)) == ["dino"]


def test_load_specialists_align_their_predictions_to_the_members(monkeypatch):
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(6)], "split": ["val"] * 3 + ["test"] * 3})
    calls = []

    def predict_recorded(experiment, run, table_, batch_size=64, device="auto"):
        calls.append((experiment, run, batch_size, device))
        order = inputs.by_split(table_)
        return {s: np.array([[int(i[1:]), 0.0] for i in order[s]["image_id"]]) for s in ("val", "test")}

    monkeypatch.setattr("skinlib.registry.predict_recorded", predict_recorded)
    found = pd.DataFrame({"experiment": ["transfer"], "run": ["mel_vs_nv"], "trigger": ["mel"], "classes": [["mel", "nv"]]})
    got = members.load_specialists(found, table, {"val": ["i2", "i0"], "test": ["i5", "i3", "i4"]}, batch_size=4,
                                    device="cpu")
    assert calls == [("transfer", "mel_vs_nv", 4, "cpu")]
    assert got["val"][0].trigger == "mel" and got["val"][0].proba[:, 0].tolist() == [2, 0]
    assert got["test"][0].proba[:, 0].tolist() == [5, 3, 4]


def test_runs_to_explain_and_the_subjects_loaded(tmp_path, monkeypatch, capsys):
    for run, gray, ba in (("a", False, 0.2), ("b", True, 0.8), ("c", False, 0.9), ("d", False, 0.5), ("e", True, 0.9)):
        _run(tmp_path, "transfer", run, gray, ba)
    kept = {"a", "b", "c", "e"}
    specs = {r: SimpleNamespace(grayscale=r in "be") for r in "abcde"}
    monkeypatch.setattr("skinlib.registry.has_model", lambda e, r, root=None: r in kept)
    monkeypatch.setattr("skinlib.registry.load_spec", lambda e, r, root=None: specs[r])
    val_ba = members.registry_runs(tmp_path).set_index("run")["balanced_accuracy"]
    rgb_order = [f"transfer/{r}" for r in sorted("ac", key=lambda r: -val_ba[r])]
    gray_best = f"transfer/{max('be', key=lambda r: val_ba[r])}"
    assert members.runs_to_explain(root=tmp_path) == (rgb_order, [gray_best])
    assert members.runs_to_explain(root=tmp_path, max_models=1) == (rgb_order[:1], [gray_best])
    assert members.runs_to_explain(runs=["transfer/d", "transfer/b", "transfer/a"], root=tmp_path) == \
        (["transfer/d", "transfer/a"], ["transfer/b"])
    kept.clear()
    with pytest.raises(RuntimeError, match="no run in the registry kept its model"):
        members.runs_to_explain(root=tmp_path)

    loaded = []

    def load_subject(experiment, run, part, table, device, root=None, catalog=None):
        loaded.append(run)
        return SimpleNamespace(model=run)

    def cam_target(model):
        if model == "b":
            raise TypeError("no Grad-CAM target for b")

    monkeypatch.setattr(explain, "load_subject", load_subject)
    monkeypatch.setattr(explain, "cam_target", cam_target)
    subjects = explain.load_subjects(["transfer/a", "transfer/b", "transfer/a", "transfer/c"], None, None)
    assert list(subjects) == ["transfer/a", "transfer/c"] and loaded == ["a", "b", "c"]
    assert "transfer/b: not explained: no Grad-CAM target for b" in capsys.readouterr().out
