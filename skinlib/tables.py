"""How a notebook shows a table: three decimals, a dash for a missing value (never ``NaN``), no row numbers, and
cells that wrap so a table fits the page instead of scrolling sideways; a table too wide even so is shown in
parts, one under the other, each repeating the columns that name its rows (:func:`parts`).

:func:`show_tables` (called by :func:`skinlib.notebook.setup`) makes this the HTML form of every pandas DataFrame
and Series the notebook displays, in JupyterLab and in the exported report alike; :func:`html` is that form.
"""

from __future__ import annotations

import html as markup
import math
import re

import numpy as np
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
    {"selector": "caption", "props": "caption-side: top; text-align: left; padding: 2px 4px; color: #444;"},
]


#: the width a table may take (px): a notebook's output area, and the exported report, in a 1,280 px window
PAGE_WIDTH = 1000
#: one character's width at the table's 12 px, a little above what Chromium measures (6.3 px; 7.1 px bold in a header)
CHAR_PX, HEADER_CHAR_PX = 6.5, 7.3
#: a cell's padding and border (px)
CELL_PX = 10
#: metadata of a DataFrame (``table.attrs``) that says how to split it when it is too wide: the columns naming a
#: row (repeated in every part), and the groups of columns to keep together, in order
KEY_COLUMNS, COLUMN_GROUPS = "key_columns", "column_groups"


