"""Leftovers of processes that died: half-written files and folders, found by their writer's tag and removed.

Everything half-written carries its writer's ``<pid>@<host>`` (:func:`skinlib.paths.owner`): a staged run
``results/<exp>/.<run>.partial-<owner>/``, a cache being built ``cache/<key>.partial-<owner>/``, a
temporary file ``.<name>.tmp-<owner>.<random>``. :func:`sweep` removes those whose process is gone (and
finishes a registry move that was cut between its two renames); ``run_all.py`` sweeps before it runs.

Only what skinlib wrote is ever removed: the sweep looks only in the workspace's own folders
(:data:`skinlib.paths.OWN_FOLDERS`, never the workspace root, which may be a folder of the user's), and only at
names carrying the full owner tag, pid and host, that skinlib's writers give them.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from . import paths

# .<run>.partial-123@host  cache-64px.partial-123@host  .metrics.json.tmp-123@host.ab12cd
_TAGGED = re.compile(r"\.(partial|old|tmp)-(\d+)@([A-Za-z0-9_-]+)(?:\.[^/]*)?$")


def _host() -> str:
    return paths.owner().split("@", 1)[1]


def _alive(pid: int) -> bool:
    if os.name == "nt":                                 # os.kill would end the process there
        try:
            import psutil
        except ImportError:
            return True                                 # cannot tell: keep it
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                             # someone else's process: alive
        return True
    try:                                                # a zombie (killed, not yet reaped by its parent) is dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner tag (``<pid>@<host>``, :func:`skinlib.paths.owner`) may still run:
    False only when it ran on this host and is gone (a process on another host cannot be checked: True).

    Args:
        owner: the tag; one without a valid pid counts as gone.
    """
    pid, _, host = owner.strip().partition("@")
    if not pid.isdigit():
        return False
    if host and host != _host():
        return True
    return int(pid) == os.getpid() or _alive(int(pid))


def leftover(path: Path) -> tuple[str, int, str] | None:
    """``(kind, pid, host)`` when `path` is a temporary file or folder a skinlib process wrote (its name carries
    the owner tag, :func:`skinlib.paths.owner`), else None.

    Args:
        path: a file or folder name in the workspace.
    """
    match = _TAGGED.search(path.name)
    return (match.group(1), int(match.group(2)), match.group(3)) if match else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _run_name(path: Path) -> str:
    """``.<run>.partial-<owner>`` -> ``<run>``."""
    return path.name[1:].rsplit(".", 1)[0]


def sweep(root: Path | None = None) -> list[str]:
    """Remove what dead processes left half-written under `root` (default: the workspace); returns what was done.

    A staged registry run that was complete (its ``run.json`` written) but not yet renamed into place is
    moved there; a previous run set aside for the rename is put back when nothing replaced it. Leftovers of
    live processes are kept; those written on another host are reported, not touched.

    Args:
        root: the folder to clean (one of the workspace's own folders or a folder inside one); None: every folder
            of :data:`skinlib.paths.OWN_FOLDERS` in the workspace.
    """
    roots = [Path(root)] if root else [paths.workspace() / name for name in paths.OWN_FOLDERS]
    done: list[str] = []
    for folder in roots:
        if folder.is_dir():
            done += _sweep(folder)
    return done


def _sweep(root: Path) -> list[str]:
    here, done = _host(), []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in sorted(dirs) + sorted(files):
            path = base / name
            found = leftover(path)
            if found is None:
                continue
            if name in dirs:
                dirs.remove(name)                      # never walk into a leftover
            kind, pid, host = found
            shown = str(path)
            if host != here:
                done.append(f"kept {shown}: written on host {host} (pid {pid}); delete it if nothing runs there")
                continue
            if pid == os.getpid() or _alive(pid):      # still being written
                continue
            target = base / _run_name(path) if name.startswith(".") and kind in ("partial", "old") else None
            if target is not None and kind == "partial" and (path / "run.json").is_file() and not target.exists():
                os.replace(path, target)
                done.append(f"finished moving the interrupted run {target} into place")
            elif target is not None and kind == "old" and not target.exists():
                os.replace(path, target)
                done.append(f"restored {target}, set aside by an interrupted run")
            else:
                _remove(path)
                done.append(f"removed {shown}, left by pid {pid} which is no longer running")
    return done


def report(lines: list[str]) -> None:
    """Say on stderr what :func:`sweep` did (nothing when it did nothing)."""
    for line in lines:
        print(f"cleanup: {line}", file=sys.stderr, flush=True)
