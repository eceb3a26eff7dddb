"""Every number skinlib quotes as a paper's is found in that paper, at the table or figure it cites.

:data:`PAPERS` is a transcription of the studies' tables and of the figures whose numbers their text quotes, made
by reading the papers; it is kept apart from :mod:`skinlib.papers` on purpose, so a number changed or invented
there fails here. One test per quoted number (its id names study, model, metric, value and source).
"""

from __future__ import annotations

import pandas as pd
import pytest

from skinlib import papers

W = ("accuracy", "precision_weighted", "recall_weighted", "f1_weighted")       # study A, Table 2
M = ("accuracy", "precision_macro", "recall_macro", "f1_macro")                # study E, Tables 2, 3, 6
B = ("accuracy", "precision", "sensitivity", "auc")                            # study B, Table 1


def _rows(keys, *values):
    return [dict(zip(keys, v)) for v in values]


#: (study, source) -> the rows of that table or figure, as printed.
PAPERS: dict[tuple[str, str], list[dict]] = {
    ("A", "Table 2"): _rows(W, (0.6740, 0.5520, 0.6740, 0.5755), (0.8516, 0.8612, 0.8516, 0.8485),
                            (0.7614, 0.7324, 0.7614, 0.7433), (0.8496, 0.8487, 0.8496, 0.8464),
                            (0.8323, 0.8202, 0.8323, 0.8203)),
    ("B", "Table 1"): _rows(B, (0.942, 0.788, 0.647, 0.711), (0.760, 0.290, 0.796, 0.865), (0.791, 0.320, 0.782, 0.877)),
    ("B", "section 5.4, Figure 7"): [{"average_precision": 0.441}, {"average_precision": 0.415}],
    ("C", "Table 1 (Base)"): [{"train_accuracy": 0.835, "accuracy": 0.818}],
    ("C", "Table 1 (Regularization)"): [{"train_accuracy": 0.812, "accuracy": 0.804}],
    ("C", "Table 1 (Augmented Data)"): [{"train_accuracy": 0.788, "accuracy": 0.791}],
    ("D", "section VII, Fig. 4-6"): [{"auc": 0.4935, "fp": 38447, "fn": 330, "val_accuracy": 0.8455}],
    ("D", "section VII, Fig. 8-9"): [{"auc": 0.4985, "tp": 1276, "fn": 550, "fp": 32809}],
    ("D", "section VII, Fig. 10-11"): [{"auc": 0.5034, "tp": 1020}],
    ("D", "section VII, Fig. 12-13"): [{"auc": 0.5052}],
    ("D", "section VII, Fig. 14"): [{"tp": 1643, "fn": 183}],
    ("D", "section VII, Fig. 15-16"): [{"auc": 0.4699, "fn": 1423, "tp": 403}],
    **{("E", f"Table 3 row {i}"): _rows(M, v) for i, v in enumerate([
        (0.89, 0.77, 0.81, 0.79), (0.81, 0.63, 0.74, 0.67), (0.87, 0.75, 0.82, 0.78), (0.80, 0.61, 0.71, 0.66),
        (0.85, 0.74, 0.78, 0.76), (0.83, 0.67, 0.73, 0.70), (0.73, 0.57, 0.69, 0.61), (0.87, 0.77, 0.78, 0.76),
        (0.88, 0.80, 0.79, 0.79)], start=1)},
    ("E", "Table 2 row 1"): _rows(M, (0.85, 0.71, 0.80, 0.74)),
    ("E", "Table 2 row 2"): _rows(M, (0.71, 0.49, 0.67, 0.53)),
    ("E", "Table 6 row 1"): _rows(M, (0.88, 0.77, 0.81, 0.79)),
    ("E", "Table 6 row 2"): _rows(M, (0.89, 0.78, 0.85, 0.81)),
    ("E", "section 3.5.3"): [{"f1_macro": 0.82}, {"f1_macro": 0.81}],
}


def _groups() -> list[tuple[str, dict, str, dict[str, float]]]:
    """(id, paper row, source, its numbers from that source) for every row of skinlib.papers."""
    out = []
    for row in papers.ALL_REPORTED:
        by_source: dict[str, dict[str, float]] = {}
        for n in papers.numbers([row]):
            by_source.setdefault(n["source"], {})[n["metric"]] = n["value"]
        for source, values in by_source.items():
            label = ", ".join(f"{m} {v}" for m, v in values.items())
            out.append((f"{row['study']} {row['model']} {row.get('variant', '')}: {label} ({source})", row, source, values))
    return out


GROUPS = _groups()


@pytest.mark.parametrize("row,source,values", [g[1:] for g in GROUPS], ids=[g[0] for g in GROUPS])
def test_every_quoted_number_is_in_its_paper_at_the_cited_place(row, source, values):
    table = PAPERS.get((row["study"], source))
    assert table is not None, f"study {row['study']} has no {source!r} holding numbers (see PAPERS)"
    assert any(all(printed.get(m) == v for m, v in values.items()) for printed in table), \
        f"{values} is no row of study {row['study']}'s {source}: {table}"


