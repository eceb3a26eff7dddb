"""Train / val / test splits: stratified by class, grouped so that no lesion (or patient) spans two splits.

A split is a table ``image_id, split`` saved to disk with a manifest (seed, ratios, grouping, catalog
fingerprint, counts), so every later notebook trains and tests on exactly the same images.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from .. import parameters, paths, provenance
from ..notebook import notice
from .catalog import fingerprint

SPLITS: tuple[str, ...] = ("train", "val", "test")
GroupBy = Literal["auto", "lesion", "patient", "image", "duplicates", "lesion+duplicates"]
#: the catalog column holding the near-duplicate audit's inferred groups (:func:`with_duplicate_groups`)
DUPLICATE_GROUP = "duplicate_group"


class SplitError(ValueError):
    """A split that does not fit the catalog it is used with."""


def with_duplicate_groups(catalog: pd.DataFrame, found) -> pd.DataFrame:
    """The catalog with a ``duplicate_group`` column: the near-duplicate audit's inferred groups, which
    ``group_by="duplicates"`` (or ``"lesion+duplicates"``) keeps together.

    Args:
        catalog: the catalog.
        found: its near-duplicate audit (:func:`skinlib.data.duplicates.audit`).
    """
    from .duplicates import duplicate_groups

    out = catalog.copy()
    out[DUPLICATE_GROUP] = duplicate_groups(catalog, found).astype(str)
    return out


def groups_of(catalog: pd.DataFrame, group_by: GroupBy = "auto") -> np.ndarray:
    """An integer group per image: images sharing a lesion (and, with patients, a patient) share a group.

    ``auto`` links images through both ``lesion_id`` and ``patient_id`` (where not empty), taking the
    connected components, so neither a lesion nor a patient can end up in two splits. ``duplicates`` links the
    near-duplicates the audit found (the catalog's ``duplicate_group`` column, :func:`with_duplicate_groups`);
    ``lesion+duplicates`` links both.
    """
    if group_by == "image":
        return np.arange(len(catalog))
    if "duplicates" in group_by and DUPLICATE_GROUP not in catalog:
        raise SplitError(f"group_by={group_by!r} needs the near-duplicate audit's groups: "
                         "catalog = with_duplicate_groups(catalog, duplicates.audit(catalog, cache)) first")
    keys = [("lesion", catalog["lesion_id"].to_numpy())] if group_by in ("auto", "lesion", "lesion+duplicates") else []
    if "duplicates" in group_by:
        keys.append(("duplicates", catalog[DUPLICATE_GROUP].astype(str).to_numpy()))
    if group_by in ("auto", "patient"):
        pids = catalog["patient_id"].to_numpy()
        if group_by == "patient" and not (pids != "").any():
            raise SplitError("group_by='patient' but the catalog has no patient ids; use 'lesion' or 'auto'")
        keys.append(("patient", np.where(pids != "", pids, "")))
    parent = list(range(len(catalog)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, values in keys:
        first: dict[str, int] = {}
        for i, v in enumerate(values):
            if v == "":
                continue
            j = first.setdefault(v, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[ri] = rj
    roots = np.array([find(i) for i in range(len(catalog))])
    return np.unique(roots, return_inverse=True)[1]


def _allocate(sizes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Assign groups (largest first, in the given order) to the split whose relative shortfall is largest."""
    filled = np.zeros(len(targets))
    out = np.empty(len(sizes), dtype=np.int64)
    live = targets > 0
    for i in np.argsort(-sizes, kind="stable"):
        deficit = np.where(live, (targets - filled) / np.where(live, targets, 1), -np.inf)
        k = int(np.argmax(deficit[::-1]))          # ties go to the last split (test, then val): rare classes
        k = len(targets) - 1 - k                   # land in the evaluation splits first
        out[i] = k
        filled[k] += sizes[i]
    return out


def _per_image(n: int, ratios: np.ndarray) -> np.ndarray:
    """Split indices for `n` images of one class, split per image as study A did: each split's share rounded down,
    the rest to the last split with a share (test; val when an official test set is the test split). This
    reproduces study A's Table 1 exactly (7,508 / 998 / 1,509 images of HAM10000 at 75 / 10 / 15)."""
    counts = np.floor(n * ratios + 1e-9).astype(int)
    counts[np.flatnonzero(ratios > 0)[-1]] += n - counts.sum()
    return np.repeat(np.arange(len(ratios)), counts)


def make_split(
    catalog: pd.DataFrame,
    ratios: tuple[float, float, float] = (0.75, 0.10, 0.15),
    seed: int = 0,
    group_by: GroupBy = "auto",
    stratify: str = "label",
    use_official_test: bool = True,
) -> pd.DataFrame:
    """Split the catalog into train / val / test; returns ``image_id, split`` in catalog order.

    Args:
        catalog: the catalog table.
        ratios: train, val, test fractions, summing to 1; study A uses 75/10/15, binary tasks 70/15/15.
        seed: the split is a function of the catalog and this seed only.
        group_by: ``auto`` (lesion, and patient where known), ``lesion``, ``patient``, ``duplicates`` (the
            near-duplicate audit's inferred groups: :func:`with_duplicate_groups`), ``lesion+duplicates``, or
            ``image`` (the studies' leaky image-level split, kept for comparison; its per-class counts are study
            A's: train and val rounded down, the rest to test, see :func:`_per_image`).
        stratify: column whose proportions each split keeps (``label``, or a binary target such as ``malignant``).
        use_official_test: when the catalog holds the official ISIC 2018 test (and validation) sets, use them
            as test (and part of val), and split only the training images, into train and val.
    """
    given = [float(r) if isinstance(r, (np.integer, np.floating)) else r for r in ratios] \
        if isinstance(ratios, (list, tuple, np.ndarray)) else ratios
    problem = parameters.problem("ratios", given) or parameters.problem("group_by", group_by)
    if problem:
        raise SplitError(problem)
    ratios_arr = np.asarray(ratios, dtype=float)
    if stratify not in catalog:
        raise SplitError(f"stratify column {stratify!r} is not in the catalog (columns: {', '.join(catalog.columns)})")
    ratios_arr = ratios_arr / ratios_arr.sum()
    split = np.full(len(catalog), "", dtype=object)
    pool = np.ones(len(catalog), dtype=bool)
    official = catalog["official_split"].to_numpy() if "official_split" in catalog else np.full(len(catalog), "")
    if use_official_test and (official == "test").any():
        split[official == "test"] = "test"
        split[official == "val"] = "val"
        pool = official == "train"
        ratios_arr = np.array([ratios_arr[0], ratios_arr[1], 0.0]) / (ratios_arr[0] + ratios_arr[1])
    groups = groups_of(catalog, group_by)
    strata = catalog[stratify].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    idx = np.flatnonzero(pool)
    frame = pd.DataFrame({"group": groups[idx], "stratum": strata[idx]})
    # a group's stratum is its most frequent value (ties: the smallest), so each group is placed once
    major = frame.groupby("group")["stratum"].agg(lambda s: s.value_counts().sort_index().idxmax())
    sizes = frame.groupby("group").size()
    assignment: dict[int, str] = {}
    for stratum in sorted(major.unique()):
        members = major.index[major == stratum].to_numpy()
        members = members[rng.permutation(len(members))]
        member_sizes = sizes.loc[members].to_numpy()
        chosen = (_per_image(len(members), ratios_arr) if group_by == "image"
                  else _allocate(member_sizes, ratios_arr * member_sizes.sum()))
        assignment.update({int(g): SPLITS[k] for g, k in zip(members, chosen)})
    split[idx] = [assignment[int(g)] for g in groups[idx]]
    note = ratio_note(split[idx], ratios_arr, len(major), len(set(major)))
    if note and note not in _SAID:
        _SAID.add(note)                                         # once per process (02 makes its split twice)
        notice(note)
    return pd.DataFrame({"image_id": catalog["image_id"].to_numpy(), "split": split})


def train_fraction_subset(part: pd.DataFrame, fraction: float, seed: int = 0, stratify: str = "label",
                          group_by: GroupBy = "auto") -> pd.DataFrame:
    """A share of the training rows for a label-efficiency curve: whole lesions (and patients) kept or dropped,
    each class keeping about `fraction` of its images, the same subset for the same seed.

    Each class's groups (a group's class is its most frequent one) are put in an order drawn from `seed`; the
    subset keeps the shortest prefix of that order holding at least ``fraction`` of the class's images, and at
    least one group per class. The subsets of one seed are therefore **nested**: a smaller fraction keeps a subset
    of a larger one's images. ``fraction = 1`` returns `part` unchanged.

    Args:
        part: the training rows (``lesion_id``, ``patient_id`` when known, and the `stratify` column).
        fraction: share of the training labels kept, in (0, 1].
        seed: the order the groups are drawn in (the run's seed).
        stratify: the class column (``label``; a binary task's ``target``).
        group_by: how images are grouped (:func:`groups_of`).

    Raises:
        SplitError: a fraction outside (0, 1], or a missing `stratify` column.
    """
    problem = parameters.problem("train_fraction", fraction)
    if problem:
        raise SplitError(problem)
    if stratify not in part:
        raise SplitError(f"train_fraction: the class column {stratify!r} is not in the training rows (columns: "
                         f"{', '.join(map(str, part.columns))})")
    if fraction >= 1 or part.empty:
        return part
    table = part.reset_index(drop=True)
    linked = table.assign(lesion_id=table["lesion_id"].fillna("").astype(str) if "lesion_id" in table else "",
                          patient_id=table["patient_id"].fillna("").astype(str) if "patient_id" in table else "")
    named = linked["lesion_id"].where(linked["lesion_id"] != "", pd.Series(np.arange(len(table))).astype(str))
    groups = groups_of(linked.assign(lesion_id=named), group_by)
    frame = pd.DataFrame({"group": groups, "stratum": table[stratify].astype(str).to_numpy()})
    major = frame.groupby("group")["stratum"].agg(lambda s: s.value_counts().sort_index().idxmax())
    sizes = frame.groupby("group").size()
    rng = np.random.default_rng(seed)
    kept: list[int] = []
    for stratum in sorted(major.unique()):
        members = major.index[major == stratum].to_numpy()
        members = members[rng.permutation(len(members))]
        cumulative = np.cumsum(sizes.loc[members].to_numpy())
        count = int(np.searchsorted(cumulative, fraction * cumulative[-1] - 1e-9)) + 1
        kept.extend(int(g) for g in members[:max(1, count)])
    keep = np.isin(groups, kept)
    return part[keep]


#: how far (as a fraction of the images) a split may be from the ratios asked before it is said
RATIO_TOLERANCE = 0.05
_SAID: set[str] = set()


def ratio_note(assigned: np.ndarray, ratios: np.ndarray, groups: int, classes: int) -> str | None:
    """A line saying that a split is not in the proportions asked (more than :data:`RATIO_TOLERANCE` off in one
    split), e.g. on a tiny dataset where 75/10/15 becomes 14/14/14 images; None when it is.

    Args:
        assigned: the split of each image divided (``train`` / ``val`` / ``test``).
        ratios: the fractions asked, in :data:`SPLITS` order (0 for a split not made here).
        groups, classes: how many lesion groups and classes were placed (said in the line).
    """
    counts = np.array([int((assigned == name).sum()) for name in SPLITS])
    if counts.sum() == 0:
        return None
    got = counts / counts.sum()
    if np.max(np.abs(got - ratios)) <= RATIO_TOLERANCE:
        return None
    live = np.asarray(ratios) > 0

    def percent(values) -> str:
        return "/".join(str(round(100 * v)) for v in values)

    return (f"note: the split is {percent(got[live])} ({'/'.join(map(str, counts[live]))} images), not the "
            f"{percent(np.asarray(ratios)[live])} asked: {counts.sum()} images in {groups} groups (lesions) over "
            f"{classes} classes are too few to honour the ratios, as each class's groups are placed whole")


def split_counts(catalog: pd.DataFrame, split: pd.DataFrame, by: str = "dx") -> pd.DataFrame:
    """Images per class (rows) and split (columns), with totals: study A's Table 1."""
    merged = catalog[["image_id", by]].merge(split, on="image_id", validate="one_to_one")
    table = pd.crosstab(merged[by], merged["split"], margins=True, margins_name="total")
    return table.reindex(columns=[s for s in SPLITS if s in table.columns] + ["total"])


def leakage_report(catalog: pd.DataFrame, split: pd.DataFrame, found=None) -> pd.DataFrame:
    """Lesions (and patients) found in more than one split, per pair of splits, and the images involved; with
    `found` (a near-duplicate audit, :func:`skinlib.data.duplicates.audit`), a row of near-duplicate pairs whose
    images lie in two splits (its ``total``: all near-duplicate pairs)."""
    merged = catalog.merge(split, on="image_id", validate="one_to_one")
    rows = {}
    keys = {"lesions": "lesion_id"}
    if (merged["patient_id"] != "").any():
        keys["patients"] = "patient_id"
    for name, col in keys.items():
        known = merged[merged[col] != ""]
        per_group = known.groupby(col)["split"].agg(lambda s: frozenset(s))
        row = {f"{a}&{b}": int(sum(1 for s in per_group if a in s and b in s))
               for i, a in enumerate(SPLITS) for b in SPLITS[i + 1:]}
        shared = per_group[per_group.map(len) > 1]
        row["shared"] = len(shared)
        row["images in shared"] = int(known[col].isin(shared.index).sum())
        row["total"] = len(per_group)
        rows[name] = row
    if found is not None:
        from .duplicates import crossing_pairs

        rows["near-duplicate pairs"] = crossing_pairs(found, split).to_dict()
    return pd.DataFrame.from_dict(rows, orient="index")


def default_name(group_by: str, ratios: tuple[float, ...], seed: int) -> str:
    """A readable split name, e.g. ``lesion-75-10-15-seed0``: its grouping (``auto`` is ``lesion``), ratios, seed.
    :func:`split_name` gives the name a split of a given catalog is saved under."""
    kind = {"auto": "lesion", "image": "image"}.get(group_by, group_by)
    return f"{kind}-{'-'.join(str(round(100 * r)) for r in ratios)}-seed{seed}"


def split_name(catalog: pd.DataFrame, group_by: str, ratios: tuple[float, ...], seed: int) -> str:
    """The name a split of `catalog` is saved under: :func:`default_name` of what it keeps together on this data.
    On data without lesion (or patient) ids a lesion-grouped split is one image per group, named ``ungrouped-...``
    (``duplicates-...`` with ``lesion+duplicates``), never ``lesion-...``.

    Args:
        catalog: the catalog the split divides.
        group_by, ratios, seed: the split's settings.
    """
    if group_by == "image":
        return default_name("image", ratios, seed)
    kinds = grouped_by(catalog, group_by)
    if not kinds:
        return default_name("ungrouped", ratios, seed)
    if "duplicates" in kinds and "lesion" not in kinds and group_by == "lesion+duplicates":
        return default_name("duplicates", ratios, seed)
    return default_name(group_by, ratios, seed)


def save_split(
    catalog: pd.DataFrame,
    split: pd.DataFrame,
    name: str,
    *,
    seed: int,
    ratios: tuple[float, ...],
    group_by: str,
    stratify: str = "label",
    folder: Path | None = None,
    extra: dict | None = None,
) -> Path:
    """Write ``split.csv`` and ``manifest.json`` (atomically) under ``splits/<name>/``; return the folder.

    `extra` entries (e.g. train-split normalisation statistics) are added to the manifest.
    """
    folder = Path(folder) if folder else paths.splits_dir() / name
    leaks = leakage_report(catalog, split)
    manifest = {
        "name": name, "seed": seed, "ratios": list(ratios), "group_by": group_by, "stratify": stratify,
        "catalog_fingerprint": fingerprint(catalog), "layout": catalog.attrs.get("layout"),
        "synthetic": bool(catalog.attrs.get("synthetic")), "n_images": len(split),
        "counts": {k: int(v) for k, v in split["split"].value_counts().sort_index().items()},
        "shared_lesions": int(leaks.loc["lesions", "shared"]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }
    # the manifest first: split.csv is what marks a split as saved (load_split), so a process that finds it, while
    # another one is saving the same split (two runs opening an empty workspace at once), finds the manifest too
    paths.write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2))
    paths.write_atomic(folder / "split.csv", split.to_csv(index=False))
    return folder


