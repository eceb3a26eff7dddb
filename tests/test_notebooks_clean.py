"""The committed notebooks follow the house shape and hold only the reference outputs nbval compares."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from skinlib.runner import find_notebooks, notebook_parameters

NOTEBOOKS = find_notebooks(Path(__file__).resolve().parents[1] / "notebooks")
SHARED_NAMES = {"data_dir", "image_size", "batch_size", "max_epochs", "lr", "seed", "device", "pretrained", "layout"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_shape_and_clean_outputs(path):
    nb = nbformat.read(path, as_version=4)
    first, params = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {path.stem[:2]} · "), "opens with its title"
    assert "**Purpose.**" in first.source and "**Runs on:**" in first.source
    assert params.metadata.get("tags") == ["parameters"], "the parameters cell comes second"
    assert nb.metadata["skinlib"]["gpu"] in ("none", "optional", "required")
    assert notebook_parameters(path)["seed"].default == 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.source.startswith("# NBVAL_CHECK_OUTPUT"):
            assert cell.outputs and all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs)
            assert cell.execution_count is not None
        else:
            assert cell.outputs == [], f"stray output in: {cell.source.splitlines()[0]}"
            assert cell.execution_count is None
    text = path.read_text()
    assert not re.search(r"(/work/|/root/|/home/|/tmp/|0x[0-9a-f]{6,})", text), "machine paths or addresses"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_a_help_comment(path):
    for param in notebook_parameters(path).values():
        assert param.help, f"{path.name}: parameter {param.name} needs '# what it means'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_recorded(path):
    """The parameters a notebook hands to setup() (printed, and saved beside its results) are all of those
    in its parameters cell: a new parameter cannot be left out of the record."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "setup(" in c.source)
    recorded = {kw.arg for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "dict" for kw in node.keywords}
    assert recorded == set(notebook_parameters(path)), path.name
