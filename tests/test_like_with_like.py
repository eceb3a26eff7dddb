"""The report compares like with like: the files a run writes score the classifier it recorded, the calibration
model is chosen where validation chose nothing, one ECE, each task family against its own chance, study B at 07's
validation-chosen threshold, and 08's DINO + CLIP ensemble recorded like the other ensembles."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from skinlib import ensemble, evaluation, metrics, paths, registry, report
from skinlib.data.labels import CLASSES

matplotlib.use("Agg")


def seven_class_parts(rng, n=140):
    parts = {}
    for split in ("val", "test"):
        y = np.repeat(np.arange(7), n // 7)
        parts[split] = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(len(y))], "label": y,
                                     "lesion_id": [f"{split}L{i // 2}" for i in range(len(y))]})
    return parts


def noisy_members(rng, parts, n_members=3, right=0.5):
    out = []
    for _ in range(n_members):
        member = {}
        for split, part in parts.items():
            y = part["label"].to_numpy()
            called = np.where(rng.random(len(y)) < right, y, rng.integers(0, 7, len(y)))
            member[split] = 0.6 * np.eye(7)[called] + 0.4 * rng.dirichlet(np.ones(7), len(y))
        out.append(member)
    return out


def test_every_runs_isic_file_scores_what_its_metrics_json_says(workspace):
    """The scorer reads each row's largest value; a vote's tied shares must still give the vote's decision."""
    rng = np.random.default_rng(0)
    parts = seven_class_parts(rng)
    members = noisy_members(rng, parts, right=0.3)
    runs = {"vote-top-3": {s: ensemble.hard_vote([m[s] for m in members]) for s in parts},
            "average-top-3": {s: ensemble.soft_average([m[s] for m in members]) for s in parts},
            "single": members[0]}
    tied = (runs["vote-top-3"]["test"] == runs["vote-top-3"]["test"].max(1, keepdims=True)).sum(1) > 1
    assert tied.sum() > 20                                      # three members voting three classes: common
    for name, proba in runs.items():
        registry.record("ensembles", name, {}, parts, ensemble.evaluate(parts, proba, n_boot=10))
    listing = report.isic_csvs()
    assert sorted(listing["run"]) == sorted(runs)
    for row in listing.itertuples():
        assert row.agree, (row.run, row._4, row._5)
    file = registry.load_run("ensembles", "vote-top-3").folder / "isic_test_predictions.csv"
    _, decided = metrics.isic_decisions(file)
    np.testing.assert_array_equal(decided, runs["vote-top-3"]["test"].argmax(1))
    back = metrics.read_isic_csv(file)[1]
    np.testing.assert_allclose(back, runs["vote-top-3"]["test"], atol=1e-15)   # still the vote shares


def binary_parts(rng, n=200, shift=1.0):
    parts, proba = {}, {}
    for split in ("val", "test"):
        y = (np.arange(n) % 4 == 0).astype(int)                 # a quarter positive
        parts[split] = pd.DataFrame({"image_id": [f"{split}{i}" for i in range(n)], "target": y,
                                     "lesion_id": [f"{split}L{i // 2}" for i in range(n)]})
        score = shift * y + rng.normal(0, 1, n)
        proba[split] = 1 / (1 + np.exp(-(score - 2.0)))          # too low: 0.5 is a poor threshold
    return parts, proba


@pytest.fixture(scope="module")
def mixed_registry(tmp_path_factory):
    """A 7-class single model, 08's ensembles over it (better on validation, in-sample), a binary run and a
    4-class subtype run, all recorded as the notebooks record them (once for the module: ``runs.attrs["root"]``
    is the registry)."""
    workspace = tmp_path_factory.mktemp("mixed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SKINLIB_WORKSPACE", str(workspace))
        _record_mixed(np.random.default_rng(1))
        runs = report.runs_table()
        runs.attrs["root"] = paths.results_dir()
    return runs


def _record_mixed(rng):
    parts = seven_class_parts(rng)
    members = noisy_members(rng, parts)
    registry.record("transfer", "resnet", {"backbone": "resnet50"}, parts,
                    evaluation.evaluate_splits(parts, members[0], n_boot=20))
    registry.record("transfer", "mobilenet", {"backbone": "mobilenetv2"}, parts,
                    evaluation.evaluate_splits(parts, members[1], n_boot=20))
    truth = {s: np.eye(7)[p["label"]] for s, p in parts.items()}
    vote = {s: ensemble.hard_vote([truth[s], truth[s], members[2][s]]) for s in parts}          # perfect on val
    registry.record("ensembles", "vote-top-3", {}, parts, ensemble.evaluate(parts, vote, n_boot=20))
    weighted = {s: ensemble.soft_average([truth[s], members[2][s]]) for s in parts}
    registry.record("ensembles", "weighted-val-fitted", {}, parts, ensemble.evaluate(parts, weighted, n_boot=20))
    bparts, bproba = binary_parts(rng)
    registry.record("binary", "B-resnet18-image-natural", {"task": "melanoma", "model": "image", "backbone": "resnet18",
                                                                 "freeze_fraction": 0.0},
                    bparts, evaluation.evaluate_binary(bparts, bproba, "mel", n_boot=20))
    sub = {s: p.assign(label=p["label"] % 4) for s, p in parts.items()}
    sub_proba = {s: rng.dirichlet(np.ones(4), len(p)) for s, p in sub.items()}
    registry.record("binary", "isic-subtypes", {"task": "isic_archive", "model": "subtypes"}, sub,
                    evaluation.evaluate_splits(sub, sub_proba, n_boot=50, classes=["mel", "bcc", "scc", "other"]),
                    classes=["mel", "bcc", "scc", "other"])


