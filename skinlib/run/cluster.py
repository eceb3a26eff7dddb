"""Runs as cluster jobs, through submitit (``run_all.py --executor slurm``): each run one job asking for what it
needs, a notebook's runs submitted together (one Slurm job array), a notebook's jobs submitted only when the
notebooks before it are finished (the driver waits: 03-07 read 02's split, 08-10 the runs before them), so a
dependency is never a guess about which files a job will read.

A job holds its run lock, skips a run that is done, and executes it as a local run would (the same record, the same
executed notebook in the same outputs folder, on the shared file system). A job stopped by preemption or its time
limit is requeued by submitit (``checkpoint``) and the notebook resumes from its last training checkpoint (exact
resume, :mod:`skinlib.train`).

``--executor submitit-local`` runs the same jobs as local processes (submitit's local executor): the cluster path
without a cluster, which the tests take.

``--no-wait`` (Slurm only) submits every notebook's jobs at once and returns: each notebook's jobs depend on the
jobs of the notebook before it through Slurm (``afterok``: a failure leaves the later jobs pending, as a waiting
driver stops; with ``--keep-going``, ``afterany``). Each submitted run leaves a note (job id, log, the run's
identity) that ``run_all.py --list`` shows until the run is done; the same command without ``--no-wait`` afterwards
skips the done runs and exports the report.

A driver started again (after ``--no-wait``, or after the first driver was stopped) does not submit a run whose noted
job is still queued or running (:func:`active_job`): it waits for that job instead.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .. import paths
from ..leftovers import _alive
from .execute import _execute, _read_record, _say, identity, is_done, record_path
from .lock import RunLock
from .plan import Run
from .schedule import stages

#: what a run asks for unless its parameter file says otherwise (``resources:``): per notebook number
DEFAULT_RESOURCES: dict[str, dict[str, int]] = {
    "01": dict(gpus=0, cpus=4, mem_gb=16, time_min=60),
    "02": dict(gpus=0, cpus=2, mem_gb=8, time_min=30),
    "03": dict(gpus=0, cpus=8, mem_gb=32, time_min=240),
    "04": dict(gpus=1, cpus=8, mem_gb=32, time_min=720),
    "05": dict(gpus=1, cpus=8, mem_gb=48, time_min=1440),
    "06": dict(gpus=1, cpus=8, mem_gb=48, time_min=1440),
    "07": dict(gpus=1, cpus=8, mem_gb=48, time_min=1440),
    "08": dict(gpus=0, cpus=4, mem_gb=16, time_min=60),
    "09": dict(gpus=1, cpus=4, mem_gb=32, time_min=120),
    "10": dict(gpus=0, cpus=2, mem_gb=8, time_min=30),
}
#: ``run_all.py --executor`` value -> submitit's cluster name (``local``, run_all's default, executes in-process)
EXECUTORS = {"slurm": "slurm", "submitit-local": "local"}


def resources(run: Run) -> dict[str, int]:
    """What `run` asks for: its notebook's defaults (:data:`DEFAULT_RESOURCES`), then its parameter file's; a run
    whose fit spans several GPUs (parameter ``devices``, DDP) gets at least that many."""
    want = {**DEFAULT_RESOURCES.get(run.notebook.name[:2], DEFAULT_RESOURCES["01"]), **run.resources}
    devices = run.params.get("devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > want["gpus"]:
        want["gpus"] = devices
    return want


def job_parameters(run: Run, options: dict[str, Any]) -> dict[str, Any]:
    """submitit's parameters for the job of `run`: its resources in submitit's generic names, then the user's
    options (``--cluster-option slurm_partition=gpu``; any of submitit's names, which win)."""
    want = resources(run)
    return {"name": f"skinlib-{run.notebook.stem}", "timeout_min": want["time_min"], "mem_gb": want["mem_gb"],
            "cpus_per_task": want["cpus"], "gpus_per_node": want["gpus"], "tasks_per_node": 1, "nodes": 1,
            **options}


class RunJob:
    """What a job executes: one run, under its lock, skipped when done. Requeued when preempted or out of time
    (submitit calls :meth:`checkpoint`); the notebook then resumes from its training checkpoint."""

    def __init__(self, run: Run, out_dir: Path, cwd: Path, force: bool):
        self.run, self.out_dir, self.cwd, self.force = run, out_dir, cwd, force

    def __call__(self) -> str | None:
        if not self.force and is_done(self.out_dir, self.run):
            return None
        lock = RunLock(self.run.name)
        lock.acquire(wait=True)                                 # another node executing it: wait, then skip it
        try:
            if not self.force and is_done(self.out_dir, self.run):
                return None
            return _execute(self.run, self.out_dir, self.cwd, progress=False)
        finally:
            lock.release()

    def checkpoint(self):
        """Requeue this job as it is: the run's identity is unchanged, so its notebook resumes where it stopped (a
        forced run is requeued unforced, so that it resumes too)."""
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(self.run, self.out_dir, self.cwd, False))


