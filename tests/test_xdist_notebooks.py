"""`make test` on several workers (pytest-xdist): the notebooks stay one chain, in order, on one worker; the cores
are shared out between the workers (skinlib.run.nbval_plugin)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from skinlib.run.nbval_plugin import NOTEBOOK_GROUP, notebook_scope
from skinlib.run.schedule import THREAD_VARIABLES, cores

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

pytest.importorskip("xdist", reason="the dev extra: pip install -e '.[dev]'")

# each cell appends (notebook, cell, worker, thread limits) to $TRACE: the order the cells ran in, and where
CELL = ("import json, os\n"
        "with open(os.environ['TRACE'], 'a') as fh:\n"
        "    fh.write(json.dumps([{nb!r}, {i}, os.environ.get('PYTEST_XDIST_WORKER'),\n"
        "                         [os.environ.get(v) for v in {threads!r}]]) + '\\n')")


def test_notebook_cells_share_one_scope():
    assert notebook_scope("notebooks/02_splits.ipynb::Cell 3") == NOTEBOOK_GROUP
    assert notebook_scope("notebooks/10_report.ipynb::Cell 0") == NOTEBOOK_GROUP
    assert notebook_scope("tests/test_runner.py::test_select") is None
    assert notebook_scope("tests/test_x.py::test_y[a.ipynb::b]") is None          # a parameter, not the file


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """Three notebooks and a few slow plain tests, with the plugin and no other configuration."""
    for nb in ("01_a", "02_b", "03_c"):
        nbformat.write(new_notebook(cells=[new_code_cell(CELL.format(nb=nb, i=i, threads=THREAD_VARIABLES))
                                           for i in range(3)]), tmp_path / f"{nb}.ipynb")
    (tmp_path / "test_plain.py").write_text(
        "import time, pytest\n@pytest.mark.parametrize('k', range(6))\ndef test_slow(k):\n    time.sleep(0.5)\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p skinlib.run.nbval_plugin -p no:cacheprovider --nbval-lax\n")
    monkeypatch.setenv("TRACE", str(tmp_path / "trace.jsonl"))
    for var in THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=folder, capture_output=True, text=True,
                          env=os.environ.copy())


def test_notebooks_run_in_order_on_one_worker_with_a_share_of_the_cores(suite):
    done = _pytest(suite, "-n", "2", "--dist", "loadgroup", "03_c.ipynb", "test_plain.py", "01_a.ipynb", "02_b.ipynb")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    trace = [json.loads(line) for line in (suite / "trace.jsonl").read_text().splitlines()]
    assert [(nb, i) for nb, i, _, _ in trace] == [(nb, i) for nb in ("03_c", "01_a", "02_b") for i in range(3)]
    assert len({worker for _, _, worker, _ in trace}) == 1 and trace[0][2].startswith("gw")
    assert all(limits == [str(max(1, cores() // 2))] * len(THREAD_VARIABLES) for _, _, _, limits in trace)


def test_a_distribution_that_would_split_the_notebooks_is_refused(suite):
    done = _pytest(suite, "-n", "2", "01_a.ipynb", "02_b.ipynb")
    assert done.returncode != 0
    assert "use --dist loadgroup with -n 2" in done.stdout + done.stderr
