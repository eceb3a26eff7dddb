"""The datasets a run can need, by name, and where each one is given: which layouts fit each, and the check that
a folder given for one holds a layout that fits it.

A notebook names the dataset it reads with its ``dataset`` parameter (``ham10000`` for the 7-class notebooks,
``isic_archive`` for study D's task of 07); a run of a profile may name another. The user gives each dataset once:
``run_all.py --data NAME=PATH`` (repeatable) or the environment variable ``SKINLIB_DATA_<NAME>``
(e.g. ``SKINLIB_DATA_ISIC_ARCHIVE``), which a notebook opened by hand in JupyterLab reads too. ``SKINLIB_DATA``
(``run_all.py --data PATH``) keeps its meaning: the one dataset of a profile that needs one, for every dataset whose
layouts it fits. Nothing given: the built-in synthetic data, in the layout of the dataset named.

:func:`locate` is what a notebook calls first (and ``run_all.py`` for every run before any starts): the folder to
read and its layout, or a :class:`DataMismatch` naming the dataset needed, the layout found and how to give the
right one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .. import parameters, paths, provenance


@dataclass(frozen=True)
class Dataset:
    """A dataset a run can name: the layouts that hold it, what it is, and where to get it."""

    name: str
    layouts: tuple[str, ...]      # layouts accepted (the first is the synthetic one)
    what: str                     # in words, for messages
    tasks: tuple[str, ...]        # what its labels allow: seven_class, melanoma, isic_archive
    source: str                   # where to download it

    @property
    def env(self) -> str:
        """The environment variable giving this dataset's folder (``SKINLIB_DATA_<NAME>``)."""
        return f"{paths.DATA_ENV}_{self.name.upper()}"

    def how_to_give(self) -> str:
        return (f"give {self.name} with run_all.py --data {self.name}=PATH, ${self.env} or the notebook's "
                f"data_dir (download: {self.source})")


#: name -> dataset. HAM10000's images are also ISIC 2018 Task 3's training set and the Kaggle class-folder copies,
#: so ``ham10000`` accepts those layouts too; ``isic2018`` asks for the official ISIC 2018 files.
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("ham10000", ("ham10000", "isic2018", "folders"),
            "the 7 classes of HAM10000 (HAM10000_metadata.csv, ISIC 2018 Task 3 files, or one folder per class)",
            ("seven_class", "melanoma"), "HAM10000: Harvard Dataverse doi:10.7910/DVN/DBW86T"),
    Dataset("isic2018", ("isic2018",),
            "ISIC 2018 Task 3 (ISIC2018_Task3_Training_GroundTruth.csv and its input folder)",
            ("seven_class", "melanoma"), "https://challenge.isic-archive.com/data/#2018"),
    Dataset("isic_archive", ("isic_archive",),
            "an ISIC archive export (metadata.csv with isic_id and diagnosis_1 or benign_malignant)",
            ("isic_archive",), "https://api.isic-archive.com/images/ (export the images with their metadata)"),
)}

assert tuple(DATASETS) == parameters.DATASETS, "the dataset knob's values and DATASETS must name the same datasets"

#: what each task of a notebook needs, in words
TASKS = {"seven_class": "the 7 classes", "melanoma": "the 7 classes (melanoma vs the other six)",
         "isic_archive": "benign / malignant labels with patient metadata (an ISIC archive export)"}


class DataMismatch(ValueError):
    """The data given for a dataset is not that dataset (wrong layout), or the dataset does not fit the task."""


class Located(NamedTuple):
    """Where a notebook reads its dataset: ``root`` (None: the built-in synthetic data) and ``layout``."""

    root: Path | None
    layout: str | None


