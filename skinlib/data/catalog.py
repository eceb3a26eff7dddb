"""The catalog: one tidy table, one row per image, whatever layout the dataset came in.

Columns (every loader returns all of them):

==============  =====================================================================
image_id        file stem, e.g. ``ISIC_0024306``
lesion_id       images of the same lesion share it (the image id when unknown)
patient_id      empty string when the layout has no patient ids
dx              class code (``akiec`` ... ``vasc``), empty when outside the 7 classes
label           index of ``dx`` in :data:`skinlib.data.labels.CLASSES`, -1 when ``dx`` is empty
path            absolute path of the image file
age             years (float, NaN when unknown)
sex             ``male`` / ``female`` / ``unknown``
localization    body site, ``unknown`` when missing
dx_type         how the diagnosis was confirmed (histo, follow_up, consensus, confocal, ...)
source          the layout it was read from (``ham10000``, ``isic2018``, ``folders``, ``isic_archive``)
official_split  ``train`` / ``val`` / ``test`` for official ISIC 2018 sets, else empty
width, height   image size in pixels, read from the file header
==============  =====================================================================

Binary tasks add their target column (``malignant`` for ISIC archive exports, which also add
``size_mm`` and the free-text ``diagnosis``).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .labels import CLASSES

COLUMNS: tuple[str, ...] = (
    "image_id", "lesion_id", "patient_id", "dx", "label", "path", "age", "sex",
    "localization", "dx_type", "source", "official_split", "width", "height",
)

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})
_SHOW = 5  # offenders named per problem


class CatalogError(ValueError):
    """A dataset that cannot be read as it is; the message lists every problem found."""


class CatalogWarning(UserWarning):
    """Something unusual in a dataset that was handled (extra columns, dropped rows, missing lesion ids)."""


@dataclass
class Problems:
    """Collects validation problems so that they are all reported together."""

    where: str
    items: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.items.append(message)

    def offenders(self, what: str, names: list[str], fix: str) -> None:
        """Record a problem affecting `names` (count, the first few, and how to fix it)."""
        if not names:
            return
        shown = ", ".join(names[:_SHOW]) + (f", ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else "")
        self.add(f"{len(names)} {what}: {shown}. {fix}")

    def raise_if_any(self) -> None:
        if self.items:
            body = "\n".join(f"  {i}. {msg}" for i, msg in enumerate(self.items, 1))
            n = len(self.items)
            raise CatalogError(f"Cannot load {self.where}: {n} problem{'s' * (n > 1)} found.\n{body}")


def warn(message: str) -> None:
    """Emit a :class:`CatalogWarning` pointing at the caller of the loader."""
    warnings.warn(message, CatalogWarning, stacklevel=4)


def find_file(root: Path, name: str, max_depth: int = 3) -> list[Path]:
    """Files under `root` named `name` (case-insensitive), shallowest first."""
    name = name.lower()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < max_depth else []
        found += [Path(dirpath) / f for f in filenames if f.lower() == name]
    return sorted(found, key=lambda p: (len(p.parts), str(p)))


def index_images(folders: list[Path]) -> dict[str, Path]:
    """Map image stem -> file for every image under `folders` (recursive; ``.JPG`` and ``.jpg`` alike).

    Non-image files (licences, ``.DS_Store``, attribution notes) are ignored. When the same stem
    appears twice (e.g. Kaggle's duplicated ``ham10000_images_part_1`` folder) the first in sorted
    order wins.
    """
    index: dict[str, Path] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in IMAGE_SUFFIXES and not name.startswith("."):
                    index.setdefault(stem, Path(dirpath) / name)
    return index


def check_image(path: Path) -> tuple[int, int] | str:
    """(width, height) of a readable image, or a short reason why it is unreadable or truncated.

    Reads only the header and the last bytes: a JPEG must end with its end-of-image marker and a
    PNG with its IEND chunk, which catches the commonest damage (an interrupted download) cheaply.
    Full decoding happens once, when the image cache is built.
    """
    try:
        with Image.open(path) as im:
            size, fmt = im.size, im.format
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 64))
            tail = fh.read()
    except Exception as exc:  # PIL raises several types for garbage files
        return f"cannot be opened ({type(exc).__name__}: {exc})"
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated (no JPEG end-of-image marker)"
    if fmt == "PNG" and b"IEND" not in tail:
        return "truncated (no PNG IEND chunk)"
    return size


def attach_images(
    table: pd.DataFrame,
    index: dict[str, Path],
    problems: Problems,
    *,
    allow_missing: bool,
    searched: str,
) -> pd.DataFrame:
    """Fill ``path``, ``width`` and ``height`` from the image index; report missing and unreadable files (empty,
    truncated, not an image), or with `allow_missing` leave their rows out and list them in a warning."""
    lower = {k.lower(): v for k, v in index.items()}
    paths = [index.get(i) or lower.get(i.lower()) for i in table["image_id"]]
    missing = [p is None for p in paths]
    table = table.assign(path=[str(p) if p else "" for p in paths])
    if any(missing):
        names = [f"{i} ({where})" for i, where, m in zip(table["image_id"], table["_where"], missing) if m]
        if allow_missing:
            warn(f"{len(names)} catalog rows have no image file and were left out (looked in {searched}): "
                 + ", ".join(names[:_SHOW]))
            table = table[~np.array(missing)]
        else:
            problems.offenders(
                "catalog rows have no image file", names,
                f"Looked in {searched}. Put the missing images under the dataset root, or pass "
                "allow_missing=True (run_all.py: --allow-missing) to leave these rows out.")
            table = table[~np.array(missing)]
    sizes, bad = [], []
    for path in table["path"]:
        result = check_image(Path(path))
        if isinstance(result, str):
            bad.append(f"{path} {result}")
            sizes.append((0, 0))
        else:
            sizes.append(result)
    sizes_arr = np.array(sizes, dtype=np.int64).reshape(-1, 2)
    table = table.assign(width=sizes_arr[:, 0], height=sizes_arr[:, 1])
    if bad and allow_missing:
        warn(f"{len(bad)} image files are unreadable or truncated (empty, cut short) and were left out: "
             + ", ".join(bad[:_SHOW]) + (f", ... ({len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""))
        return table[table["width"] > 0]
    problems.offenders("image files are unreadable or truncated", bad,
                       "Download these files again (or delete them and their catalog rows), or pass "
                       "allow_missing=True (run_all.py: --allow-missing) to leave them out.")
    return table


def report_duplicates(table: pd.DataFrame, problems: Problems) -> None:
    """Record image ids that occur more than once."""
    dup = table["image_id"].duplicated(keep=False)
    if dup.any():
        groups = table[dup].groupby("image_id")["_where"].apply(lambda s: " and ".join(s))
        problems.offenders("image ids occur more than once", [f"{i} ({w})" for i, w in groups.items()],
                           "Each image must appear once: remove the duplicate rows or files.")


def report_columns(columns: list[str], required: set[str], known: set[str], problems: Problems, what: str) -> bool:
    """Record missing required columns (a problem) and warn about unknown extra ones; False if any is missing."""
    missing = sorted(required - set(columns))
    extra = [c for c in columns if c not in required | known]
    if missing:
        problems.add(f"{what} lacks required column(s) {', '.join(map(repr, missing))} "
                     f"(it has: {', '.join(map(repr, columns))}). Use the file as published, or rename the columns.")
    if extra:
        warn(f"{what} has columns skinlib does not use, ignored: {', '.join(map(repr, extra))}")
    return not missing


def finish(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """Bring a loader's table to the catalog contract: all columns, tidy types, sorted by image id."""
    table = table.copy()
    defaults = {"patient_id": "", "age": np.nan, "sex": "unknown", "localization": "unknown",
                "dx_type": "unknown", "official_split": "", "lesion_id": table["image_id"]}
    for col, value in defaults.items():
        if col not in table:
            table[col] = value
    for col in ("sex", "localization", "dx_type"):
        values = table[col].astype("string").fillna("").str.strip().str.lower()
        table[col] = values.where(values != "", "unknown").astype(str)
    table["lesion_id"] = table["lesion_id"].astype("string").fillna("").astype(str)
    table["lesion_id"] = table["lesion_id"].where(table["lesion_id"] != "", table["image_id"])
    table["patient_id"] = table["patient_id"].astype("string").fillna("").astype(str)
    table["age"] = pd.to_numeric(table["age"], errors="coerce").astype(float)
    table["dx"] = table["dx"].fillna("").astype(str)
    table["label"] = [CLASSES.index(d) if d in CLASSES else -1 for d in table["dx"]]
    table["source"] = source
    extra = [c for c in table.columns if c not in COLUMNS and not c.startswith("_")]
    table = table[list(COLUMNS) + extra].sort_values("image_id", kind="stable").reset_index(drop=True)
    return table


def fingerprint(catalog: pd.DataFrame) -> str:
    """A short hash of the catalog's content: ids, labels, groups, targets and file names and sizes.

    Independent of where the dataset lives (moving it keeps caches and splits valid) and of row order.
    """
    cols = [c for c in ("image_id", "lesion_id", "patient_id", "dx", "official_split", "malignant") if c in catalog]
    frame = catalog[cols].astype(str).copy()
    frame["file"] = [f"{os.path.basename(p)}:{os.path.getsize(p)}" for p in catalog["path"]]
    frame = frame.sort_values("image_id", kind="stable")
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    digest.update(",".join(cols).encode())
    return digest.hexdigest()[:16]