def test_calibration_model_is_a_single_model_never_an_ensemble_chosen_on_validation(mixed_registry):
    runs = mixed_registry
    ensembles = runs[runs["experiment"] == "ensembles"]
    singles = runs[runs["experiment"] == "transfer"]
    assert ensembles["val_balanced_accuracy"].min() > singles["val_balanced_accuracy"].max()
    best = report.best_run(runs)
    assert best["experiment"] == "transfer" and best["task"] == "7-class"
    table, _ = report.reliability(best["experiment"], best["run"], root=runs.attrs["root"])
    assert len(table) > 2                                       # probabilities, not a vote's two or three values


def test_reliability_diagram_and_registry_share_one_ece(mixed_registry):
    root = mixed_registry.attrs["root"]
    for run in ("resnet", "mobilenet"):
        table, ece = report.reliability("transfer", run, root=root)
        recorded = registry.load_run("transfer", run, root).metrics["test"]["ece"]
        assert ece == pytest.approx(recorded, abs=1e-12)
        assert len(table) <= metrics.ECE_BINS == 15 and table["n"].sum() == 140


def test_forest_plot_gives_each_task_its_panel_and_chance(mixed_registry):
    runs = mixed_registry
    assert dict(zip(runs["run"], runs["task"])) == {
        "resnet": "7-class", "mobilenet": "7-class", "vote-top-3": "7-class", "weighted-val-fitted": "7-class",
        "B-resnet18-image-natural": "binary", "isic-subtypes": "4-class"}
    fig = report.forest_plot(runs)
    panels = {ax.get_title(loc="left"): ax for ax in fig.axes}
    assert list(panels) == ["7-class", "binary", "4-class"]
    for task, chance in (("7-class", 1 / 7), ("binary", 0.5), ("4-class", 0.25)):
        ax = panels[task]
        lines = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(lines) == 1 and lines[0].get_xdata()[0] == pytest.approx(chance)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert sorted(labels) == sorted(f"{r.experiment}/{r.run}" for r in runs[runs["task"] == task].itertuples())
        # the legend lists the families top to bottom, as the rows are drawn
        families = runs.set_index(runs["experiment"] + "/" + runs["run"])["family"]
        top_down = list(dict.fromkeys(families[label] for label in reversed(labels)))
        assert [t.get_text() for t in ax.get_legend().get_texts()] == top_down
    binary = runs.set_index("run").loc["B-resnet18-image-natural"]
    assert binary["headline_low"] < binary["headline"] < binary["headline_high"]      # binary runs get intervals
    assert binary["headline"] == registry.load_run("binary", "B-resnet18-image-natural", runs.attrs["root"]).metrics[
        "test"]["youden_balanced_accuracy"]
    interval = [line for line in panels["binary"].get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"]
    assert len(interval) == 1


def test_study_b_compares_at_07s_validation_chosen_threshold(mixed_registry):
    table = report.study_table("B", mixed_registry)
    row = table[table["our run"] == "binary/B-resnet18-image-natural"].iloc[0]
    test = registry.load_run("binary", "B-resnet18-image-natural", mixed_registry.attrs["root"]).metrics["test"]
    assert row["our threshold (chosen on val)"] == test["youden_threshold"] != 0.5
    assert row["ours sensitivity"] == test["youden_sensitivity"] != test["sensitivity"]
    assert row["ours precision"] == test["youden_precision"]
    assert row["ours accuracy"] == test["youden_accuracy"]
    assert row["ours auc"] == test["auc"]


def test_dino_clip_ensemble_is_recorded_with_a_validation_chosen_threshold(workspace):
    from skinlib.members import best_per_kind, binary_runs, load_members

    rng = np.random.default_rng(2)
    parts, dino = binary_parts(rng)
    clip = {s: np.clip(p + rng.normal(0, 0.05, len(p)), 0, 1) for s, p in dino.items()}
    for name, backbone, proba in (("B-dino", "vit_small_patch16_224.dino", dino), ("B-clip", "clip-ViT-B-32", clip)):
        registry.record("binary", name, {"task": "melanoma", "model": "image", "backbone": backbone}, parts,
                        evaluation.evaluate_binary(parts, proba, "mel", n_boot=20))
    pair = best_per_kind(binary_runs(), ("dino", "clip"))
    duo = load_members([(r["experiment"], r["run"]) for r in pair], classes=["mel"])
    duo_parts, duo_eval = ensemble.evaluate_binary_average(duo, "mel", n_boot=20)
    registry.record("ensembles", "dino-clip-mel", {"members": duo.names, "task": "melanoma"}, duo_parts, duo_eval)

    recorded = registry.load_run("ensembles", "dino-clip-mel")
    average_val = ensemble.binary_average([duo.proba["val"][n][:, 0] for n in duo.names])
    expected = metrics.choose_threshold(duo.labels["val"], average_val, "youden")
    assert recorded.metrics["test"]["youden_threshold"] == pytest.approx(expected)
    assert recorded.metrics["test"]["auc_low"] < recorded.metrics["test"]["auc"] < recorded.metrics["test"]["auc_high"]
    assert set(binary_runs()["run"]) == {"B-dino", "B-clip"}      # never its own member
    runs = report.runs_table()
    table = report.study_table("B", runs)
    row = table[table["model"].str.startswith("ensemble of DINO and CLIP")].iloc[0]
    assert row["our run"] == "ensembles/dino-clip-mel"
    assert row["ours sensitivity"] == recorded.metrics["test"]["youden_sensitivity"]
    assert runs.set_index("run").loc["dino-clip-mel", "task"] == "binary"