#: notebook 02's defaults; the split they make is the one every model notebook reads unless told otherwise
DEFAULTS: dict = {"ratios": (0.75, 0.10, 0.15), "seed": 0, "group_by": "auto", "stratify": "label", "image_size": 224}
DEFAULT_SPLIT: str = default_name(DEFAULTS["group_by"], DEFAULTS["ratios"], DEFAULTS["seed"])

_LESION_NAME = re.compile(r"^(?P<kind>lesion|lesion\+duplicates)-(?P<rest>\d+(?:-\d+)+-seed\d+)$")


def saved_name(catalog: pd.DataFrame, name: str) -> str:
    """The name 02 saves the split `name` stands for under, on `catalog` (:func:`split_name`): a ``lesion-...`` name
    is ``ungrouped-...`` on data without lesion (or patient) ids, a ``lesion+duplicates-...`` one ``duplicates-...``;
    every other name is itself.

    Args:
        catalog: the catalog the split divides.
        name: a split name, e.g. a notebook's ``split_name`` (:data:`DEFAULT_SPLIT`).
    """
    match = _LESION_NAME.match(name)
    if match is None:
        return name
    group_by = "auto" if match["kind"] == "lesion" else match["kind"]
    kinds = grouped_by(catalog, group_by)
    if not kinds:
        return f"ungrouped-{match['rest']}"
    if group_by == "lesion+duplicates" and "lesion" not in kinds:
        return f"duplicates-{match['rest']}"
    return name


