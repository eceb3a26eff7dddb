"""The data of a profile's runs: the datasets given (``--data NAME=PATH``, ``--data PATH``, ``$SKINLIB_DATA_<NAME>``,
``$SKINLIB_DATA``), checked against what every run needs before any run starts, and the data part of a run's
identity (the catalog's fingerprint).

A run needs the dataset its ``dataset`` parameter names (:mod:`skinlib.data.datasets`), for the task its ``task``
parameter names (07), else the 7 classes. Rules, all applied before anything runs:

* nothing given: every dataset is the built-in synthetic one (the default profile as it always ran);
* a dataset given by name (or by its variable) must hold a layout it accepts, else the whole start is refused,
  naming the layout found; its catalog is read once and every problem in it reported once;
* given by name, a dataset some run needs and nobody gave stops the start, naming the runs that need it and how
  to give it (``--keep-going``: those runs are skipped and listed at the end);
* a bare ``--data PATH`` (or ``$SKINLIB_DATA``) is the one dataset of a profile: it serves every dataset whose
  layouts it fits; a run that needs another kind of data does not apply to it and is skipped, with one line per
  dataset saying why and how to give it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import paths
from ..data.datasets import DATASETS, DataMismatch, check_layout, check_task
from .plan import Run


class DataError(ValueError):
    """Data given that cannot be used: an unknown dataset name, no such folder, a wrong layout, a broken catalog."""


@dataclass
class Givings:
    """The datasets given: by name (``name -> (folder, origin)``) and the bare one (``(folder, origin)`` or None)."""

    named: dict[str, tuple[Path, str]] = field(default_factory=dict)
    bare: tuple[Path, str] | None = None

    @property
    def empty(self) -> bool:
        return not self.named and self.bare is None


def parse_data(items: list[str] | None, environ: dict[str, str] | None = None) -> Givings:
    """``--data`` arguments (``PATH`` or ``NAME=PATH``, repeatable) and the environment's
    ``$SKINLIB_DATA_<NAME>`` / ``$SKINLIB_DATA`` (the command line wins).

    Raises:
        DataError: an unknown dataset name, a dataset or the bare folder given twice, a folder that does not exist.
    """
    environ = os.environ if environ is None else environ
    givings = Givings()
    errors = []
    for item in items or []:
        name, sep, text = item.partition("=")
        if sep and name in DATASETS:
            if name in givings.named:
                errors.append(f"--data {name}=...: given twice")
            givings.named[name] = (Path(text).expanduser().resolve(), f"--data {name}=")
        elif sep and name.isidentifier() and not Path(item).expanduser().exists():
            errors.append(f"--data {item}: unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
        elif givings.bare is not None:
            errors.append(f"--data {item}: a second folder without a dataset name; name each: "
                          + " ".join(f"--data {n}=PATH" for n in DATASETS))
        else:
            givings.bare = (Path(item).expanduser().resolve(), "--data")
    for name, dataset in DATASETS.items():
        if name not in givings.named and environ.get(dataset.env):
            givings.named[name] = (Path(environ[dataset.env]).expanduser().resolve(), f"${dataset.env}")
    if givings.bare is None and environ.get(paths.DATA_ENV) and not items:
        givings.bare = (Path(environ[paths.DATA_ENV]).expanduser().resolve(), f"${paths.DATA_ENV}")
    for folder, origin in [*givings.named.values(), *([givings.bare] if givings.bare else [])]:
        if not folder.is_dir():
            errors.append(f"{origin}{folder if origin.endswith('=') else ' ' + str(folder)}: no such folder")
    if errors:
        raise DataError("\n".join(errors))
    return givings


@dataclass
class DataPlan:
    """What :func:`check_data` found: where each dataset is (``name -> (layout, folder, origin)``), and the runs that
    cannot run: their dataset was not given (``missing``) or the bare data does not apply to them
    (``not_applicable``), each ``dataset -> [run names]``."""

    given: dict[str, tuple[str, Path, str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    not_applicable: dict[str, list[str]] = field(default_factory=dict)
    bare_layouts: list[str] = field(default_factory=list)

    def skipped(self) -> set[str]:
        return {r for names in (*self.missing.values(), *self.not_applicable.values()) for r in names}

    def missing_message(self, keep_going: bool) -> str:
        lines = []
        for name, runs in self.missing.items():
            dataset = DATASETS[name]
            lines.append(f"dataset {name} is not given; {len(runs)} run(s) need it: {', '.join(runs)}.\n"
                         f"  Give it with --data {name}=PATH (or set ${dataset.env}); it must hold {dataset.what}.")
        if not keep_going:
            lines.append("Nothing was run. --keep-going runs the others and lists these at the end.")
        return "\n".join(lines)

    def not_applicable_lines(self) -> list[str]:
        shown = " and ".join(self.bare_layouts) or "no layout"
        return [f"skipped {', '.join(runs)}: {'it needs' if len(runs) == 1 else 'they need'} dataset {name} "
                f"({DATASETS[name].what}) and --data gave {shown}; to run {'it' if len(runs) == 1 else 'them'}, "
                f"add --data {name}=PATH" for name, runs in self.not_applicable.items()]

    def environment(self) -> dict[str, str]:
        """The variables a run's kernel reads its datasets from (``$SKINLIB_DATA_<NAME>``)."""
        return {DATASETS[name].env: str(folder) for name, (_, folder, _) in self.given.items()}