def test_every_row_names_its_split_and_source_and_the_removed_numbers_stay_out():
    for row in papers.ALL_REPORTED:
        assert row.get("split") in ("val", "test"), row["model"]
        assert row.get("source"), row["model"]
    quoted = {(n["study"], n["metric"], n["value"]) for n in papers.numbers()}
    assert ("E", "accuracy", 0.885) not in quoted                           # Table 3 says 0.89, Table 6 0.88
    ensembles = [n for n in papers.numbers(papers.REPORTED_ENSEMBLES) if n["source"] == "section 3.5.3"]
    assert {n["metric"] for n in ensembles} == {"f1_macro"}                 # the ensembles' accuracy is not reported
    assert len(GROUPS) >= 33                                               # 99 numbers in all


def test_every_table_of_the_transcription_is_quoted():
    cited = {(g[1]["study"], g[2]) for g in GROUPS}
    assert set(PAPERS) == cited, f"transcribed but not quoted: {sorted(set(PAPERS) - cited)}"


def _run(run: str, experiment: str, **params) -> dict:
    return {"experiment": experiment, "run": run, "accuracy": 0.5, "balanced_accuracy": 0.4, **params}


def test_one_matcher_puts_each_run_beside_its_own_papers_row():
    transfer = dict(grayscale=False, augment="study_e", localization=None, head="study_e")
    runs = pd.DataFrame([
        _run("A-resnet50", "transfer", **{**transfer, "backbone": "resnet50.tv_in1k", "head": "linear", "augment": "study_a"}),
        _run("E-resnet50", "transfer", **{**transfer, "backbone": "resnet50"}),
        _run("E-gray", "transfer", **{**transfer, "backbone": "resnet50", "grayscale": True}),
        _run("mine", "transfer", **{**transfer, "backbone": "resnet18"}),
        _run("A-clip", "vision_language", family="clip", head="linear", freeze_fraction=0.0, augment="study_a"),
        _run("probe", "vision_language", family="clip", head="linear", freeze_fraction=1.0, augment="none"),
        _run("C-wd", "vision_language", family="clip", head="prompt", weight_decay=0.01, augment="none",
             val_accuracy=0.35),
    ])
    table = papers.beside(runs)
    assert table.loc["A-resnet50", "paper"] == "study A: ResNet-50 fine-tuned (rgb, aug)"      # not study E's head
    assert table.loc["A-resnet50", "paper_accuracy"] == 0.8516 and table.loc["A-resnet50", "paper_split"] == "test"
    assert table.loc["E-resnet50", "paper_accuracy"] == 0.89 and table.loc["E-resnet50", "paper_split"] == "val"
    assert table.loc["E-gray", "paper_f1_macro"] == 0.67 and table.loc["E-gray", "paper_source"] == "Table 3 row 2"
    assert pd.isna(table.loc["mine", "paper"]) and pd.isna(table.loc["probe", "paper"])
    assert table.loc["A-clip", "paper_accuracy"] == 0.8496
    assert table.loc["C-wd", "paper_accuracy"] == 0.804 and table.loc["C-wd", "paper_train_accuracy"] == 0.812
    assert table.loc["C-wd", "val_accuracy"] == 0.35
    assert "f1_macro" not in table.columns                                  # empty in every row: left out


def test_the_report_uses_the_same_matcher():
    from skinlib import report

    run = pd.Series({"experiment": "transfer", "run": "A-resnet50", "params": {
        "backbone": "resnet50.tv_in1k", "head": "linear", "augment": "study_a", "grayscale": False}})
    hits = [r for r in report.ALL_REPORTED if report.matches(r, run)]
    assert [(r["study"], r["model"]) for r in hits] == [("A", "ResNet-50 fine-tuned")]


def test_a_variant_matches_no_papers_row():
    """A test-time-augmented prediction or a fit on a share of the labels is not the model as its study ran it."""
    transfer = dict(grayscale=False, augment="study_e", localization=None, head="study_e", backbone="resnet50")
    runs = pd.DataFrame([
        _run("E-resnet50", "transfer", **transfer),
        _run("E-resnet50-tta_flips", "transfer", **transfer, tta_of="E-resnet50"),
        _run("E-resnet50-frac0.1", "transfer", **transfer, train_fraction=0.1),
        _run("E-resnet50-all", "transfer", **transfer, train_fraction=1.0),
    ])
    table = papers.beside(runs)
    assert table.loc["E-resnet50", "paper_accuracy"] == 0.89 and table.loc["E-resnet50-all", "paper_accuracy"] == 0.89
    assert pd.isna(table.loc["E-resnet50-tta_flips", "paper"]) and pd.isna(table.loc["E-resnet50-frac0.1", "paper"])
    assert {"tta_of", "train_fraction"} <= set(papers.MATCH_KEYS)