def _number(value, integral: bool) -> str:
    """One cell's text: a dash when missing, an integer for a count, three decimals otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return MISSING
        return f"{value:.0f}" if integral else f"{value:.{DECIMALS}f}"
    return _breakable(value)


def _breakable(value) -> str:
    """`value` as HTML text that may wrap after each ``_`` and ``/`` (run names, paths, column names)."""
    return markup.escape(str(value)).replace("_", "_<wbr>").replace("/", "/<wbr>")


def _is_count(column: pd.Series) -> bool:
    """A float column holding only whole numbers, some above 1 (a count with a missing value, not a metric)."""
    values = pd.to_numeric(column, errors="coerce").dropna()
    return bool(len(values)) and column.dtype.kind == "f" and bool((values == values.round()).all()) \
        and bool((values.abs() > 1).any())


def html(table: pd.DataFrame | pd.Series) -> str | None:
    """The HTML of `table` as notebooks show it (see the module's docstring); None for a table too long to show
    whole (pandas' own form then shows its head and tail). A table wider than :data:`PAGE_WIDTH` even with every
    cell wrapped is shown as the tables of :func:`parts`, one under the other."""
    if isinstance(table, pd.Series):
        table = table.to_frame(name=table.name if table.name is not None else "")
    if len(table) > pd.get_option("display.max_rows") or table.shape[1] > (pd.get_option("display.max_columns") or 10**6):
        return None
    if not (table.columns.is_unique and table.index.is_unique):   # cells not addressable by name: one format for all
        return table.style.format(lambda v: _number(v, False), na_rep=MISSING).set_table_styles(STYLES).to_html()
    pieces = parts(table)
    if len(pieces) == 1:
        return _styled(table)
    return "\n".join(f'<div style="margin-bottom: 10px">{_styled(piece)}</div>' for piece in pieces)


#: an index name longer than this (characters) is the table's caption, above it, not its corner: a corner cell
#: that long wraps into a header of several lines beside the column names (the split-cost table's design)
CORNER_CHARS = 24


def _styled(table: pd.DataFrame) -> str:
    """One table's HTML (unique columns and index)."""
    caption = table.index.name if isinstance(table.index.name, str) and len(table.index.name) > CORNER_CHARS else None
    if caption is not None:
        table = table.rename_axis(index=None)
    counts = {c for c in table.columns if _is_count(table[c])}
    formats = {c: (lambda v, whole=c in counts: _number(v, whole)) for c in table.columns}
    styler = table.style.format(formats, na_rep=MISSING).format_index(_header, axis="columns", na_rep=MISSING)
    if _plain_index(table):
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
    if caption is not None:
        styler = styler.set_caption(markup.escape(caption))
    return styler.set_table_styles(STYLES + headers).to_html()


def _plain_index(table: pd.DataFrame) -> bool:
    return isinstance(table.index, pd.RangeIndex) and table.index.name is None


def _longest_word(text: str, char_px: float) -> float:
    """The width (px) of the longest piece of `text` (HTML of :func:`_breakable`) that cannot wrap: words end at
    spaces, ``<wbr>`` and after a hyphen."""
    words = re.split(r"\s+|<wbr>|(?<=-)", text)
    return max((len(markup.unescape(w)) for w in words), default=0) * char_px


def min_width(table: pd.DataFrame, column) -> float:
    """The narrowest a column of `table` can be in px, every cell wrapped at each chance (an estimate from
    :data:`CHAR_PX`): the widest of its header's and cells' longest words, plus :data:`CELL_PX`."""
    whole = _is_count(table[column])
    cells = [_number(v, whole) for v in table[column]]
    return max([_longest_word(_header(column), HEADER_CHAR_PX), *(_longest_word(c, CHAR_PX) for c in cells)]) + CELL_PX


def _pack(groups: list[list], widths: dict, room: float, target: float) -> list[list]:
    """Columns of `groups`, in order, packed into lists of about `target` px (at most `room`): a group is kept in
    one list unless it is wider than `room`."""
    packed: list[list] = [[]]
    for group in groups:
        pieces = [[c] for c in group] if sum(widths[c] for c in group) > room else [group]
        for piece in pieces:
            if packed[-1] and sum(widths[c] for c in packed[-1] + piece) > target:
                packed.append([])
            packed[-1].extend(piece)
    return packed


def parts(table: pd.DataFrame, width: float = PAGE_WIDTH) -> list[pd.DataFrame]:
    """`table` as tables that each fit `width` px with their cells wrapped (:func:`min_width`), in column order:
    `table` itself when it fits. Each part repeats the columns that name a row: ``table.attrs["key_columns"]``,
    else the leading text columns (at most two); the others are packed in order, keeping together each group of
    ``table.attrs["column_groups"]`` (lists of columns) that fits a part. A row a part repeats whole is shown once
    there (where the index is not shown: a paper's row beside each of several runs)."""
    widths = {c: min_width(table, c) for c in table.columns}
    index = 0.0 if _plain_index(table) else max((_longest_word(_number(v, False), CHAR_PX) for v in table.index),
                                                default=0.0) + CELL_PX
    if index + sum(widths.values()) <= width:
        return [table]
    key = [c for c in table.attrs.get(KEY_COLUMNS, []) if c in widths]
    if not key:
        for column in table.columns[:2]:
            if table[column].dtype.kind != "O":
                break
            key.append(column)
    rest = [c for c in table.columns if c not in key]
    grouped = {c for group in table.attrs.get(COLUMN_GROUPS, []) for c in group}
    groups = [[c for c in group if c in rest] for group in table.attrs.get(COLUMN_GROUPS, [])]
    groups = [g for g in groups if g] + [[c] for c in rest if c not in grouped]
    groups.sort(key=lambda g: rest.index(g[0]))
    room = width - index - sum(widths[c] for c in key)
    packed = _pack(groups, widths, room, room)
    # as many parts as needed, their widths evened out (no part of a single leftover column)
    target = sum(widths[c] for c in rest) / len(packed)
    while target < room and len(_pack(groups, widths, room, target)) > len(packed):
        target *= 1.05
    if target < room:
        packed = _pack(groups, widths, room, target)
    order = {c: i for i, c in enumerate(table.columns)}
    return [_once(table[key + sorted(p, key=order.get)]) for p in packed if p]


def _once(part: pd.DataFrame) -> pd.DataFrame:
    """A part without rows repeated whole (a paper's row beside each of several runs in the table), where the index
    is not shown; as it is where a cell cannot be compared."""
    if not _plain_index(part):
        return part
    try:
        return part.drop_duplicates(ignore_index=True)
    except TypeError:                                     # unhashable cells (lists)
        return part


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
