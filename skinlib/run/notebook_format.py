"""The form notebooks are stored in: JupyterLab's metadata, nbstripout's stripping, nbval's checked outputs.

Shared by ``tools/sync_notebooks.py`` (which writes the notebooks), the tests (which check them) and
``make lab`` (which installs nbstripout as a git filter with :data:`STRIP_KEYS`), so all three agree.
"""

from __future__ import annotations

import copy
import json

import nbformat

#: the legacy comment marker of checked cells (converted to :data:`CHECK_TAG` + ``keep_output`` metadata)
MARK = "# NBVAL_CHECK_OUTPUT"
#: nbval's cell tag for "compare this cell's output"
CHECK_TAG = "nbval-check-output"
#: what JupyterLab writes for the python3 kernel of ipykernel
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3"}
#: stripped by the git filter besides nbstripout's own defaults (the Python version differs between machines)
STRIP_KEYS = ("metadata.language_info.version", "metadata.papermill", "cell.metadata.papermill",
              "cell.metadata.jp-MarkdownHeadingCollapsed")
KEEP_NOTEBOOK_META = ("kernelspec", "language_info", "skinlib")
#: cell metadata kept besides tags: nbgrader's marks of the exercises (solution, tests, points, grade_id)
KEEP_CELL_META = ("nbgrader",)


def is_checked(cell) -> bool:
    """Whether nbval compares this cell's output (by tag, or by the legacy comment)."""
    return cell.cell_type == "code" and (CHECK_TAG in cell.metadata.get("tags", []) or cell.source.startswith(MARK))


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What the git filter of ``make lab`` (nbstripout with :data:`STRIP_KEYS`) makes of a notebook."""
    from nbstripout import strip_output

    keys = [  # nbstripout's defaults, then ours
"metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
            "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
            "cell.metadata.scrolled", *STRIP_KEYS]
    nb = strip_output(copy.deepcopy(nb), keep_output=False, keep_count=False, keep_id=False, extra_keys=keys)
    for cell in nb.cells:
        if cell.metadata.get("tags") == []:                 # papermill adds empty tags; they mean nothing
            del cell.metadata["tags"]
    return nb


def clean(source: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`source` in the stored form, checked cells holding the stdout of the same cell in `executed` (as one
    stream, the way JupyterLab merges a cell's printed text).

    Args:
        source: the notebook as edited (old or new conventions).
        executed: a run of it (matched cell by cell on the source, the legacy marker ignored).
    """
    done = {}
    for cell in executed.cells:
        if is_checked(cell):
            text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
            done[_body(cell.source)] = [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
    for cell in source.cells:
        tags = [t for t in cell.metadata.get("tags", []) if t != "keep_output"]
        checked = is_checked(cell)
        kept = {k: cell.metadata[k] for k in KEEP_CELL_META if k in cell.metadata}
        cell.metadata = {**kept, **({"tags": tags} if tags else {})}
        if cell.cell_type != "code":
            continue
        cell.source = _body(cell.source)
        cell.outputs = []
        if checked:
            if cell.source not in done:
                raise SystemExit(f"no executed output for a checked cell: {cell.source.splitlines()[0][:60]!r}")
            cell.outputs = done[cell.source]
            cell.metadata = {"keep_output": True, "tags": [*(t for t in tags if t != CHECK_TAG), CHECK_TAG]}
    source.metadata = {k: v for k, v in source.metadata.items() if k in KEEP_NOTEBOOK_META}
    source.metadata["kernelspec"] = dict(KERNELSPEC)
    source.metadata["language_info"] = copy.deepcopy(LANGUAGE_INFO)
    source.nbformat, source.nbformat_minor = 4, 5
    for i, cell in enumerate(source.cells):
        cell.id = str(i)                                       # nbstripout numbers the cells the same way
    return strip(nbformat.from_dict(source))


def _body(source: str) -> str:
    """A cell's source without the legacy marker line."""
    return source[len(MARK):].lstrip("\n") if source.startswith(MARK) else source


def strip_on_save(model: dict, **kwargs) -> None:
    """Jupyter server pre-save hook (``make lab``): write notebooks to disk in the stored form.

    The git filter alone keeps outputs out of commits, but `git status` would still list a saved notebook as
    modified (git skips the filter when a file's size changed); saving in the stored form keeps it clean.
    Outputs stay visible in the open notebook; executed copies with every output come from ``run_all.py``.

    Args:
        model: the contents model being saved (only notebooks are changed, in place).
        kwargs: ``path`` and ``contents_manager``, unused.
    """
    content = model.get("content")
    if model.get("type") != "notebook" or not isinstance(content, dict) or content.get("nbformat") != 4:
        return
    nb = nbformat.reads(json.dumps(content), as_version=4)        # sources as strings, however they came
    for cell in nb.cells:
        if cell.cell_type == "code" and is_checked(cell):
            cell.outputs = _merged_streams(cell.outputs)
    model["content"] = strip(nb)


def _merged_streams(outputs: list) -> list:
    """Consecutive stream outputs of the same name as one (as JupyterLab's output area shows them)."""
    merged = []
    for out in outputs:
        if merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream" \
                and merged[-1].get("name") == out.get("name"):
            merged[-1] = nbformat.v4.new_output("stream", name=out["name"], text=merged[-1]["text"] + out["text"])
        else:
            merged.append(out)
    return merged
