"""What a run read, noted as it reads, so that the runner can tell when an input changed since.

The library notes each input it reads (:func:`note`): a registry run, a registry experiment listed whole, a saved
split, a dataset folder. While ``run_all.py`` executes a notebook it sets :data:`READS_ENV` to a file; the notes go
there, one per line, and nowhere otherwise. When the run ends, the runner stores each input's current
:func:`version` in the run record; a later ``run_all.py`` compares them with the inputs' versions then, and runs
again what read something that changed (08-10 after 05 was run again, everything after a dataset was regenerated).

A version is cheap to compute and changes whenever the input does: a registry run's ``run.json`` (rewritten with
its finish time by every run), an experiment's runs and their ``run.json``, a split's two files, a dataset folder's
metadata files (names, sizes, modification times).

Runs of one notebook may read each other's registry runs (05's comparison table lists every transfer run), but do
not depend on them (``run_all.py --jobs`` runs them side by side): the registry notes the notebook that wrote each
run (:data:`WRITER_ENV`, kept in ``run.json``), and :func:`version` leaves out the runs the reading notebook wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: the file the current run's reads are noted to (set by the runner for the kernel it starts)
READS_ENV = "SKINLIB_READS"
#: the notebook (stem, e.g. ``05_transfer_learning``) whose run is executing (set by the runner)
WRITER_ENV = "SKINLIB_NOTEBOOK"

KINDS = ("registry-run", "registry-experiment", "split", "dataset")


def writer() -> str:
    """The notebook executing now, as the runner named it ('' outside ``run_all.py``)."""
    return os.environ.get(WRITER_ENV, "")


def note(kind: str, path: str | os.PathLike) -> None:
    """Note that the current run read `path` (nothing happens outside ``run_all.py``).

    Args:
        kind: one of :data:`KINDS`.
        path: the input's folder.
    """
    channel = os.environ.get(READS_ENV)
    if not channel:
        return
    if kind not in KINDS:
        raise ValueError(f"unknown kind of input {kind!r}; kinds: {', '.join(KINDS)}")
    with open(channel, "a") as fh:
        fh.write(f"{kind}:{Path(path).resolve()}\n")


def noted(channel: str | os.PathLike) -> list[str]:
    """The inputs noted in a reads file (``kind:/abs/path``), each once, in order (none when the file is missing)."""
    try:
        lines = Path(channel).read_text().splitlines()
    except FileNotFoundError:
        return []
    return list(dict.fromkeys(line for line in lines if line.strip()))


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"(missing)"


def _run_writer(folder: Path) -> str:
    try:
        return json.loads((folder / "run.json").read_text()).get("notebook", "")
    except (OSError, ValueError):
        return ""


def version(key: str, reader: str = "") -> str:
    """The current version of an input noted as ``kind:/abs/path``; 'missing' when it is gone.

    Args:
        key: a line of the reads file (:func:`note`).
        reader: the reading notebook's stem: registry runs it wrote itself are left out.
    """
    kind, _, text = key.partition(":")
    path = Path(text)
    if kind == "registry-run":
        if not (path / "run.json").is_file():
            return "missing"
        return "own" if reader and _run_writer(path) == reader else _sha(_read(path / "run.json"))
    if kind == "registry-experiment":
        if not path.is_dir():
            return "missing"
        runs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                      and (p / "run.json").is_file() and not (reader and _run_writer(p) == reader))
        return _sha(*(p.name.encode() + b"=" + _read(p / "run.json") for p in runs))
    if kind == "split":
        return _sha(_read(path / "manifest.json"), _read(path / "split.csv")) if path.is_dir() else "missing"
    if kind == "dataset":
        if not path.is_dir():
            return "missing"
        files = sorted(p for p in path.iterdir() if p.is_file())
        return _sha(*(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode() for p in files))
    raise ValueError(f"unknown kind of input in {key!r}; kinds: {', '.join(KINDS)}")


def versions(keys: list[str], reader: str = "") -> dict[str, str]:
    """:func:`version` of every key."""
    return {key: version(key, reader) for key in keys}


def describe(key: str) -> str:
    """An input in words, for ``run_all.py --list`` (e.g. ``registry run transfer/resnet18``)."""
    kind, _, text = key.partition(":")
    path = Path(text)
    if kind == "registry-run":
        return f"registry run {path.parent.name}/{path.name}"
    if kind == "registry-experiment":
        return f"the registry's runs of {path.name!r}"
    if kind == "split":
        return f"split {path.name!r}"
    return f"dataset {path}"
