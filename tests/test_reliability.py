"""Nothing half-written stays behind, files readable by colleagues, one process per run, notices in the terminal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from skinlib import leftovers, paths
from skinlib.registry import RunRecorder, gather
from skinlib.run.plan import plan
from skinlib.run.execute import is_done
from skinlib.run.schedule import in_progress, run_all
from test_runner import write_notebook

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    """The pid of a process that has finished."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def host() -> str:
    return paths.owner().split("@")[1]


def leftover_paths(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if leftovers.leftover(p) is not None)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        written = paths.write_atomic(tmp_path / "a" / "metrics.json", "{}")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~mask


def test_sweep_removes_what_dead_processes_left_and_keeps_the_rest(workspace):
    pid = dead_pid()
    here = host()
    exp = paths.results_dir() / "exp"
    RunRecorder("exp", "r1", {"a": 1}).finish()                     # a finished run: kept
    (exp / f".r2.partial-{pid}@{here}").mkdir()                     # killed while recording: removed
    (exp / f".r3.partial-{os.getppid()}@{here}").mkdir()            # a live process recording: kept
    (exp / f".r4.partial-{pid}@elsewhere").mkdir()                  # another machine's: kept and reported
    (paths.cache_dir() / f"abc-64px.partial-{pid}@{here}").mkdir()    # a cache being built: removed
    (paths.cache_dir() / f"abc-32px.partial-{pid}").mkdir()         # no owner tag: not skinlib's, kept
    (paths.splits_dir() / f".split.csv.tmp-{pid}@{here}.x1y2").write_text("half")
    ckpt = paths.workspace() / "checkpoints" / "custom_cnn" / "r"
    ckpt.mkdir(parents=True)
    (ckpt / f".last.pt.tmp-{pid}@{here}").write_bytes(b"half")
    report = leftovers.sweep()
    assert (paths.cache_dir() / f"abc-32px.partial-{pid}").is_dir()
    assert leftover_paths(workspace) == sorted([f"results/exp/.r3.partial-{os.getppid()}@{here}",
                                           f"results/exp/.r4.partial-{pid}@elsewhere"])
    assert sum("removed" in line for line in report) == 4
    assert any("kept" in line and "host elsewhere" in line for line in report)
    assert list(gather()["run"]) == ["r1"]


def test_sweep_finishes_a_registry_move_cut_between_its_two_renames(workspace):
    pid = dead_pid()
    here = host()
    exp = paths.results_dir() / "exp"
    RunRecorder("exp", "new", {"v": 2}).finish()
    RunRecorder("exp", "old", {"v": 1}).finish()
    os.replace(exp / "new", exp / f".new.partial-{pid}@{here}")       # complete but not moved yet
    os.replace(exp / "old", exp / f".old.old-{pid}@{here}")           # set aside, nothing in its place
    report = leftovers.sweep()
    assert sorted(p.name for p in exp.iterdir()) == ["new", "old"], report
    assert set(gather()["run"]) == {"new", "old"}


KILLER = """
import os, signal
from skinlib import paths
from skinlib.registry import RunRecorder
rec = RunRecorder("exp", "r1", {"n": n})
rec.metrics({"test": {"accuracy": 0.5}})
if crash:                                 # the worst moment: recording, a file half-written, then SIGKILL
    open(paths.results_dir() / f".notes.txt.tmp-{paths.owner()}.abc123", "w").write("half")
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
rec.finish()
"""

RUNNER = """
import sys
from pathlib import Path
from skinlib.run.plan import plan
from skinlib.run.schedule import run_all
root = Path(sys.argv[1])
runs = plan(root / "notebooks", None, "default")
for run in runs:
    run.params = {"crash": sys.argv[2] == "crash"}
sys.exit(run_all(runs, root / "outputs", root / "notebooks", progress=False))
"""


def test_a_run_killed_while_recording_leaves_nothing_after_the_next_run(tmp_path, workspace):
    write_notebook(tmp_path / "notebooks" / "01_rec.ipynb", KILLER, params="n = 3  # n\ncrash = False  # die")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path), "crash"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    time.sleep(1)                                                   # the kernel's own SIGKILL has landed
    assert leftover_paths(workspace)                                     # the partial run and the half-written file
    assert json.loads((tmp_path / "outputs" / "01_rec.run.json").read_text())["status"] == "running"

    again = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path), "ok"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "cleanup: removed" in again.stdout and ".r1.partial-" in again.stdout
    assert leftover_paths(workspace) == [] and leftover_paths(tmp_path) == []
    assert list(gather()["run"]) == ["r1"]
    assert json.loads((tmp_path / "outputs" / "01_rec.run.json").read_text())["status"] == "ok"
    assert "without encryption" not in again.stdout + again.stderr  # no kernel transport warning per notebook


def test_interrupted_executed_notebook_is_removed(tmp_path):
    out = tmp_path / "outputs"
    write_notebook(tmp_path / "notebooks" / "01_a.ipynb", "pass")
    out.mkdir()
    (out / "99_mine.ipynb").write_text("{}")                        # no record: not skinlib's, kept
    (out / "02_b.ipynb").write_text("{}")                           # its record says running: its run was killed
    (out / "02_b.run.json").write_text(json.dumps({"run": "02_b", "status": "running", "pid": dead_pid(), "started": "t"}))
    runs = plan(tmp_path / "notebooks", None, "default")
    log = io.StringIO()
    assert run_all(runs, out, tmp_path / "notebooks", progress=False, log=log) == 0
    text = log.getvalue()
    assert "removed the executed notebook" in text and "02_b.ipynb: its run (pid" in text
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb", "01_a.run.json", "99_mine.ipynb"]


