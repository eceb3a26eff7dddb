"""Summary tables of a catalog, as shown in notebook 01 (each plot in :mod:`skinlib.plots` draws one of these)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data.labels import CLASSES, LONG_NAMES

AGE_BINS = (0, 20, 30, 40, 50, 60, 70, 80, 120)
NOT_AVAILABLE = "not available in this dataset"


def available(catalog: pd.DataFrame, column: str) -> bool:
    """True when `column` holds at least one known value (one-folder-per-class data has no age, sex or site).

    Args:
        catalog: the catalog table.
        column: e.g. ``age``, ``sex``, ``localization``.
    """
    if column not in catalog:
        return False
    values = catalog[column]
    return bool((values.notna() & ~values.astype(str).str.strip().str.lower().isin(["", "unknown", "nan"])).any())


def as_text(table: pd.DataFrame | pd.Series) -> str:
    """A table as text, or "not available in this dataset" when it is empty."""
    return NOT_AVAILABLE if table.empty else table.to_string()


def class_table(catalog: pd.DataFrame) -> pd.DataFrame:
    """Images and lesions per class, with share of images and the long class name."""
    known = catalog[catalog["dx"] != ""]
    table = pd.DataFrame({
        "name": [LONG_NAMES[c] for c in CLASSES],
        "images": known["dx"].value_counts().reindex(CLASSES, fill_value=0),
        "lesions": known.groupby("dx")["lesion_id"].nunique().reindex(CLASSES, fill_value=0),
    })
    table["share"] = (table["images"] / max(1, table["images"].sum())).round(3)
    table.index.name = "dx"
    return table


def images_per_lesion(catalog: pd.DataFrame) -> pd.Series:
    """How many lesions have 1, 2, 3, ... images."""
    counts = catalog.groupby("lesion_id").size().value_counts().sort_index()
    counts.index.name, counts.name = "images of the lesion", "lesions"
    return counts


def age_groups(catalog: pd.DataFrame) -> pd.Series:
    """Age binned into decades (categorical; missing ages stay NaN)."""
    labels = [f"{a}-{b - 1}" if b < 120 else f"{a}+" for a, b in zip(AGE_BINS[:-1], AGE_BINS[1:])]
    return pd.cut(catalog["age"], AGE_BINS, right=False, labels=labels)


def melanoma_rate(catalog: pd.DataFrame, by: str) -> pd.DataFrame:
    """Share of melanoma (and count of images) per value of `by` (``age`` is binned by decade); empty when the
    dataset has no `by` (see :func:`as_text`)."""
    if not available(catalog, by):
        return pd.DataFrame(columns=["images", "melanoma", "melanoma rate"]).rename_axis(by)
    key = age_groups(catalog) if by == "age" else catalog[by]
    frame = pd.DataFrame({by: key, "mel": catalog["dx"] == "mel"})
    table = frame.groupby(by, observed=True)["mel"].agg(images="size", melanoma="sum")
    table["melanoma rate"] = (table["melanoma"] / table["images"]).round(3)
    return table


def size_table(catalog: pd.DataFrame) -> pd.Series:
    """Images per pixel size (width x height)."""
    sizes = catalog["width"].astype(str) + " x " + catalog["height"].astype(str)
    counts = sizes.value_counts()
    counts.index.name, counts.name = "width x height", "images"
    return counts


def missing_table(catalog: pd.DataFrame) -> pd.Series:
    """Rows with an unknown age, sex or localisation."""
    return pd.Series({
        "age": int(catalog["age"].isna().sum()),
        "sex": int((catalog["sex"] == "unknown").sum()),
        "localization": int((catalog["localization"] == "unknown").sum()),
    }, name="unknown")


def sample_ids(catalog: pd.DataFrame, by: str, per_group: int, seed: int = 0) -> dict[str, list[str]]:
    """Up to `per_group` random image ids for each value of `by` (reproducible from `seed`)."""
    rng = np.random.default_rng(seed)
    out = {}
    for value, group in catalog.groupby(by, sort=True):
        ids = group["image_id"].to_numpy()
        out[str(value)] = list(ids[rng.permutation(len(ids))[:per_group]])
    return out
