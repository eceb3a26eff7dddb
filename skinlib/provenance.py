"""What a run read, noted as it reads, so that the runner can tell when an input changed since.

The library notes each input it reads (:func:`note`): a registry run, a registry experiment listed whole, a saved
split, a dataset folder. While ``run_all.py`` executes a notebook it sets :data:`READS_ENV` to a file; the notes go
there, one per line, and nowhere otherwise. When the run ends, the runner stores each input's current
:func:`version` in the run record; a later ``run_all.py`` compares them with the inputs' versions then, and runs
again what read something that changed (08-10 after 05 was run again, everything after a dataset was regenerated).

A version is cheap to compute and changes whenever the input does: a registry run's ``run.json`` (rewritten with
its finish time by every run), an experiment's runs and their ``run.json``, a split's two files, a dataset folder's
metadata files (names, sizes, modification times).

A run depends only on what earlier notebooks wrote. Runs of one notebook may read each other's registry runs (05's
comparison table lists every transfer run) without depending on them (``run_all.py --jobs`` runs them side by side),
and 08, listing the whole registry, does not depend on 09's explanations written after it: the registry keeps the
notebook that wrote each run (:data:`WRITER_ENV`, in ``run.json``), and :func:`version` counts only runs written by
an earlier notebook (by number) or outside ``run_all.py``.

Each version is taken when the input is read (in the notebook's kernel), so an input rewritten while the run was
reading it counts as changed the next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from importlib import metadata
from pathlib import Path

#: the file the current run's reads are noted to (set by the runner for the kernel it starts)
READS_ENV = "SKINLIB_READS"
#: the notebook (stem, e.g. ``05_transfer_learning``) whose run is executing (set by the runner)
WRITER_ENV = "SKINLIB_NOTEBOOK"

KINDS = ("registry", "registry-experiment", "registry-run", "split", "dataset")

#: the distributions whose versions a run's record keeps (those installed): what its numbers can depend on
PACKAGES = ("torch", "timm", "numpy", "scipy", "scikit-learn", "imbalanced-learn", "scikit-image", "pandas",
            "pillow", "open_clip_torch", "transformers", "grad-cam")
#: the thread-pool sizes of the numeric libraries, as the environment set them
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def environment() -> dict:
    """What a run's numbers depend on besides its parameters and data: torch's thread count (a neural network
    trained with 1 and with 2 threads ends with other weights: float sums are added in another order), the cores,
    the thread variables set, the numeric libraries' versions (:data:`PACKAGES`, those installed).

    torch's thread count is read only where torch is already imported (a random-forest run does not load it).
    """
    torch = sys.modules.get("torch")
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"torch_threads": torch.get_num_threads() if torch is not None else None, "cores": os.cpu_count(),
            "thread_variables": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
            "versions": versions}


def writer() -> str:
    """The notebook executing now, as the runner named it ('' outside ``run_all.py``)."""
    return os.environ.get(WRITER_ENV, "")


def note(kind: str, path: str | os.PathLike) -> None:
    """Note that the current run read `path`, with its version now (nothing happens outside ``run_all.py``).

    Args:
        kind: one of :data:`KINDS` (``registry``: the registry folder listed; ``registry-experiment``: an
            experiment's runs listed; ``registry-run``, ``split``, ``dataset``: one folder).
        path: the input's folder (noted also when it does not exist yet: it counts as changed when it appears).
    """
    channel = os.environ.get(READS_ENV)
    if not channel:
        return
    if kind not in KINDS:
        raise ValueError(f"unknown kind of input {kind!r}; kinds: {', '.join(KINDS)}")
    key = f"{kind}:{Path(path).resolve()}"
    with open(channel, "a") as fh:
        fh.write(f"{key}\t{version(key, writer())}\n")


def noted(channel: str | os.PathLike) -> dict[str, str]:
    """The inputs noted in a reads file: key (``kind:/abs/path``) -> its version when first read, in reading order
    (empty when the file is missing)."""
    try:
        lines = Path(channel).read_text().splitlines()
    except FileNotFoundError:
        return {}
    found: dict[str, str] = {}
    for line in lines:
        key, _, seen = line.partition("\t")
        if key.strip():
            found.setdefault(key, seen)
    return found


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


def upstream(writer_: str, reader: str) -> bool:
    """Whether a registry run written by notebook `writer_` is an input of notebook `reader`: written outside
    ``run_all.py`` (no writer), or by an earlier notebook (``05_...`` before ``08_...``; notebooks without a number:
    any other one).

    Args:
        writer_, reader: notebook stems ('' when unknown).
    """
    if not writer_ or not reader:
        return True
    a, b = writer_[:2], reader[:2]
    if a.isdigit() and b.isdigit():
        return a < b
    return writer_ != reader


def _runs(experiment: Path, reader: str) -> list[Path]:
    """The finished runs of an experiment folder that are inputs of `reader` (:func:`upstream`)."""
    return sorted(p for p in experiment.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / "run.json").is_file() and upstream(_run_writer(p), reader))


def version(key: str, reader: str = "") -> str:
    """The current version of an input noted as ``kind:/abs/path``: 'missing' when it is not there, 'unknown' for a
    kind this skinlib does not know (a record of another version: counted as changed).

    Args:
        key: an input (:func:`note`).
        reader: the reading notebook's stem: registry runs it, or a later notebook, wrote are left out.
    """
    kind, _, text = key.partition(":")
    path = Path(text)
    if kind == "registry":
        if not path.is_dir():
            return "missing"
        experiments = [p for p in sorted(path.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        return _sha(*(p.name.encode() for p in experiments if _runs(p, reader)))
    if kind == "registry-run":
        if not (path / "run.json").is_file():
            return "missing"
        return "own" if not upstream(_run_writer(path), reader) else _sha(_read(path / "run.json"))
    if kind == "registry-experiment":
        if not path.is_dir():
            return "missing"
        return _sha(*(p.name.encode() + b"=" + _read(p / "run.json") for p in _runs(path, reader)))
    if kind == "split":
        return _sha(_read(path / "manifest.json"), _read(path / "split.csv")) if path.is_dir() else "missing"
    if kind == "dataset":
        if not path.is_dir():
            return "missing"
        entries = []
        for p in sorted(path.iterdir()):            # metadata files, and image folders (a folder's time changes
            info = p.stat()                          # when images are added, removed or renamed in it)
            entries.append(f"{p.name}:{info.st_size if p.is_file() else 'dir'}:{info.st_mtime_ns}".encode())
        return _sha(*entries)
    return "unknown"


def versions(keys: list[str], reader: str = "") -> dict[str, str]:
    """:func:`version` of every key."""
    return {key: version(key, reader) for key in keys}


def describe(key: str) -> str:
    """An input in words, for ``run_all.py --list`` (e.g. ``registry run transfer/resnet18``)."""
    kind, _, text = key.partition(":")
    path = Path(text)
    if kind == "registry":
        return "the registry's experiments"
    if kind == "registry-run":
        return f"registry run {path.parent.name}/{path.name}"
    if kind == "registry-experiment":
        return f"the registry's runs of {path.name!r}"
    if kind == "split":
        return f"split {path.name!r}"
    if kind == "dataset":
        return f"dataset {path}"
    return key


#: what the notebook running in this process read, as the registry records it with each run (:func:`data_read`)
_DATA: dict[str, dict] = {}


def read_data(kind: str, **info) -> None:
    """Remember what the running notebook read, for the registry to record with every run it writes
    (``run.json``'s ``data``; :class:`skinlib.registry.RunRecorder`): the report reads this record instead of
    guessing from parameters and the environment at report time.

    Args:
        kind: ``dataset`` (its name, layout, catalog fingerprint, synthetic or not, the generator's version, lesion
            ids present or not) or ``split`` (its name, how it groups images).
        **info: the facts, added to what was remembered of that kind (a later catalog replaces an earlier one's).
    """
    if kind not in ("dataset", "split"):
        raise ValueError(f"unknown kind of data {kind!r}: dataset or split")
    if kind == "dataset" and "fingerprint" in info and _DATA.get("dataset", {}).get("fingerprint") not in (
            None, info["fingerprint"]):
        _DATA.pop("dataset", None)                  # another catalog: nothing of the previous one carries over
    _DATA[kind] = {**_DATA.get(kind, {}), **info}


def data_read() -> dict[str, dict]:
    """What :func:`read_data` remembered: ``{"dataset": {...}, "split": {...}}`` (empty when nothing was read)."""
    return {kind: dict(info) for kind, info in _DATA.items()}

