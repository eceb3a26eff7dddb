"""The engine of ``run_all.py``: find notebooks, resolve and validate parameters, execute, skip, report.

Validation checks names, types, and values against :mod:`skinlib.knobs` before anything runs. Execution
first clears what killed runs left behind (:mod:`skinlib.stale`), holds a lock per run, and echoes the
lines a notebook prints with :func:`skinlib.notebook.notice` to the terminal.

Parameter files live in ``params/<profile>/<notebook stem>.yaml``. A file is a mapping of parameter
names to values; it may add ``runs:``, a list of mappings each with a ``name`` and its own overrides,
to execute the notebook several times (e.g. once per backbone); a run's ``name`` also becomes the
notebook's ``run_name`` parameter, when it has one and the run does not set it::

    image_size: 224
    runs:
      - name: resnet50-rgb
        backbone: resnet50
      - name: resnet50-gray
        backbone: resnet50
        grayscale: true
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import multiprocessing
import os
import re
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat
import yaml

from . import knobs, stale
from .kernels import AsyncForkedKernelManager
from .paths import NOTICES_ENV, owner, write_atomic

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
RESERVED = {"runs", "name"}


class ParameterError(ValueError):
    """A parameter file that does not fit its notebook; the message names file, key and fix."""


@dataclass
class Parameter:
    """One entry of a notebook's ``parameters`` cell."""

    name: str
    default: Any
    source: str          # the default as written
    help: str


@dataclass
class Run:
    """One execution of one notebook with fully resolved parameters."""

    notebook: Path
    name: str                                   # e.g. "05_transfer_learning--resnet50-rgb"
    params: dict[str, Any] = field(default_factory=dict)   # overrides given to papermill
    gpu: str = "none"

    def digest(self) -> str:
        """Hash of the notebook source and the parameters: equal digests mean identical runs."""
        h = hashlib.sha256(self.notebook.read_bytes())
        h.update(json.dumps(self.params, sort_keys=True, default=str).encode())
        h.update(os.environ.get("SKINLIB_DATA", "").encode())      # the data a run without data_dir reads
        return h.hexdigest()[:16]


def find_notebooks(folder: Path) -> list[Path]:
    """Numbered notebooks (``NN_topic.ipynb``) in order."""
    return sorted(p for p in Path(folder).iterdir() if NOTEBOOK_PATTERN.match(p.name))


