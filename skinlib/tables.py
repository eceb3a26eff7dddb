"""How a notebook shows a table: three decimals, a dash for a missing value (never ``NaN``), no row numbers, and
cells that wrap so a table fits the page instead of scrolling sideways.

:func:`show_tables` (called by :func:`skinlib.notebook.setup`) makes this the HTML form of every pandas DataFrame
and Series the notebook displays, in JupyterLab and in the exported report alike; :func:`html` is that form.
"""

from __future__ import annotations

import math

import pandas as pd

#: what a missing value shows as (a run not made, a metric a task does not have)
MISSING = "–"
#: decimals of every number that is not a count
DECIMALS = 3
#: each cell wraps (words at spaces, names after ``_``, ``/``, ``-``), so the table shrinks to the page's width
STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 12px; max-width: 100%;"},
    {"selector": "th, td", "props": "white-space: normal; overflow-wrap: break-word; padding: 2px 4px; "
                                    "vertical-align: top; max-width: 24em;"},
    {"selector": "th.col_heading", "props": "text-align: right; vertical-align: bottom;"},
    {"selector": "th.row_heading", "props": "text-align: left;"},
]


def _number(value, integral: bool) -> str:
    """One cell's text: a dash when missing, an integer for a count, three decimals otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if integral else f"{value:.{DECIMALS}f}"
    return _breakable(value)


def _breakable(value) -> str:
    """`value` as HTML text that may wrap after each ``_`` and ``/`` (run names, paths, column names)."""
    import html as markup

    return markup.escape(str(value)).replace("_", "_<wbr>").replace("/", "/<wbr>")


def _is_count(column: pd.Series) -> bool:
    """A float column holding only whole numbers, some above 1 (a count with a missing value, not a metric)."""
    values = pd.to_numeric(column, errors="coerce").dropna()
    return bool(len(values)) and column.dtype.kind == "f" and bool((values == values.round()).all()) \
        and bool((values.abs() > 1).any())


def html(table: pd.DataFrame | pd.Series) -> str | None:
    """The HTML of `table` as notebooks show it (see the module's docstring); None for a table too long to show
    whole (pandas' own form then shows its head and tail)."""
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "")
    if len(table) > pd.get_option("display.max_rows") or table.shape[1] > (pd.get_option("display.max_columns") or 10**6):
        return None
    if not (table.columns.is_unique and table.index.is_unique):   # cells not addressable by name: one format for all
        return table.style.format(lambda v: _number(v, False), na_rep=MISSING).set_table_styles(STYLES).to_html()
    counts = {c for c in table.columns if _is_count(table[c])}
    formats = {c: (lambda v, whole=c in counts: _number(v, whole)) for c in table.columns}
    styler = table.style.format(formats, na_rep=MISSING).format_index(_header, axis="columns", na_rep=MISSING)
    plain_index = isinstance(table.index, pd.RangeIndex) and table.index.name is None
    if plain_index:
        styler = styler.hide(axis="index")
    else:
        styler = styler.format_index(lambda v: _number(v, False), axis="index")
    text = [c for c in table.columns if table[c].dtype.kind == "O"]
    numbers = [c for c in table.columns if c not in text]
    for columns, side in ((text, "left"), (numbers, "right")):        # words read from the left, numbers line up
        if columns:
            styler = styler.set_properties(subset=columns, **{"text-align": side})
    headers = [{"selector": f"th.col_heading.col{i}", "props": "text-align: left;"}
               for i, c in enumerate(table.columns) if c in text]
    return styler.set_table_styles(STYLES + headers).to_html()


def _header(value) -> str:
    """A column's name, free to wrap after each underscore (``average_precision_high`` over three lines)."""
    return MISSING if _missing(value) else _breakable(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def show_tables() -> None:
    """Make :func:`html` the HTML form of every DataFrame and Series shown in this IPython session (nothing
    outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(pd.DataFrame, _html_or_pandas)
    formatter.for_type(pd.Series, _html_or_pandas)


def _html_or_pandas(table) -> str | None:
    """:func:`html`, or pandas' own form (None) for a table it cannot style: showing a table never fails."""
    try:
        return html(table)
    except Exception:  # noqa: BLE001 (a display formatter must not raise; pandas' form is shown instead)
        return None
