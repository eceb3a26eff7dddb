"""Binary tasks: melanoma vs rest (study B) and benign vs malignant in an ISIC archive export (study D).

A task names its positive class and how the 0 / 1 ``target`` column is made from the catalog. Its split
is stratified on that target and grouped by lesion and patient, saved like 02's splits (``splits/<name>/``)
so reruns and later notebooks train and test on the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data.splits import SplitError, load_split, make_split, save_split
from . import paths

TARGET = "target"


@dataclass(frozen=True)
class Task:
    """A binary task: its layout on the synthetic data, positive class name and the column it derives from."""

    name: str
    layout: str | None            # the synthetic layout it reads by default (real data: detected)
    positive: str                 # name of the positive class (predictions column ``p_<positive>``)
    negative: str
    source: str                   # catalog column the target is made from
    short: str                    # prefix of its run names in the registry


TASKS: dict[str, Task] = {
    "melanoma": Task("melanoma", "ham10000", "mel", "rest", "dx", "melanoma"),
    "isic_archive": Task("isic_archive", "isic_archive", "malignant", "benign", "malignant", "isic"),
}


def task_of(name: str) -> Task:
    """The task called `name` (ValueError listing the tasks otherwise)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def with_target(catalog: pd.DataFrame, task: str) -> pd.DataFrame:
    """The catalog with the task's 0 / 1 ``target`` column.

    Raises:
        ValueError: when the catalog lacks the column the task needs, or holds one class only.
    """
    t = task_of(task)
    if t.source not in catalog:
        raise ValueError(f"task {task!r} needs a {t.source!r} column, which the {catalog.attrs.get('layout', '?')} "
                         f"catalog lacks; the isic_archive task needs an ISIC archive export (layout='isic_archive')")
    table = catalog.copy()
    if t.name == "melanoma":
        unlabelled = table["dx"] == ""
        if unlabelled.any():
            raise ValueError(f"{int(unlabelled.sum())} images have no diagnosis (first: "
                             f"{table.loc[unlabelled, 'image_id'].iloc[0]}); melanoma vs rest needs one per image")
        table[TARGET] = (table["dx"] == "mel").astype(int)
    else:
        table[TARGET] = table["malignant"].astype(int)
    if table[TARGET].nunique() < 2:
        raise ValueError(f"task {task!r}: every image is {'positive' if table[TARGET].iloc[0] else 'negative'}; "
                         "a binary task needs both classes")
    table.attrs = dict(catalog.attrs)
    return table


def split_name(task: str, ratios: tuple[float, ...], seed: int) -> str:
    """The saved split's name, e.g. ``melanoma-70-15-15-seed0``."""
    return f"{task}-{'-'.join(str(round(100 * r)) for r in ratios)}-seed{seed}"


def binary_split(table: pd.DataFrame, task: str, ratios: tuple[float, float, float] = (0.70, 0.15, 0.15),
                 seed: int = 0) -> pd.DataFrame:
    """The task's split of `table` (with ``target``): read from ``splits/<name>/`` when saved, else made and saved.

    Grouped by lesion and patient (``auto``) and stratified on the target, so each split keeps the positive rate.

    Args:
        table: the catalog with its ``target`` column (see :func:`with_target`).
        task: the task name (part of the split's name).
        ratios: train, val, test fractions (studies B and D: 70 / 15 / 15).
        seed: seed of the split.

    Raises:
        SplitError: when a split saved under that name was made from other data.
    """
    name = split_name(task, ratios, seed)
    if (paths.splits_dir() / name / "split.csv").is_file():
        try:
            return load_split(name, table)
        except SplitError as exc:
            raise SplitError(f"{exc} For 07_binary_isic: delete {paths.display_path(paths.splits_dir() / name)} "
                             "to make a new split of this data.") from exc
    split = make_split(table, ratios, seed=seed, group_by="auto", stratify=TARGET)
    save_split(table, split, name, seed=seed, ratios=tuple(ratios), group_by="auto", stratify=TARGET,
               extra={"task": task})
    return load_split(name, table)


