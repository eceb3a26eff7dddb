"""Readers for each supported on-disk layout, layout detection, and :func:`load_catalog`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .. import provenance
from .catalog import (
    Problems, attach_images, find_file, fingerprint, finish, index_images, report_columns, report_duplicates, warn,
)
from .labels import CLASSES, ISIC2018_COLUMNS, to_code

Layout = Literal["ham10000", "isic2018", "folders", "isic_archive"]
LAYOUTS: tuple[str, ...] = ("ham10000", "isic2018", "folders", "isic_archive")
SYNTHETIC_MARKER = "SYNTHETIC.json"

_ISIC2018_GT = "ISIC2018_Task3_{}_GroundTruth.csv"
_ISIC2018_INPUT = "ISIC2018_Task3_{}_Input"
_ISIC2018_SETS = {"Training": "train", "Validation": "val", "Test": "test"}
# ISIC 2018 lesion-groupings `diagnosis_confirm_type` -> HAM10000 `dx_type`
_CONFIRM_TYPES = {
    "histopathology": "histo", "serial imaging showing no change": "follow_up",
    "single image expert consensus": "consensus", "confocal microscopy with consensus dermoscopy": "confocal",
}
_SPLIT_DIRS = {"train", "training", "val", "valid", "validation", "test", "testing"}
_ARCHIVE_KNOWN = {
    "isic_id", "attribution", "copyright_license", "acquisition_day", "age_approx", "anatom_site_general",
    "anatom_site_special", "benign_malignant", "clin_size_long_diam_mm", "concomitant_biopsy",
    "dermoscopic_type", "diagnosis", "diagnosis_1", "diagnosis_2", "diagnosis_3", "diagnosis_4", "diagnosis_5",
    "diagnosis_confirm_type", "family_hx_mm", "fitzpatrick_skin_type", "image_type", "lesion_id",
    "mel_class", "mel_mitotic_index", "mel_thick_mm", "mel_type", "mel_ulcer", "melanocytic", "nevus_type",
    "patient_id", "personal_hx_mm", "sex", "tbp_tile_type", "tbp_lv_location", "anatom_site_1",
    "anatom_site_2", "anatom_site_3", "pixels_x", "pixels_y", "rcm_case_id", "public",
}
_ARCHIVE_TARGET = {"benign": 0, "malignant": 1}
_ARCHIVE_UNDECIDED = {"indeterminate", "indeterminate/benign", "indeterminate/malignant", ""}


def _read_table(path: Path, problems: Problems) -> pd.DataFrame | None:
    """A CSV (or Dataverse ``.tab``) as strings, with a ``_where`` column giving file and line."""
    try:
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tab" else ",", dtype=str,
                            keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        problems.add(f"{path} cannot be read as a table ({type(exc).__name__}: {exc}).")
        return None
    table.columns = [str(c).strip() for c in table.columns]
    table["_where"] = [f"{path.name} line {i + 2}" for i in range(len(table))]
    return table


def _map_dx(table: pd.DataFrame, column: str, problems: Problems, on_unknown: str, what: str) -> pd.DataFrame:
    """Map diagnosis names to class codes; unknown names are a problem or, with on_unknown='drop', dropped."""
    codes = table[column].map(to_code)
    unknown = codes.isna()
    if unknown.any():
        names = [f"{v!r} ({w})" for v, w in zip(table.loc[unknown, column], table.loc[unknown, "_where"])]
        if on_unknown == "drop":
            warn(f"{len(names)} rows of {what} with a diagnosis outside the 7 classes were left out: "
                 + ", ".join(names[:5]))
        else:
            problems.offenders(
                f"rows of {what} have an unknown diagnosis in column {column!r}", names,
                f"Known: {', '.join(CLASSES)} (long names and any case accepted). Fix the values, or pass "
                "on_unknown='drop' to leave these rows out.")
    return table[~unknown].assign(dx=codes[~unknown])


def read_ham10000(root: Path, *, on_unknown: str = "error", allow_missing: bool = False) -> pd.DataFrame:
    """HAM10000 as published: ``HAM10000_metadata.csv`` (or Dataverse ``.tab``) and images in any sub-folders."""
    candidates = find_file(root, "HAM10000_metadata.csv") + find_file(root, "HAM10000_metadata.tab")
    problems = Problems(f"HAM10000 data in {root}")
    if not candidates:
        problems.add(f"no HAM10000_metadata.csv under {root}. Download HAM10000 from the Harvard Dataverse "
                     "(doi:10.7910/DVN/DBW86T) and unpack it there.")
        problems.raise_if_any()
    meta_path = candidates[0]
    problems.where = f"HAM10000 data in {root} ({meta_path.name})"
    table = _read_table(meta_path, problems)
    problems.raise_if_any()
    required = {"lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"}
    if not report_columns([c for c in table.columns if c != "_where"], required, {"dataset"}, problems, meta_path.name):
        problems.raise_if_any()
    table = _map_dx(table, "dx", problems, on_unknown, meta_path.name)
    report_duplicates(table, problems)
    table = attach_images(table, index_images([meta_path.parent]), problems, allow_missing=allow_missing,
                          searched=f"every folder under {meta_path.parent}")
    problems.raise_if_any()
    return finish(table, "ham10000")


def _isic2018_set(root: Path, name: str, problems: Problems, on_unknown: str) -> pd.DataFrame | None:
    """One ISIC 2018 Task 3 set (Training / Validation / Test) from its one-hot ground truth, or None if absent."""
    found = find_file(root, _ISIC2018_GT.format(name))
    if not found:
        return None
    gt_path = found[0]
    table = _read_table(gt_path, problems)
    if table is None:
        return None
    columns = [c for c in table.columns if c != "_where"]
    expected = ["image", *ISIC2018_COLUMNS]
    if "image" not in columns or not set(ISIC2018_COLUMNS) <= set(columns):
        problems.add(f"{gt_path.name} must have the columns {','.join(expected)} (it has {','.join(columns)}).")
        return None
    extra = [c for c in columns if c not in expected]
    if extra and on_unknown != "drop":
        problems.add(f"{gt_path.name} has diagnosis column(s) outside the 7 classes: {', '.join(extra)}. "
                     "Remove them, or pass on_unknown='drop' to leave rows of those classes out.")
    onehot = table[list(ISIC2018_COLUMNS) + extra].apply(pd.to_numeric, errors="coerce")
    positives = (onehot > 0.5).sum(axis=1)
    bad = positives != 1
    if bad.any():
        problems.offenders(f"rows of {gt_path.name} do not have exactly one positive class",
                           list(table.loc[bad, "_where"]), "Each row must hold one 1.0 and six 0.0 values.")
    in_extra = (onehot[extra] > 0.5).any(axis=1) if extra else pd.Series(False, index=table.index)
    if in_extra.any():
        warn(f"{int(in_extra.sum())} rows of {gt_path.name} belong to classes outside the 7 and were left out")
    keep = ~bad & ~in_extra
    table = table[keep].copy()
    table["dx"] = onehot.loc[keep, list(ISIC2018_COLUMNS)].idxmax(axis=1).str.lower().to_numpy()
    table["image_id"] = table["image"].str.strip()
    table["official_split"] = _ISIC2018_SETS[name]
    input_dirs = find_file_dirs(root, _ISIC2018_INPUT.format(name))
    table["_searched"] = ", ".join(d.name for d in input_dirs) or str(root)
    table["_folders"] = [input_dirs or [root]] * len(table)
    return table


def find_file_dirs(root: Path, name: str) -> list[Path]:
    """Folders under `root` named `name` (case-insensitive), at most three levels down."""
    name = name.lower()
    return sorted(p for p in root.glob("**/") if p.name.lower() == name and len(p.relative_to(root).parts) <= 3)


def read_isic2018(root: Path, *, on_unknown: str = "error", allow_missing: bool = False) -> pd.DataFrame:
    """ISIC 2018 Task 3: one-hot ground truth + input folders, optional lesion groupings, val / test sets."""
    problems = Problems(f"ISIC 2018 Task 3 data in {root}")
    sets = {name: _isic2018_set(root, name, problems, on_unknown) for name in _ISIC2018_SETS}
    if sets["Training"] is None:
        problems.add(f"no {_ISIC2018_GT.format('Training')} under {root}. Download Task 3 from "
                     "https://challenge.isic-archive.com/data/#2018 and unpack it there.")
    problems.raise_if_any()
    for name in ("Validation", "Test"):
        if sets[name] is None and find_file_dirs(root, _ISIC2018_INPUT.format(name)):
            warn(f"{_ISIC2018_INPUT.format(name)} is present without its ground-truth CSV; "
                 f"those images are not in the catalog (add {_ISIC2018_GT.format(name)} to use them)")
    parts = []
    for table in (t for t in sets.values() if t is not None):
        folders, searched = table["_folders"].iloc[0], table["_searched"].iloc[0]
        parts.append(attach_images(table.drop(columns=["_folders", "_searched"]), index_images(folders),
                                   problems, allow_missing=allow_missing, searched=searched))
    table = pd.concat(parts, ignore_index=True)
    report_duplicates(table, problems)
    groupings = find_file(root, "ISIC2018_Task3_Training_LesionGroupings.csv")
    if groupings:
        groups = _read_table(groupings[0], problems)
        if groups is not None and report_columns([c for c in groups.columns if c != "_where"],
                                                 {"image", "lesion_id"}, {"diagnosis_confirm_type"},
                                                 problems, groupings[0].name):
            groups = groups.drop_duplicates("image").set_index("image")
            table["lesion_id"] = table["image_id"].map(groups["lesion_id"])
            if "diagnosis_confirm_type" in groups:
                confirm = table["image_id"].map(groups["diagnosis_confirm_type"]).fillna("")
                table["dx_type"] = [_CONFIRM_TYPES.get(c.strip().lower(), c) for c in confirm]
    else:
        warn(f"no ISIC2018_Task3_Training_LesionGroupings.csv under {root}: every image counts as its own lesion, "
             "so lesion-grouped splits cannot prevent leakage. Add the groupings file from the ISIC 2018 page.")
    problems.raise_if_any()
    return finish(table, "isic2018")


def read_folders(root: Path, *, on_unknown: str = "error", allow_missing: bool = False) -> pd.DataFrame:
    """One folder per class (Kaggle copies): class names in any case, short or long; split folders allowed."""
    problems = Problems(f"the class folders in {root}")
    rows, unknown = [], []
    for stem, path in index_images([root]).items():
        rel = path.relative_to(root).parts[:-1]
        classes = [to_code(p) for p in rel]
        code = next((c for c in reversed(classes) if c), None)
        if code is None:
            folder = next((p for p in reversed(rel) if p.lower() not in _SPLIT_DIRS), rel[-1] if rel else ".")
            unknown.append((folder, str(path)))
            continue
        rows.append({"image_id": stem, "dx": code, "path": str(path), "_where": str(path.relative_to(root))})
    if unknown:
        folders = sorted({f for f, _ in unknown})
        if on_unknown == "drop":
            warn(f"{len(unknown)} images in folders that are not one of the 7 classes were left out: {folders}")
        else:
            problems.offenders(
                "folders hold images but are not one of the 7 classes",
                [f"{f!r} ({sum(1 for g, _ in unknown if g == f)} images)" for f in folders],
                f"Class folders must be named {', '.join(CLASSES)} or their long names. Rename them, or pass "
                "on_unknown='drop' to leave them out.")
    if not rows and not unknown:
        problems.add(f"no images (.jpg, .jpeg, .png) under {root}.")
    problems.raise_if_any()
    table = pd.DataFrame(rows)
    report_duplicates(table, problems)
    index = dict(zip(table["image_id"], map(Path, table["path"])))
    # every row comes from a file that exists; allow_missing leaves out the unreadable ones
    table = attach_images(table.drop_duplicates("image_id"), index, problems, allow_missing=allow_missing,
                          searched=str(root))
    problems.raise_if_any()
    warn("class folders carry no lesion ids: every image counts as its own lesion, so lesion-grouped splits "
         "cannot prevent leakage. Prefer the HAM10000 metadata CSV when you have it.")
    return finish(table, "folders")


def read_isic_archive(root: Path, *, on_unknown: str = "error", allow_missing: bool = False) -> pd.DataFrame:
    """An ISIC archive export: ``metadata.csv`` with ``isic_id`` and ``diagnosis_1`` or ``benign_malignant``.

    Adds the binary target ``malignant`` (0 / 1), ``size_mm`` and the free-text ``diagnosis``; ``dx`` is
    filled where the most specific diagnosis is one of the 7 classes. Rows whose target is indeterminate
    or empty cannot be used for a benign / malignant task and are left out, with a warning that counts them.
    """
    del on_unknown  # diagnoses outside the 7 classes are normal here; the target is benign / malignant
    problems = Problems(f"the ISIC archive export in {root}")
    meta_path = _archive_csv(root)
    if meta_path is None:
        problems.add(f"no CSV with an 'isic_id' column under {root}. Export metadata.csv together with the "
                     "images from https://www.isic-archive.com (Download on a search result).")
        problems.raise_if_any()
    problems.where = f"the ISIC archive export in {root} ({meta_path.name})"
    table = _read_table(meta_path, problems)
    problems.raise_if_any()
    columns = [c for c in table.columns if c != "_where"]
    target_col = "diagnosis_1" if "diagnosis_1" in columns else "benign_malignant"
    if not report_columns(columns, {"isic_id", target_col}, _ARCHIVE_KNOWN, problems, meta_path.name):
        problems.raise_if_any()
    target = table[target_col].str.strip().str.lower()
    unknown = ~target.isin(set(_ARCHIVE_TARGET) | _ARCHIVE_UNDECIDED)
    if unknown.any():
        problems.offenders(
            f"rows have an unknown {target_col!r}",
            [f"{v!r} ({w})" for v, w in zip(table.loc[unknown, target_col], table.loc[unknown, "_where"])],
            "Expected Benign, Malignant or Indeterminate.")
    undecided = target.isin(_ARCHIVE_UNDECIDED) & ~unknown
    if undecided.any():
        warn(f"{int(undecided.sum())} rows of {meta_path.name} with an indeterminate or empty {target_col!r} "
             "were left out: they have no benign / malignant label")
    table = table[~unknown & ~undecided].copy()
    table["malignant"] = target[table.index].map(_ARCHIVE_TARGET).astype(int)
    specific = [c for c in ("diagnosis_5", "diagnosis_4", "diagnosis_3", "diagnosis_2", "diagnosis") if c in table]
    table["diagnosis"] = table[specific].replace("", np.nan).bfill(axis=1).iloc[:, 0].fillna("") if specific else ""
    table["dx"] = [to_code(d) or "" if d else "" for d in table["diagnosis"]]
    rename = {"isic_id": "image_id", "age_approx": "age", "anatom_site_general": "localization",
              "clin_size_long_diam_mm": "size_mm", "diagnosis_confirm_type": "dx_type"}
    table = table.rename(columns=rename)
    table["image_id"] = table["image_id"].str.strip()
    table["size_mm"] = pd.to_numeric(table.get("size_mm", np.nan), errors="coerce")
    report_duplicates(table, problems)
    table = attach_images(table, index_images([meta_path.parent]), problems, allow_missing=allow_missing,
                          searched=f"every folder under {meta_path.parent}")
    problems.raise_if_any()
    keep = ["image_id", "lesion_id", "patient_id", "dx", "path", "age", "sex", "localization", "dx_type",
            "width", "height", "malignant", "size_mm", "diagnosis"]
    return finish(table[[c for c in keep if c in table]], "isic_archive")


def _archive_csv(root: Path) -> Path | None:
    for path in sorted(root.glob("*.csv")) + sorted(root.glob("*/*.csv")):
        try:
            header = pd.read_csv(path, nrows=0).columns
        except Exception:
            continue
        if "isic_id" in [str(c).strip() for c in header]:
            return path
    return None


READERS = {"ham10000": read_ham10000, "isic2018": read_isic2018, "folders": read_folders,
           "isic_archive": read_isic_archive}


def detect_layouts(root: Path) -> list[tuple[str, Path]]:
    """Every (layout, folder) found at or below `root`, at most two levels down."""
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for path in find_file(root, "HAM10000_metadata.csv", 2) + find_file(root, "HAM10000_metadata.tab", 2):
        found.append(("ham10000", path.parent))
    for path in find_file(root, _ISIC2018_GT.format("Training"), 3):
        base = path.parent
        if base.name.lower() == "isic2018_task3_training_groundtruth":
            base = base.parent
        found.append(("isic2018", base))
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        csv = _archive_csv(folder)
        if csv is not None and csv.parent == folder:
            found.append(("isic_archive", folder))
    if not found:
        found += [("folders", folder) for folder in class_folder_roots(root)]
    return list(dict.fromkeys(found))


def class_folder_roots(root: Path, max_depth: int = 2) -> list[Path]:
    """Folders holding one folder per class: `root` itself, else the shallowest ones at most `max_depth` levels
    below it, under parents of any name (downloads often unpack as ``<some name>/<class>/...``)."""
    level = [root]
    for _ in range(max_depth + 1):
        hits = [folder for folder in level if _looks_like_class_folders(folder)]
        if hits:
            return hits
        level = [p for folder in level for p in sorted(folder.iterdir())
                 if p.is_dir() and not p.name.startswith(".") and not to_code(p.name)]
    return []


def _looks_like_class_folders(root: Path) -> bool:
    subdirs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if any(to_code(p.name) for p in subdirs):
        return True
    return any(to_code(q.name) for p in subdirs if p.name.lower() in _SPLIT_DIRS for q in p.iterdir() if q.is_dir())


def resolve_layout(root: Path, layout: str | None = None) -> tuple[str, Path]:
    """The (layout, folder) to read under `root`: detected, or the one named by `layout`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist. Set data_dir (run_all.py --data, or the "
                                "SKINLIB_DATA environment variable) to a folder holding one of the layouts in README.md.")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    found = detect_layouts(root)
    if layout is not None:
        matches = [f for f in found if f[0] == layout]
        if matches:
            return matches[0]
        if layout == "folders":
            return layout, root
        raise FileNotFoundError(f"no {layout} layout under {root}; found: "
                                + (", ".join(f"{lay} in {p}" for lay, p in found) or "nothing recognisable"))
    if not found:
        raise FileNotFoundError(
            f"no dataset layout recognised under {root}. Expected HAM10000_metadata.csv, "
            "ISIC2018_Task3_Training_GroundTruth.csv, an ISIC archive metadata.csv (with isic_id), "
            "or one folder per class. See README.md, 'Running on the real data'.")
    layouts = {lay for lay, _ in found}
    if len(layouts) > 1:
        raise ValueError(f"several layouts under {root}: " + ", ".join(f"{lay} in {p}" for lay, p in found)
                         + ". Pass layout= (one of those) or point data_dir at one of the folders.")
    return found[0]


