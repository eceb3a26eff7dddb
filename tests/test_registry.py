"""The results registry: a run folder appears whole or not at all; gather builds the comparison table."""

from __future__ import annotations

import json
import os

import matplotlib
import pandas as pd
import pytest

from skinlib.registry import RunRecorder, gather, load_run

matplotlib.use("Agg")


def write_run(root, experiment, run, acc, params=None):
    rec = RunRecorder(experiment, run, params or {"lr": 0.1, "backbone": run}, root=root)
    rec.metrics({"val": {"accuracy": acc - 0.1}, "test": {"accuracy": acc, "balanced_accuracy": acc / 2}})
    rec.predictions(pd.DataFrame({"image_id": ["a", "b"], "split": ["test", "test"], "label": [0, 1],
                                  "p_akiec": [0.9, 0.2]}))
    rec.history(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5]}))
    return rec


def test_run_folder_appears_only_when_finished(tmp_path):
    rec = write_run(tmp_path, "exp", "r1", 0.8)
    assert not (tmp_path / "exp" / "r1").exists()
    assert gather(root=tmp_path).empty
    folder = rec.finish()
    assert folder == tmp_path / "exp" / "r1"
    assert sorted(p.name for p in folder.iterdir()) == ["history.csv", "metrics.json", "params.json", "predictions.csv", "run.json"]
    assert not [p for p in (tmp_path / "exp").iterdir() if p.name.startswith(".")]
    run = load_run("exp", "r1", tmp_path)
    assert run.params == {"lr": 0.1, "backbone": "r1"} and run.metrics["test"]["accuracy"] == 0.8
    assert run.predictions["image_id"].tolist() == ["a", "b"] and len(run.history) == 2


def test_a_failed_rerun_leaves_the_previous_result_intact(tmp_path):
    write_run(tmp_path, "exp", "r1", 0.8).finish()
    with pytest.raises(RuntimeError):
        rec = write_run(tmp_path, "exp", "r1", 0.1)
        raise RuntimeError("training crashed")
    assert load_run("exp", "r1", tmp_path).metrics["test"]["accuracy"] == 0.8
    rec.finish()                                                    # a completed rerun replaces it whole
    assert load_run("exp", "r1", tmp_path).metrics["test"]["accuracy"] == 0.1


def test_gather_one_row_per_run(tmp_path):
    write_run(tmp_path, "transfer", "resnet50", 0.8).finish()
    write_run(tmp_path, "transfer", "vgg19", 0.6).finish()
    write_run(tmp_path, "custom_cnn", "cnn", 0.7).finish()
    table = gather(root=tmp_path, params=("backbone",))
    assert len(table) == 3 and set(table["experiment"]) == {"transfer", "custom_cnn"}
    only = gather("transfer", root=tmp_path, params=("backbone",)).set_index("run")
    assert only.loc["vgg19", "accuracy"] == 0.6 and only.loc["resnet50", "balanced_accuracy"] == 0.4
    assert only.loc["vgg19", "backbone"] == "vgg19"
    assert gather("transfer", root=tmp_path, split="val").set_index("run").loc["vgg19", "accuracy"] == pytest.approx(0.5)


def test_figures_tables_and_names(tmp_path):
    import matplotlib.pyplot as plt

    rec = write_run(tmp_path, "exp", "r", 0.5)
    fig, _ = plt.subplots()
    rec.figure(fig, "curves")
    rec.table(pd.DataFrame({"a": [1]}), "per_class")
    folder = rec.finish()
    assert (folder / "figures" / "curves.png").stat().st_size > 0 and (folder / "tables" / "per_class.csv").is_file()
    assert json.loads((folder / "run.json").read_text())["status"] == "ok"
    with pytest.raises(ValueError, match="without '/'"):
        RunRecorder("exp", "a/b", {}, root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"runs of 'exp': \['r'\]"):
        load_run("exp", "nope", tmp_path)


def test_a_run_compared_with_what_its_study_reported():
    from skinlib.papers import compare

    table = compare({"accuracy": 0.5, "balanced_accuracy": 0.4, "f1_weighted": 0.45, "f1_macro": 0.3}, "custom_cnn")
    assert list(table.index) == ["this run (test)", "study A, reported (test)"]
    assert list(table.columns) == ["balanced_accuracy", "accuracy", "precision_weighted", "recall_weighted",
                                   "f1_weighted"]                                      # study A gave no macro F1
    paper = table.loc["study A, reported (test)"]
    assert paper["accuracy"] == 0.7614 and paper["precision_weighted"] == 0.7324 and pd.isna(paper["balanced_accuracy"])


def test_run_records_threads_and_versions(tmp_path):
    """The numbers of a neural run depend on torch's thread count and the libraries' versions: run.json keeps them."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        folder = write_run(tmp_path, "exp", "one-thread", 0.5).finish()
    finally:
        torch.set_num_threads(threads)
    env = json.loads((folder / "run.json").read_text())["environment"]
    assert env["torch_threads"] == 1 and env["cores"] == os.cpu_count()
    assert env["versions"]["torch"] == torch.__version__.split("+")[0]
    assert {"numpy", "scikit-learn", "timm"} <= set(env["versions"])
