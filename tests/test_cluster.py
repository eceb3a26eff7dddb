"""run_all.py --executor: runs as jobs through submitit, here with its local executor (jobs as local processes, no
Slurm): every run done, a notebook's jobs only after the notebooks before it, a preempted job requeued and its run
finished, per-run resources from the parameter files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runner import write_notebook

from skinlib.run.cluster import DEFAULT_RESOURCES, job_parameters, run_on_cluster
from skinlib.run.execute import is_done
from skinlib.run.plan import ParameterError, plan

pytest.importorskip("submitit")
pytestmark = pytest.mark.usefixtures("plain_kernels")

ROOT = Path(__file__).resolve().parents[1]

# a run of 01 counts its attempts; run "slow" waits to be told to finish (so that it can be preempted first)
FIRST = """
import os, time
from pathlib import Path
here = Path(os.environ['OUT'])
attempts = here / f'{name}.attempts'
attempts.write_text(str(int(attempts.read_text()) + 1 if attempts.exists() else 1))
(here / f'{name}.job').write_text(str(os.getppid()))       # the job's process, which started this kernel
if name == 'slow':
    while not (here / 'finish').exists():
        time.sleep(0.2)
(here / f'{name}.done').write_text('')
"""
LATER = """
import os
from pathlib import Path
here = Path(os.environ['OUT'])
assert all((here / f'{r}.done').is_file() for r in ('fast', 'slow')), 'a run of 01 had not finished'
(here / 'later.txt').write_text('ok')
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "01_first.ipynb", FIRST, params="name = 'x'  # the run")
    write_notebook(nbs / "02_later.ipynb", LATER, params="n = 1  # unused")
    (tmp_path / "params" / "p").mkdir(parents=True)
    (tmp_path / "params" / "p" / "01_first.yaml").write_text(
        "resources: {time_min: 5}\nruns:\n  - name: fast\n    resources: {cpus: 1, gpus: 0}\n  - name: slow\n")
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(tmp_path / "workspace"))
    return tmp_path


def _runs(root: Path):
    runs = plan(root / "notebooks", root / "params", "p")
    for run in runs:
        if run.notebook.stem == "01_first":
            run.params["name"] = run.name.split("--")[1]
    return runs


def test_resources_come_from_the_notebook_then_the_parameter_files(project, tmp_path):
    fast, slow, later = _runs(project)
    assert fast.resources == {"time_min": 5, "cpus": 1, "gpus": 0} and slow.resources == {"time_min": 5}
    job = job_parameters(fast, {"slurm_partition": "gpu"})
    assert (job["cpus_per_task"], job["gpus_per_node"], job["timeout_min"]) == (1, 0, 5)
    assert job["slurm_partition"] == "gpu" and job["mem_gb"] == DEFAULT_RESOURCES["01"]["mem_gb"]
    assert job_parameters(later, {})["timeout_min"] == DEFAULT_RESOURCES["02"]["time_min"]
    (project / "params" / "p" / "01_first.yaml").write_text("runs:\n  - name: a\n    resources: {gpu: 1, cpus: 0}\n")
    with pytest.raises(ParameterError) as error:
        plan(project / "notebooks", project / "params", "p")
    assert "resources.gpu: unknown; use gpus, cpus, mem_gb, time_min" in str(error.value)
    assert "resources.cpus = 0: must be a whole number >= 1" in str(error.value)


def test_jobs_run_every_run_in_order_and_a_preempted_job_is_requeued(project):
    runs, log, out = _runs(project), io.StringIO(), project / "outputs"
    import threading

    from skinlib.run import cluster

    submitted = []
    real_outcome = cluster._outcome

    def preempt_slow_once(job, poll_s):              # preempt the job of run "slow" while its notebook executes
        submitted.append(job)
        if len(submitted) == 2:
            deadline = time.time() + 120
            while not (project / "slow.job").exists():
                assert time.time() < deadline, "run slow never started"
                time.sleep(0.2)
            from submitit.local import local         # the signal Slurm sends a job it preempts, as submitit's own
            os.kill(int((project / "slow.job").read_text()), local.LocalJobEnvironment._usr_sig())
            threading.Timer(3, (project / "finish").write_text, args=("",)).start()
        return real_outcome(job, poll_s)

    cluster._outcome = preempt_slow_once
    try:
        status = run_on_cluster(runs, out, project / "notebooks", executor="submitit-local", log=log, poll_s=0.3)
    finally:
        cluster._outcome = real_outcome
    text = log.getvalue()
    assert status == 0, text
    assert all(is_done(out, run) for run in runs)
    assert (project / "later.txt").read_text() == "ok"                  # 02 only after both runs of 01
    assert (project / "slow.attempts").read_text() == "2"               # preempted, requeued, finished
    assert (project / "fast.attempts").read_text() == "1"
    assert text.count("submitted as job") == 3 and "[3/3] 02_later: done (job" in text

    log = io.StringIO()                                                   # done runs are not submitted again
    assert run_on_cluster(runs, out, project / "notebooks", executor="submitit-local", log=log, poll_s=0.3) == 0
    assert log.getvalue().count("already done") == 3 and "submitted" not in log.getvalue()


