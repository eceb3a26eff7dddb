"""What every notebook does first: show its configuration, seed everything, flag synthetic data."""

from __future__ import annotations

import ast
import os
import platform
import random
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import __version__, paths, tables

BANNER = ("SYNTHETIC DATA: every number and figure below comes from skinlib's generated images, not from "
          "HAM10000 or ISIC. Set data_dir (or SKINLIB_DATA, or run_all.py --data) to use real data.")


def notice(message: str, file=None) -> None:
    """Print a line that matters beyond the notebook (e.g. "resumed from the checkpoint after epoch 14"):
    ``run_all.py`` also shows it in its terminal output.

    Args:
        message: one line of text.
        file: where to print it (default: stdout, i.e. the notebook's output).
    """
    print(message, file=file or sys.stdout, flush=True)
    channel = os.environ.get(paths.NOTICES_ENV)               # set by run_all.py for the notebook it executes
    if channel:
        with open(channel, "a") as fh:
            fh.write(message.replace("\n", " ") + "\n")


#: how a line of the notices file that says where the run would resume starts (not echoed: run_all.py keeps the last)
RESUME_TAG = "skinlib-resume-point: "


def resume_point(where: str) -> None:
    """Tell ``run_all.py`` where this run would resume if it were stopped now, e.g. ``from epoch 3``: printed
    nowhere, said by ``run_all.py`` when Ctrl-C stops the run ("stopped: 04_custom_cnn will resume from epoch 3").
    Outside ``run_all.py``, nothing.

    Args:
        where: completes "will resume ..." (one line).
    """
    channel = os.environ.get(paths.NOTICES_ENV)
    if channel:
        with open(channel, "a") as fh:
            fh.write(RESUME_TAG + where.replace("\n", " ") + "\n")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def _is_parameter_cell(source: str) -> bool:
    """Whether a cell holds only ``name = literal`` assignments (the form of a parameters cell and of the cell
    papermill injects after it); a cell of comments only is not one."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return False
    if not body:
        return False
    for node in body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            return False
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
    return True


def _assigned(source: str) -> list[str]:
    """The names a cell assigns at top level, in order (none for a cell that is not Python, e.g. a %magic)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return []
    names = [t.id for node in body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)]
    return list(dict.fromkeys(names))


def _notebook_file(namespace: Mapping[str, Any]) -> Path | None:
    """The notebook the kernel runs, where the front end tells it: JupyterLab (``__session__``, set by ipykernel from
    ``$JPY_SESSION_NAME``) and VS Code (``__vsc_ipynb_file__``). None under papermill, nbval and nbclient."""
    for key in ("__session__", "__vsc_ipynb_file__"):
        value = namespace.get(key)
        if isinstance(value, str) and value.endswith(".ipynb"):
            for candidate in (Path(value), Path.cwd() / Path(value).name):
                if candidate.is_file():
                    return candidate
    return None


def _cell_of_file(path: Path) -> str | None:
    """The source of a notebook file's ``parameters``-tagged cell (None without one)."""
    import json

    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else source
    return None


def _cells_of_history(history: Sequence[str]) -> list[str]:
    """The parameters cell in a kernel's input history (IPython's ``_ih``: every executed cell's source, the
    calling cell last): the latest run of cells of ``name = literal`` assignments before the calling cell, i.e. the
    parameters cell and, under papermill, the injected-parameters cell executed right after it."""
    found: list[str] = []
    for source in reversed(list(history)[:-1]):
        if not source.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in source.splitlines()):
            continue                          # an empty or comment-only cell (papermill's with no parameters)
        if not _is_parameter_cell(source):
            break
        found.append(source)
    return found[::-1]


def _previous_cell(namespace: Mapping[str, Any]) -> str | None:
    """The source of the cell IPython executed before the running one, which it keeps even when the cells are run
    without history (nbval: ``store_history=False``): ``get_ipython().last_execution_result``."""
    shell = namespace.get("get_ipython")
    result = getattr(shell(), "last_execution_result", None) if callable(shell) else None
    return getattr(getattr(result, "info", None), "raw_cell", None)


def parameter_names(namespace: Mapping[str, Any]) -> list[str]:
    """The names of the notebook's parameters (its ``parameters``-tagged cell), in that cell's order.

    Where they come from:

    * the cells run just before the calling one: papermill (``run_all.py``), nbclient, nbval and a reader's Run All
      run the cells top to bottom, so the parameters cell (and papermill's injected-parameters cell) ran just
      before: the names those cells of ``name = literal`` assignments set (the form papermill and ``run_all.py``'s
      checks read). They are read from IPython's input history (``_ih`` in `namespace`), or, where cells run
      without history (nbval), from the cell IPython executed last;
    * in JupyterLab (or VS Code), whose kernel knows its notebook file (``__session__``, which ipykernel sets from
      ``$JPY_SESSION_NAME``; ``__vsc_ipynb_file__``), also the names the saved ``parameters`` cell assigns, first:
      cells run out of order, a scratch cell run before this one, and a parameter added but not saved yet are
      all covered.

    Args:
        namespace: the notebook's ``globals()``.

    Raises:
        RuntimeError: when neither tells the parameters (e.g. called outside a notebook, or after other cells than
            the parameters cell, without a notebook file the kernel knows): says what to do.
    """
    sources = _cells_of_history(namespace.get("_ih") or [])
    if not sources and (previous := _previous_cell(namespace)) is not None:
        sources = _cells_of_history([previous, ""])
    path = _notebook_file(namespace)
    saved = _cell_of_file(path) if path is not None else None
    if saved is not None:                       # JupyterLab: the saved cell, and what ran just before, not saved yet
        sources = [saved, *sources]
    names = list(dict.fromkeys(n for source in sources for n in _assigned(source)))
    if not names:
        raise RuntimeError("setup() found no parameters cell: run the notebook's parameters cell (tagged "
                           "'parameters', the second cell) and then this cell, or pass the parameters as a dict")
    return names


