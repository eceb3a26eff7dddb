"""Ctrl-C while runs execute, and a kernel's end: one line, never a traceback.

* A kernel's shutdown after a run sends it no interrupt: jupyter_client's managers interrupt (SIGINT) a kernel
  before asking it to shut down, and a kernel still finishing the last cell's reply then logs
  ``[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel.`` under a run that succeeded. The runner's kernel
  is idle when a run ends; an interrupt is for a busy one (:func:`quiet_manager`).
* Ctrl-C while a run executes kills its kernel at once (:func:`stop_kills_kernel`), rather than interrupting it
  and asking it to shut down, which races the kernel's own ``KeyboardInterrupt`` against its closing sockets
  (``ZMQError`` tracebacks). Nothing is lost by killing: a run's results are written atomically and its
  checkpoint after every epoch. The run's own line (:class:`Stopped`) says where it will resume: the last
  :func:`skinlib.notebook.resume_point` the notebook gave; :func:`stopped_line` says it for every stopped run.
  What the killed kernels' clients still log (a dead kernel, a task's exception never retrieved) is silenced
  (:func:`hush_killed_kernels`).
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from jupyter_core.utils import run_sync

#: set while Ctrl-C stops the run this process executes: its kernel is then killed, not interrupted
STOPPING = threading.Event()

#: the exit status of a run_all.py stopped by Ctrl-C (128 + SIGINT, as a shell reports it)
STOPPED_STATUS = 130


class Stopped(KeyboardInterrupt):
    """Ctrl-C stopped a run: its name and where it will resume (None: from its start)."""

    def __init__(self, run: str, resume: str | None):
        super().__init__(run)
        self.run, self.resume = run, resume


@contextmanager
def stop_kills_kernel(worker: bool = False) -> Iterator[None]:
    """While a run executes in this thread: Ctrl-C raises ``KeyboardInterrupt`` as usual, and first sets
    :data:`STOPPING`, so that the kernel is killed at once (:func:`quiet_manager`).

    Args:
        worker: a worker process of ``--jobs``, which ignores Ctrl-C between runs: take it during this one.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler and not worker:
        yield                                       # Ctrl-C ignored or handled by whoever started us: theirs
        return

    def stop(signum, frame) -> None:
        STOPPING.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        STOPPING.clear()


class _Quiet:
    """Mixed into a kernel manager: shutdown sends no interrupt; while :data:`STOPPING`, it kills at once."""

    async def _async_interrupt_kernel(self) -> None:
        if getattr(self, "shutting_down", False):  # a shutdown's interrupt: the kernel is idle, or killed now
            return
        await super()._async_interrupt_kernel()

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        await super()._async_shutdown_kernel(now=now or STOPPING.is_set(), restart=restart)


@lru_cache(maxsize=None)
def quiet_manager(base: type) -> type:
    """`base` (a jupyter_client kernel manager class, blocking or async) with the shutdown of :class:`_Quiet`."""
    asynchronous = inspect.iscoroutinefunction(base.shutdown_kernel)
    shutdown = _Quiet._async_shutdown_kernel if asynchronous else run_sync(_Quiet._async_shutdown_kernel)
    return type(f"Quiet{base.__name__}", (_Quiet, base), {"shutdown_kernel": shutdown})


#: the loggers that speak, after Ctrl-C, of the kernel it killed: the notebook client's (papermill passes its own;
#: nbclient's "Kernel died while waiting for execute reply") and asyncio's ("Task exception was never retrieved",
#: with a traceback, for the cell the dead kernel was executing, when the process ends)
AFTER_STOP_LOGGERS = ("papermill", "traitlets", "asyncio")


def hush_killed_kernels() -> None:
    """After Ctrl-C killed the runs' kernels: what their clients still say about them is about kernels killed on
    purpose, and the process is ending, so those loggers are silenced (the stop line says what happened)."""
    for name in AFTER_STOP_LOGGERS:
        logging.getLogger(name).disabled = True


def stopped_line(stopped: list[Stopped]) -> str:
    """What Ctrl-C stopped, in one line: ``stopped: 04_custom_cnn will resume from epoch 3; nothing else was lost``."""
    if not stopped:
        return "stopped (no run was executing); nothing was lost"
    parts = [f"{s.run} will resume {s.resume}" if s.resume else f"{s.run} will run again from its start"
             for s in stopped]
    return f"stopped: {', '.join(parts)}; nothing else was lost"