def notebook_parameters(path: Path) -> dict[str, Parameter]:
    """The parameters cell of a notebook: ``name = value  # help`` per line."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path.name} must have exactly one cell tagged 'parameters' (found {len(cells)})")
    params = {}
    for lineno, line in enumerate(cells[0].source.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_]\w*)\s*=\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if not match:
            raise ParameterError(f"{path.name}, parameters cell line {lineno}: expected 'name = value  # help'")
        name, source, help_ = match.groups()
        try:
            default = ast.literal_eval(source)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(f"{path.name}, parameter {name!r}: default {source!r} is not a literal") from exc
        params[name] = Parameter(name, default, source, help_ or "")
    return params


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_values(values: dict[str, Any], params: dict[str, Parameter], where: str, notebook: str | None = None) -> None:
    """Every key must be a parameter of the notebook, with a value of the default's type that its knob allows.

    Args:
        values: parameter name -> value, as given (a parameter file, a run of it, the command line).
        params: the notebook's parameters (:func:`notebook_parameters`).
        where: how to name the origin of `values` in messages (file and run, or the option).
        notebook: the notebook's name, for its own rules (:data:`skinlib.knobs.NOTEBOOK_KNOBS`).

    Raises:
        ParameterError: listing every unknown name, wrongly typed value and value outside its knob's range.
    """
    errors = []
    for key, value in values.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"valid names: {', '.join(params)}"
            errors.append(f"{where}: unknown parameter {key!r}; {hint}")
        elif not _type_ok(params[key].default, value):
            p = params[key]
            hint = (" (a number in quotes is text: write it without quotes)"
                    if isinstance(value, str) and isinstance(p.default, (int, float)) and _looks_numeric(value) else "")
            errors.append(f"{where}: parameter {key!r} should be like its default {p.source} "
                          f"({type(p.default).__name__}), got {value!r} ({type(value).__name__}){hint}")
        else:
            problem = knobs.problem(key, value, notebook)
            if problem:
                errors.append(f"{where}: parameter {problem}")
    if errors:
        raise ParameterError("\n".join(errors))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-4`` and ``5e3`` as the floats they mean (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """A value written as in a parameter file (``0.001``, ``1e-4``, ``[0.7, 0.15, 0.15]``, ``true``, ``null``)."""
    return yaml.load(text, Loader=_Loader)


def load_params_file(path: Path) -> dict[str, Any]:
    """A parameter file as a mapping (empty file: no overrides)."""
    try:
        data = parse_value(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values, got {type(data).__name__}")
    return data


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` arguments as a mapping, each value read as YAML (``0.001``, ``false``, ``[1, 2]``)."""
    sets: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--set {item!r}: expected key=value, e.g. --set max_epochs=2")
        try:
            sets[key.strip()] = parse_value(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ParameterError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return sets


def check_sets(sets: dict[str, Any], notebooks: list[Path]) -> None:
    """``--set`` keys must be a parameter of at least one notebook, with a value of that parameter's type."""
    every = {nb: notebook_parameters(nb) for nb in notebooks}
    names = sorted({name for params in every.values() for name in params})
    errors = []
    for key, value in sets.items():
        owners = [nb for nb, params in every.items() if key in params]
        if not owners:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            errors.append(f"--set: unknown parameter {key!r}; "
                          + (f"did you mean {close[0]!r}?" if close else f"no notebook has it (parameters: {', '.join(names)})"))
            continue
        for nb in owners:
            try:
                check_values({key: value}, every[nb], f"--set (notebook {nb.name})", nb.name)
            except ParameterError as exc:
                errors.append(str(exc))
    if errors:
        raise ParameterError("\n".join(errors))


#: What ``--smoke`` shrinks, for every notebook that has the parameter: one epoch of small batches, and 09's
#: Grad-CAM figures and faithfulness test on a few images (each model is still explained and tested). The image
#: count of the data is shrunk inside skinlib (:func:`skinlib.experiment.smoke_subset`); architectures, image sizes,
#: heads and augmentation stay as the profile sets them.
SMOKE_LIMITS = {"max_epochs": 1, "batch_size": 4, "per_class": 1, "n_faithfulness": 2}


def smoke(runs: list[Run]) -> list[Run]:
    """The same runs with :data:`SMOKE_LIMITS` applied (never raising a value the run set lower)."""
    for run in runs:
        params = notebook_parameters(run.notebook)
        for key, limit in SMOKE_LIMITS.items():
            if key in params:
                value = run.params.get(key, params[key].default)
                run.params[key] = limit if value is None else min(value, limit)
    return runs


def plan(notebooks_dir: Path, params_dir: Path | None, profile: str,
         overrides: dict[str, Any] | None = None, sets: dict[str, Any] | None = None) -> list[Run]:
    """Every run of every notebook for a profile, with parameters validated; nothing is executed.

    Args:
        overrides: values applied to every notebook that has the parameter (``--data``), checked like the files.
        sets: ``--set`` values: applied like `overrides`, after checking that each key is a parameter of some
            notebook (an unknown key gets the closest name).

    Raises:
        ParameterError: listing every unknown key or wrongly typed value, by file.
    """
    notebooks = find_notebooks(notebooks_dir)
    if sets:
        check_sets(sets, notebooks)
        overrides = {**(overrides or {}), **sets}
    profile_dir = params_dir / profile if params_dir is not None else None
    if profile != "default" and (profile_dir is None or not profile_dir.is_dir()):
        known = sorted(p.name for p in params_dir.iterdir() if p.is_dir()) if params_dir and params_dir.is_dir() else []
        raise ParameterError(f"no profile {profile!r}: {profile_dir} does not exist (profiles: default, {', '.join(known)})")
    stems = {nb.stem for nb in notebooks}
    errors, runs = [], []
    if profile_dir is not None and profile_dir.is_dir():
        for f in sorted(profile_dir.glob("*.y*ml")):
            if f.stem not in stems:
                close = difflib.get_close_matches(f.stem, sorted(stems), n=1)
                errors.append(f"{f}: no notebook {f.stem}.ipynb" + (f"; did you mean {close[0]}.yaml?" if close else ""))
    for nb_path in notebooks:
        params = notebook_parameters(nb_path)
        gpu = nbformat.read(nb_path, as_version=4).metadata.get("skinlib", {}).get("gpu", "none")
        file = profile_dir / f"{nb_path.stem}.yaml" if profile_dir is not None else None
        data = load_params_file(file) if file is not None and file.is_file() else {}
        where = str(file) if file is not None and file.is_file() else nb_path.name
        shared = {k: v for k, v in data.items() if k not in RESERVED}
        variants = data.get("runs") or [{}]
        if not isinstance(variants, list):
            errors.append(f"{where}: 'runs' must be a list of mappings")
            continue
        try:
            check_values(shared, params, where, nb_path.name)
        except ParameterError as exc:
            errors.append(str(exc))
        for i, variant in enumerate(variants):
            if not isinstance(variant, dict) or (len(variants) > 1 and "name" not in variant):
                errors.append(f"{where}: runs[{i}] must be a mapping with a 'name'")
                continue
            own = {k: v for k, v in variant.items() if k != "name"}
            label = f"{where} runs[{i}]" + (f" ({variant['name']})" if variant.get("name") else "")
            try:
                check_values(own, params, label, nb_path.name)
            except ParameterError as exc:
                errors.append(str(exc))
            resolved = {**shared, **own}
            if variant.get("name") and "run_name" in params and "run_name" not in resolved:
                resolved["run_name"] = variant["name"]          # a run's results are filed under its name
            given = {key: value for key, value in (overrides or {}).items() if key in params}
            try:
                check_values(given, params, f"{nb_path.name}, from the command line", nb_path.name)
            except ParameterError as exc:
                if str(exc) not in errors:
                    errors.append(str(exc))
            resolved.update(given)
            name = nb_path.stem + (f"--{variant['name']}" if variant.get("name") else "")
            runs.append(Run(nb_path, name, resolved, gpu))
    if errors:
        raise ParameterError("parameter files do not fit their notebooks:\n  " + "\n  ".join(errors))
    return runs


def select(runs: list[Run], only: list[str] | None = None, start: str | None = None) -> list[Run]:
    """Runs picked by ``--only`` (numbers or names, e.g. ``01`` or ``02_splits``) and ``--from``."""
    def matches(run: Run, key: str) -> bool:
        return run.notebook.stem == key or run.notebook.stem.startswith(f"{key}_") or run.name == key

    for key in (only or []) + ([start] if start else []):
        if not any(matches(r, key) for r in runs):
            raise ParameterError(f"no notebook or run matches {key!r}; see --list")
    if only:
        runs = [r for r in runs if any(matches(r, k) for k in only)]
    if start:
        first = next(i for i, r in enumerate(runs) if matches(r, start))
        runs = runs[first:]
    return runs


def record_path(out_dir: Path, run: Run) -> Path:
    return out_dir / f"{run.name}.run.json"


def _read_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def is_done(out_dir: Path, run: Run) -> bool:
    """True when this exact run (same notebook source, same parameters) already succeeded."""
    record = record_path(out_dir, run)
    if not record.is_file() or not (out_dir / f"{run.name}.ipynb").is_file():
        return False
    info = _read_record(record)
    return info.get("status") == "ok" and info.get("digest") == run.digest()


def _write_record(out_dir: Path, run: Run, status: str, seconds: float, error: str = "", started: float = 0.0) -> None:
    info = {"notebook": run.notebook.name, "run": run.name, "params": run.params, "digest": run.digest(),
            "status": status, "seconds": round(seconds, 1), "error": error, "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started or time.time())),
            "finished": "" if status == "running" else time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomic(record_path(out_dir, run), json.dumps(info, indent=2, default=str))


def interrupted_outputs(out_dir: Path, locks: Path | None = None) -> list[str]:
    """Remove executed notebooks of runs that were killed (record still ``running``, or no record) and whose
    run is not locked by a live process; returns what was removed.

    Args:
        out_dir: the folder of executed notebooks and run records (``outputs/<profile>``).
        locks: the folder of run locks (default: ``<workspace>/locks``).
    """
    done = []
    if not out_dir.is_dir():
        return done
    for notebook in sorted(out_dir.glob("*.ipynb")):
        name = notebook.stem
        record = out_dir / f"{name}.run.json"
        info = _read_record(record) if record.is_file() else {}
        if record.is_file() and info.get("status") != "running":
            continue
        lock = stale.RunLock(name, locks)
        try:
            lock.acquire()
        except stale.RunInProgress:
            continue                                            # being executed right now
        try:
            notebook.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
        finally:
            lock.release()
        why = (f"its run (pid {info.get('pid', '?')}, started at {info.get('started', '?')}) was interrupted"
               if info else "it has no run record (its run was interrupted)")
        done.append(f"removed the executed notebook {notebook}: {why}")
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
    with _Notices(_notices_path(out_dir, run), prefix or run.name, log):
        return _execute(run, out_dir, cwd, progress)


def _notices_path(out_dir: Path, run: Run) -> Path:
    return out_dir / f".{run.name}.notices.tmp-{owner()}"


def _execute(run: Run, out_dir: Path, cwd: Path, progress: bool) -> str | None:
    """:func:`execute` without echoing notices: papermill, the run record, the failing cell."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{run.name}.ipynb"
    started = time.time()
    _write_record(out_dir, run, "running", 0.0, started=started)
    try:
        pm.execute_notebook(str(run.notebook), str(output), parameters=run.params, cwd=str(cwd),
                            progress_bar=progress, kernel_name="python3", extra_arguments=KERNEL_ARGUMENTS,
                            kernel_manager_class=AsyncForkedKernelManager)
    except pm.PapermillExecutionError as exc:
        cell = _failing_cell(output, exc.exec_count)
        message = (f"{run.notebook.name} failed in cell {cell} (execution count {exc.exec_count}): "
                   f"{exc.ename}: {exc.evalue}\n    executed notebook with the traceback: {output}")
        _write_record(out_dir, run, "failed", time.time() - started, message, started)
        return message
    except Exception as exc:  # kernel died, notebook unreadable, ...
        message = f"{run.notebook.name} could not be executed: {type(exc).__name__}: {exc}"
        _write_record(out_dir, run, "failed", time.time() - started, message, started)
        return message
    except BaseException:                                       # Ctrl-C, SIGTERM: say so, then stop
        _write_record(out_dir, run, "failed", time.time() - started, "interrupted", started)
        raise
    _write_record(out_dir, run, "ok", time.time() - started, started=started)
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


#: thread-pool sizes of the numeric libraries, set for each kernel of runs executed side by side (``jobs`` > 1)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


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
            after_run: Callable[[Run], None] | None = None, jobs: int = 1) -> int:
    """Execute runs in order; returns the exit status (0: all done or skipped, 1: a run failed).

    `after_run(run)` is called after each run that executed (finished or failed), e.g. to free disk space.

    First removes what killed runs left behind (:func:`skinlib.stale.sweep`, :func:`interrupted_outputs`),
    saying so. Each run holds its lock (:class:`skinlib.stale.RunLock`) while it executes: a run another
    process is executing fails with a message naming that process, or is waited for (`wait`).

    Args:
        jobs: runs of one notebook (a stage, :func:`stages`) executed side by side, each in a worker process
            whose kernel gets ``cores() // jobs`` threads (:data:`THREAD_VARIABLES`, unless already set); a
            stage starts when the previous one is finished. A stage of one run, or ``jobs=1``, executes in
            this process with every core. Per-cell progress bars are shown only for runs executed alone.
            After a failure without `keep_going`, runs already executing finish and no other run starts.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    for line in stale.sweep() + interrupted_outputs(out_dir):
        _say(log, f"cleanup: {line}")
    state = _Progress(len(runs), keep_going)
    workers = _Workers(jobs) if jobs > 1 and any(len(stage) > 1 for stage in stages(runs)) else None
    number = {id(run): i for i, run in enumerate(runs, 1)}
    try:
        for stage in stages(runs):
            if state.stopped:
                break
            width = min(jobs, len(stage))
            if width == 1:
                for run in stage:
                    if state.stopped:
                        break
                    _run_one(run, number[id(run)], state, out_dir, force, wait, log, after_run,
                             lambda r, prefix: execute(r, out_dir, cwd, progress, log=log, prefix=prefix))
                continue
            limits = {var: str(max(1, cores() // width)) for var in THREAD_VARIABLES if var not in os.environ}

            def side_by_side(r: Run, prefix: str) -> str | None:
                return workers.execute(r, out_dir, cwd, limits, log, prefix)

            with ThreadPoolExecutor(width) as slots:
                for done in [slots.submit(_run_one, run, number[id(run)], state, out_dir, force, wait, log,
                                          after_run, side_by_side) for run in stage]:
                    done.result()
    finally:
        if workers is not None:
            workers.close()
    if state.failures:
        _say(log, f"\n{len(state.failures)} run(s) failed; results of the others are kept:\n  "
             + "\n  ".join(state.failures))
        return 1
    return 0


class _Progress:
    """What :func:`run_all` shares between the runs it executes side by side."""

    def __init__(self, total: int, keep_going: bool):
        self.total, self.keep_going = total, keep_going
        self.failures: list[str] = []
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
        _say(log, f"{prefix}: already done with these parameters, skipped (--force to run again)")
        return
    if run.gpu == "required" and not state.gpu():
        _say(log, f"{prefix}: SKIPPED, this notebook needs a GPU and none is available")
        return
    lock = stale.RunLock(run.name)
    try:
        if wait and not _try(lock):
            _say(log, f"{prefix}: waiting, {_holder(lock)}")
            lock.acquire(wait=True)
        elif not wait:
            lock.acquire()
    except stale.RunInProgress as exc:
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
        return ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))

    def execute(self, run: Run, out_dir: Path, cwd: Path, limits: dict[str, str], log, prefix: str) -> str | None:
        """:func:`execute` in a worker process; notices are echoed here as they come."""
        out_dir.mkdir(parents=True, exist_ok=True)
        notices = _notices_path(out_dir, run)
        with _Notices(notices, prefix, log, export=False):
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

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _execute_in_worker(run: Run, out_dir: Path, cwd: Path, notices: Path, limits: dict[str, str]) -> str | None:
    """In a worker process: :func:`_execute` with the run's notices file and thread limits in the environment
    its kernel inherits (torch and the BLAS libraries read them when they start)."""
    os.environ[NOTICES_ENV] = str(notices)
    os.environ.update(limits)
    return _execute(run, out_dir, cwd, progress=False)


def in_progress(run: Run) -> str | None:
    """"in progress (pid N, started at T)" when another process is executing `run` now, else None."""
    lock = stale.RunLock(run.name)
    if _try(lock):
        lock.release()
        return None
    info = lock.holder()
    return f"in progress (pid {info.get('pid', '?')}, started at {info.get('started', '?')})"


def _try(lock: stale.RunLock) -> bool:
    try:
        lock.acquire()
    except stale.RunInProgress:
        return False
    return True


def _holder(lock: stale.RunLock) -> str:
    info = lock.holder()
    return f"run {lock.name} is in progress (pid {info.get('pid', '?')}, started at {info.get('started', '?')})"
