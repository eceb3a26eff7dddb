"""Grad-CAM explanations (through the ``grad-cam`` package, pytorch_grad_cam) and a faithfulness check.

Which layer a model is explained at, and how its activations become a 2-D map, is a :class:`CamTarget`:
the last convolutional stage of a CNN, or the last block's patch tokens of a vision transformer reshaped to their
grid. :func:`cam_target` finds it for skinlib's models; other kinds (e.g. CLIP image towers) plug in with
:func:`register_target`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import estimate
from .data.labels import CLASSES
from .models.backbones import Backbone
from .models.custom_cnn import ResidualCNN, SmallCNN
from .models.image_branch import CLIPImageTower, ImageClassifier
from .models.vision_language import BLIPClassifier, CLIPClassifier


@dataclass
class CamTarget:
    """Where Grad-CAM looks in a model.

    Attributes:
        layers: the module(s) whose activations and gradients make the map.
        reshape_transform: turns those activations into (B, C, H, W) (None when they already are).
    """

    layers: list[nn.Module]
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None


def token_reshape(prefix_tokens: int, grid: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A reshape_transform for transformer tokens (B, prefix + H*W, C) -> (B, C, H, W), dropping the prefix
    (class / register tokens).

    Args:
        prefix_tokens: tokens before the patch tokens (1 for a class token).
        grid: patch grid (H, W).
    """
    h, w = int(grid[0]), int(grid[1])

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() == 3 and tokens.shape[1] != prefix_tokens + h * w and tokens.shape[0] == prefix_tokens + h * w:
            tokens = tokens.transpose(0, 1)                              # (tokens, B, C) layouts, e.g. open_clip
        patches = tokens[:, prefix_tokens:, :]
        return patches.reshape(patches.shape[0], h, w, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _timm_target(features: nn.Module) -> CamTarget:
    if hasattr(features, "blocks") and hasattr(features, "patch_embed"):          # timm ViT, DINO
        grid = features.patch_embed.grid_size
        prefix = getattr(features, "num_prefix_tokens", 1)
        return CamTarget([features.blocks[-1].norm1], token_reshape(prefix, grid))
    info = getattr(features, "feature_info", None)
    if info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        return CamTarget([features.get_submodule(last)])
    raise TypeError(f"no Grad-CAM target known for timm model {type(features).__name__}; "
                    "register one with skinlib.explain.register_target")


def square_token_reshape(prefix_tokens: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """As :func:`token_reshape` for a square patch grid read off the token count at call time (towers whose
    position embedding is interpolated to the input size, such as BLIP's)."""
    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        count = tokens.shape[1] if tokens.dim() == 3 else 0
        side = int(round((count - prefix_tokens) ** 0.5))
        return token_reshape(prefix_tokens, (side, side))(tokens)

    return reshape


def _image_model_target(model: ImageClassifier) -> CamTarget:
    """The binary tasks' image-only model (07): the last stage of its image branch (study D's small CNN, a timm
    backbone such as study B's ResNet-18) or the last block of CLIP's image tower."""
    encoder = model.encoder
    if isinstance(encoder, CLIPImageTower):
        return CamTarget([encoder.visual.transformer.resblocks[-1].ln_1], square_token_reshape(1))
    if isinstance(encoder, SmallCNN):                              # study D's CNN: its last conv / max-pool stage
        return CamTarget([encoder.stages])
    return _timm_target(encoder)


#: Model class -> function giving its CamTarget; looked up along the class hierarchy.
TARGETS: dict[type, Callable[[nn.Module], CamTarget]] = {
    ResidualCNN: lambda m: CamTarget([m.stages[-1]]),
    Backbone: lambda m: _timm_target(m.features),
    # CLIP's and BLIP's image towers: the last block's patch tokens, as for a timm ViT (a class token first)
    CLIPClassifier: lambda m: CamTarget([m.visual.transformer.resblocks[-1].ln_1], square_token_reshape(1)),
    BLIPClassifier: lambda m: CamTarget([m.visual.encoder.layers[-1].layer_norm1], square_token_reshape(1)),
    ImageClassifier: _image_model_target,
}


def register_target(kind: type, fn: Callable[[nn.Module], CamTarget]) -> None:
    """Teach :func:`cam_target` a new model class (e.g. a CLIP image tower with a linear probe).

    Args:
        kind: the model class (subclasses match too).
        fn: ``fn(model) -> CamTarget``; use :func:`token_reshape` for transformer tokens.
    """
    TARGETS[kind] = fn


def cam_target(model: nn.Module) -> CamTarget:
    """The layer(s) and reshape Grad-CAM uses for `model` (last stage of a CNN, last block's tokens of a ViT).

    Raises:
        TypeError: for a model class nobody registered (names the class and :func:`register_target`).
    """
    for kind in type(model).__mro__:
        if kind in TARGETS:
            return TARGETS[kind](model)
    try:
        return _timm_target(model)
    except TypeError:
        raise TypeError(f"no Grad-CAM target known for {type(model).__name__}; known: "
                        f"{', '.join(k.__name__ for k in TARGETS)}. Register one with "
                        "skinlib.explain.register_target(kind, fn)") from None


def layer_names(model: nn.Module) -> str:
    """The qualified names of the layers Grad-CAM uses for `model` (e.g. ``features.layer4``)."""
    layers = {id(m) for m in cam_target(model).layers}
    return ", ".join(name for name, m in model.named_modules() if id(m) in layers)


def is_binary(model: nn.Module, inputs: torch.Tensor | Preprocessed) -> bool:
    """Whether `model` has one output (a binary task's logit) rather than one per class, from its output on one
    image of `inputs`."""
    with torch.no_grad():
        return model(inputs[:1]).shape[-1] == 1


def score_target(cls: int, binary: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Grad-CAM's target for class `cls`: the class's logit; for a one-logit (binary) model the logit for class 1
    and its negative for class 0 (the package's ``BinaryClassifierOutputTarget``)."""
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget, ClassifierOutputTarget

    return BinaryClassifierOutputTarget(int(cls)) if binary else ClassifierOutputTarget(int(cls))


class ProbabilityTarget:
    """The probability of class `cls` from a model's output for one image: softmax over the logits, or for a
    one-logit (binary) model the sigmoid (class 1) or one minus it (class 0). What :func:`faithfulness` measures.

    Args:
        cls: the class.
    """

    def __init__(self, cls: int):
        self.cls = int(cls)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if output.shape[-1] == 1:
            p = torch.sigmoid(output.float()[..., 0])
            return p if self.cls == 1 else 1 - p
        return torch.softmax(output.float(), dim=-1)[..., self.cls]


def probabilities(model: nn.Module, inputs: torch.Tensor | Preprocessed, batch_size: int = 64) -> np.ndarray:
    """Class probabilities (n, k) of `model` on preprocessed `inputs`: softmax, or for a one-logit (binary) model
    the columns (1 - sigmoid, sigmoid), so that column c is always the probability of class c.

    Args:
        model: a classifier in eval mode.
        inputs: preprocessed images (n, 3, H, W) on the model's device, or a :class:`Preprocessed` (made a batch
            at a time).
        batch_size: images per forward pass.
    """
    starts = range(0, len(inputs), batch_size)
    with torch.no_grad():                            # run_all.py --estimate: a few batches, the rest filled in
        logits = torch.cat([model(inputs[i:i + batch_size]).float()
                            for i in estimate.sampled(starts, len(starts), "predict")])
    if len(logits) < len(inputs):
        logits = torch.from_numpy(estimate.padded(logits.cpu().numpy(), len(inputs)))
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], 1).cpu().numpy()
    return torch.softmax(logits, 1).cpu().numpy()


#: pixels per Grad-CAM pass (32 images of 224 x 224): its backward pass keeps every activation, as a training step
#: does: 32 images at 384 px through BLIP's ViT ran a 24 GB machine out of memory in 09
GRADCAM_PIXELS = 32 * 224 * 224


def gradcam_batch_size(shape: Sequence[int]) -> int:
    """Images per Grad-CAM pass for inputs of `shape` (n, 3, H, W): :data:`GRADCAM_PIXELS` pixels, at least one
    image (32 at 224 px, 17 at 299, 6 at 512)."""
    return max(1, GRADCAM_PIXELS // (int(shape[-2]) * int(shape[-1])))


def gradcam(model: nn.Module, inputs: torch.Tensor, classes: Sequence[int], batch_size: int | None = None) -> np.ndarray:
    """Grad-CAM maps (n, H, W) in [0, 1] at the input's resolution, for class `classes[i]` of image i.

    Args:
        model: a classifier in eval mode (one logit per class, or one logit for a binary task: class 1 is its
            logit, class 0 its negative).
        inputs: preprocessed images (n, 3, H, W) on the model's device.
        classes: the class explained for each image (the prediction, the truth, or another class).
        batch_size: images per Grad-CAM pass; None: :func:`gradcam_batch_size` (fewer for larger images).
    """
    from pytorch_grad_cam import GradCAM

    batch_size = batch_size or gradcam_batch_size(inputs.shape)

    target = cam_target(model)
    model.eval()
    binary = len(inputs) > 0 and is_binary(model, inputs)
    maps = []
    frozen = [p for p in model.parameters() if not p.requires_grad]     # a frozen backbone still needs gradients
    for p in frozen:                                                     # to flow back to its last stage
        p.requires_grad_(True)
    try:
        with GradCAM(model=model, target_layers=target.layers, reshape_transform=target.reshape_transform) as cam:
            starts = range(0, len(inputs), batch_size)
            for start in estimate.sampled(starts, len(starts), "gradcam"):      # --estimate: a few batches
                chunk = inputs[start:start + batch_size]
                targets = [score_target(c, binary) for c in classes[start:start + batch_size]]
                maps.append(cam(input_tensor=chunk, targets=targets))
    finally:
        for p in frozen:
            p.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    if not maps:
        return np.zeros((0, *inputs.shape[2:]), np.float32)
    return estimate.padded(np.concatenate(maps).astype(np.float32), len(inputs))


def overlay(image: np.ndarray, cam: np.ndarray, weight: float = 0.45) -> np.ndarray:
    """The map as a colour heat map over a uint8 (H, W, 3) image, as uint8 (the package's ``show_cam_on_image``)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(np.asarray(image, np.float32) / 255, cam, use_rgb=True, image_weight=1 - weight)


def random_maps(n: int, shape: Sequence[int], seed: int = 0, cells: int = 4) -> np.ndarray:
    """Smooth random maps (n, H, W) in [0, 1]: upsampled `cells` x `cells` noise, blob-shaped like Grad-CAM maps,
    the baseline of :func:`faithfulness`."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, cells, cells, generator=g)
    up = torch.nn.functional.interpolate(noise, size=tuple(shape), mode="bicubic", align_corners=False)[:, 0]
    lo = up.amin((1, 2), keepdim=True)
    hi = up.amax((1, 2), keepdim=True)
    return ((up - lo) / (hi - lo + 1e-8)).numpy().astype(np.float32)


#: images per call of the faithfulness metric (small: its imputation costs seconds an image on a CPU, and
#: run_all.py --estimate times a few calls)
FAITHFULNESS_CHUNK = 8


def faithfulness(model: nn.Module, inputs: torch.Tensor, maps: np.ndarray, classes: Sequence[int],
                 percentile: int = 80, seed: int = 0) -> pd.DataFrame:
    """Does removing what the map points at hurt the model more than removing a random area of the same size?

    Uses the package's ROAD metric (remove-most-relevant-first with noisy linear imputation,
    ``pytorch_grad_cam.metrics.road``): the pixels above the map's `percentile` are imputed from their
    neighbours and the probability of the explained class (:class:`ProbabilityTarget`: softmax, or the sigmoid of
    a binary model's one logit) is measured again. The same is done with a smooth random map (:func:`random_maps`),
    which removes the same number of pixels.

    Args:
        model: the classifier (eval mode; one logit per class, or one logit for a binary task).
        inputs: preprocessed images (n, 3, H, W).
        maps: Grad-CAM maps (n, H, W) for `classes`.
        classes: the explained class per image.
        percentile: pixels above this percentile of each map are removed (80: the top 20 %).
        seed: seed of the random maps.

    Returns:
        one row per image: ``p`` (before), ``drop_cam`` and ``drop_random`` (probability lost; positive = hurt).
    """
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst

    targets = [ProbabilityTarget(c) for c in classes]
    metric = ROADMostRelevantFirst(percentile=percentile)
    p = probabilities(model, inputs)[np.arange(len(inputs)), np.asarray(list(classes), int)]

    def drops(masks: np.ndarray, what: str) -> np.ndarray:
        # in chunks, in order (the imputation's noise is drawn image by image, so the result is the same as in one
        # call); run_all.py --estimate: a few chunks, the rest filled in
        starts = range(0, len(inputs), FAITHFULNESS_CHUNK)
        parts = [-np.asarray(metric(inputs[i:i + FAITHFULNESS_CHUNK], masks[i:i + FAITHFULNESS_CHUNK],
                                    targets[i:i + FAITHFULNESS_CHUNK], model), dtype=float)
                 for i in estimate.sampled(starts, len(starts), what)]
        return estimate.padded(np.concatenate(parts), len(inputs)) if parts else np.zeros(0)

    drop_cam = drops(maps, "faithfulness")
    drop_random = drops(random_maps(len(inputs), inputs.shape[2:], seed), "faithfulness")
    return pd.DataFrame({"p": p, "drop_cam": drop_cam, "drop_random": drop_random})


def faithfulness_summary(table: pd.DataFrame) -> dict[str, float]:
    """Mean drops, their difference, and the share of images where the map's area hurt more than the random one."""
    return {"images": len(table), "drop_cam": float(table["drop_cam"].mean()),
            "drop_random": float(table["drop_random"].mean()),
            "cam_minus_random": float((table["drop_cam"] - table["drop_random"]).mean()),
            "share_cam_hurts_more": float((table["drop_cam"] > table["drop_random"]).mean())}


class Preprocessed:
    """A subject's model inputs, made from its uint8 images when indexed (``inputs[index]``, ``inputs[a:b]``: a
    float tensor (n, 3, S, S) on the model's device), never held whole: a test split's preprocessed images take 4.7
    GB at 512 px, and 09's seven subjects held theirs together ran a 24 GB machine out of memory on the full
    profile (``run_all.py --estimate`` found it).

    Args:
        images: uint8 (n, S, S, 3).
        preprocess: the model's evaluation preprocessing.
        device: where the inputs go.
    """

    def __init__(self, images: np.ndarray, preprocess: nn.Module, device: str | torch.device = "cpu"):
        self.images, self.preprocess, self.device = images, preprocess, device

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        """(n, 3, S, S), as the tensor would have."""
        n, h, w, c = self.images.shape
        return (n, c, h, w)

    def __getitem__(self, index) -> torch.Tensor:
        one = isinstance(index, (int, np.integer))
        part = np.ascontiguousarray(self.images[[index] if one else index])
        if not len(part):                          # no image (preprocessing cannot reshape 0 elements): its shape
            return self[[0]][:0] if len(self.images) else torch.empty((0, *self.shape[1:]))
        with torch.no_grad():
            x = self.preprocess(torch.from_numpy(part).permute(0, 3, 1, 2).to(self.device))
        return x[0] if one else x


@dataclass
class Subject:
    """A registry model and the test images it is explained on.

    Attributes:
        name: ``experiment/run``.
        model: the model in eval mode; ``spec`` its :class:`~skinlib.models.spec.ModelSpec`.
        images: uint8 (n, S, S, 3) at the cache's resolution (what the overlays are drawn on).
        inputs: the preprocessed images (n, 3, S, S) the model sees, made when indexed (:class:`Preprocessed`).
        labels, predicted: true and predicted class per image; ``proba`` the probabilities (n, classes): for a
            binary model the columns (1 - p, p).
        image_ids: the images' ids.
        classes: the class codes of ``proba``'s columns (a binary task's: negative, positive, e.g. rest, mel).
        threshold: a binary model's decision threshold on p (07's, chosen on validation); None for a multiclass one
            (its prediction is the most probable class).
    """

    name: str
    model: nn.Module
    spec: object
    images: np.ndarray
    inputs: Preprocessed
    labels: np.ndarray
    predicted: np.ndarray
    proba: np.ndarray
    image_ids: np.ndarray
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    threshold: float | None = None

    @property
    def binary(self) -> bool:
        """Whether the model is a binary task's (one logit)."""
        return self.threshold is not None

    def maps(self, index: Sequence[int], classes: Sequence[int] | None = None) -> np.ndarray:
        """Grad-CAM maps of images `index` for `classes` (default: the predicted class)."""
        index = np.asarray(index, int)
        classes = self.predicted[index] if classes is None else classes
        return gradcam(self.model, self.inputs[index], list(classes))


def recorded_threshold(experiment: str, run: str, root=None, rule: str = "youden") -> float:
    """A binary run's decision threshold chosen on validation by `rule` (07 records ``<rule>_threshold``).

    Raises:
        ValueError: the run recorded no such threshold (names the run and what it recorded).
    """
    from .registry import load_run

    test = load_run(experiment, run, root).metrics.get("test", {})
    key = f"{rule}_threshold"
    if key not in test:
        raise ValueError(f"run {experiment}/{run} recorded no {key} (its test metrics: {sorted(test)}); a binary run "
                         "of 07 records the thresholds it chose on validation")
    return float(test[key])


def recorded_part(experiment: str, run: str, table: pd.DataFrame, split: str = "test", root=None) -> pd.DataFrame:
    """The images a run predicted on `split`, with the labels it was scored against (``image_id``, ``label``), as
    recorded in its predictions: a binary run's own test images and 0 / 1 targets.

    Args:
        experiment, run: a recorded run.
        table: the catalog its images must be in (their cache is read from it).
        split: the split of its predictions.
        root: the registry folder.

    Raises:
        ValueError: images of the run that `table` does not hold (it was trained on other data).
    """
    from .registry import load_run

    predictions = load_run(experiment, run, root).predictions
    part = predictions.loc[predictions["split"] == split, ["image_id", "label"]].reset_index(drop=True)
    missing = sorted(set(part["image_id"]) - set(table["image_id"]))
    if missing:
        raise ValueError(f"run {experiment}/{run}: {len(missing)} of its {len(part)} {split} images are not in this "
                         f"catalog (e.g. {missing[:3]}); it was trained on other data: point data_dir / layout at "
                         "that data to explain it")
    return part


def load_subject(experiment: str, run: str, part: pd.DataFrame, table: pd.DataFrame, device: str = "cpu",
                 root=None, catalog: pd.DataFrame | None = None) -> Subject:
    """A registry model with `part`'s images (e.g. the test split), its inputs and predictions.

    A model whose classes are not the seven HAM10000 classes (a binary task's, e.g. study B's melanoma vs rest) is
    explained on its own recorded test images instead of `part` (:func:`recorded_part`); a binary one predicts at
    its validation-chosen threshold (:func:`recorded_threshold`).

    Args:
        experiment, run: a run recorded with its model.
        part: the images to explain (``image_id``, ``label``).
        table: the whole split catalog (its image cache at the model's size is used or built).
        device: where the model runs.
        root: the registry folder.
        catalog: the catalog a binary run's own test images are read from (default: `table`; a smoke run's split
            catalog is a subset that may not hold them); only those images are cached.
    """
    from .data.cache import build_cache
    from .registry import load_model, load_spec

    spec = load_spec(experiment, run, root)
    classes = list(spec.classes or CLASSES)
    if classes != list(CLASSES):
        catalog = table if catalog is None else catalog
        part = recorded_part(experiment, run, catalog, root=root)
        table = catalog[catalog["image_id"].isin(part["image_id"])]
    model, preprocess = load_model(experiment, run, root, device=device)
    images = build_cache(table, spec.image_size, resample=spec.resample, crop=spec.crop).images(part["image_id"].to_numpy())
    inputs = Preprocessed(images, preprocess.eval().to(device), device)
    proba = probabilities(model, inputs)
    threshold = None
    if len(inputs) and is_binary(model, inputs):
        threshold = recorded_threshold(experiment, run, root)
        predicted = (proba[:, 1] >= threshold).astype(int)
    else:
        predicted = proba.argmax(1)
    if proba.shape[1] != len(classes):
        raise ValueError(f"run {experiment}/{run}: the model gives {proba.shape[1]} probabilities, its spec names "
                         f"{len(classes)} classes ({classes})")
    return Subject(f"{experiment}/{run}", model, spec, images, inputs, part["label"].to_numpy().astype(int), predicted,
                   proba, part["image_id"].to_numpy(), classes, threshold)


def load_subjects(names: Sequence[str], part: pd.DataFrame, table: pd.DataFrame, device: str = "cpu",
                  root=None, catalog: pd.DataFrame | None = None) -> dict[str, Subject]:
    """The :class:`Subject` of each ``experiment/run`` of `names` (once each, in order) whose model has a Grad-CAM
    target; a model kind without one is left out, saying so in one line.

    Args:
        names: runs recorded with their models, as ``experiment/run``.
        part, table, device, root, catalog: as for :func:`load_subject`.
    """
    subjects = {}
    for name in dict.fromkeys(names):
        subject = load_subject(*name.split("/"), part, table, device, root, catalog)
        try:
            cam_target(subject.model)
        except TypeError as exc:                   # a model kind without a registered Grad-CAM target
            print(f"{name}: not explained: {exc}")
            continue
        subjects[name] = subject
    return subjects