def submitted_note(run: Run) -> Path:
    """Where ``--no-wait`` notes the job of `run` (job id, log files): read by :func:`submitted`."""
    return paths.workspace() / "jobs" / "submitted" / f"{run.name}.json"


def _read_note(run: Run) -> dict[str, Any] | None:
    """The note of the last job submitted for `run` as it is now; None when there is none, or when it was submitted
    for the run as it was before a change (other parameters, code or data: another run)."""
    try:
        info = json.loads(submitted_note(run).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("identity") == identity(run) else None


def submitted(run: Run) -> str | None:
    """"submitted as job N (log L)" when a submission noted a job for `run` as it is now, else None."""
    info = _read_note(run)
    if info is None:
        return None
    return f"submitted as job {info['job_id']} at {info['submitted']}, log {info['stdout']}"


def _note(run: Run, job, executor: str) -> None:
    note = submitted_note(run)
    note.parent.mkdir(parents=True, exist_ok=True)
    staged = note.with_suffix(".partial")
    staged.write_text(json.dumps({"job_id": str(job.job_id), "stdout": str(job.paths.stdout),
                                  "stderr": str(job.paths.stderr), "folder": str(job.paths.folder),
                                  "executor": executor, "host": socket.gethostname(), "identity": identity(run),
                                  "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}))
    staged.replace(note)


#: Slurm job states of a job that will still execute its run (sacct's names)
ACTIVE_SLURM_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                       "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"}


def active_job(run: Run, executor: str) -> dict[str, Any] | None:
    """The note of a job submitted earlier for `run` (as it is now) that is still queued or running, by this driver or
    another one; None when there is none."""
    info = _read_note(run)
    return info if info is not None and _queued_or_running(info, executor) else None


def _queued_or_running(info: dict[str, Any], executor: str) -> bool:
    """Whether the job a note names will still execute its run: on Slurm, its state from Slurm (``sacct``, through
    submitit); a job of submitit's local executor is a live process of this host."""
    if info.get("executor") != executor:
        return False
    if executor == "slurm":
        import submitit

        state = str(submitit.SlurmJob(folder=info["folder"], job_id=info["job_id"]).state or "UNKNOWN")
        return state.split()[0].upper() in ACTIVE_SLURM_STATES
    job_id = str(info.get("job_id", ""))
    return info.get("host") == socket.gethostname() and job_id.isdigit() and _alive(int(job_id))


def dependency(job_ids: list[str], keep_going: bool) -> dict[str, Any]:
    """submitit's parameters that make a job wait for `job_ids` (``afterok``; ``afterany`` with `keep_going`)."""
    if not job_ids:
        return {}
    return {"slurm_additional_parameters": {"dependency": f"{'afterany' if keep_going else 'afterok'}:"
                                                            + ":".join(job_ids)}}


def run_on_cluster(runs: list[Run], out_dir: Path, cwd: Path, *, executor: str, options: dict[str, Any] | None = None,
                   force: bool = False, keep_going: bool = False, wait: bool = True, log=sys.stdout,
                   poll_s: float = 5.0, after_run=None) -> int:
    """Execute `runs` as jobs (:class:`RunJob`), notebook after notebook; returns the exit status as
    :func:`skinlib.run.schedule.run_all` does (0: every run done or skipped; without `wait`: every job submitted).

    Args:
        executor: ``slurm``, or ``submitit-local`` (jobs as local processes, submitit's ``LocalExecutor``).
        options: submitit parameters for every job (``slurm_partition``, ``slurm_account``, ``slurm_qos``, ...).
        wait: wait for each notebook's jobs before submitting the next notebook's; False (``--no-wait``, Slurm only):
            submit them all now, each notebook's jobs depending on the previous notebook's through Slurm.
        poll_s: seconds between looks at the jobs' states.
        after_run: called with each run whose job ended (waiting only; ``--smoke`` drops its checkpoints).
    """
    try:
        import submitit
    except ImportError as exc:
        raise RuntimeError("--executor needs submitit: pip install -e \".[cluster]\"") from exc
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if not wait and executor != "slurm":
        raise ValueError(f"--no-wait needs --executor slurm: Slurm holds the jobs and their order after run_all.py "
                         f"returns ({executor}'s jobs would end with it)")
    jobs_of = submitit.AutoExecutor(folder=paths.workspace() / "jobs" / "%j", cluster=EXECUTORS[executor])
    number = {id(run): i for i, run in enumerate(runs, 1)}
    failures: list[str] = []
    before: list[str] = []                              # without waiting: the job ids the next notebook's jobs wait for
    for stage in stages(runs):
        todo, attached = [], []
        for run in stage:
            prefix = f"[{number[id(run)]}/{len(runs)}] {run.name}"
            if not force and is_done(out_dir, run):
                _say(log, f"{prefix}: already done, and nothing it read changed since: skipped (--force to run again)")
            elif not force and (earlier := active_job(run, executor)) is not None:
                _say(log, f"{prefix}: its job {earlier['job_id']} (submitted at {earlier['submitted']}) is still queued "
                          f"or running: not submitted again, waited for; log {earlier['stdout']}")
                attached.append((prefix, run, earlier))
            else:
                todo.append((prefix, run))
        if not todo and not attached:
            continue
        # one submission per set of parameters: on Slurm, the runs of a notebook asking for the same go as one array
        submitted = []
        for params in _distinct(job_parameters(run, options or {}) for _, run in todo):
            try:
                jobs_of.update_parameters(**_merged(params, dependency(before, keep_going)))
            except NameError as exc:                        # submitit's answer to a name it does not take
                raise ValueError(f"--cluster-option: {exc}") from exc
            group = [(p, r) for p, r in todo if job_parameters(r, options or {}) == params]
            with jobs_of.batch():
                jobs = [jobs_of.submit(RunJob(run, out_dir, cwd, force)) for _, run in group]
            submitted += list(zip(group, jobs))
        for (prefix, run), job in submitted:
            _say(log, f"{prefix}: submitted as job {job.job_id}"
                      f"{f' (after {len(before)} earlier job(s))' if before else ''}, log {job.paths.stdout}")
            _note(run, job, executor)
        if not wait:
            before = [str(job.job_id) for _, job in submitted] + [info["job_id"] for _, _, info in attached]
            continue
        started = time.time()
        for (prefix, run), job in submitted:
            error = _outcome(job, poll_s)
            _ended(log, prefix, run, job.job_id, error, out_dir, f"{time.time() - started:.0f}s after submission",
                   failures, after_run)
        for prefix, run, info in attached:
            while _queued_or_running(info, executor):
                time.sleep(poll_s)
            error = None if is_done(out_dir, run) else (
                f"{run.name}: its job {info['job_id']} ended without finishing it: "
                f"{_read_record(record_path(out_dir, run)).get('error') or 'no error recorded'} (log: {info['stderr']})")
            _ended(log, prefix, run, info["job_id"], error, out_dir, "submitted earlier", failures, after_run)
        if failures and not keep_going:
            break
    if not wait:
        _say(log, "\nsubmitted; Slurm starts each notebook's jobs when the jobs before them have "
                  f"{'ended' if keep_going else 'succeeded'}. `run_all.py --list` (same options) shows each run's state; "
                  "once they are done, the same command without --no-wait skips them and exports the report.")
        return 0
    if failures:
        _say(log, f"\n{len(failures)} run(s) failed; results of the others are kept:\n  " + "\n  ".join(failures))
        return 1
    return 0


def _ended(log, prefix: str, run: Run, job_id: str, error: str | None, out_dir: Path, when: str,
           failures: list[str], after_run) -> None:
    if error:
        _say(log, f"{prefix}: FAILED (job {job_id})\n  {error}")
        failures.append(error)
    else:
        _say(log, f"{prefix}: done (job {job_id}, {when}) -> {out_dir / (run.name + '.ipynb')}")
    if after_run is not None:
        after_run(run)


def _merged(params: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`params` with `extra`'s submitit parameters; ``slurm_additional_parameters`` dictionaries are combined."""
    out = dict(params)
    for key, value in extra.items():
        out[key] = {**(out.get(key) or {}), **value} if isinstance(value, dict) else value
    return out


def _distinct(items) -> list[dict]:
    seen: list[dict] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _outcome(job, poll_s: float) -> str | None:
    """The run's error message (None: it succeeded), once its job has ended."""
    while not job.done():
        time.sleep(poll_s)
    try:
        return job.result()
    except Exception as exc:                                    # the job itself failed (killed, out of memory, ...)
        text = str(exc).strip().splitlines()
        return f"job {job.job_id} failed: {text[-1] if text else type(exc).__name__} (log: {job.paths.stderr})"
