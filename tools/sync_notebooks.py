#!/usr/bin/env python
"""Store the reference outputs nbval compares, and nothing else, in the source notebooks.

    python run_all.py --only 01 02 --force && python tools/sync_notebooks.py

For each notebook in notebooks/, takes the executed copy from <workspace>/outputs/default/, keeps the
text printed by cells marked ``# NBVAL_CHECK_OUTPUT``, and clears every other output, execution
count and stray metadata, so the sources stay small, diff cleanly and hold no machine paths.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib import paths  # noqa: E402

MARK = "# NBVAL_CHECK_OUTPUT"
KEEP_NOTEBOOK_META = {"kernelspec", "language_info", "skinlib"}


def clean(source: nbformat.NotebookNode, executed: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """`source` with outputs only in checked cells (taken from `executed`, matched by cell source)."""
    done = {}
    if executed is not None:
        for cell in executed.cells:
            if cell.cell_type == "code" and cell.source.startswith(MARK):
                done[cell.source] = (cell.execution_count,
                                     [o for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"])
    for cell in source.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k == "tags"}
        cell.pop("id", None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        if cell.source.startswith(MARK):
            if cell.source not in done:
                raise SystemExit(f"no executed output for a checked cell: {cell.source.splitlines()[1][:60]!r}")
            cell.execution_count, cell.outputs = done[cell.source]   # nbval wants a count beside outputs
        else:
            cell.outputs = []
    source.metadata = {k: v for k, v in source.metadata.items() if k in KEEP_NOTEBOOK_META}
    source.metadata["language_info"] = {"name": "python"}
    source.nbformat_minor = 4
    return source


def executed_copy(outputs: Path, path: Path) -> Path:
    """The executed copy of notebook `path`: ``<stem>.ipynb``, or for a notebook the default profile runs several
    times (``params/default/``), the run whose parameters are all the notebook's defaults (what nbval executes)."""
    if (outputs / path.name).is_file():
        return outputs / path.name
    from skinlib.runner import notebook_parameters

    defaults = {name: p.default for name, p in notebook_parameters(path).items()}
    for candidate in sorted(outputs.glob(f"{path.stem}--*.ipynb")):
        record = candidate.with_name(candidate.name[: -len(".ipynb")] + ".run.json")
        params = json.loads(record.read_text()).get("params", {}) if record.is_file() else None
        if params is not None and all(defaults.get(k, object()) == v for k, v in params.items()):
            return candidate
    return outputs / path.name


def main() -> int:
    outputs = paths.outputs_dir() / "default"
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        executed_path = executed_copy(outputs, path)
        executed = nbformat.read(executed_path, as_version=4) if executed_path.is_file() else None
        if executed is None:
            print(f"{path.name}: no executed copy in {outputs}; run `python run_all.py --only {path.name[:2]}` first")
            return 1
        nbformat.write(clean(nbformat.read(path, as_version=4), executed), path)
        print(f"{path.name}: reference outputs stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