def check_data(runs: list[Run], givings: Givings) -> DataPlan:
    """Check the data every run needs against what was given, before any run starts (see the module's rules); reads
    each given dataset's catalog once, so a broken one is reported once.

    Raises:
        DataError: every wrong layout and every run whose dataset does not fit its task, together; or the problems
            of a catalog.
    """
    errors: list[str] = []
    found = DataPlan()
    needed: dict[str, list[Run]] = {}
    for run in runs:
        if not run.data:
            continue
        try:
            check_task(run.data["dataset"], run.data["task"])
        except DataMismatch as exc:
            errors.append(f"{run.name}: {exc}")
            continue
        if run.data.get("data_dir"):
            try:
                check_layout(run.data["dataset"], Path(run.data["data_dir"]), run.data.get("layout"),
                             f"{run.name}: data_dir")
            except DataMismatch as exc:
                errors.append(str(exc))
            continue
        needed.setdefault(run.data["dataset"], []).append(run)
    for name, (folder, origin) in givings.named.items():
        try:
            layout, where = check_layout(name, folder, None, f"{origin}{folder}")
        except DataMismatch as exc:
            errors.append(str(exc))
            continue
        found.given[name] = (layout, where, origin)
    if givings.bare is not None:
        from ..data.layouts import detect_layouts

        folder, origin = givings.bare
        detected = detect_layouts(folder)
        found.bare_layouts = [f"{lay} in {where}" for lay, where in detected]
        if not detected:
            errors.append(f"{origin} {folder}: no dataset layout recognised (HAM10000_metadata.csv, ISIC 2018 Task 3 "
                          "files, an ISIC archive metadata.csv, or one folder per class). See README.md, "
                          "'Running on the real data'.")
        for name in needed:
            if name in found.given:
                continue
            fitting = [(lay, where) for lay in DATASETS[name].layouts for found_lay, where in detected if found_lay == lay]
            if fitting:
                found.given[name] = (fitting[0][0], fitting[0][1], origin)
    if errors:
        raise DataError("the data given does not fit the runs; nothing was run:\n  " + "\n  ".join(errors))
    if not givings.empty:
        for name, those in needed.items():
            if name not in found.given:
                target = found.missing if givings.named else found.not_applicable
                target[name] = [run.name for run in those]
    for name, (layout, folder, origin) in found.given.items():
        if name in needed:
            for allow_missing in sorted({bool(r.data.get("allow_missing")) for r in needed[name]}):
                try:
                    catalog_fingerprint(str(folder), layout, allow_missing)
                except (ValueError, OSError) as exc:
                    raise DataError(f"dataset {name} ({origin}{'' if origin.endswith('=') else ' '}{folder}) "
                                    f"cannot be read; nothing was run:\n{exc}") from exc
    return found


@functools.lru_cache(maxsize=32)
def catalog_fingerprint(folder: str, layout: str, allow_missing: bool) -> str:
    """The fingerprint of the catalog read from `folder` (:func:`skinlib.data.catalog.fingerprint`), once per
    process: what a run's identity holds of the data it reads (the same data in another place is the same data)."""
    import warnings

    from ..data.catalog import fingerprint
    from ..data.layouts import load_catalog

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the notebook shows the loader's warnings
        return fingerprint(load_catalog(folder, layout, allow_missing=allow_missing))


def data_identity(run: Run) -> str:
    """The data part of `run`'s identity: ``<dataset>:<catalog fingerprint>`` of the folder it reads (its
    ``data_dir``, else ``$SKINLIB_DATA_<NAME>`` / ``$SKINLIB_DATA``, as :func:`skinlib.data.datasets.locate` finds
    it), or ``<dataset>:synthetic-...`` naming the generated data (generator version, size, seed); '' for a
    notebook that reads no dataset."""
    from ..data.datasets import locate

    if not run.data:
        return ""
    name = run.data["dataset"]
    try:
        where = locate(name, run.data.get("data_dir"), run.data.get("layout"), quiet=True)
    except (DataMismatch, OSError, ValueError) as exc:
        return f"{name}:unreadable ({exc})"
    if where.root is None:
        from ..data.synthetic import DEFAULT_N, DEFAULT_SIZE, GENERATOR_VERSION

        return (f"{name}:synthetic-{where.layout}-n{DEFAULT_N}-seed{run.data.get('seed', 0)}-"
                f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}-v{GENERATOR_VERSION}")
    try:
        return f"{name}:{catalog_fingerprint(str(where.root), where.layout, bool(run.data.get('allow_missing')))}"
    except (ValueError, OSError) as exc:
        return f"{name}:unreadable ({type(exc).__name__})"
