"""The report reads only the registry: study tables (with missing runs named), forest plot, the split's cost,
calibration of the model chosen on validation, and the standalone HTML export."""

from __future__ import annotations

import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from skinlib import report, tables
from skinlib.data.labels import CLASSES
from skinlib.registry import RunRecorder, gather

matplotlib.use("Agg")


def record(root, experiment, run, y, proba, params=None, val_ba=0.5, test_ci=None, prefix="i", lesions=None):
    """A finished run whose test predictions are `proba` for labels `y` (images ``<prefix><k>``, optionally with
    their lesions)."""
    rec = RunRecorder(experiment, run, params or {}, root=root)
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in CLASSES])
    frame.insert(0, "label", y)
    frame.insert(0, "group", lesions if lesions is not None else [f"{prefix}{k}" for k in range(len(y))])
    if lesions is not None:
        frame.insert(0, "lesion_id", lesions)
    frame.insert(0, "split", "test")
    frame.insert(0, "image_id", [f"{prefix}{k}" for k in range(len(y))])
    rec.predictions(frame)
    pred = np.asarray(proba).argmax(1)
    ba = float(np.mean([np.mean(pred[np.asarray(y) == k] == k) for k in np.unique(y)]))
    rec.metrics({"val": {"balanced_accuracy": val_ba}, "test": {"balanced_accuracy": ba, "accuracy": float(np.mean(pred == y))},
                 "test_ci": test_ci or {"balanced_accuracy": {"value": ba, "low": ba - 0.1, "high": ba + 0.1}}})
    return rec.finish()


def onehot(pred, confidence=0.9):
    out = np.full((len(pred), 7), (1 - confidence) / 6)
    out[np.arange(len(pred)), pred] = confidence
    return out


@pytest.fixture
def registry(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 30)
    right = lambda share: np.where(rng.random(len(y)) < share, y, (y + 1) % 7)   # noqa: E731
    record(tmp_path, "custom_cnn", "custom-cnn", y, onehot(right(0.5)), {"data_dir": None}, val_ba=0.6)
    record(tmp_path, "transfer", "resnet50-run", y, onehot(right(0.7)), {"backbone": "resnet50", "grayscale": False,
                                                                          "augment": "study_e", "head": "study_e"}, val_ba=0.4)
    # a model on 02's two saved splits: two different test sets (as the full profile's custom CNN runs)
    record(tmp_path, "split_cost", "lesion-split", y, onehot(right(0.4)), val_ba=0.3)
    record(tmp_path, "split_cost", "image-split", y, onehot(right(0.8)), val_ba=0.3, prefix="j")
    return tmp_path


def test_study_table_puts_runs_beside_the_paper_and_names_missing_ones(registry):
    runs = report.runs_table(registry)
    table = report.study_table("A", runs)
    cnn = table[table["model"] == "custom residual CNN"].iloc[0]
    assert cnn["our run"] == "custom_cnn/custom-cnn" and cnn["paper accuracy"] == 0.7614
    assert cnn["balanced accuracy [95% CI]"].startswith(f"{runs.set_index('run').loc['custom-cnn', 'balanced_accuracy']:.3f} [")
    rf = table[table["model"].str.startswith("random forest")].iloc[0]
    assert rf["our run"].startswith("not run")
    e = report.study_table("E", runs)
    assert "transfer/resnet50-run" in set(e["our run"])
    pieces = tables.parts(table, width=600)       # too wide for the page: the paper's columns, then ours
    assert [p.columns[0] for p in pieces] == ["model"] * len(pieces) and len(pieces) >= 2
    assert all(c.startswith("paper") for c in pieces[0].columns[2:]) and "our run" in pieces[1].columns


def test_study_table_shows_each_runs_split_and_puts_the_image_level_one_last(tmp_path):
    y = np.repeat(np.arange(7), 10)
    record(tmp_path, "custom_cnn", "a-image", y, onehot(y), {"split_name": "image-75-10-15-seed0"})
    record(tmp_path, "custom_cnn", "b-lesion", y, onehot((y + 1) % 7), {"split_name": "lesion-75-10-15-seed0"})
    record(tmp_path, "custom_cnn", "c-unnamed", y, onehot(y), {})
    table = report.study_table("A", report.runs_table(tmp_path))
    cnn = table[table["model"] == "custom residual CNN"]
    assert cnn["our run"].tolist() == ["custom_cnn/b-lesion", "custom_cnn/c-unnamed", "custom_cnn/a-image"]
    assert cnn["our split"].fillna("").tolist() == ["lesion-grouped", "", "image-level (lesions leak)"]
    assert report.split_of({"split_name": "patient-70-15-15-seed1"}) == "patient-grouped"
    assert report.split_of({"split_name": "my-split"}) == "my-split" and report.split_of(None) == ""
    assert report.split_of({"split_name": float("nan")}) == ""