def make_folds(catalog: pd.DataFrame, k: int = 5, seed: int = 0, group_by: GroupBy = "auto",
               stratify: str = "label") -> pd.DataFrame:
    """`k` folds for cross-fitting, ``image_id, fold`` (0 to k-1) in catalog order: stratified by `stratify` and,
    unless `group_by` is ``image``, grouped as :func:`groups_of` groups (no lesion or patient in two folds).
    The same catalog, `k` and `seed` give the same folds.

    Args:
        catalog: the catalog to divide.
        k: number of folds (at least 2).
        seed: seed of the shuffling.
        group_by: ``auto``, ``lesion``, ``patient``, or ``image`` (the studies' image-level division).
        stratify: the class column each fold keeps the proportions of.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise ValueError(f"k must be at least 2 folds, got {k}")
    if stratify not in catalog:
        raise KeyError(f"stratify column {stratify!r} is not in the catalog (columns: {', '.join(catalog.columns)})")
    y = catalog[stratify].to_numpy()
    rows = np.zeros((len(catalog), 1))
    if group_by == "image":
        division = StratifiedKFold(k, shuffle=True, random_state=seed).split(rows, y)
    else:
        division = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(rows, y, groups_of(catalog, group_by))
    fold = np.full(len(catalog), -1, dtype=np.int64)
    for i, (_, held_out) in enumerate(division):
        fold[held_out] = i
    return pd.DataFrame({"image_id": catalog["image_id"].to_numpy(), "fold": fold})


def make_and_save_splits(catalog: pd.DataFrame, *, ratios: tuple[float, ...] = DEFAULTS["ratios"],
                         seed: int = DEFAULTS["seed"], group_by: GroupBy = DEFAULTS["group_by"],
                         stratify: str = DEFAULTS["stratify"], image_size: int = DEFAULTS["image_size"],
                         found=None) -> dict[str, Path]:
    """What notebook 02 saves: the grouped split and, for comparison, the image-level one, each with the
    normalisation statistics of the grouped train split, under :func:`split_name`'s names; returns
    ``{split name: folder}``.

    Args:
        catalog: the catalog to split.
        ratios, seed, group_by, stratify: as for :func:`make_split` (the image-level split differs only in grouping).
        image_size: side of the cached images the normalisation statistics are computed on.
        found: the catalog's near-duplicate audit, for ``group_by`` with ``duplicates`` (made here when not given);
            its method and threshold go into the manifest.
    """
    from .cache import build_cache, channel_stats

    cache = build_cache(catalog, image_size)
    extra: dict = {}
    if "duplicates" in group_by:
        if found is None:
            from .duplicates import audit

            found = audit(catalog, cache)
        catalog = with_duplicate_groups(catalog, found)
        extra["duplicates"] = {"method": found.method, "threshold": found.threshold,
                               "pairs": len(found.duplicates), **found.settings}
    grouped = make_split(catalog, ratios, seed=seed, group_by=group_by, stratify=stratify)
    image_level = make_split(catalog, ratios, seed=seed, group_by="image", stratify=stratify)
    mean, std = channel_stats(cache, grouped.loc[grouped["split"] == "train", "image_id"])
    extra["normalization"] = {"image_size": image_size, "mean": mean.tolist(), "std": std.tolist()}
    saved = {}
    for kind, split in ((group_by, grouped), ("image", image_level)):
        name = split_name(catalog, kind, ratios, seed)
        saved[name] = save_split(catalog, split, name, seed=seed, ratios=ratios, stratify=stratify, group_by=kind,
                                 extra=extra)
    return saved


def load_split(name_or_folder: str | Path, catalog: pd.DataFrame | None = None) -> pd.DataFrame:
    """A saved split; with `catalog`, checks it was made from that same catalog (by fingerprint)."""
    folder = Path(name_or_folder)
    if not folder.is_dir():
        folder = paths.splits_dir() / str(name_or_folder)
    if not (folder / "split.csv").is_file():
        available = sorted(p.name for p in paths.splits_dir().iterdir() if (p / "split.csv").is_file())
        raise FileNotFoundError(f"no saved split {str(name_or_folder)!r} (looked in {folder}). "
                                f"Run notebooks/02_splits.ipynb first. Saved splits: {available or 'none'}")
    provenance.note("split", folder)
    split = pd.read_csv(folder / "split.csv", dtype=str, keep_default_na=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    split.attrs["manifest"] = manifest
    if catalog is not None:
        current = fingerprint(catalog)
        if manifest["catalog_fingerprint"] != current:
            raise SplitError(
                f"split {manifest['name']!r} was made from another catalog (fingerprint "
                f"{manifest['catalog_fingerprint']}, this one is {current}): the dataset changed since. "
                "Re-run notebooks/02_splits.ipynb to make a new split for this data.")
        provenance.read_data("split", name=manifest["name"], group_by=manifest.get("group_by"),
                             grouped_by=grouped_by(catalog, manifest.get("group_by", "auto")))
    return split


def grouped_by(catalog: pd.DataFrame, group_by: str = "auto") -> list[str]:
    """What a split made with `group_by` keeps together on this catalog: ``["lesion", "patient"]``, one of them,
    ``"duplicates"`` (inferred near-duplicates) with or without ``"lesion"``, or ``[]`` (one image per group: class
    folders, ISIC 2018 without its groupings file, or ``group_by="image"``), which is not a lesion-grouped split
    whatever its name says.

    Args:
        catalog: the catalog the split divides.
        group_by: the split's grouping parameter (``auto``, ``lesion``, ``patient``, ``image``, ``duplicates``,
            ``lesion+duplicates``).
    """
    lesions = bool((catalog["lesion_id"] != catalog["image_id"]).any())
    patients = bool((catalog["patient_id"] != "").any())
    duplicates = "duplicates" in group_by
    return [kind for kind, known, wanted in (("lesion", lesions, ("auto", "lesion", "lesion+duplicates")),
                                             ("patient", patients, ("auto", "patient")),
                                             ("duplicates", duplicates, ("duplicates", "lesion+duplicates")))
            if known and group_by in wanted]


def grouping_words(kinds: list[str], group_by: str = "auto") -> str:
    """A split's grouping in words, for notebooks and the report: ``lesion-grouped``, ``patient-grouped``,
    ``lesion- and patient-grouped``, ``image-level (lesions leak)``, or ``ungrouped (no lesion ids: ...)`` for a
    grouped split of data that knows no lesions (never called lesion-grouped).

    Args:
        kinds: what it keeps together (:func:`grouped_by`).
        group_by: the split's grouping parameter.
    """
    if group_by == "image":
        return "image-level (lesions leak)"
    if not kinds:
        return "ungrouped (no lesion ids: one image per group)"
    words = [{"duplicates": "near-duplicate"}.get(kind, kind) for kind in kinds]
    return " and ".join(words).replace("lesion and ", "lesion- and ") + "-grouped"
