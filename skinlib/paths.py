"""Where data, caches, splits, results and executed notebooks live.

Every path a notebook or script uses is resolved here, so a kernel started by nbval in
``notebooks/`` and a papermill run started from the repository root see the same folders.

* ``SKINLIB_DATA``: a dataset root (any supported layout). Unset: the built-in synthetic data.
* ``SKINLIB_WORKSPACE``: the folder for caches, splits, results and executed notebooks.
  Unset: ``workspace/`` in the repository checkout, or ``~/.skinlib`` outside one.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

DATA_ENV = "SKINLIB_DATA"
WORKSPACE_ENV = "SKINLIB_WORKSPACE"
NOTICES_ENV = "SKINLIB_NOTICES"          # set by run_all.py: a file the notebook's notice() lines are added to


def repo_root(start: Path | None = None) -> Path | None:
    """The skinlib checkout containing `start` (default: this package, then the cwd), or None."""
    candidates = [Path(start)] if start else [Path(__file__).resolve().parent, Path.cwd()]
    for base in candidates:
        for folder in (base.resolve(), *base.resolve().parents):
            if (folder / "run_all.py").is_file() and (folder / "skinlib").is_dir():
                return folder
    return None


def workspace() -> Path:
    """The workspace root (created on first use)."""
    env = os.environ.get(WORKSPACE_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        repo = repo_root()
        root = repo / "workspace" if repo else Path.home() / ".skinlib"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


#: the workspace's folders that skinlib writes and may clean (:mod:`skinlib.leftovers`): never the workspace root
#: itself, which ``$SKINLIB_WORKSPACE`` may point at a folder of the user's; ``smoke`` is the smoke runs' workspace
OWN_FOLDERS: tuple[str, ...] = ("cache", "splits", "results", "synthetic", "checkpoints", "outputs", "locks", "smoke")


def _sub(name: str) -> Path:
    path = workspace() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Decoded, resized image arrays (safe to delete; rebuilt on demand)."""
    return _sub("cache")


def splits_dir() -> Path:
    """Saved splits with their manifests."""
    return _sub("splits")


def results_dir() -> Path:
    """The results registry: one folder per run."""
    return _sub("results")


def synthetic_dir() -> Path:
    """Generated synthetic datasets, one folder per (seed, size, resolution)."""
    return _sub("synthetic")


def checkpoints_dir() -> Path:
    """Training checkpoints, one folder per model family and run (safe to delete; a run then trains from scratch)."""
    return _sub("checkpoints")


def outputs_dir() -> Path:
    """Executed notebooks written by ``run_all.py``."""
    return _sub("outputs")


def display_path(path: str | os.PathLike) -> str:
    """A path shown without this machine's folders (relative to the workspace, the checkout or the home folder),
    for what is shared or committed; a message a user acts on names the real path instead."""
    path = Path(path).resolve()
    anchors = [("$SKINLIB_WORKSPACE", workspace())] if os.environ.get(WORKSPACE_ENV) else []
    repo = repo_root()
    if repo:
        anchors.append(("<repo>", repo))
    anchors.append(("~", Path.home().resolve()))
    for label, anchor in anchors:
        try:
            rel = path.relative_to(anchor)
        except ValueError:
            continue
        return f"{label}/{rel.as_posix()}" if str(rel) != "." else label
    return path.as_posix()


def owner() -> str:
    """``<pid>@<host>``: tags temporary files and folders (``x.partial-<owner>``), so that a later run can tell
    those left by a process that died (:mod:`skinlib.leftovers`) from those of a process still writing them."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
    return f"{os.getpid()}@{host}"


def umask() -> int:
    """The process's file-creation mask (e.g. 0o022), read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)                      # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def describe_workspace() -> str:
    """Where the workspace is, in words for a reader: its full path and what chose it."""
    if os.environ.get(WORKSPACE_ENV):
        return f"{workspace()} (from ${WORKSPACE_ENV})"
    where = "in this checkout" if repo_root() else "outside a checkout"
    return f"{workspace()} ({where}; set ${WORKSPACE_ENV} to use another folder)"


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename, so that readers see
    the old file or the new one, never a half-written one (an interrupted run loses nothing it had saved).
    The file gets the mode any new file gets (0666 less the umask: 0644 usually), so colleagues can read it."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{owner()}.")
    try:
        os.chmod(tmp, 0o666 & ~umask())          # mkstemp creates 0600
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
