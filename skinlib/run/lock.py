"""One process at a time executes a run: :class:`RunLock`.

:class:`RunLock` lets one process at a time execute a run (notebook and run name) in a workspace; a second
one stops with "run X is in progress (pid N, started at T)" or waits. The lock is an ``flock`` on a file
(a byte-range lock on Windows), released by the system when its holder dies, so a stale lock is simply
taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .. import paths


def _try_lock(fh) -> bool:
    """Lock an open file without waiting (flock; byte-range lock on Windows); False when another process holds it."""
    try:
        import fcntl
    except ImportError:                                 # Windows
        import msvcrt

        try:
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:                             # held by another process (other errors: raised)
        return False
    return True


def _unlock(fh) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class RunInProgress(RuntimeError):
    """Another live process holds the lock of this run."""


class RunLock:
    """An exclusive lock on one run (e.g. ``05_transfer_learning--E-vgg19``) in the workspace.

    Args:
        name: the run's name.
        folder: where lock files live (default: ``<workspace>/locks``).
    """

    def __init__(self, name: str, folder: Path | None = None):
        self.name = name
        self.path = (Path(folder) if folder else paths.workspace() / "locks") / f"{name}.lock"
        self._fh = None

    def holder(self) -> dict:
        """pid, host and start time written by the process holding (or last holding) the lock."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, wait: bool = False, poll: float = 1.0) -> "RunLock":
        """Take the lock; if another process holds it, wait (`wait`) or raise :class:`RunInProgress`.

        Args:
            wait: wait until the other process is done instead of raising.
            poll: seconds between attempts while waiting.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        while not _try_lock(fh):
            if not wait:
                info = self.holder()
                fh.close()
                raise RunInProgress(
                    f"run {self.name} is in progress (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
                    f"started at {info.get('started', '?')}); wait for it to finish (or stop it), or pass --wait")
            time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"run": self.name, "pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        """Give the lock back (the file stays, for the next holder)."""
        if self._fh is not None:
            _unlock(self._fh)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