def test_a_driver_started_again_waits_for_the_jobs_still_running_instead_of_submitting_them_again(project):
    import threading

    runs, out = _runs(project), project / "outputs"
    first_log, statuses = io.StringIO(), {}
    first = threading.Thread(target=lambda: statuses.setdefault("first", run_on_cluster(
        runs, out, project / "notebooks", executor="submitit-local", log=first_log, poll_s=0.3)))
    first.start()
    deadline = time.time() + 120
    while not (project / "slow.job").exists():                  # run "slow" is executing in its job
        assert time.time() < deadline and first.is_alive(), first_log.getvalue()
        time.sleep(0.2)
    threading.Timer(3, (project / "finish").write_text, args=("",)).start()
    again = io.StringIO()                                       # the same command again, while the jobs run
    status = run_on_cluster(runs, out, project / "notebooks", executor="submitit-local", log=again, poll_s=0.3)
    first.join(120)
    text = again.getvalue()
    assert status == 0 and statuses["first"] == 0, (text, first_log.getvalue())
    assert "01_first--slow: its job" in text and "is still queued or running: not submitted again" in text
    assert "01_first--slow: submitted" not in text and "01_first--slow: done (job" in text
    assert (project / "slow.attempts").read_text() == "1"       # executed once: no second job for it
    assert all(is_done(out, run) for run in runs)


def test_a_runs_note_is_shown_only_for_the_run_it_was_submitted_for(project, monkeypatch):
    from skinlib.run import cluster

    fast = _runs(project)[0]
    cluster._note(fast, _FakeJob(7, project), "slurm")
    assert cluster.submitted(fast).startswith("submitted as job 7 at ")
    fast.params["name"] = "other"                               # the run changed: its old job is not its job
    assert cluster.submitted(fast) is None and cluster.active_job(fast, "slurm") is None


def test_a_run_fitting_on_several_gpus_asks_for_them(project):
    from skinlib.run.cluster import resources

    fast = _runs(project)[0]
    fast.params["devices"] = 4
    assert resources(fast)["gpus"] == 4 and job_parameters(fast, {})["gpus_per_node"] == 4
    fast.params["devices"] = 1                                  # never fewer than the parameter file's
    fast.resources["gpus"] = 2
    assert resources(fast)["gpus"] == 2


@pytest.mark.parametrize("args, message", [
    (["--executor", "nowhere"], "--executor: invalid choice: 'nowhere'"),
    (["--executor", "submitit-local", "--cluster-option", "slurm_partition"],
     "--cluster-option 'slurm_partition': expected KEY=VALUE"),
    (["--cluster-option", "slurm_partition=gpu"], "applies to --executor slurm or submitit-local"),
    (["--executor", "submitit-local", "--jobs", "2"], "--jobs and --gpus share out this machine"),
    (["--gpus", "x"], "--gpus x: give distinct GPU ids"),
])
def test_run_all_refuses_options_that_do_not_go_together(args, message):
    done = subprocess.run([sys.executable, "run_all.py", *args, "--list"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_run_all_takes_the_executor_and_its_options(project):
    with pytest.raises(ValueError, match="unknown executor 'pbs'"):
        run_on_cluster(_runs(project), project / "outputs", project / "notebooks", executor="pbs")


class _FakeJob:
    def __init__(self, job_id: int, folder: Path):
        self.job_id = str(job_id)
        self.paths = type("Paths", (), {"stdout": folder / f"{job_id}.out", "stderr": folder / f"{job_id}.err",
                                        "folder": folder})()


class _FakeSlurm:
    """submitit.AutoExecutor as Slurm would answer it: numbered job ids, and the parameters each submission had."""

    def __init__(self, folder, cluster):
        self.folder, self.cluster, self.params, self.submissions, self.next = Path(str(folder)), cluster, {}, [], 100

    def update_parameters(self, **params):
        self.params = params

    def batch(self):
        import contextlib

        return contextlib.nullcontext()

    def submit(self, job):
        self.next += 1
        self.submissions.append((job.run.name, dict(self.params)))
        return _FakeJob(self.next, self.folder)


@pytest.mark.parametrize("keep_going", [False, True])
def test_no_wait_submits_every_notebook_with_slurm_dependencies(project, monkeypatch, keep_going):
    import submitit

    from skinlib.run import cluster

    made = []
    monkeypatch.setattr(submitit, "AutoExecutor", lambda folder, cluster: made.append(_FakeSlurm(folder, cluster))
                        or made[-1])
    runs, log = _runs(project), io.StringIO()
    status = run_on_cluster(runs, project / "outputs", project / "notebooks", executor="slurm", wait=False,
                            keep_going=keep_going, options={"slurm_additional_parameters": {"qos": "long"}}, log=log)
    assert status == 0, log.getvalue()
    (fast, first), (slow, _), (later, second) = made[0].submissions
    assert "slurm_additional_parameters" not in first or "dependency" not in first["slurm_additional_parameters"]
    kind = "afterany" if keep_going else "afterok"
    assert second["slurm_additional_parameters"] == {"qos": "long", "dependency": f"{kind}:101:102"}
    assert not any(is_done(project / "outputs", run) for run in runs)        # nothing ran: Slurm holds the jobs
    assert cluster.submitted(runs[2]).startswith("submitted as job 103 at ")
    assert "after 2 earlier job(s)" in log.getvalue() and "--list" in log.getvalue()


def test_no_wait_is_refused_without_slurm(project):
    with pytest.raises(ValueError, match="--no-wait needs --executor slurm"):
        run_on_cluster(_runs(project), project / "outputs", project / "notebooks", executor="submitit-local",
                       wait=False)
    done = subprocess.run([sys.executable, "run_all.py", "--no-wait", "--list"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--no-wait needs --executor slurm" in done.stderr
