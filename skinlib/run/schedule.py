"""Schedule runs: in order, a notebook's runs side by side (``--jobs``) in worker processes, each holding its run
lock; skip what is done; say how each run went.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

from .. import leftovers
from ..paths import NOTICES_ENV
from .lock import RunInProgress, RunLock
from .execute import _execute, _Notices, _notices_path, _say, _write_record, execute, gpu_available, interrupted_outputs, is_done
from .plan import Run
from .stopping import STOPPED_STATUS, Stopped, hush_killed_kernels, stopped_line

#: thread-pool sizes of the numeric libraries, set for each kernel of runs executed side by side (``jobs`` > 1)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: the GPUs a kernel sees (CUDA numbers them from 0 within the list): set per run when GPUs are shared out
DEVICES_VARIABLE = "CUDA_VISIBLE_DEVICES"


def visible_gpus() -> list[str]:
    """The GPUs runs may use: ``$CUDA_VISIBLE_DEVICES`` where it is set (its ids, as given), else the indices
    ``nvidia-smi`` lists, else none. Found without importing torch (``run_all.py --list`` stays quick)."""
    if DEVICES_VARIABLE in os.environ:
        return [d.strip() for d in os.environ[DEVICES_VARIABLE].split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []


class DevicePool:
    """GPUs shared out among runs executed side by side: each run takes one device, the least used (its own as
    long as no more runs execute at once than there are devices), and gives it back when it ends.

    Args:
        devices: GPU ids (as ``CUDA_VISIBLE_DEVICES`` takes them); empty: no device is assigned.
    """

    def __init__(self, devices: list[str]):
        self.use = {device: 0 for device in devices}
        self.lock = threading.Lock()

    def take(self) -> str | None:
        with self.lock:
            if not self.use:
                return None
            device = min(self.use, key=lambda d: (self.use[d], list(self.use).index(d)))
            self.use[device] += 1
            return device

    def give(self, device: str | None) -> None:
        if device is not None:
            with self.lock:
                self.use[device] -= 1


def cores() -> int:
    """CPU cores this process may use (its affinity where the system tells, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:                                      # macOS, Windows
        return os.cpu_count() or 1


def stages(runs: list[Run]) -> list[list[Run]]:
    """The runs cut into stages: consecutive runs of one notebook. Runs of one stage depend on none of each other
    (each writes its own registry run); a stage may depend on every earlier one (08-10 read the registry, 03-07
    read 02's split), so it starts only when they are finished."""
    groups: list[list[Run]] = []
    for run in runs:
        if groups and groups[-1][0].notebook == run.notebook:
            groups[-1].append(run)
        else:
            groups.append([run])
    return groups


def run_all(runs: list[Run], out_dir: Path, cwd: Path, *, force: bool = False, keep_going: bool = False,
            progress: bool = True, wait: bool = False, log=sys.stdout,
            after_run: Callable[[Run], None] | None = None, jobs: int = 1, gpus: list[str] | None = None) -> int:
    """Execute runs in order; returns the exit status (0: all done or skipped, 1: a run failed, 130: stopped by
    Ctrl-C, saying in one line which runs were stopped and where each will resume, :mod:`skinlib.run.stopping`).

    `after_run(run)` is called after each run that executed (finished or failed), e.g. to free disk space.

    First removes what killed runs left behind (:func:`skinlib.leftovers.sweep`, :func:`interrupted_outputs`),
    saying so. Each run holds its lock (:class:`skinlib.run.lock.RunLock`) while it executes: a run another
    process is executing fails with a message naming that process, or is waited for (`wait`).

    Args:
        jobs: runs of one notebook (a stage, :func:`stages`) executed side by side, each in a worker process
            whose kernel gets ``cores() // jobs`` threads (:data:`THREAD_VARIABLES`, unless already set); a
            stage starts when the previous one is finished. A stage of one run, or ``jobs=1``, executes in
            this process with every core. Per-cell progress bars are shown only for runs executed alone.
            After a failure without `keep_going`, runs already executing finish and no other run starts.
        gpus: GPU ids runs may use (``run_all.py --gpus 0,2``; None: :func:`visible_gpus`). Runs executed side by
            side get one each (:class:`DevicePool`, through ``CUDA_VISIBLE_DEVICES``); a run executed alone sees
            them all.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    for line in leftovers.sweep() + interrupted_outputs(out_dir):
        _say(log, f"cleanup: {line}")
    state = _Progress(len(runs), keep_going)
    workers = _Workers(jobs) if jobs > 1 and any(len(stage) > 1 for stage in stages(runs)) else None
    number = {id(run): i for i, run in enumerate(runs, 1)}
    devices = DevicePool(visible_gpus() if gpus is None else list(gpus))
    try:
        for stage in stages(runs):
            if state.stopped:
                break
            width = min(jobs, len(stage))
            if width == 1:
                alone = {DEVICES_VARIABLE: ",".join(devices.use)} if gpus is not None else {}
                for run in stage:
                    if state.stopped:
                        break
                    _run_one(run, number[id(run)], state, out_dir, force, wait, log, after_run,
                             lambda r, prefix: _with_environment(alone, execute, r, out_dir, cwd, progress, log=log,
                                                                 prefix=prefix))
                continue
            limits = {var: str(max(1, cores() // width)) for var in THREAD_VARIABLES if var not in os.environ}

            def side_by_side(r: Run, prefix: str) -> str | None:
                device = devices.take()
                try:
                    if device is None:
                        return workers.execute(r, out_dir, cwd, limits, log, prefix)
                    _say(log, f"{prefix}: on GPU {device}")
                    return workers.execute(r, out_dir, cwd, {**limits, DEVICES_VARIABLE: device}, log, prefix)
                finally:
                    devices.give(device)

            with ThreadPoolExecutor(width) as slots:
                for done in [slots.submit(_run_one, run, number[id(run)], state, out_dir, force, wait, log,
                                          after_run, side_by_side) for run in stage]:
                    done.result()
    except KeyboardInterrupt:                       # Ctrl-C: the runs' kernels are killed; one line, no traceback
        state.stopped = True
        hush_killed_kernels()
        if workers is not None:
            workers.close()
            workers = None
        _say(log, stopped_line(state.interrupted))
        return STOPPED_STATUS
    finally:
        if workers is not None:
            workers.close()
    if state.failures:
        _say(log, f"\n{len(state.failures)} run(s) failed; results of the others are kept:\n  "
             + "\n  ".join(state.failures))
        return 1
    return 0


def _with_environment(variables: dict[str, str], function, *args, **kwargs):
    """`function(*args, **kwargs)` with `variables` set in this process's environment (which a kernel started
    meanwhile inherits), restored afterwards."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        return function(*args, **kwargs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _Progress:
    """What :func:`run_all` shares between the runs it executes side by side."""

    def __init__(self, total: int, keep_going: bool):
        self.total, self.keep_going = total, keep_going
        self.failures: list[str] = []
        self.interrupted: list[Stopped] = []                    # runs Ctrl-C stopped
        self.stopped = False                                    # a run failed without keep_going: start no other
        self.has_gpu: bool | None = None
        self.lock = threading.Lock()                            # guards the fields above and after_run

    def failed(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)
            self.stopped = self.stopped or not self.keep_going

    def gpu(self) -> bool:
        with self.lock:
            if self.has_gpu is None:
                self.has_gpu = gpu_available()
            return self.has_gpu