def test_best_model_is_never_a_run_on_the_image_level_split(tmp_path):
    y = np.repeat(np.arange(7), 10)
    record(tmp_path, "custom_cnn", "leaky", y, onehot(y), {"split_name": "image-75-10-15-seed0"}, val_ba=0.9)
    record(tmp_path, "custom_cnn", "grouped", y, onehot(y), {"split_name": "lesion-75-10-15-seed0"}, val_ba=0.6)
    assert report.best_run(report.runs_table(tmp_path))["run"] == "grouped"


def test_a_model_given_its_label_stands_in_study_c_table_and_is_chosen_nowhere(tmp_path):
    """Study C's model as its paper ran it (06's label_prompt head reads each image's label): beside the paper's
    number in the study C table, next to our prompt head; never the calibration model, a forest-plot row or an
    ensemble member, however high its validation score."""
    from skinlib.members import registry_runs

    y = np.repeat(np.arange(7), 10)
    clip = {"family": "clip", "weight_decay": 0.0, "augment": "none", "split_name": "lesion-75-10-15-seed0"}
    record(tmp_path, "vision_language", "C-clip-label-input", y, onehot(y), {**clip, "head": "label_prompt"}, val_ba=1.0)
    record(tmp_path, "vision_language", "C-clip-prompt", y, onehot((y + 1) % 7), {**clip, "head": "prompt"}, val_ba=0.3)
    runs = report.runs_table(tmp_path)
    table = report.study_table("C", runs).set_index("variant")
    assert table.loc["label as input", "our run"] == "vision_language/C-clip-label-input"
    assert table.loc["label as input", "paper accuracy"] == table.loc["prompt", "paper accuracy"] == 0.818
    assert table.loc["prompt", "our run"] == "vision_language/C-clip-prompt"
    assert report.best_run(runs)["run"] == "C-clip-prompt"
    labels = [t.get_text() for t in report.forest_plot(runs).axes[0].get_yticklabels()]
    assert labels == ["vision_language/C-clip-prompt"]
    assert list(registry_runs(tmp_path)["run"]) == ["C-clip-prompt"]


def test_forest_plot_has_a_row_per_run(registry):
    runs = report.runs_table(registry)
    fig = report.forest_plot(runs)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(f"{e}/{r}" for e, r in zip(runs["experiment"], runs["run"]))


def test_split_cost_measures_the_difference_with_an_interval(registry):
    table = report.split_cost("split_cost/lesion-split", "split_cost/image-split", n_boot=300, root=registry)
    runs = gather("split_cost", root=registry).set_index("run")
    assert list(table.index) == ["balanced_accuracy", "accuracy"]
    for metric, cost in table.iterrows():
        assert cost["inflation"] == pytest.approx(runs.loc["image-split", metric] - runs.loc["lesion-split", metric])
        assert cost["low"] < cost["inflation"] < cost["high"] and cost["low"] > 0      # 0.8 vs 0.4 of 210 images
    assert table.index.name == ("each on its own test split (210 and 210 images), each resampled by lesion, "
                                "independently")


def test_split_cost_compares_cross_fitted_runs_image_by_image(tmp_path):
    """On the same images, the paired design resamples lesions and gives a narrower interval than resampling the
    two sets independently; the measurement runs stay out of the run tables and the ensemble members."""
    from skinlib.members import registry_runs

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(7), 40)
    lesions = [f"L{k // 2}" for k in range(len(y))]                   # two images per lesion
    grouped = np.where(rng.random(len(y)) < 0.45, y, (y + 1) % 7)
    image = np.where(rng.random(len(y)) < 0.2, y, grouped)             # the same calls, and a few more right
    record(tmp_path, "split_cost", "rf-lesion-5fold", y, onehot(grouped), lesions=lesions)
    record(tmp_path, "split_cost", "rf-image-5fold", y, onehot(image), lesions=lesions)
    record(tmp_path, "custom_cnn", "other-images", y, onehot(image), prefix="j")
    both = report.split_cost("split_cost/rf-lesion-5fold", "split_cost/rf-image-5fold", n_boot=400, root=tmp_path)
    paired = both.loc["balanced_accuracy"]
    assert both.index.name == "cross-fitted: the same 280 images, resampled by lesion"
    expected = np.mean([np.mean(image[y == k] == k) - np.mean(grouped[y == k] == k) for k in range(7)])
    assert paired["inflation"] == pytest.approx(expected)
    assert both.loc["accuracy", "inflation"] == pytest.approx(np.mean(image == y) - np.mean(grouped == y))
    apart = report.split_cost("split_cost/rf-lesion-5fold", "custom_cnn/other-images", n_boot=400, root=tmp_path)
    assert apart.index.name.startswith("each on its own test split")
    apart = apart.loc["balanced_accuracy"]
    assert apart["inflation"] == pytest.approx(paired["inflation"])
    assert paired["high"] - paired["low"] < 0.6 * (apart["high"] - apart["low"])
    assert paired["low"] > 0 and paired["share of resamples without inflation"] == 0
    assert set(report.runs_table(tmp_path)["experiment"]) == {"custom_cnn"}
    assert set(registry_runs(tmp_path)["experiment"]) == {"custom_cnn"}


