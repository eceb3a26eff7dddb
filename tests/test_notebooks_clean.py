"""The committed notebooks follow the house shape and hold only the reference outputs nbval compares."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from skinlib.run.notebook_format import KERNELSPEC, LANGUAGE_INFO, MARK, STRIP_KEYS, is_checked, strip, strip_on_save
from skinlib.run.plan import find_notebooks, notebook_parameters

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
    checked = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        assert MARK not in cell.source, "checked cells are tagged, not marked with a visible comment"
        assert cell.execution_count is None
        if is_checked(cell):
            checked += 1
            assert cell.metadata.get("keep_output") is True, "nbstripout keeps the reference output"
            assert cell.outputs and all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs)
        else:
            assert cell.outputs == [], f"stray output in: {cell.source.splitlines()[0]}"
    assert checked, "at least one checked cell"
    text = path.read_text()
    assert not re.search(r"(/work/|/root/|/home/|/tmp/|0x[0-9a-f]{6,})", text), "machine paths or addresses"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_has_a_help_comment(path):
    for param in notebook_parameters(path).values():
        assert param.help, f"{path.name}: parameter {param.name} needs '# what it means'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_recorded(path):
    """A notebook hands setup() its namespace, not a restated list: setup takes the names of its parameters cell
    (printed, and saved beside its results), so a new parameter cannot be left out of the record. Under papermill
    (the parameters cell, then the injected one) and from the notebook file (JupyterLab) it finds them all."""
    from skinlib.notebook import parameter_names

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "setup(" in c.source)
    calls = [node for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) in ("setup", "dict")]
    assert [getattr(c.func, "id") for c in calls] == ["setup"], "no parameters restated in a dict"
    assert isinstance(calls[0].args[0], ast.Call) and calls[0].args[0].func.id == "globals", "setup(globals(), ...)"
    expected = list(notebook_parameters(path))
    source = nb.cells[1].source
    injected = "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in {"seed": 1, "data_dir": "/d"}.items()
                                               if k in expected)
    for history in (["", source, cell.source], ["", source, injected, cell.source]):
        assert parameter_names({"_ih": history}) == expected, path.name
    assert parameter_names({"__session__": str(path), "_ih": []}) == expected, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_as_jupyterlab_writes_and_nbstripout_keeps(path):
    """Opening, running and saving a notebook in JupyterLab leaves `git status` clean under `make lab`'s filter:
    the stored file has JupyterLab's metadata and is exactly what nbstripout (the filter) makes of itself, and of
    a run of it (outputs, counts, a machine's Python version)."""
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"] == KERNELSPEC and nb.metadata["language_info"] == LANGUAGE_INFO
    assert nb.nbformat_minor == 5
    text = path.read_text()
    filtered = subprocess.run([sys.executable, "-m", "nbstripout", "-t", "--extra-keys", " ".join(STRIP_KEYS), str(path)],
                              capture_output=True, text=True, check=True).stdout
    assert filtered == text, "the git filter would change this file: run tools/sync_notebooks.py"
    run = nbformat.read(path, as_version=4)                   # as JupyterLab saves it after "run all"
    run.metadata["language_info"]["version"] = "3.12.1"
    for i, cell in enumerate(run.cells):
        cell.id = f"a{i}x"
        if cell.cell_type == "code":
            cell.execution_count = i + 1
            cell.metadata["execution"] = {"iopub.status.busy": "2025-01-01T00:00:00"}
            if not cell.outputs:
                cell.outputs = [nbformat.v4.new_output("display_data", {"image/png": "iVBOR", "text/plain": "<Figure>"})]
    assert nbformat.writes(strip(run)) + "\n" == text
    model = {"type": "notebook", "content": json.loads(nbformat.writes(run))}      # make lab's pre-save hook
    strip_on_save(model, path=path.name)
    assert nbformat.writes(nbformat.from_dict(model["content"])) + "\n" == text