def _run_one(run: Run, i: int, state: _Progress, out_dir: Path, force: bool, wait: bool, log,
             after_run: Callable[[Run], None] | None, executor: Callable[[Run, str], str | None]) -> None:
    """One run of :func:`run_all`: skip it when done, take its lock, execute it with `executor`, say how it went."""
    prefix = f"[{i}/{state.total}] {run.name}"
    if state.stopped:
        return
    if not force and is_done(out_dir, run):
        _say(log, f"{prefix}: already done, and nothing it read changed since: skipped (--force to run again)")
        return
    if run.gpu == "required" and not state.gpu():
        _say(log, f"{prefix}: SKIPPED, this notebook needs a GPU and none is available")
        return
    lock = RunLock(run.name)
    try:
        if wait and not _try(lock):
            _say(log, f"{prefix}: waiting, {_holder(lock)}")
            lock.acquire(wait=True)
        elif not wait:
            lock.acquire()
    except RunInProgress as exc:
        _say(log, f"{prefix}: NOT RUN, {exc}")
        state.failed(str(exc))
        return
    try:
        if not force and is_done(out_dir, run):                    # finished by the process we waited for
            _say(log, f"{prefix}: done by another process meanwhile, skipped")
            return
        _say(log, f"{prefix}: running ...")
        started = time.time()
        error = executor(run, prefix)
    except Stopped as stopped:
        with state.lock:
            state.interrupted.append(stopped)
        raise
    finally:
        lock.release()
    if after_run is not None:
        with state.lock:
            after_run(run)
    if error:
        _say(log, f"{prefix}: FAILED after {time.time() - started:.0f}s\n  {error}")
        state.failed(error)
    else:
        _say(log, f"{prefix}: done in {time.time() - started:.0f}s -> {out_dir / (run.name + '.ipynb')}")


