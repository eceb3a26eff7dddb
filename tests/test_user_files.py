"""The runner never removes a file it did not write, and never writes executed notebooks among parameter files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_notebook

from skinlib import leftovers, paths
from skinlib.run.plan import ParameterError, outputs_name, plan
from skinlib.run.schedule import run_all
from test_runner import write_notebook

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

#: a user's own files: a notebook, and a name that looks like a temporary file without skinlib's owner tag
PLANTED = ("my_analysis.ipynb", "notes.txt.old-2023", ".draft.ipynb.tmp-12")


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def plant(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(), folder / PLANTED[0])
    for name in PLANTED[1:]:
        (folder / name).write_text("mine")


def test_a_users_files_survive_every_folder_the_runner_writes_or_cleans(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_a.ipynb", "open('a.txt', 'w').write(str(n))")
    mine = tmp_path / "my-settings"                              # a profile given as a path: the user's folder
    mine.mkdir()
    (mine / "01_a.yaml").write_text("n: 4\n")
    runs = plan(nbs, tmp_path / "params", str(mine))
    assert runs[0].params == {"n": 4}
    out = paths.outputs_dir() / outputs_name(str(mine))
    assert out == paths.workspace() / "outputs" / "my-settings"      # never the profile's folder itself
    folders = [mine, nbs, paths.workspace(), out, paths.results_dir() / "exp", paths.cache_dir() / "k-16px",
               *(paths.workspace() / name for name in paths.OWN_FOLDERS)]
    for folder in folders:
        plant(folder)
    killed = out / "01_b.ipynb"                                  # what a killed run left: its record says running
    killed.write_text("{}")
    (out / "01_b.run.json").write_text(json.dumps({"run": "01_b", "status": "running", "pid": dead_pid(),
                                                   "started": "t"}))
    log = io.StringIO()
    for _ in range(2):
        assert run_all(runs, out, nbs, progress=False, log=log, force=True) == 0
    assert (nbs / "a.txt").read_text() == "4"
    assert not killed.exists() and "removed the executed notebook" in log.getvalue()   # the cleanup still works
    for folder in folders:
        for name in PLANTED:
            assert (folder / name).is_file(), f"{folder / name} was removed"
    assert leftovers.sweep() == []


def test_a_profile_folder_named_like_a_profile_is_refused(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_a.ipynb", "pass")
    (tmp_path / "params" / "full").mkdir(parents=True)
    for name in ("full", "default"):
        (tmp_path / "elsewhere" / name).mkdir(parents=True, exist_ok=True)
        with pytest.raises(ParameterError, match=f"would go to outputs/{name}/"):
            plan(nbs, tmp_path / "params", str(tmp_path / "elsewhere" / name))
    assert plan(nbs, tmp_path / "params", str(tmp_path / "params" / "full"))       # the profile itself, by path