def synthetic_info(folder: Path) -> dict | None:
    """The generator's record if `folder` (or a parent up to two levels) holds synthetic data, else None."""
    folder = Path(folder).resolve()
    for candidate in (folder, *list(folder.parents)[:2]):
        marker = candidate / SYNTHETIC_MARKER
        if marker.is_file():
            return json.loads(marker.read_text())
    return None


def load_catalog(
    data_dir: str | Path,
    layout: str | None = None,
    *,
    on_unknown: Literal["error", "drop"] = "error",
    allow_missing: bool = False,
) -> pd.DataFrame:
    """Read a dataset in any supported layout into the catalog table (see :mod:`skinlib.data.catalog`).

    Args:
        data_dir: dataset root; the layout is detected, also one or two folders down.
        layout: force one of ``ham10000``, ``isic2018``, ``folders``, ``isic_archive``.
        on_unknown: ``"error"`` reports diagnoses outside the 7 classes; ``"drop"`` leaves them out with a warning.
        allow_missing: leave out catalog rows whose image file is missing, empty or truncated (listed in a warning)
            instead of failing.

    Raises:
        CatalogError: listing every problem found (missing columns, unknown labels, duplicate ids,
            missing or unreadable images), each with counts, the first offenders and how to fix it.
    """
    found_layout, folder = resolve_layout(Path(data_dir), layout)
    provenance.note("dataset", folder)
    catalog = READERS[found_layout](folder, on_unknown=on_unknown, allow_missing=allow_missing)
    info = synthetic_info(folder)
    catalog.attrs.update(layout=found_layout, root=str(folder), synthetic=info is not None, synthetic_info=info)
    provenance.read_data("dataset", layout=found_layout, fingerprint=fingerprint(catalog), synthetic=info is not None,
                         generator_version=(info or {}).get("version"), images=len(catalog),
                         lesion_ids=has_lesion_ids(catalog), patient_ids=bool((catalog["patient_id"] != "").any()))
    return catalog


def has_lesion_ids(catalog: pd.DataFrame) -> bool:
    """Whether the catalog knows lesions (some lesion holds several images, or ids differ from the image ids):
    class folders and ISIC 2018 without its groupings file do not, and every image is its own group there."""
    return bool((catalog["lesion_id"] != catalog["image_id"]).any())