def test_split_cost_names_a_missing_run(registry):
    cost = report.split_cost("split_cost/lesion-split", "custom_cnn/nope", root=registry)
    assert cost["not run"] == "custom_cnn/nope" and "split_name" in cost["how"] and "split_cost_folds" in cost["how"]


def test_best_model_is_chosen_on_validation_not_test(registry):
    runs = report.runs_table(registry)
    best = report.best_run(runs)
    assert best["run"] == "custom-cnn"                         # highest val, though resnet50-run is better on test
    table, ece = report.reliability("custom_cnn", "custom-cnn", root=registry)
    assert table["n"].sum() == 210 and 0 <= ece <= 1


def test_a_specialist_is_not_a_seven_class_model(registry):
    rec = RunRecorder("transfer", "mel_vs_nv", {"classes": ["mel", "nv"]}, root=registry)
    rec.predictions(pd.DataFrame({"image_id": ["a"], "split": ["test"], "label": [0], "p_mel": [0.9], "p_nv": [0.1]}))
    rec.metrics({"val": {"balanced_accuracy": 0.99}, "test": {"balanced_accuracy": 1.0}})
    rec.finish()
    runs = report.runs_table(registry)
    assert "mel_vs_nv" not in set(runs["run"]) and report.best_run(runs)["run"] == "custom-cnn"


def test_study_b_clip_row_lists_07s_clip_runs_and_study_d_its_subtype_model(registry):
    runs = report.runs_table(registry)
    table = report.study_table("B", runs)
    clip = table[table["model"].str.startswith("CLIP ViT-B/32 + MLP")].iloc[0]
    assert clip["our run"] == "not run: needs the full profile" and clip["paper split"] == "val"
    base = {"task": "melanoma", "model": "image", "freeze_fraction": 0.0}
    record(registry, "binary", "B-clip-image-natural", np.repeat([0, 1], 5), onehot(np.repeat([0, 1], 5)),
           {**base, "backbone": "clip-ViT-B-32"})
    record(registry, "binary", "B-dino-image-natural", np.repeat([0, 1], 5), onehot(np.repeat([0, 1], 5)),
           {**base, "backbone": "vit_small_patch16_224.dino"})
    record(registry, "binary", "isic-subtypes-small_cnn-natural", np.repeat([0, 1], 5), onehot(np.repeat([0, 1], 5)),
           {"task": "isic_archive", "model": "subtypes", "backbone": "small_cnn"})
    runs = report.runs_table(registry)
    table = report.study_table("B", runs)
    assert table.loc[table["model"].str.startswith("CLIP ViT-B/32 + MLP"), "our run"].tolist() == ["binary/B-clip-image-natural"]
    assert table.loc[table["model"].str.startswith("DINO"), "our run"].tolist() == ["binary/B-dino-image-natural"]
    d = report.study_table("D", runs)
    ran = d[d["our run"].str.startswith("binary/")]
    assert ran["our run"].tolist() == ["binary/isic-subtypes-small_cnn-natural"] and ran["figure"].tolist() == ["ours"]


