"""Execute one run: papermill on the notebook, the run record beside the executed copy, whether a run is done, the
lines a notebook prints with :func:`skinlib.notebook.notice` echoed to the terminal, and the failing cell named.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import nbformat

from .. import estimate, provenance
from ..notebook import RESUME_TAG
from ..paths import NOTICES_ENV, owner, write_atomic
from . import forked_kernels
from .data import data_identity
from .lock import RunInProgress, RunLock
from .plan import Run
from .stopping import Stopped, quiet_manager, stop_kills_kernel

def record_path(out_dir: Path, run: Run) -> Path:
    return out_dir / f"{run.name}.run.json"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


LIBRARY = Path(__file__).resolve().parents[1]          # skinlib/


@functools.lru_cache(maxsize=4)
def library_version(root: Path = LIBRARY) -> str:
    """Hash of skinlib's source, without the machinery in ``skinlib/run/``: a fix in a metric or a model reruns
    every run, a change of the runner none. Computed once per process.

    Args:
        root: the package folder.
    """
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if relative.parts[0] == "run":
            continue
        h.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


#: set by jupyter_server for the kernels of a notebook (its path); ipykernel makes it ``__session__``
SESSION_ENV = "JPY_SESSION_NAME"


#: what a run's identity is made of, in the words ``--list`` uses when one changed
IDENTITY = {"notebook": "the notebook changed", "parameters": "its parameters changed",
            "data": "the dataset it reads changed (another folder's catalog, or other synthetic data)", "library": "skinlib's code changed"}


#: parameters that say how a run gets to its results, not what they are: not part of its identity
#: (``resume``: an exact resume ends with the weights of an uninterrupted run; ``run_all.py --force`` sets it False)
HOW_NOT_WHAT = frozenset({"resume"})


def identity(run: Run) -> dict[str, str]:
    """What a run is before it reads anything: its notebook's source, its parameters (but :data:`HOW_NOT_WHAT`),
    the dataset it reads (its catalog's fingerprint, :func:`skinlib.run.data.data_identity`: the same run on another
    copy of the data is another run), and the library's code (:func:`library_version`). What it reads (registry
    runs, the split, the dataset folder) is added when it ends (:mod:`skinlib.provenance`)."""
    what = {key: value for key, value in run.params.items() if key not in HOW_NOT_WHAT}
    return {"notebook": _sha(run.notebook.read_bytes()),
            "parameters": _sha(json.dumps(what, sort_keys=True, default=str).encode()),
            "data": data_identity(run),
            "library": library_version()}


def why_pending(out_dir: Path, run: Run) -> str | None:
    """Why `run` must execute (None when it is done): never run, failed, or what changed since it ran: its
    notebook, parameters, data or skinlib's code, or an input it read (a registry run, the split, the dataset).

    Args:
        out_dir: the folder of executed notebooks and run records (``outputs/<profile>``).
        run: the run.
    """
    record = record_path(out_dir, run)
    if not record.is_file():
        return "not run yet"
    if not (out_dir / f"{run.name}.ipynb").is_file():
        return "its executed notebook is missing"
    info = _read_record(record)
    status = info.get("status")
    if status != "ok":
        return {"failed": "its last run failed", "running": "its last run did not finish"}.get(
            status, "its run record has no status")
    old = info.get("identity")
    if not isinstance(old, dict):
        return "recorded by an older skinlib"
    now = identity(run)
    reasons = [words for key, words in IDENTITY.items() if old.get(key) != now[key]]
    reads = info.get("reads") or {}
    current = provenance.versions(list(reads), reader=run.notebook.stem)
    changed = [provenance.describe(key) for key, version in reads.items() if current[key] != version]
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        reasons.append(f"what it read changed since: {shown}")
    return "; ".join(reasons) or None


def is_done(out_dir: Path, run: Run) -> bool:
    """True when this exact run already succeeded and nothing it read has changed since (:func:`why_pending`)."""
    return why_pending(out_dir, run) is None


def _write_record(out_dir: Path, run: Run, status: str, seconds: float, error: str = "", started: float = 0.0,
                  reads: dict[str, str] | None = None, ident: dict[str, str] | None = None) -> None:
    info = {"notebook": run.notebook.name, "run": run.name, "params": run.params, "identity": ident or identity(run),
            "reads": reads or {}, "status": status, "seconds": round(seconds, 1), "error": error, "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started or time.time())),
            "finished": "" if status == "running" else time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomic(record_path(out_dir, run), json.dumps(info, indent=2, default=str))


def interrupted_outputs(out_dir: Path, locks: Path | None = None) -> list[str]:
    """Remove executed notebooks of runs that were killed and whose run is not locked by a live process; returns
    what was removed.

    Only what a run record names is touched: a run writes its record (``<run>.run.json``, status ``running``)
    before papermill writes ``<run>.ipynb``, so an executed notebook whose record still says ``running`` is a
    killed run's. A notebook without such a record is never removed, whatever its name: skinlib did not write it.

    Args:
        out_dir: the folder of executed notebooks and run records (``outputs/<profile>``).
        locks: the folder of run locks (default: ``<workspace>/locks``).
    """
    done = []
    if not out_dir.is_dir():
        return done
    for record in sorted(out_dir.glob("*.run.json")):
        name = record.name[: -len(".run.json")]
        info = _read_record(record)
        if info.get("run") != name or info.get("status") != "running":
            continue                                            # finished, or not a record skinlib wrote
        lock = RunLock(name, locks)
        try:
            lock.acquire()
        except RunInProgress:
            continue                                            # being executed right now
        notebook = out_dir / f"{name}.ipynb"
        try:
            removed = notebook.is_file()
            notebook.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
        finally:
            lock.release()
        if removed:
            done.append(f"removed the executed notebook {notebook}: its run (pid {info.get('pid', '?')}, "
                        f"started at {info.get('started', '?')}) was interrupted")
    return done


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


class _Notices:
    """Echoes the lines a notebook prints with :func:`skinlib.notebook.notice` to the runner's log, as they come."""

    def __init__(self, path: Path, prefix: str, log, export: bool = True):
        self.path, self.prefix, self.log, self.export = path, prefix, log, export   # export: set $SKINLIB_NOTICES here
        self.path.unlink(missing_ok=True)
        self.offset, self.stop = 0, threading.Event()
        self.resume: str | None = None                          # where the run would resume (notebook.resume_point)
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def _drain(self) -> None:
        try:
            with open(self.path) as fh:
                fh.seek(self.offset)
                text = fh.read()
        except FileNotFoundError:
            return
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete.encode())
        for line in complete.splitlines():
            if line.startswith(RESUME_TAG):
                self.resume = line[len(RESUME_TAG):]             # said only if Ctrl-C stops the run
            else:
                _say(self.log, f"{self.prefix}: {line}")

    def _follow(self) -> None:
        while not self.stop.wait(0.3):
            self._drain()

    def __enter__(self) -> "_Notices":
        if self.export:
            self.previous = os.environ.get(NOTICES_ENV)
            os.environ[NOTICES_ENV] = str(self.path)             # inherited by the kernel papermill starts
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self._drain()
        self.path.unlink(missing_ok=True)
        if not self.export:
            return
        if self.previous is None:
            os.environ.pop(NOTICES_ENV, None)
        else:
            os.environ[NOTICES_ENV] = self.previous