def _figures_inline(matplotlib) -> None:
    """In a Jupyter kernel, figures are shown in the notebook even when ``$MPLBACKEND`` names a backend that only
    writes files (``Agg``, often set on batch machines and in CI): else the executed notebooks and ``report.html``
    carry no figure at all."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None and "inline" not in matplotlib.get_backend():
        shell.run_line_magic("matplotlib", "inline")


def setup(namespace: Mapping[str, Any], seed: int | None = None,
          resolved: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Print the resolved parameters and environment, seed everything, set the plotting style and how tables show
    (:func:`skinlib.tables.show_tables`), and in JupyterLab bring a cell that raises into view
    (:func:`scroll_to_errors`); returns the
    parameters (name -> value, in the parameters cell's order), to record beside the results.

    A notebook calls ``params = setup(globals(), seed=seed)`` right after its parameters cell: the names come from
    that cell (see :func:`parameter_names`: the notebook file in JupyterLab, the input history under papermill and
    nbval), the values from the notebook's namespace, so papermill's injected values and a reader's edits are what
    is printed and recorded, and a new parameter cannot be left out of the record.

    Args:
        namespace: the notebook's ``globals()``; or a dict of the parameters themselves (no ``__builtins__`` key:
            printed and returned as given).
        seed: seed of Python, NumPy and PyTorch (None: not seeded).
        resolved: values that replace parameters' own, e.g. a run name made from the options when ``run_name`` is
            None (printed and returned as resolved).

    Raises:
        RuntimeError: a parameter the parameters cell names that `namespace` lacks (the cell was not run), or no
            parameters cell found (see :func:`parameter_names`).
    """
    import matplotlib
    import seaborn as sns

    if "__builtins__" in namespace:
        names = parameter_names(namespace)
        missing = [n for n in names if n not in namespace]
        if missing:
            raise RuntimeError(f"parameters {missing} are not defined: run the parameters cell first")
        params = {n: namespace[n] for n in names}
    else:
        params = dict(namespace)
    params.update(resolved or {})
    if seed is not None:
        seed_everything(seed)
    _figures_inline(matplotlib)
    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 90, "savefig.bbox": "tight"})
    pd.set_option("display.width", 140)
    tables.show_tables()
    scroll_to_errors()
    width = max(map(len, params), default=0)
    lines = [f"  {k:<{width}} = {v!r}" for k, v in params.items()]
    print("parameters\n" + "\n".join(lines))
    print(f"skinlib {__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    print(f"workspace {paths.describe_workspace()}")
    return params


#: run in JupyterLab as the output of a cell that raised: brings that cell into view (``element``: the output's node)
SCROLL_TO_CELL = "setTimeout(() => (element.closest('.jp-Cell') || element).scrollIntoView({block: 'nearest'}), 100)"


def _scroll_to_failed_cell(result) -> None:
    """IPython's ``post_run_cell`` hook of :func:`scroll_to_errors`: after a cell raised, an output that scrolls
    JupyterLab's view back to that cell (JavaScript only: other front ends show nothing)."""
    if getattr(result, "error_in_exec", None) is not None:
        from IPython.display import display

        display({"application/javascript": SCROLL_TO_CELL}, raw=True)


def scroll_to_errors() -> None:
    """In a kernel JupyterLab started (``$JPY_SESSION_NAME`` set by Jupyter server), a cell that raises brings
    itself into view: Run All scrolls to the last cell as it starts (JupyterLab's ``runAll`` makes the last cell
    the active one, and no setting changes that), so when a cell fails (a student's first exercise stub) the error
    would sit out of sight above. Not under papermill, nbval or nbclient (no such variable): their outputs stay
    as they were. Registering twice is harmless."""
    if not os.environ.get("JPY_SESSION_NAME"):
        return
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and _scroll_to_failed_cell not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _scroll_to_failed_cell)


def banner(catalog: pd.DataFrame) -> None:
    """Show a visible banner when the catalog's data is synthetic, and say which data it is otherwise."""
    from IPython import get_ipython
    from IPython.display import display

    layout = catalog.attrs.get("layout", "?")
    if catalog.attrs.get("synthetic"):
        info = catalog.attrs.get("synthetic_info") or {}
        detail = f" (seed {info.get('seed')}, {info.get('n')} HAM10000-layout images, layout shown: {layout})"
        html = (f'<div style="background:#fff3cd;border:2px solid #e0a800;padding:8px 12px;'
                f'font-weight:bold">&#9888; {BANNER}{detail}</div>')
        # one output: the yellow box where HTML is shown (JupyterLab), the same words as text elsewhere (a script
        # has no display: the text is printed)
        if get_ipython() is None:
            print(f"WARNING: {BANNER}{detail}")
        else:
            display({"text/html": html, "text/plain": f"WARNING: {BANNER}{detail}"}, raw=True)
    else:
        print(f"Real data: {len(catalog)} images, layout {layout}, from {catalog.attrs.get('root', '?')}")
    if {"lesion_id", "image_id"} <= set(catalog.columns) and not (catalog["lesion_id"] != catalog["image_id"]).any():
        print("No lesion ids in this data (class folders, or ISIC 2018 without its groupings file): every image is its "
              "own group, so no split of it is lesion-grouped, whatever its name says (the registry records it as "
              "ungrouped).")
