"""How notebooks show tables (skinlib.tables): no NaN, three decimals, counts as integers, no row numbers, cells
that wrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from skinlib import tables


def test_missing_values_show_a_dash_and_numbers_three_decimals():
    table = pd.DataFrame({"run": ["transfer/resnet50-rgb", None], "auc": [0.40612, math.nan], "n": [12.0, math.nan],
                          "epochs": [3, 4]})
    html = tables.html(table)
    assert "NaN" not in html and "nan" not in html and "None" not in html
    assert ">0.406<" in html and ">12<" in html and ">12.000<" not in html and ">3<" in html
    assert html.count(f">{tables.MISSING}<") == 3
    assert 'class="row_heading' not in html, "a plain 0..n-1 index is not shown"
    assert "white-space: normal" in html and "transfer/<wbr>resnet50-rgb" in html


def test_a_meaningful_index_and_a_series_are_shown():
    html = tables.html(pd.Series([0.1234, math.nan], index=["clip", "blip"], name="weight"))
    assert ">clip<" in html and ">0.123<" in html and "NaN" not in html


def test_a_long_table_keeps_pandas_form():
    assert tables.html(pd.DataFrame({"x": range(pd.get_option("display.max_rows") + 1)})) is None


def test_repeated_column_names_and_a_multiindex():
    assert "NaN" not in tables.html(pd.DataFrame([[1.0, math.nan]], columns=["a", "a"]))
    wide = pd.concat({"clip": pd.DataFrame({"auc": [0.5, math.nan]}), "blip": pd.DataFrame({"auc": [0.25, 0.75]})}, axis=1)
    html = tables.html(wide)
    assert "NaN" not in html and ">0.250<" in html


def test_a_repeated_index_is_shown():
    html = tables.html(pd.DataFrame({"auc": [0.5, math.nan], "run": ["a", "b"]}, index=["x", "x"]))
    assert ">0.500<" in html and "NaN" not in html


def _wide(n_metrics: int = 10) -> pd.DataFrame:
    table = pd.DataFrame({"model": ["custom residual CNN", "ResNet-50 fine-tuned"], "variant": ["rgb, aug", "test"]})
    for m in range(n_metrics):
        table[f"paper metric_{m}"] = [0.5, math.nan]
    for m in range(n_metrics):
        table[f"ours metric_{m}"] = [0.25, 0.75]
    return table


def test_a_table_too_wide_for_the_page_is_shown_in_parts_that_fit():
    """Wrapping every cell cannot bring 22 columns into the page: the table is shown as tables one under the other,
    each with the columns naming its rows (here the leading text columns) and within the page's width."""
    table = _wide()
    pieces = tables.parts(table)
    assert len(pieces) >= 2 and all(list(p.columns[:2]) == ["model", "variant"] for p in pieces)
    assert [c for p in pieces for c in p.columns[2:]] == list(table.columns[2:]), "every column once, in order"
    assert all(sum(tables.min_width(p, c) for c in p.columns) <= tables.PAGE_WIDTH for p in pieces)
    sizes = [len(p.columns) - 2 for p in pieces]
    assert max(sizes) - min(sizes) <= 2, f"parts of even widths, not a leftover column alone: {sizes}"
    html = tables.html(table)
    assert html.count("<table") == len(pieces) and "NaN" not in html
    assert len(tables.parts(table[table.columns[:6]])) == 1, "a table that fits stays whole"


def test_a_wide_table_splits_between_the_groups_it_names():
    """A study table keeps the paper's columns together and ours together (report.study_table names them)."""
    table = _wide()
    table.attrs[tables.KEY_COLUMNS] = ["model"]
    table.attrs[tables.COLUMN_GROUPS] = [[c for c in table if c.startswith("paper")],
                                         [c for c in table if c.startswith("ours")]]
    pieces = tables.parts(table)
    assert [list(p.columns) for p in pieces] == [["model", "variant", *table.columns[2:12]],
                                                 ["model", *table.columns[12:]]]
    twice = pd.concat([table, table.assign(**{"ours metric_0": [0.5, 0.5]})], ignore_index=True)
    twice.attrs = table.attrs
    paper, ours = tables.parts(twice)
    assert len(paper) == 2 and len(ours) == 4, "a paper's row beside two runs is shown once in the paper's part"


def test_numpy_floats_in_a_text_column_show_as_numbers():
    table = pd.DataFrame({"value": np.array([np.float32(0.40612), np.float32("nan"), "n/a"], dtype=object)})
    html = tables.html(table)
    assert ">0.406<" in html and ">nan<" not in html and html.count(f">{tables.MISSING}<") == 1


def test_an_empty_table_with_a_named_index_is_styled():
    assert "<table" in tables.html(pd.DataFrame({"auc": []}, index=pd.Index([], name="run")))


def test_a_long_index_name_is_the_caption_not_a_tall_corner():
    table = pd.DataFrame({"low": [0.1, 0.2], "high": [0.3, 0.4]}, index=pd.Index(["accuracy", "f1"], name="metric"))
    assert "<caption" not in tables.html(table) and ">metric<" in tables.html(table)
    table.index.name = "cross-fitted: the same 600 images, resampled by lesion"
    text = tables.html(table)
    assert "<caption>cross-fitted: the same 600 images, resampled by lesion</caption>" in text
    assert text.count("cross-fitted") == 1 and "accuracy" in text