class _Workers:
    """Worker processes executing runs side by side (:func:`run_all` with ``jobs`` > 1). Each run's kernel
    inherits its worker's environment: the notices file of that run and the thread limits of its stage."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        self.lock = threading.Lock()
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: this process has threads (the runs' slots, the notice followers)
        # Ctrl-C reaches the workers too: ignored between runs, it stops the run a worker executes (_execute)
        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))

    def execute(self, run: Run, out_dir: Path, cwd: Path, limits: dict[str, str], log, prefix: str) -> str | None:
        """:func:`execute` in a worker process; notices are echoed here as they come."""
        out_dir.mkdir(parents=True, exist_ok=True)
        notices = _notices_path(out_dir, run)
        follower = _Notices(notices, prefix, log, export=False)
        try:
            with follower:
                pool = self.pool
                try:
                    return pool.submit(_execute_in_worker, run, out_dir, cwd, notices, limits).result()
                except BrokenProcessPool as exc:                  # a worker died (killed, out of memory)
                    with self.lock:
                        if self.pool is pool:                     # not replaced yet by the other run it broke
                            pool.shutdown(wait=False, cancel_futures=True)
                            self.pool = self._start()
                    message = f"{run.notebook.name} could not be executed: its worker process died ({exc})"
                    _write_record(out_dir, run, "failed", 0.0, message)
                    return message
        except KeyboardInterrupt:                                 # the worker's run was stopped by Ctrl-C
            raise Stopped(run.name, follower.resume) from None

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _execute_in_worker(run: Run, out_dir: Path, cwd: Path, notices: Path, limits: dict[str, str]) -> str | None:
    """In a worker process: :func:`_execute` with the run's notices file and thread limits in the environment
    its kernel inherits (torch and the BLAS libraries read them when they start)."""
    os.environ[NOTICES_ENV] = str(notices)
    os.environ.update(limits)
    return _execute(run, out_dir, cwd, progress=False, worker=True)


def in_progress(run: Run) -> str | None:
    """"in progress (pid N, started at T)" when another process is executing `run` now, else None."""
    lock = RunLock(run.name)
    if _try(lock):
        lock.release()
        return None
    info = lock.holder()
    return f"in progress (pid {info.get('pid', '?')}, started at {info.get('started', '?')})"


def _try(lock: RunLock) -> bool:
    try:
        lock.acquire()
    except RunInProgress:
        return False
    return True


def _holder(lock: RunLock) -> str:
    info = lock.holder()
    return f"run {lock.name} is in progress (pid {info.get('pid', '?')}, started at {info.get('started', '?')})"
