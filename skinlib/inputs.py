"""What a model notebook feeds its model: the catalog with its saved split, per-split tables, a smoke run's subset,
a specialist's classes, and (:func:`prepare`) all of it at once with the image cache and the batches per split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import pandas as pd

from . import paths
from .data.labels import CLASSES
from .data.source import open_catalog
from .data.splits import DEFAULT_SPLIT, SPLITS, load_split, make_and_save_splits, saved_name

if TYPE_CHECKING:                      # torch stays out of run_all.py's imports (it reads SMOKE_ENV from here)
    import torch

    from .data.batches import Batches
    from .data.cache import ImageCache


SMOKE_ENV = "SKINLIB_SMOKE"


def smoke_subset(table: pd.DataFrame, per_class: int | None = None, by: str | list = "label") -> pd.DataFrame:
    """In a smoke run (``run_all.py --smoke`` sets ``$SKINLIB_SMOKE`` to a count), keep at most that many images
    of each class in each split, so every run of a profile finishes in seconds with its real settings otherwise.
    Outside a smoke run, `table` unchanged.

    Args:
        table: a split catalog (with a ``split`` column).
        per_class: images kept per class and split; None: ``$SKINLIB_SMOKE`` (unset or empty: no subset).
        by: the class column (``label``, or a binary target), or a list of columns / Series (each combination kept).
    """
    if per_class is None:
        text = os.environ.get(SMOKE_ENV, "").strip()
        if not text:
            return table
        per_class = int(text)
    keep = table.groupby(["split", *(by if isinstance(by, list) else [by])], sort=False, group_keys=False).head(per_class)
    subset = table.loc[sorted(keep.index)].reset_index(drop=True)
    subset.attrs = dict(table.attrs, smoke=per_class)
    print(f"SMOKE RUN: {len(subset)} of {len(table)} images kept ({per_class} per class and split); "
          "the numbers below only show that the run gets through")
    return subset


def unless_smoke(value: Any, name: str) -> Any:
    """`value`, or None in a smoke run (saying so in one line): for a size that a smoke run's few images per class
    cannot hold, such as 07's ``balanced_subset`` (a smoke run then takes every image of the smaller class).

    Args:
        value: the parameter's value.
        name: the parameter's name (in the line printed).
    """
    if value is None or not os.environ.get(SMOKE_ENV, "").strip():
        return value
    print(f"SMOKE RUN: {name} = {value!r} not applied (a smoke run keeps a few images per class): None instead")
    return None


def split_catalog(data_dir=None, layout=None, split_name: str = DEFAULT_SPLIT, *, seed: int = 0,
                  allow_missing: bool = False, localization: str | None = None) -> pd.DataFrame:
    """The catalog with a ``split`` column from the split saved by notebook 02 (checked against this catalog).

    Args:
        data_dir, layout, seed, allow_missing: as for :func:`skinlib.data.open_catalog`.
        split_name: a split saved by ``02_splits`` (``splits/<name>/`` in the workspace). The default split,
            when missing, is made here with 02's defaults (saying so in one line); another missing split is an error.
            On data without lesion ids a ``lesion-...`` name stands for the split 02 saves there,
            ``ungrouped-...`` (:func:`skinlib.data.splits.saved_name`), said in one line.
        localization: keep only images of this body site (study E's ``lower extremity`` subset); the
            split itself is unchanged, so the subset's train / val / test stay lesion-disjoint.
    """
    catalog = open_catalog(data_dir, layout, seed=seed, allow_missing=allow_missing)
    asked, split_name = split_name, saved_name(catalog, split_name)
    if split_name != asked:
        print(f"this data has no lesion ids: 02_splits saves the split {asked!r} stands for as {split_name!r}, "
              "which is the split read here", flush=True)
    if asked == DEFAULT_SPLIT and not (paths.splits_dir() / split_name / "split.csv").is_file():
        folder = make_and_save_splits(catalog)[split_name]
        print(f"no split {split_name!r} saved yet: made it as 02_splits does with its defaults, in "
              f"{folder}", flush=True)
    split = load_split(split_name, catalog)
    table = catalog.merge(split, on="image_id", validate="one_to_one")
    table.attrs = dict(catalog.attrs, split_name=split_name, normalization=split.attrs["manifest"].get("normalization"))
    if localization:
        table = table[table["localization"] == localization].reset_index(drop=True)
        if table.empty:
            raise ValueError(f"no images with localization {localization!r}; values: {sorted(catalog['localization'].unique())}")
    return smoke_subset(table)


def by_split(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """train / val / test parts of a split catalog."""
    return {name: table[table["split"] == name] for name in SPLITS}


def restrict_classes(table: pd.DataFrame, classes: Sequence[str] | None) -> pd.DataFrame:
    """The images of `classes` only, with ``label`` re-indexed to the position in `classes` (a specialist's task).

    Args:
        table: a split catalog (``dx`` column of class codes).
        classes: class codes, e.g. ``["mel", "nv"]``; None or all seven: `table` unchanged.
    """
    if classes is None or list(classes) == list(CLASSES):
        return table
    unknown = [c for c in classes if c not in CLASSES]
    if unknown or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"classes must be at least two distinct codes of {list(CLASSES)}, got {list(classes)}")
    out = table[table["dx"].isin(classes)].reset_index(drop=True)
    out["label"] = out["dx"].map({c: i for i, c in enumerate(classes)}).astype(int)
    out.attrs = dict(table.attrs, classes=list(classes))
    return out


def split_batches(cache: "ImageCache", parts: Mapping[str, pd.DataFrame], batch_size: int, *, seed: int = 0,
                  device: "str | torch.device" = "cpu", target: str = "label", dtype: Any = None,
                  train_weights: Sequence[float] | None = None,
                  features: Callable[[pd.DataFrame], Any] | None = None) -> dict[str, "Batches"]:
    """One :class:`skinlib.data.batches.Batches` per split: ``train`` shuffled each epoch from `seed` (or drawn
    with `train_weights`), dropping a last smaller batch; the other splits in their rows' order.

    Args:
        cache: the image cache holding every image of `parts`.
        parts: split name -> its rows (``image_id`` and the `target` column), e.g. :func:`by_split`'s.
        batch_size, seed, device: as for :class:`~skinlib.data.batches.Batches`.
        target: the labels' column (``label``; ``target`` for a binary task).
        dtype: the labels' NumPy dtype (None: the column's own).
        train_weights: per-image sampling weights of the train rows (a weighted sampler), or None.
        features: rows -> their metadata feature matrix (a fusion model's second input), or None.
    """
    from .data.batches import Batches

    def batches(split: str, part: pd.DataFrame) -> Batches:
        train = split == "train"
        labels = part[target] if dtype is None else part[target].to_numpy(dtype)
        return Batches(cache, part["image_id"], labels, batch_size, shuffle=train,
                       weights=train_weights if train else None, seed=seed, drop_last=train, device=device,
                       features=None if features is None else features(part))

    return {split: batches(split, part) for split, part in parts.items()}


@dataclass
class Prepared:
    """A model notebook's inputs (:func:`prepare`)."""

    table: pd.DataFrame                  #: the split catalog (restricted to `classes` for a specialist)
    parts: dict[str, pd.DataFrame]       #: train / val / test rows of `table`
    cache: "ImageCache"                  #: every image of the catalog at the run's size
    device: "torch.device"               #: where the batches go
    batches: dict[str, "Batches"]        #: per split, see :func:`split_batches`
    classes: list[str]                   #: the task's class codes (the seven, or a specialist's)


def prepare(data_dir=None, layout: str | None = None, split_name: str = DEFAULT_SPLIT, *, image_size: int,
            batch_size: int, seed: int = 0, allow_missing: bool = False, device: str = "auto",
            localization: str | None = None, classes: Sequence[str] | None = None, crop: str = "squash",
            train_fraction: float = 1.0, features: Callable[[pd.DataFrame], Any] | None = None) -> Prepared:
    """What 04-06 do before building a model: the split catalog, the data banner, the image cache, the device and
    the batches per split (train shuffled from `seed`).

    Args:
        data_dir, layout, split_name, seed, allow_missing, localization: as for :func:`split_catalog`.
        image_size: side of the cached images.
        batch_size: images per batch.
        device: ``auto``, ``cpu`` or ``cuda`` (:func:`skinlib.train.resolve_device`).
        classes: a specialist's class codes (:func:`restrict_classes`; the cache still holds every image); None:
            all seven.
        crop: how images enter the cache: ``squash`` or ``center`` (CLIP's; :func:`skinlib.data.cache.load_image`).
        train_fraction: share of the training labels used (whole lesions, per class, nested per `seed`:
            :func:`skinlib.data.splits.train_fraction_subset`); val and test are never reduced.
        features: rows -> a second input per image (:func:`split_batches`), e.g. study C's labels as prompts.
    """
    from .data.cache import build_cache
    from .data.splits import train_fraction_subset
    from .notebook import banner
    from .train import resolve_device

    table = split_catalog(data_dir, layout, split_name, seed=seed, allow_missing=allow_missing,
                          localization=localization)
    banner(table)
    cache = build_cache(table, image_size, crop=crop)
    table = restrict_classes(table, classes)
    parts = by_split(table)
    parts["train"] = train_fraction_subset(parts["train"], train_fraction, seed)
    dev = resolve_device(device)
    return Prepared(table, parts, cache, dev,
                    split_batches(cache, parts, batch_size, seed=seed, device=dev, features=features),
                    list(classes or CLASSES))


def fraction_suffix(train_fraction: float) -> list[str]:
    """The part of a run name that says its share of the training labels: ``["frac0.1"]``, none for all of them
    (runs at different fractions never share a name, a registry folder or a checkpoint)."""
    return [] if train_fraction >= 1 else [f"frac{train_fraction:g}"]


def transfer_run_name(backbone: str, *, pretrained: bool, grayscale: bool = False, augment: str = "none",
                      interpolation: str = "bilinear", localization: str | None = None,
                      classes: Sequence[str] | None = None, train_fraction: float = 1.0) -> str:
    """05's registry name of a run made from its options, e.g. ``resnet18-pre-rgb-study_a`` or
    ``resnet18-scratch-gray-noaug-lower_extremity-mel_vs_nv`` (a specialist's classes, then the share of the
    training labels, :func:`fraction_suffix`, last).

    Args:
        backbone, pretrained, grayscale, augment, interpolation, localization, classes, train_fraction: 05's
        parameters (`interpolation` is named only when augmenting with ``nearest``).
    """
    return "-".join(
        [backbone, "pre" if pretrained else "scratch", "gray" if grayscale else "rgb",
         augment if augment != "none" else "noaug"]
        + (["nearest"] if augment != "none" and interpolation == "nearest" else [])
        + ([localization.replace(" ", "_")] if localization else [])
        + (["_vs_".join(classes)] if classes else []) + fraction_suffix(train_fraction))
