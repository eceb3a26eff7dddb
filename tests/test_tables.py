"""How notebooks show tables (skinlib.tables): no NaN, three decimals, counts as integers, no row numbers, cells
that wrap."""

from __future__ import annotations

import math

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