def positive_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Images, positives and the positive rate per split (``split`` and ``target`` columns)."""
    out = table.groupby("split", sort=False)[TARGET].agg(images="size", positives="sum")
    out = out.reindex([s for s in ("train", "val", "test") if s in out.index])
    out["rate"] = (out["positives"] / out["images"]).round(3)
    return out


def undersample(part: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A balanced subset of a (train) split: every positive and as many negatives drawn at random, or the reverse."""
    rng = np.random.default_rng(seed)
    pos, neg = part[part[TARGET] == 1], part[part[TARGET] == 0]
    small, large = (pos, neg) if len(pos) <= len(neg) else (neg, pos)
    keep = large.iloc[np.sort(rng.choice(len(large), len(small), replace=False))]
    return pd.concat([small, keep]).sort_index()


def balanced_weights(labels) -> np.ndarray:
    """Per-image sampling weights giving each class the same expected share (from the train split's labels)."""
    labels = np.asarray(labels).astype(int)
    counts = np.bincount(labels, minlength=2).astype(float)
    return 1.0 / counts[labels]


def positive_weight(labels) -> float:
    """The BCE positive weight negatives / positives of the (train) labels."""
    labels = np.asarray(labels).astype(int)
    return float((labels == 0).sum() / max(1, (labels == 1).sum()))


MODELS: tuple[str, ...] = ("logreg", "mlp", "image", "fusion")
REGIMES: tuple[str, ...] = ("natural", "balanced", "undersampled")
DEFAULT_MODELS = {"melanoma": ("image",), "isic_archive": ("logreg", "mlp", "image", "fusion")}


def check_choices(models, regimes) -> tuple[list[str], list[str]]:
    """Validated lists of model kinds and training regimes (ValueError naming the unknown one)."""
    for what, given, known in (("model", models, MODELS), ("regime", regimes, REGIMES)):
        if not given:
            raise ValueError(f"no {what}s given; choose from {', '.join(known)}")
        bad = [g for g in given if g not in known]
        if bad:
            raise ValueError(f"unknown {what}(s) {bad}; choose from {', '.join(known)}")
    return list(models), list(regimes)


def run_name(prefix: str | None, task: str, kind: str, regime: str, backbone: str) -> str:
    """A registry run name: ``<prefix>-<kind>-<regime>``, or by default e.g. ``isic-fusion-small_cnn-balanced``."""
    if prefix:
        return f"{prefix}-{kind}-{regime}"
    parts = [task_of(task).short, kind] + ([backbone] if kind in ("image", "fusion") else []) + [regime]
    return "-".join(parts)


def training_rows(parts: dict[str, pd.DataFrame], regime: str, seed: int = 0) -> pd.DataFrame:
    """The train rows a regime trains on: all of them, or an undersampled balanced subset (``undersampled``)."""
    return undersample(parts["train"], seed) if regime == "undersampled" else parts["train"]


def model_factory(kind: str, n_features: int, backbone: str = "small_cnn", *, freeze_fraction: float = 0.0,
                  image_size: int | None = None) -> tuple[str, dict]:
    """The registry factory (:data:`skinlib.models.FACTORIES`) and its plain keyword arguments for a binary network
    of `kind`; :func:`make_model` builds from them and the run records them, so the model can be rebuilt.

    Args:
        kind, n_features, backbone, freeze_fraction, image_size: as for :func:`make_model`.
    """
    image = dict(freeze_fraction=freeze_fraction,
                 image_size=image_size if backbone.startswith("vit") or "dino" in backbone else None)
    if kind == "mlp":
        return "metadata_mlp", {"n_features": n_features}
    if kind == "image":
        return "image_model", {"backbone": backbone, **image}
    if kind == "fusion":
        return "fusion", {"backbone": backbone, "n_features": n_features, **image}
    raise ValueError(f"no network for model kind {kind!r}; networks: mlp, image, fusion (logreg is scikit-learn)")


def make_model(kind: str, n_features: int, backbone: str = "small_cnn", *, pretrained: bool = False,
               weights_dir: str | None = None, freeze_fraction: float = 0.0, image_size: int | None = None,
               seed: int = 0):
    """A binary network of `kind` (``mlp``, ``image`` or ``fusion``) with one logit, initialised from `seed` alone
    (not from whatever ran before it, so a rerun that resumes earlier runs builds the same network).

    Args:
        kind: ``mlp`` (metadata only), ``image`` (image only) or ``fusion`` (image + metadata).
        n_features: metadata features per image (``mlp`` and ``fusion``).
        backbone, pretrained, weights_dir, freeze_fraction, image_size: the image branch (see
            :func:`skinlib.models.image_encoder`).
        seed: seed of the initial weights.
    """
    import torch

    from .models import FACTORIES

    torch.manual_seed(seed)
    factory, kwargs = model_factory(kind, n_features, backbone, freeze_fraction=freeze_fraction, image_size=image_size)
    if kind != "mlp":
        kwargs.update(pretrained=pretrained, weights_dir=weights_dir)
    return FACTORIES[factory](**kwargs)