def test_study_d_puts_each_run_beside_its_figure_with_the_papers_numbers(registry):
    """Study D's table: one row per figure, the paper's AUC and confusion counts in their own columns, ours beside
    them from the run whose parameters are that experiment's; a figure without a run says so."""
    params = {"task": "isic_archive", "model": "image", "backbone": "mobilenetv2", "evaluate_on": "natural",
              "regime": "undersampled", "augment": "none", "freeze_fraction": 0.0}
    for name, extra in (("D-mobilenetv2-image-undersampled", {}), ("D-mobilenetv2-image-balanced", {"regime": "balanced"})):
        rec = RunRecorder("binary", name, {**params, **extra}, root=registry)
        rec.predictions(pd.DataFrame({"image_id": ["a", "b"], "split": ["test"] * 2, "target": [0, 1], "p_malignant": [0.2, 0.7]}))
        rec.metrics({"val": {"accuracy": 0.8}, "test": {"auc": 0.61, "tp": 70, "fn": 30, "fp": 400, "balanced_accuracy": 0.6}})
        rec.finish()
    d = report.study_table("D", report.runs_table(registry)).set_index("figure")
    assert {"1", "2", "3", "4-6", "7", "8-9", "10-11", "12-13", "14", "15-16", "17", "18", "ours"} == set(d.index)
    row = d.loc["8-9"]
    assert row["our run"] == "binary/D-mobilenetv2-image-undersampled"
    assert (row["paper auc"], row["paper tp"], row["paper fn"], row["paper fp"]) == (0.4985, 1276, 550, 32809)
    assert (row["ours auc"], row["ours tp"], row["ours fn"], row["ours fp"]) == (0.61, 70, 30, 400)
    assert d.loc["4-6", "paper val_accuracy"] == 0.8455 and d.loc["4-6", "our run"].startswith("not run")
    ours = d.loc[["ours"]]
    assert ours.loc[ours["model"].str.contains("weighted sampler"), "our run"].tolist() == ["binary/D-mobilenetv2-image-balanced"]
    assert report.reported_counts()["D"] == 6                 # the figures with a number in the text; ours not counted
    assert report.reported_counts()["C"] == 3                 # Table 1's three rows; the base row is shown twice
    assert report.study_table("D", report.runs_table(registry), matched_only=True)["our run"].str.startswith("binary/").all()
    assert d.drop(index="ours")["paper source"].str.contains("Fig").all()


def test_isic_csv_listing(registry):
    folder = registry / "custom_cnn" / "custom-cnn"
    (folder / "isic_test_predictions.csv").write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\na,1,0,0,0,0,0,0\n")
    listing = report.isic_csvs(registry)
    assert listing[["experiment", "run", "images"]].values.tolist() == [["custom_cnn", "custom-cnn", 1]]


def test_report_renders_with_an_empty_registry(tmp_path):
    assert report.runs_table(tmp_path).empty
    for study in report.STUDIES:
        table = report.study_table(study, report.runs_table(tmp_path))
        assert table.empty or table["our run"].str.startswith("not run").all()


def test_html_export_embeds_figures_without_code(tmp_path):
    import base64
    import io

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    cell = new_code_cell("secret_code_line = 1")
    cell.outputs = [new_output("display_data", data={"image/png": base64.b64encode(buf.getvalue()).decode()})]
    nb = new_notebook(cells=[new_markdown_cell("# Title"), cell])
    nbformat.write(nb, tmp_path / "r.ipynb")
    html = report.export_html(tmp_path / "r.ipynb").read_text()
    assert "data:image/png;base64," in html and "secret_code_line" not in html and "Title" in html


def test_html_export_leaves_out_the_exercises_and_names_the_report(tmp_path):
    """A report to share carries neither the exercises nor their model answers; its page title is the report's."""
    answer = new_markdown_cell("### BEGIN SOLUTION\nthe model answer\n### END SOLUTION")
    answer.metadata["nbgrader"] = {"solution": True, "grade": True, "grade_id": "x", "points": 1}
    nb = new_notebook(cells=[new_markdown_cell("# 10 · The report\nbody text"), new_markdown_cell("## Exercises\nfor a course"),
                             new_markdown_cell("### Exercise 1 (1 point): a question"), answer])
    nbformat.write(nb, tmp_path / "r.ipynb")
    html = report.export_html(tmp_path / "r.ipynb").read_text()
    assert "body text" in html and "<title>skinlib: 10 · The report</title>" in html
    for secret in ("Exercises", "a question", "BEGIN SOLUTION", "the model answer"):
        assert secret not in html


def test_forest_plot_keeps_its_axis_wide_beside_long_run_names(registry):
    """The full profile's names are long (``transfer/E-inceptionresnetv2-grey-color-aug``): the figure widens with
    them rather than squeezing the axis the intervals are drawn on."""
    runs = report.runs_table(registry)
    runs["run"] = runs["run"] + "-inceptionresnetv2-grey-color-aug"
    fig = report.forest_plot(runs)
    assert fig.axes[0].get_position().width * fig.get_figwidth() >= 4.0
