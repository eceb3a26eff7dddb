"""run_all.py: parameter files validated against notebooks, failures named, identical runs skipped."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from skinlib.run.plan import ParameterError, notebook_parameters, plan, select
from skinlib.run.execute import is_done
from skinlib.run.schedule import run_all

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]


def write_notebook(path: Path, body: str, params: str = "n = 3  # how many\nname = 'x'  # a label\nrate = 0.5  # a float\nflag = False  # a switch\nsizes = [1, 2]  # a list\nroot = None  # anything") -> Path:
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cell, new_code_cell("import json"), new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_first.ipynb", "open('first.txt', 'w').write(json.dumps([n, name, rate]))")
    write_notebook(nbs / "02_second.ipynb", "assert n < 10, 'n too big'")
    (nbs / "scratch.ipynb").write_text("{}")                      # not numbered: ignored
    (tmp_path / "params" / "full").mkdir(parents=True)
    return tmp_path


def test_parameters_cell_is_parsed(project):
    params = notebook_parameters(project / "notebooks" / "01_first.ipynb")
    assert list(params) == ["n", "name", "rate", "flag", "sizes", "root"]
    assert params["n"].default == 3 and params["n"].help == "how many"


def test_default_profile_runs_every_numbered_notebook(project):
    runs = plan(project / "notebooks", project / "params", "default")
    assert [r.name for r in runs] == ["01_first", "02_second"] and runs[0].params == {}


def test_unknown_key_names_file_key_and_closest_name(project):
    (project / "params" / "full" / "01_first.yaml").write_text("nn: 4\n")
    with pytest.raises(ParameterError, match=r"01_first.yaml: unknown parameter 'nn'; did you mean 'n'\?"):
        plan(project / "notebooks", project / "params", "full")


def test_wrong_type_and_all_errors_together(project):
    (project / "params" / "full" / "01_first.yaml").write_text("n: three\nflag: 1\nrate: 2\nsizes: [3]\nroot: /x\n")
    (project / "params" / "full" / "02_second.yaml").write_text("runs:\n  - name: a\n    naem: y\n")
    (project / "params" / "full" / "03_typo.yaml").write_text("n: 1\n")
    with pytest.raises(ParameterError) as info:
        plan(project / "notebooks", project / "params", "full")
    message = str(info.value)
    assert "parameter 'n' should be like its default 3 (int), got 'three'" in message
    assert "parameter 'flag' should be like its default False (bool), got 1" in message
    for fine in ("'rate'", "'sizes'", "'root'"):              # int for float, lists, anything for None
        assert f"parameter {fine}" not in message
    assert "02_second.yaml runs[0] (a): unknown parameter 'naem'; did you mean 'name'?" in message
    assert "03_typo.yaml: no notebook 03_typo.ipynb" in message


def test_several_runs_of_one_notebook(project):
    (project / "params" / "full" / "01_first.yaml").write_text("n: 5\nruns:\n  - name: a\n  - name: b\n    n: 6\n")
    runs = plan(project / "notebooks", project / "params", "full", overrides={"root": "/data"})
    assert [(r.name, r.params) for r in runs[:2]] == [("01_first--a", {"n": 5, "root": "/data"}),
                                                      ("01_first--b", {"n": 6, "root": "/data"})]
    write_notebook(project / "notebooks" / "01_first.ipynb", "pass", params="n = 1  # n\nrun_name = None  # registry name")
    runs = plan(project / "notebooks", project / "params", "full")
    assert [r.params["run_name"] for r in runs[:2]] == ["a", "b"]
    with pytest.raises(ParameterError, match="must be a mapping with a 'name'"):
        (project / "params" / "full" / "01_first.yaml").write_text("runs:\n  - n: 1\n  - n: 2\n")
        plan(project / "notebooks", project / "params", "full")


def test_unknown_profile(project):
    with pytest.raises(ParameterError, match="no profile 'gpu'.*full"):
        plan(project / "notebooks", project / "params", "gpu")


def test_select(project):
    runs = plan(project / "notebooks", project / "params", "default")
    assert [r.name for r in select(runs, only=["02"])] == ["02_second"]
    assert [r.name for r in select(runs, start="01_first")] == ["01_first", "02_second"]
    with pytest.raises(ParameterError, match="no notebook or run matches '07'"):
        select(runs, only=["07"])


def test_runs_skips_identical_and_reports_the_failing_cell(project):
    out = project / "outputs"
    runs = plan(project / "notebooks", project / "params", "default")
    runs[0].params = {"n": 4}
    log = io.StringIO()
    assert run_all(runs, out, project / "notebooks", progress=False, log=log) == 0
    assert json.loads((project / "notebooks" / "first.txt").read_text()) == [4, "x", 0.5]
    assert (out / "01_first.ipynb").is_file() and is_done(out, runs[0])
    assert nbformat.read(project / "notebooks" / "01_first.ipynb", 4).cells[2].outputs == []   # source untouched

    log, after = io.StringIO(), []
    assert run_all(runs, out, project / "notebooks", progress=False, log=log, after_run=after.append) == 0
    assert log.getvalue().count("already done") == 2
    assert after == []                                                 # called only for runs that executed

    runs[1].params = {"n": 11}
    log = io.StringIO()
    assert run_all(runs, out, project / "notebooks", progress=False, log=log, after_run=after.append) == 1
    assert [run.name for run in after] == [runs[1].name]               # a failed run too
    text = log.getvalue()
    assert "02_second.ipynb failed in cell 3 ('assert n < 10, 'n too big'')" in text
    assert "AssertionError: n too big" in text and "02_second.ipynb" in text
    assert is_done(out, runs[0]) and not is_done(out, runs[1])        # earlier results stay
    assert json.loads((out / "02_second.run.json").read_text())["status"] == "failed"


def test_run_all_cli_lists_and_rejects_bad_selection():
    done = subprocess.run([sys.executable, "run_all.py", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "01_eda" in done.stdout and "02_splits" in done.stdout
    bad = subprocess.run([sys.executable, "run_all.py", "--only", "99"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "no notebook or run matches '99'" in bad.stderr
    full = subprocess.run([sys.executable, "run_all.py", "--profile", "full", "--list"], cwd=ROOT, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
