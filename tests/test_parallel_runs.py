"""run_all.py --jobs: the runs of one notebook side by side, notebooks in order, the runner's guarantees kept."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_runner import write_notebook

from skinlib import leftovers
from skinlib.run.plan import plan
from skinlib.run.execute import is_done
from skinlib.run.schedule import DEVICES_VARIABLE, THREAD_VARIABLES, DevicePool, cores, run_all, stages, visible_gpus
from skinlib.checkpoints import idle_checkpoints

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]

# Each run of 01 writes what its kernel saw; run "a" waits for run "b" to have started, which only a runner
# executing them side by side can satisfy (one after the other, "a" gives up and fails).
SIDE_BY_SIDE = """
import os, time
from pathlib import Path
from skinlib.notebook import notice
here = Path(os.environ['OUT'])
(here / f'{name}.started').write_text('')
if name == 'a':
    deadline = time.time() + patience
    while not (here / 'b.started').exists():
        assert time.time() < deadline, 'run b never started beside run a'
        time.sleep(0.1)
notice(f'run {name} says hello')
(here / f'{name}.json').write_text(json.dumps({v: os.environ.get(v) for v in %r}))
assert not fail, 'this run fails'
""" % (THREAD_VARIABLES + (DEVICES_VARIABLE,),)

LATER = """
import os
from pathlib import Path
here = Path(os.environ['OUT'])
assert all((here / f'{r}.json').is_file() for r in ('a', 'b', 'c')), 'a run of 01 had not finished'
(here / 'later.txt').write_text('ok')
"""


@pytest.fixture
def staged(tmp_path, monkeypatch):
    """01 with runs a, b, c (a needs b beside it), then 02, which needs all of 01's runs finished."""
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_first.ipynb", SIDE_BY_SIDE,
                   params="name = 'x'  # the run\nfail = False  # fail at the end\npatience = 60  # seconds to wait for b")
    write_notebook(nbs / "02_later.ipynb", LATER, params="n = 1  # unused")
    (tmp_path / "params" / "p").mkdir(parents=True)
    (tmp_path / "params" / "p" / "01_first.yaml").write_text("runs:\n  - name: a\n  - name: b\n  - name: c\n")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("OUT", str(out))
    for var in THREAD_VARIABLES + (DEVICES_VARIABLE,):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _runs(root: Path, **params):
    """The runs of the profile; 01's run X gets ``name = X`` and the keyword `X` (a dict) as more parameters."""
    runs = plan(root / "notebooks", root / "params", "p")
    for run in runs:
        if run.notebook.stem == "01_first":
            tag = run.name.split("--")[1]
            run.params.update(name=tag, **params.get(tag, {}))
    return runs


def test_stages_are_consecutive_runs_of_one_notebook(staged):
    runs = _runs(staged)
    assert [[r.name for r in stage] for stage in stages(runs)] == [
        ["01_first--a", "01_first--b", "01_first--c"], ["02_later"]]