HOLDER = """
import sys, time
from skinlib.run.lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_one_process_per_run(tmp_path, workspace):
    write_notebook(tmp_path / "notebooks" / "01_a.ipynb", "open('ran.txt', 'a').write('x')")
    runs = plan(tmp_path / "notebooks", None, "default")
    out = tmp_path / "outputs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = subprocess.Popen([sys.executable, "-c", HOLDER, "01_a", "600"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert other.stdout.readline().strip() == "locked"
        log = io.StringIO()
        assert run_all(runs, out, tmp_path / "notebooks", progress=False, log=log) == 1
        assert f"01_a: NOT RUN, run 01_a is in progress (pid {other.pid} on" in log.getvalue()
        assert "started at 20" in log.getvalue() and not (tmp_path / "notebooks" / "ran.txt").exists()
        assert in_progress(runs[0]).startswith(f"in progress (pid {other.pid}, started at 20")
    finally:
        other.kill()                                                # dies holding the lock: a stale lock
        other.wait()
    assert run_all(runs, out, tmp_path / "notebooks", progress=False, log=io.StringIO()) == 0
    assert is_done(out, runs[0]) and (tmp_path / "notebooks" / "ran.txt").read_text() == "x"

    other = subprocess.Popen([sys.executable, "-c", HOLDER, "01_a", "1"], stdout=subprocess.PIPE, text=True, env=env)
    assert other.stdout.readline().strip() == "locked"
    log = io.StringIO()
    assert run_all(runs, out, tmp_path / "notebooks", force=True, wait=True, progress=False, log=log) == 0
    other.wait()
    assert "waiting, run 01_a is in progress" in log.getvalue()
    assert (tmp_path / "notebooks" / "ran.txt").read_text() == "xx"


def test_notices_reach_the_runner_terminal(tmp_path):
    write_notebook(tmp_path / "notebooks" / "01_a.ipynb",
                   "from skinlib.notebook import notice\nnotice('resumed from the checkpoint after epoch 14')")
    runs = plan(tmp_path / "notebooks", None, "default")
    log = io.StringIO()
    assert run_all(runs, tmp_path / "outputs", tmp_path / "notebooks", progress=False, log=log) == 0
    assert "[1/1] 01_a: resumed from the checkpoint after epoch 14" in log.getvalue()
    assert leftover_paths(tmp_path) == []


def test_resume_message_is_a_notice(tmp_path, monkeypatch):
    """train.fit's resume line goes through notice(), so run_all.py shows it."""
    channel = tmp_path / "notices.txt"
    monkeypatch.setenv("SKINLIB_NOTICES", str(channel))
    from skinlib.notebook import notice

    notice("hello")
    source = (ROOT / "skinlib" / "train.py").read_text()
    assert 'notice(f"resumed from the checkpoint after epoch' in source
    assert channel.read_text() == "hello\n"


def test_isic_csv_keeps_what_the_metrics_were_computed_from(tmp_path):
    import numpy as np

    from skinlib import metrics
    from skinlib.data.labels import CLASSES

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 20)
    proba = rng.dirichlet(np.ones(7) * 0.3, len(y)).astype(np.float32)
    proba[:, 0] += 1e-7 * rng.random(len(y)).astype(np.float32)      # differences below 6 significant digits
    expected = metrics.classification_metrics(y, proba)["auc_macro"]
    ids, back = metrics.read_isic_csv(metrics.to_isic_csv([f"i{k}" for k in range(len(y))], proba, tmp_path / "s.csv"))
    assert metrics.classification_metrics(y, back)["auc_macro"] == expected
    assert np.array_equal(back, proba.astype(float))
    table = pd.DataFrame(proba, columns=[f"p_{c}" for c in CLASSES])
    table.insert(0, "split", "test")
    table.insert(0, "image_id", ids)
    rec = RunRecorder("exp", "r", {})
    rec.predictions(table)
    again = pd.read_csv(rec.finish() / "predictions.csv")
    assert np.array_equal(again[[f"p_{c}" for c in CLASSES]].to_numpy(), proba.astype(float))


def test_synthetic_module_runs_without_a_runpy_warning():
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "skinlib.data.synthetic", "--help"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "RuntimeWarning" not in done.stderr, done.stderr


def test_library_writers_clear_dead_leftovers_too(workspace, ham_dir, capsys):
    """A notebook used by hand (no run_all.py) also cleans the folders it writes to."""
    from skinlib.data import open_catalog
    from skinlib.data.cache import build_cache

    pid = dead_pid()
    exp = paths.results_dir() / "exp"
    (exp / f".r.partial-{pid}@{host()}").mkdir(parents=True)
    (paths.cache_dir() / f"x-16px.partial-{pid}@{host()}").mkdir()
    RunRecorder("exp", "r", {}).finish()
    build_cache(open_catalog(ham_dir), 16, jobs=1)
    assert leftover_paths(workspace) == []
    assert capsys.readouterr().err.count("cleanup: removed") == 2
