"""What a reader sees from the helpers every notebook calls first."""

from __future__ import annotations

from skinlib import paths
from skinlib.notebook import setup


def test_setup_prints_where_the_workspace_is(monkeypatch, capsys, tmp_path):
    setup({"seed": 0}, seed=0)
    assert f"workspace {paths.workspace()} (from $SKINLIB_WORKSPACE)" in capsys.readouterr().out
    monkeypatch.delenv("SKINLIB_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    setup({"seed": 0}, seed=0)
    out = capsys.readouterr().out
    assert f"workspace {paths.workspace()} (" in out and "workspace $SKINLIB_WORKSPACE" not in out


def test_messages_print_real_paths(workspace):
    """A message names the file as it is on this machine (one can open or delete it), not ``<repo>/...``."""
    import pytest

    from skinlib.data.splits import load_split

    with pytest.raises(FileNotFoundError) as info:
        load_split("lesion-60-20-20-seed0")
    assert f"(looked in {paths.splits_dir() / 'lesion-60-20-20-seed0'})" in str(info.value)


def test_a_cell_that_raises_in_jupyterlab_scrolls_into_view(monkeypatch):
    """JupyterLab's Run All scrolls to the last cell as it starts; a cell that raises (a student's exercise stub)
    brings itself back into view with a JavaScript output (checked in a real JupyterLab with headless Chromium:
    docs/teaching.md); kernels not started by a Jupyter server (papermill, nbval) get no such output."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from skinlib import notebook

    shell = InteractiveShell.instance()
    try:
        def scripts(*cells):
            with capture_output() as captured:
                for cell in cells:
                    shell.run_cell(cell)
            return [o.data for o in captured.outputs if "application/javascript" in o.data]

        monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
        notebook.scroll_to_errors()
        assert scripts("raise ValueError('papermill')") == []
        monkeypatch.setenv("JPY_SESSION_NAME", "teaching/student/01_eda.ipynb")
        notebook.scroll_to_errors()
        notebook.scroll_to_errors()                                   # setup() run again: still one output
        assert scripts("1 + 1", "raise NotImplementedError('Exercise 1')") == \
            [{"application/javascript": notebook.SCROLL_TO_CELL}]
    finally:
        InteractiveShell.clear_instance()


def test_figures_show_in_a_kernel_whatever_mplbackend_says(monkeypatch, tmp_path):
    """MPLBACKEND=Agg (batch machines, CI) made every executed notebook, and so report.html, figure-less."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from skinlib.notebook import setup\nparams = setup({'a': 1})"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2]);"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    kinds = [k for o in nb.cells[1].outputs for k in o.get("data", {})]
    assert "image/png" in kinds, nb.cells[1].outputs