def test_jobs_run_a_notebook_side_by_side_then_the_next(staged):
    runs, log, after = _runs(staged), io.StringIO(), []
    out = staged / "outputs"
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log, jobs=2, after_run=after.append) == 0, \
        log.getvalue()
    text = log.getvalue()
    here = Path(os.environ["OUT"])
    assert (here / "later.txt").read_text() == "ok"                   # 02 started after all of 01's runs
    assert all(is_done(out, run) for run in runs) and sorted(r.name for r in after) == sorted(r.name for r in runs)
    for i, run in enumerate(runs, 1):                                  # one status line per run, numbered in order
        assert f"[{i}/4] {run.name}: running ..." in text and f"[{i}/4] {run.name}: done in" in text
    for name, i in (("a", 1), ("b", 2), ("c", 3)):                     # notices echoed with their run's prefix
        assert f"[{i}/4] 01_first--{name}: run {name} says hello" in text
        seen = json.loads((here / f"{name}.json").read_text())          # cores shared out, not oversubscribed
        assert {var: seen[var] for var in THREAD_VARIABLES} == {var: str(max(1, cores() // 2)) for var in THREAD_VARIABLES}

    log = io.StringIO()                                                # done runs are skipped, as without jobs
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log, jobs=2) == 0
    assert log.getvalue().count("already done") == 4


def test_jobs_give_each_run_side_by_side_its_own_gpu(staged):
    """The device list is an input (no GPU here): a and b execute together, each on its own GPU; c takes the one
    freed first; a run executed alone (02) sees every GPU given."""
    runs, log = _runs(staged), io.StringIO()
    assert run_all(runs, staged / "outputs", staged / "notebooks", progress=False, log=log, jobs=2,
                   gpus=["0", "2"]) == 0, log.getvalue()
    here = Path(os.environ["OUT"])
    seen = {name: json.loads((here / f"{name}.json").read_text())[DEVICES_VARIABLE] for name in "abc"}
    assert {seen["a"], seen["b"]} == {"0", "2"} and seen["c"] in ("0", "2")
    assert f"01_first--a: on GPU {seen['a']}" in log.getvalue()


def test_device_pool_shares_out_the_least_used_gpu(monkeypatch):
    pool = DevicePool(["0", "1", "3"])
    taken = [pool.take() for _ in range(4)]
    assert taken == ["0", "1", "3", "0"]               # one each while there are enough, then the least used
    pool.give("1")
    assert pool.take() == "1"
    assert DevicePool([]).take() is None               # no GPU: nothing is assigned
    monkeypatch.setenv(DEVICES_VARIABLE, "2, 5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv(DEVICES_VARIABLE, "-1")         # CUDA's "no device"
    assert visible_gpus() == []


def test_one_after_the_other_the_waiting_run_fails(staged):
    """The check above can fail: run "a" cannot see "b" start when the runs are executed one at a time."""
    runs, log = _runs(staged, a={"patience": 2}), io.StringIO()
    assert run_all(runs[:1], staged / "outputs", staged / "notebooks", progress=False, log=log, jobs=2) == 1
    assert "run b never started beside run a" in log.getvalue()


def test_jobs_keep_the_failure_semantics_and_the_locks(staged):
    out = staged / "outputs"
    runs, log = _runs(staged, c={"fail": True}), io.StringIO()
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log, jobs=2) == 1
    text = log.getvalue()
    assert "01_first.ipynb failed in cell 3" in text and "AssertionError: this run fails" in text
    assert "02_later" not in text                                      # no later notebook after a failure
    assert is_done(out, runs[0]) and is_done(out, runs[1]) and not is_done(out, runs[2])

    log = io.StringIO()                                                # --keep-going: the next notebook runs
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log, jobs=2, keep_going=True) == 1
    assert is_done(out, runs[3]) and "1 run(s) failed" in log.getvalue()

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom skinlib.run.lock import RunLock\n"
                               "lock = RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
                               runs[2].name], stdout=subprocess.PIPE, text=True, env=os.environ.copy(), cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        log = io.StringIO()
        assert run_all(runs, out, staged / "notebooks", progress=False, log=log, jobs=2, force=True) == 1
        assert f"{runs[2].name}: NOT RUN, run {runs[2].name} is in progress (pid {holder.pid}" in log.getvalue()
    finally:
        holder.kill()
        holder.wait()


def test_jobs_must_be_positive(staged):
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_all(_runs(staged), staged / "outputs", staged / "notebooks", jobs=0)
    done = subprocess.run([sys.executable, "run_all.py", "--jobs", "0", "--list"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--jobs 0: must be 1 or more" in done.stderr


def test_idle_checkpoints_spare_those_being_written(tmp_path):
    def folder(name: str, writer: str | None, info: bool = True) -> Path:
        path = tmp_path / "transfer" / name / "abc123"
        path.mkdir(parents=True)
        (path / "last.pt").write_bytes(b"0")
        if writer is not None:
            (path / "writer").write_text(writer)
        if info:
            (path / "identity.json").write_text("{}")
        return path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = leftovers._host()
    mine = folder("mine", f"{os.getpid()}@{host}")                      # this process trains into it: kept
    gone = folder("gone", f"{dead.stdout.strip()}@{host}")               # its writer finished: idle
    old = folder("old", None)                                            # before writers were recorded: idle
    elsewhere = folder("elsewhere", f"{dead.stdout.strip()}@some-other-host")   # cannot be checked: kept
    starting = folder("starting", f"{os.getpid()}@{host}", info=False)   # being created (no identity.json): kept
    legacy = tmp_path / "custom_cnn" / "x" / "last.pt"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"0")
    idle = idle_checkpoints(tmp_path)
    assert sorted(idle) == sorted([gone, old, legacy])
    assert mine not in idle and elsewhere not in idle and starting not in idle
    assert idle_checkpoints(tmp_path / "missing") == []


def test_owner_alive():
    host = leftovers._host()
    assert leftovers.owner_alive(f"{os.getpid()}@{host}") and leftovers.owner_alive(f"{os.getpid()}")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not leftovers.owner_alive(f"{dead.stdout.strip()}@{host}")
    assert leftovers.owner_alive(f"{dead.stdout.strip()}@another-host")       # another host's process: kept
    assert not leftovers.owner_alive("garbage")