def dataset_of(name: str) -> Dataset:
    """The dataset called `name`.

    Raises:
        DataMismatch: an unknown name, with the known ones.
    """
    if name not in DATASETS:
        raise DataMismatch(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_task(name: str, task: str) -> None:
    """Raise :class:`DataMismatch` when dataset `name` cannot serve `task` (``seven_class``, ``melanoma``,
    ``isic_archive``), naming the datasets that can."""
    dataset = dataset_of(name)
    if task not in dataset.tasks:
        fits = [d.name for d in DATASETS.values() if task in d.tasks]
        raise DataMismatch(f"task {task!r} needs {TASKS.get(task, task)}; dataset {name!r} is {dataset.what}. "
                           f"Name one of: {', '.join(fits)} (parameter dataset)")


def given(name: str) -> tuple[Path, str] | None:
    """Where dataset `name` is given in the environment, and by which variable: ``SKINLIB_DATA_<NAME>``, else
    ``SKINLIB_DATA``; None when neither is set."""
    dataset = dataset_of(name)
    for var in (dataset.env, paths.DATA_ENV):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser(), f"${var}"
    return None


def check_layout(name: str, root: Path, layout: str | None = None, origin: str = "data_dir") -> tuple[str, Path]:
    """The (layout, folder) of `root` when it fits dataset `name`.

    Args:
        name: the dataset.
        root: the folder given for it.
        layout: a layout forced by the run (must be one the dataset accepts).
        origin: how the folder was given, for messages (``--data isic_archive=...``, ``$SKINLIB_DATA``, ...).

    Raises:
        DataMismatch: no folder, nothing recognisable, or a layout the dataset does not accept (named).
    """
    from .layouts import detect_layouts, resolve_layout

    dataset = dataset_of(name)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataMismatch(f"{origin}: {root} is not a folder; {dataset.how_to_give()}")
    if layout is not None and layout not in dataset.layouts:
        raise DataMismatch(f"layout {layout!r} does not hold dataset {name!r} (it needs {dataset.what}; "
                           f"layouts: {', '.join(dataset.layouts)})")
    detected = detect_layouts(root)
    present = {lay for lay, _ in detected}
    fitting = [lay for lay in ((layout,) if layout else dataset.layouts) if lay in present]
    if fitting:
        return resolve_layout(root, fitting[0])
    shown = ", ".join(f"{lay} in {folder}" for lay, folder in detected) or "no layout skinlib reads"
    raise DataMismatch(f"{origin}: {root} is not dataset {name}: found {shown}, and {name} is "
                       f"{dataset.what}. To fix: {dataset.how_to_give()}")


def locate(name: str, data_dir: str | os.PathLike | None = None, layout: str | None = None, *,
           task: str | None = None, quiet: bool = False) -> Located:
    """Where a notebook reads dataset `name`, checked before anything else: `data_dir` when given, else
    ``$SKINLIB_DATA_<NAME>``, else ``$SKINLIB_DATA``, else the built-in synthetic data in the dataset's layout.
    Prints one line saying which (unless `quiet`).

    Args:
        name: the dataset the notebook (or run) needs, e.g. ``ham10000``.
        data_dir: a folder given to the notebook (its parameter), or None.
        layout: a layout forced by the notebook's parameter, or None (detected).
        task: what the notebook does with it (``seven_class``, ``melanoma``, ``isic_archive``): checked against the
            dataset's labels.
        quiet: print nothing.

    Raises:
        DataMismatch: the dataset does not fit `task`, or the folder holds another layout (named, with how to
            give the right data).
    """
    dataset = dataset_of(name)
    if task is not None:
        check_task(name, task)
    if data_dir not in (None, ""):
        where = (Path(data_dir).expanduser(), "data_dir")
    else:
        where = given(name)
    provenance.read_data("dataset", name=name)
    if where is None:
        if layout is not None and layout not in dataset.layouts:
            raise DataMismatch(f"layout {layout!r} does not hold dataset {name!r} (layouts: {', '.join(dataset.layouts)})")
        chosen = layout or dataset.layouts[0]
        if not quiet:
            print(f"data: dataset {name} not given: the built-in synthetic data ({chosen} layout); to read yours, "
                  f"run_all.py --data {name}=PATH or ${dataset.env}")
        return Located(None, chosen)
    root, origin = where
    found, folder = check_layout(name, root, layout, origin)
    if not quiet:
        print(f"data: dataset {name} from {origin}: {found} layout in {folder}")
    return Located(folder, found)