def fit_network(model, parts: dict[str, pd.DataFrame], train_rows: pd.DataFrame, cache, features, regime: str,
                preprocess: tuple, config, *, batch_size: int, seed: int = 0, device="cpu",
                checkpoint_dir=None, resume: bool = True):
    """Train a binary network on a regime and predict val and test: returns (probabilities, fit result).

    Args:
        model: one-logit network (see :func:`make_model`).
        parts: train / val / test tables with ``target``.
        train_rows: the rows trained on (``parts["train"]``, or an undersampled subset of it).
        cache: the image cache.
        features: a fitted :class:`skinlib.metadata.MetadataFeatures`, or None for image-only models.
        regime: ``natural`` (the given ``config.pos_weight``), ``balanced`` (a weighted sampler from the train
            labels, no positive weight) or ``undersampled`` (`train_rows` already balanced).
        preprocess: (train preprocessing with augmentation, evaluation preprocessing).
        config: :class:`skinlib.train.FitConfig` (monitor ``auc`` for binary tasks).
        batch_size, seed, device: as for :class:`skinlib.data.batches.Batches`.
        checkpoint_dir, resume: as for :func:`skinlib.train.fit`.
    """
    from dataclasses import replace

    from .data.batches import Batches
    from .train import fit, predict

    def batches(table: pd.DataFrame, train: bool) -> Batches:
        weights = balanced_weights(table[TARGET]) if train and regime == "balanced" else None
        return Batches(cache, table["image_id"], table[TARGET].to_numpy(np.float32), batch_size, shuffle=train,
                       weights=weights, seed=seed, drop_last=train and len(table) > batch_size, device=device,
                       features=None if features is None else features.transform(table))

    if regime != "natural":
        config = replace(config, pos_weight=None)
    loaders = {"train": batches(train_rows, True), **{s: batches(parts[s], False) for s in ("val", "test")}}
    result = fit(model, loaders["train"], loaders["val"], preprocess[0], preprocess[1], config,
                 checkpoint_dir=checkpoint_dir, resume=resume)
    proba = {s: predict(model, loaders[s], preprocess[1]) for s in ("val", "test")}
    return proba, result


def malignant_subtypes(table: pd.DataFrame) -> pd.Series:
    """Study D's malignant subtype of each malignant image from its archive ``diagnosis`` (empty for benign or
    unrecognised): basal cell carcinoma, melanoma, melanoma metastasis, squamous cell carcinoma."""
    if "diagnosis" not in table:
        return pd.Series("", index=table.index)
    text = table["diagnosis"].fillna("").str.lower()
    out = np.select([text.str.contains("metasta"), text.str.contains("melanoma"), text.str.contains("basal cell"),
                     text.str.contains("squamous cell")],
                    ["melanoma metastasis", "melanoma", "basal cell carcinoma", "squamous cell carcinoma"], "")
    return pd.Series(np.where(table.get(TARGET, table.get("malignant", 1)) == 1, out, ""), index=table.index)


def open_task_catalog(task: str, data_dir=None, layout: str | None = None, *, seed: int = 0,
                      allow_missing: bool = False) -> pd.DataFrame:
    """The catalog of a task with its ``target``: real data (layout detected or forced), or the built-in
    synthetic data in the task's layout (``ham10000`` for melanoma, ``isic_archive`` for isic_archive).

    Args:
        task: ``melanoma`` or ``isic_archive``.
        data_dir, layout, seed, allow_missing: as for :func:`skinlib.data.open_catalog`.
    """
    from .data.source import open_catalog, resolve_data_dir

    if layout is None and resolve_data_dir(data_dir) is None:
        layout = task_of(task).layout
    return with_target(open_catalog(data_dir, layout, seed=seed, allow_missing=allow_missing), task)