_LOG_LOCK = threading.Lock()


def _say(log, text: str) -> None:
    """One whole line to the runner's log, never interleaved with another thread's."""
    with _LOG_LOCK:
        log.write(text + "\n")
        log.flush()


#: passed to the kernel: no "Kernel is running over TCP without encryption" warning for every notebook
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]


def execute(run: Run, out_dir: Path, cwd: Path, progress: bool = True, log=sys.stdout, prefix: str = "") -> str | None:
    """Run one notebook with papermill; None on success, else a message naming the failing cell.

    Args:
        run: the run.
        out_dir: where the executed notebook and the run record go.
        cwd: the kernel's working folder.
        progress: show papermill's per-cell progress bar.
        log: where lines printed by :func:`skinlib.notebook.notice` in the notebook are echoed.
        prefix: put before each echoed line (e.g. ``[2/5] 05_transfer_learning``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    notices = _Notices(_notices_path(out_dir, run), prefix or run.name, log)
    try:
        with notices:
            return _execute(run, out_dir, cwd, progress)
    except KeyboardInterrupt:
        raise Stopped(run.name, notices.resume) from None


def estimate_file(out_dir: Path, run: Run) -> Path:
    """Where the fits of `run` note their estimates (``run_all.py --estimate``, :mod:`skinlib.estimate`)."""
    return out_dir / f"{run.name}.estimate.jsonl"


def _notices_path(out_dir: Path, run: Run) -> Path:
    return out_dir / f".{run.name}.notices.tmp-{owner()}"


def _execute(run: Run, out_dir: Path, cwd: Path, progress: bool, worker: bool = False) -> str | None:
    """:func:`execute` without echoing notices: papermill, the run record, the failing cell. Ctrl-C kills the
    kernel and raises ``KeyboardInterrupt`` (:func:`skinlib.run.stopping.stop_kills_kernel`; `worker`: in a
    worker process of ``--jobs``)."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{run.name}.ipynb"
    started = time.time()
    ident = identity(run)                       # as it starts: an edit made while it runs is seen the next time
    _write_record(out_dir, run, "running", 0.0, started=started, ident=ident)
    reads = out_dir / f".{run.name}.reads.tmp-{owner()}"
    reads.unlink(missing_ok=True)
    previous = {var: os.environ.get(var) for var in (provenance.READS_ENV, provenance.WRITER_ENV, SESSION_ENV,
                                                     estimate.FILE_ENV)}
    os.environ.update({provenance.READS_ENV: str(reads), provenance.WRITER_ENV: run.notebook.stem})  # the kernel's
    if estimate.steps() is not None:                            # run_all.py --estimate: the fits note their cost
        estimate_file(out_dir, run).unlink(missing_ok=True)
        os.environ[estimate.FILE_ENV] = str(estimate_file(out_dir, run))
    os.environ.pop(SESSION_ENV, None)          # run_all.py started from a notebook: its kernels are not that notebook
    try:
        with stop_kills_kernel(worker):
            pm.execute_notebook(str(run.notebook), str(output), parameters=run.params, cwd=str(cwd),
                                progress_bar=progress, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                                kernel_manager_class=quiet_manager(forked_kernels.manager_class()))
        read = provenance.noted(reads)
    except pm.PapermillExecutionError as exc:
        cell = _failing_cell(output, exc.exec_count)
        message = (f"{run.notebook.name} failed in cell {cell} (execution count {exc.exec_count}): "
                   f"{exc.ename}: {exc.evalue}\n    executed notebook with the traceback: {output}")
        _write_record(out_dir, run, "failed", time.time() - started, message, started, ident=ident)
        return message
    except Exception as exc:  # kernel died, notebook unreadable, ...
        message = f"{run.notebook.name} could not be executed: {type(exc).__name__}: {exc}"
        _write_record(out_dir, run, "failed", time.time() - started, message, started, ident=ident)
        return message
    except BaseException:                                       # Ctrl-C, SIGTERM: say so, then stop
        _write_record(out_dir, run, "failed", time.time() - started, "interrupted", started, ident=ident)
        raise
    finally:
        reads.unlink(missing_ok=True)
        for var, value in previous.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    _write_record(out_dir, run, "ok", time.time() - started, started=started, reads=read, ident=ident)
    return None


def _failing_cell(output: Path, exec_count: int | None) -> str:
    """Position (1-based, counted in the source notebook) and first line of the cell that failed."""
    try:
        nb = nbformat.read(output, as_version=4)
    except Exception:
        return "?"
    added = {"injected-parameters", "papermill-error-cell-tag"}     # cells papermill inserts
    position = 0
    for cell in nb.cells:
        if added & set(cell.metadata.get("tags", [])):
            continue
        position += 1
        if cell.cell_type == "code" and cell.get("execution_count") == exec_count:
            first = next((ln for ln in cell.source.splitlines() if ln.strip() and not ln.startswith("#")), "")
            return f"{position} ('{first[:60]}')"
    return "?"


