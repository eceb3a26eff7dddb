"""Binary tasks: melanoma vs rest (study B) and benign vs malignant in an ISIC archive export (study D).

A task names its positive class and how the 0 / 1 ``target`` column is made from the catalog. Its split
is stratified on that target and grouped by lesion and patient, saved like 02's splits (``splits/<name>/``)
so reruns and later notebooks train and test on the same images. Study D's multiclass task among the malignant
subtypes is :mod:`skinlib.subtypes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

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
            raise SplitError(f"{exc} For 07_binary_isic: delete {paths.splits_dir() / name} "
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


def undersample(part: pd.DataFrame, seed: int = 0, target: str = TARGET) -> pd.DataFrame:
    """A balanced subset of a (train) split: every image of the smallest class and as many of each other class,
    drawn at random.

    Args:
        part: the rows (the train split).
        seed: seed of the draw.
        target: the class column (``target``, or ``label`` for the malignant subtypes).
    """
    rng = np.random.default_rng(seed)
    groups = [group for _, group in part.groupby(target, sort=True)]
    smallest = min(len(group) for group in groups)
    kept = [group if len(group) == smallest else
            group.iloc[np.sort(rng.choice(len(group), smallest, replace=False))] for group in groups]
    return pd.concat(kept).sort_index()


#: Where a binary task is evaluated: the natural distribution (every val and test image), or study D's balanced
#: subset (val and test undersampled to equal classes too, as its first experiments).
EVALUATIONS: tuple[str, ...] = ("natural", "balanced")


def evaluation_parts(parts: dict[str, pd.DataFrame], evaluate_on: str = "natural", per_class: int | None = None, *,
                     ratios: Sequence[float] = (0.70, 0.15, 0.15), seed: int = 0,
                     target: str = TARGET) -> dict[str, pd.DataFrame]:
    """The train / val / test tables a run uses: unchanged (``natural``), or study D's balanced subset
    (``balanced``): every split undersampled to equal classes, drawn at random within the split, so the task's
    split (grouped by lesion and patient) still holds and no image changes split.

    Args:
        parts: train / val / test tables of the task's split.
        evaluate_on: ``natural`` or ``balanced`` (:data:`EVALUATIONS`).
        per_class: ``balanced``: images per class in the whole subset (study D: 5000, then 10000), shared among
            the splits by `ratios` (train ``round(per_class * ratios[0])`` per class, ...); None: every image of
            each split's smaller class.
        ratios: the split's train, val, test fractions.
        seed: seed of the draw.
        target: the class column.

    Raises:
        ValueError: an unknown `evaluate_on`; `per_class` with ``natural``; or a split with fewer images of a class
            than its share (naming the split, the class and the counts).
    """
    if evaluate_on not in EVALUATIONS:
        raise ValueError(f"unknown evaluate_on {evaluate_on!r}; choose one of {', '.join(EVALUATIONS)}")
    if evaluate_on == "natural":
        if per_class is not None:
            raise ValueError(f"balanced_subset = {per_class} draws study D's balanced subset, which evaluate_on = "
                             "'natural' does not use: set evaluate_on = 'balanced', or balanced_subset = None")
        return dict(parts)
    out = {}
    for i, (name, part) in enumerate(parts.items()):
        counts = part[target].value_counts()
        want = int(counts.min()) if per_class is None else int(round(per_class * ratios[i]))
        short = {int(c): int(n) for c, n in counts.items() if n < want}
        if short or len(counts) < 2:
            raise ValueError(f"the {name} split has {', '.join(f'{n} images of class {c}' for c, n in short.items()) or 'one class only'}, "
                             f"fewer than the {want} per class that a balanced subset of {per_class} images per class "
                             f"gives it (ratios {list(ratios)}): lower balanced_subset, or None for every image of the "
                             "smaller class")
        rng = np.random.default_rng([seed, i])
        kept = [group.iloc[np.sort(rng.choice(len(group), want, replace=False))]
                for _, group in part.groupby(target, sort=True)]
        out[name] = pd.concat(kept).sort_index()
    return out


def balanced_weights(labels) -> np.ndarray:
    """Per-image sampling weights giving each class the same expected share (from the train split's labels; any
    number of classes)."""
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


def run_name(prefix: str | None, task: str, kind: str, regime: str, backbone: str, train_fraction: float = 1.0) -> str:
    """A registry run name: ``<prefix>-<kind>-<regime>``, or by default e.g. ``isic-fusion-small_cnn-balanced``
    (kind ``subtypes``: the multiclass image model among the malignant subtypes); a share of the training labels
    below 1 is named last (:func:`skinlib.inputs.fraction_suffix`, e.g. ``-frac0.1``)."""
    from .inputs import fraction_suffix

    if prefix:
        return "-".join([prefix, kind, regime, *fraction_suffix(train_fraction)])
    parts = [task_of(task).short, kind] + ([backbone] if kind in ("image", "fusion", "subtypes") else []) + [regime]
    return "-".join(parts + fraction_suffix(train_fraction))


def training_rows(parts: dict[str, pd.DataFrame], regime: str, seed: int = 0, target: str = TARGET) -> pd.DataFrame:
    """The train rows a regime trains on: all of them, or an undersampled balanced subset (``undersampled``).

    Args:
        parts: train / val / test tables.
        regime: ``natural``, ``balanced`` or ``undersampled``.
        seed: seed of the undersampling.
        target: the class column (``target``; ``label`` for the malignant subtypes).
    """
    return undersample(parts["train"], seed, target) if regime == "undersampled" else parts["train"]


def model_factory(kind: str, n_features: int, backbone: str = "small_cnn", *, freeze_fraction: float = 0.0,
                  image_size: int | None = None, num_classes: int = 1, head: str | None = None) -> tuple[str, dict]:
    """The registry factory (:data:`skinlib.models.factories.FACTORIES`) and its plain keyword arguments for a network of
    `kind`; :func:`make_model` builds from them and the run records them, so the model can be rebuilt.

    Args:
        kind, n_features, backbone, freeze_fraction, image_size, num_classes, head: as for :func:`make_model`.
    """
    from .models.factories import SMALL_CNN, is_clip

    sized = backbone.startswith("vit") or "dino" in backbone or is_clip(backbone) or backbone == SMALL_CNN
    image = dict(freeze_fraction=freeze_fraction, image_size=image_size if sized else None)
    if num_classes != 1:
        image["num_classes"] = num_classes
    if kind == "mlp":
        if num_classes != 1:
            raise ValueError("the metadata MLP has one logit; num_classes > 1 takes an image or fusion model")
        return "metadata_mlp", {"n_features": n_features}
    if kind == "image":
        head = head or ("mlp" if is_clip(backbone) else "linear")
        return "image_model", {"backbone": backbone, **image, **({"head": head} if head != "linear" else {})}
    if kind == "fusion":
        return "fusion", {"backbone": backbone, "n_features": n_features, **image}
    raise ValueError(f"no network for model kind {kind!r}; networks: mlp, image, fusion (logreg is scikit-learn)")


def make_model(kind: str, n_features: int, backbone: str = "small_cnn", *, pretrained: bool = False,
               weights_dir: str | None = None, freeze_fraction: float = 0.0, image_size: int | None = None,
               num_classes: int = 1, head: str | None = None, seed: int = 0):
    """A network of `kind` (``mlp``, ``image`` or ``fusion``) with one logit (or `num_classes` outputs), initialised
    from `seed` alone (not from whatever ran before it, so a rerun that resumes earlier runs builds the same network).

    Args:
        kind: ``mlp`` (metadata only), ``image`` (image only; with CLIP's image tower an MLP head, as study B) or
            ``fusion`` (image + metadata).
        n_features: metadata features per image (``mlp`` and ``fusion``).
        backbone, pretrained, weights_dir, freeze_fraction, image_size: the image branch (see
            :func:`skinlib.models.image_encoder`; ``clip-ViT-B-32``, ``clip-tiny``: CLIP's image tower).
        num_classes: outputs: 1 (one logit, BCE) or more (softmax cross-entropy, e.g. the malignant subtypes).
        head: the image model's head: ``linear``, or ``mlp`` (features -> dense ReLU -> outputs: study D's head on
            MobileNetV2's pooled features, study B's on CLIP's); None: ``mlp`` for CLIP's tower, else ``linear``.
            The fusion model has its own head.
        seed: seed of the initial weights.
    """
    import torch

    from .models.spec import factory as registered

    torch.manual_seed(seed)
    factory, kwargs = model_factory(kind, n_features, backbone, freeze_fraction=freeze_fraction, image_size=image_size,
                                    num_classes=num_classes, head=head)
    if kind != "mlp":
        kwargs.update(pretrained=pretrained, weights_dir=weights_dir)
    return registered(factory)(**kwargs)


def normalization(model, kind: str, backbone: str, pretrained: bool, cache, train_ids) -> tuple:
    """The (mean, std) a network's images are normalised with: a pretrained model's own, CLIP's for CLIP's image
    tower (part of CLIP's preprocessing, also from scratch), else the train split's channel statistics.

    Args:
        model: the network (:func:`make_model`).
        kind: its kind (``mlp`` reads no images: channel statistics).
        backbone, pretrained: its image branch.
        cache, train_ids: the image cache and the train split's image ids (for the channel statistics).

    Raises:
        ValueError: a pretrained model that carries no mean and std.
    """
    from .data.cache import channel_stats
    from .models import normalization_of
    from .models.factories import is_clip

    if kind != "mlp" and (pretrained or is_clip(backbone)):
        own = normalization_of(model)
        if own is None:
            raise ValueError(f"the {backbone} model carries no mean and std of its pretraining (pretrained_cfg)")
        return own
    return channel_stats(cache, train_ids)


def fit_network(model, parts: dict[str, pd.DataFrame], train_rows: pd.DataFrame, cache, features, regime: str,
                preprocess: tuple, config, *, batch_size: int, seed: int = 0, device="cpu",
                checkpoint_dir=None, resume: bool = True, target: str = TARGET, tta: str = "none"):
    """Train a network on a regime and predict val and test: returns (probabilities, fit result, the
    test-time-augmented probabilities of `tta` or None for ``none``).

    Args:
        model: a network of :func:`make_model` (one logit, or several outputs for the subtypes).
        parts: train / val / test tables with the `target` column.
        train_rows: the rows trained on (``parts["train"]``, or an undersampled subset of it).
        cache: the image cache.
        features: a fitted :class:`skinlib.metadata.MetadataFeatures`, or None for image-only models.
        regime: ``natural`` (the given ``config.pos_weight``), ``balanced`` (a weighted sampler from the train
            labels, no positive weight) or ``undersampled`` (`train_rows` already balanced).
        preprocess: (train preprocessing with augmentation, evaluation preprocessing).
        config: :class:`skinlib.train.FitConfig` (monitor ``auc`` for binary tasks).
        batch_size, seed, device: as for :class:`skinlib.data.batches.Batches`.
        checkpoint_dir, resume: as for :func:`skinlib.train.fit`.
        target: the labels' column: ``target`` (0 / 1), or ``label`` (class indices, the malignant subtypes).
        tta: test-time augmentation of a variant predicted beside the plain one (:mod:`skinlib.tta`; evaluation
            only).
    """
    from dataclasses import replace

    from .inputs import split_batches
    from .train import fit, predict_splits
    from .tta import predict_splits_tta

    if regime != "natural":
        config = replace(config, pos_weight=None)
    loaders = split_batches(cache, {"train": train_rows, "val": parts["val"], "test": parts["test"]}, batch_size,
                            seed=seed, device=device, target=target,
                            dtype=np.float32 if target == TARGET else np.int64,
                            train_weights=balanced_weights(train_rows[target]) if regime == "balanced" else None,
                            features=None if features is None else features.transform)
    result = fit(model, loaders["train"], loaders["val"], preprocess[0], preprocess[1], config,
                 checkpoint_dir=checkpoint_dir, resume=resume)
    variant = predict_splits_tta(model, loaders, preprocess[1], tta) if tta != "none" else None
    return predict_splits(model, loaders, preprocess[1], result), result, variant


@dataclass(frozen=True)
class ImageBranch:
    """The image branch of 07's networks, as its parameters set it (see :func:`make_model`)."""

    backbone: str = "small_cnn"
    pretrained: bool = False
    weights_dir: str | None = None
    freeze_fraction: float = 0.0
    image_size: int | None = None
    augment: str = "none"                 #: the train split's augmentation (:func:`skinlib.data.transforms.augmentation`)
    resample: str = "bilinear"            #: how the image cache was resized (recorded in the model's spec)
    head: str | None = None               #: the image model's head (see :func:`make_model`)
    crop: str = "squash"                  #: how the image cache fitted images to a square (likewise)


@dataclass
class FittedRun:
    """One model of :func:`fit_models`, trained on one regime and evaluated, ready to record."""

    name: str                             #: its registry run name (:func:`run_name`)
    kind: str                             #: logreg, mlp, image or fusion
    regime: str                           #: natural, balanced or undersampled
    evaluation: Any                       #: :class:`skinlib.evaluation.Evaluation` (thresholds from validation)
    history: pd.DataFrame | None = None   #: per-epoch history of a network (None: the logistic regression)
    best_epoch: int | None = None         #: the epoch kept (networks)
    saved: dict[str, Any] = field(default_factory=dict)   #: ``model`` and ``spec`` of a network, for the registry
    tta: Any = None                       #: the test-time-augmented variant's evaluation (image networks; None: off)


def fit_models(task: str, kinds: Sequence[str], regimes: Sequence[str], parts: dict[str, pd.DataFrame], features,
               cache, branch: ImageBranch, config, *, batch_size: int, seed: int = 0, device="cpu",
               resume: bool = True, run_name_prefix: str | None = None, min_sensitivity: float = 0.90,
               n_boot: int = 300, tta: str = "none", train_fraction: float = 1.0) -> Iterator[FittedRun]:
    """07's study: every model kind trained on every regime, in that order (kinds outer), each evaluated on the
    task (thresholds chosen on validation); yields each run as it is done, so that it is recorded before the next
    one trains. A network prints its run name, then fit's progress; it checkpoints into
    ``<workspace>/checkpoints/binary/<run name>``.

    Args:
        task: ``melanoma`` or ``isic_archive``.
        kinds: model kinds of :data:`MODELS` (``logreg``: scikit-learn on the metadata; the others networks).
        regimes: training regimes of :data:`REGIMES`.
        parts: train / val / test tables with the ``target`` column.
        features: the :class:`skinlib.metadata.MetadataFeatures` fitted on the train split (its columns also feed
            the logistic regression); None for data without metadata (then only ``image`` models can be trained).
        cache: the image cache of every image of `parts`.
        branch: the networks' image branch.
        config: :class:`skinlib.train.FitConfig` (monitor ``auc``; its ``pos_weight`` for the natural regime).
        batch_size, seed, device, resume: as for :func:`fit_network`.
        run_name_prefix: prefix of the run names (07's ``run_name``; None: made from task, kind, backbone, regime).
        min_sensitivity, n_boot: as for :func:`skinlib.evaluation.evaluate_binary`.
        tta: the image and fusion networks' test-time augmentation (:mod:`skinlib.tta`), evaluated beside the
            plain prediction as ``FittedRun.tta`` (thresholds chosen on its own validation predictions).
        train_fraction: the share of the training labels `parts` holds (named in the run names only: the
            notebook subsets the train rows, :func:`skinlib.data.splits.train_fraction_subset`).
    """
    from . import metadata
    from .data.transforms import Preprocess, augmentation
    from .evaluation import evaluate_binary
    from .models import ModelSpec

    spec = task_of(task)
    needing = [kind for kind in kinds if kind != "image"]
    if features is None and needing:
        raise ValueError(f"models {', '.join(needing)} need patient metadata, which this data lacks; "
                         "train models=['image'] on it, or give an ISIC archive export or HAM10000's metadata CSV")
    n_features = len(features.names) if features is not None else 0
    for kind in kinds:
        for regime in regimes:
            name = run_name(run_name_prefix, task, kind, regime, branch.backbone, train_fraction)
            rows = training_rows(parts, regime, seed)
            fitted = FittedRun(name, kind, regime, None)
            if kind == "logreg":
                model = metadata.logistic_regression(features.numeric, features.categorical,
                                                     balanced=regime == "balanced", seed=seed)
                proba = metadata.fit_predict(model, parts, features.numeric, features.categorical, train=rows)
            else:
                model = make_model(kind, n_features, branch.backbone, pretrained=branch.pretrained,
                                   weights_dir=branch.weights_dir, freeze_fraction=branch.freeze_fraction,
                                   image_size=branch.image_size, head=branch.head, seed=seed)
                mean, std = normalization(model, kind, branch.backbone, branch.pretrained, cache,
                                          parts["train"]["image_id"])
                preprocess = (Preprocess(mean, std, augmentation(branch.augment)), Preprocess(mean, std))
                print(f"{name}:")
                proba, result, variant = fit_network(
                    model, parts, rows, cache, features if kind != "image" else None, regime, preprocess, config,
                    batch_size=batch_size, seed=seed, device=device, resume=resume,
                    checkpoint_dir=paths.workspace() / "checkpoints" / "binary" / name,
                    tta=tta if kind in ("image", "fusion") else "none")
                if variant is not None:
                    fitted.tta = evaluate_binary(parts, variant, spec.positive, negative=spec.negative,
                                                 min_sensitivity=min_sensitivity, n_boot=n_boot, seed=seed)
                fitted.history, fitted.best_epoch = result.history, result.best_epoch
                factory, kwargs = model_factory(kind, n_features, branch.backbone,
                                                freeze_fraction=branch.freeze_fraction, image_size=branch.image_size,
                                                head=branch.head)
                fitted.saved = dict(model=model, spec=ModelSpec(factory, kwargs, mean, std, branch.image_size,
                                                                classes=[spec.negative, spec.positive],
                                                                resample=branch.resample, crop=branch.crop))
            fitted.evaluation = evaluate_binary(parts, proba, spec.positive, negative=spec.negative,
                                                min_sensitivity=min_sensitivity, n_boot=n_boot, seed=seed)
            yield fitted


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
