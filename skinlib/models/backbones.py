"""Transfer-learning backbones from timm with a new head, optional freezing and offline weights."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .factories import BACKBONES, check, register_model, timm_name
from .weights import WEIGHTS_ENV, WeightsError, brief, hub_mode, offline_hint, weights_folder

def _weights_file(model: str, weights_dir: Path) -> Path | None:
    arch = model.split(".")[0]
    for stem in (model, arch):
        for candidate in (weights_dir / f"{stem}.safetensors", weights_dir / f"{stem}.pth", weights_dir / f"{stem}.bin",
                          weights_dir / stem / "model.safetensors", weights_dir / stem / "pytorch_model.bin"):
            if candidate.is_file():
                return candidate
    return None


class L2Linear(nn.Linear):
    """A linear layer whose weight carries a Keras-style L2 penalty (``l2 * sum(w ** 2)`` added to the loss):
    :func:`skinlib.train.fit` gives its weight the equivalent weight decay, ``2 * l2``."""

    def __init__(self, in_features: int, out_features: int, l2: float = 0.0):
        super().__init__(in_features, out_features)
        self.l2 = float(l2)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", l2={self.l2:g}"


class StudyEHead(nn.Module):
    """Study E's head: global average pooling -> dense 256 (L2 penalty `l2` on its kernel) + ReLU -> dropout 0.5 ->
    classes."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 256, dropout: float = 0.5, l2: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(L2Linear(in_features, hidden, l2), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Backbone(nn.Module):
    """A timm feature extractor (pooled features) followed by a head; ``pretrained_cfg`` is kept."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features, self.head = features, head
        self.pretrained_cfg = getattr(features, "pretrained_cfg", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("backbone")
def create_backbone(
    name: str,
    num_classes: int = 7,
    *,
    pretrained: bool = False,
    weights_dir: str | os.PathLike | None = None,
    head: str = "linear",
    freeze_fraction: float = 0.0,
    image_size: int | None = None,
    drop_rate: float = 0.0,
    head_l2: float = 0.0,
) -> Backbone:
    """A timm backbone with a new head for `num_classes`.

    Args:
        name: a study name (``resnet50``, ``xception``, ``vit_base_patch32_224``, ``vit_small_patch16_224.dino``,
            see :data:`BACKBONES`) or any timm model name.
        num_classes: outputs (1 for a binary task with one logit).
        pretrained: load ImageNet (or DINO) weights: from `weights_dir` if given (or ``$SKINLIB_WEIGHTS``),
            else from the Hugging Face hub.
        weights_dir: folder with ``<timm name>.safetensors`` (or ``.pth``, or ``<name>/model.safetensors``).
        head: ``linear`` (one linear layer on pooled features) or ``study_e`` (GAP -> 256 -> dropout 0.5).
        freeze_fraction: share of the backbone's parameter tensors, from the input side, kept frozen: 0 fine-tunes
            everything, 1 trains the head only (linear probe), 0.5 freezes the first half.
        image_size: input size for models that fix it at creation (ViTs); default: the model's own.
        drop_rate: dropout before the head.
        head_l2: the ``study_e`` head's L2 penalty on its dense layer (study E's Keras ``kernel_regularizer='l2'``:
            0.01); must be 0 for the linear head.

    Raises:
        KnobError: a head, freeze fraction, image size or dropout outside what :func:`skinlib.models.factories.rules` allow.
        ValueError: an unknown backbone name.
        WeightsError: when pretrained weights are asked for and cannot be loaded, saying where to put them.
    """
    with warnings.catch_warnings():        # tqdm.auto, imported by the hub client, warns in notebooks without
        warnings.filterwarnings("ignore", message="IProgress not found")   # ipywidgets; text bars work
        import timm

    for knob, value in (("head", head), ("freeze_fraction", freeze_fraction), ("drop_rate", drop_rate),
                        ("image_size", image_size)):
        if value is not None:
            check(knob, value)
    model_name = timm_name(name)
    if not timm.is_model(model_name.split(".")[0]):
        raise ValueError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)} or a timm model name")
    kwargs: dict = {"num_classes": 0, "drop_rate": drop_rate}
    if image_size is not None and "vit" in model_name:
        kwargs["img_size"] = image_size
    weights_dir = weights_folder(weights_dir)
    if pretrained and weights_dir:
        path = _weights_file(model_name, weights_dir)
        if path is None:
            raise WeightsError(
                f"no weights for {model_name} in {weights_dir}: expected {model_name}.safetensors (or .pth, or "
                f"{model_name.split('.')[0]}/model.safetensors). Download 'timm/{model_name}' from the Hugging Face hub "
                "on a machine with internet access and copy the file there, or set pretrained=False.")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    online = True
    try:
        if pretrained and not weights_dir:
            with hub_mode() as online:         # offline: the hub cache only, failing in seconds, not a minute
                features = timm.create_model(model_name, pretrained=True, **kwargs)
        else:
            features = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except WeightsError:
        raise
    except Exception as exc:
        if not pretrained:
            raise
        raise WeightsError(
            f"could not load pretrained weights for {model_name} ({offline_hint(online)}{brief(exc)}). "
            f"Offline? Put {model_name}.safetensors from 'timm/{model_name}' on the Hugging Face hub in a folder and "
            f"pass weights_dir= (or set {WEIGHTS_ENV}); or set pretrained=False.") from exc
    dim = getattr(features, "head_hidden_size", None) or features.num_features   # vgg: 4096 after pre-logits
    if head_l2 and head != "study_e":
        raise ValueError(f"head_l2={head_l2} applies to the study_e head only (head={head!r}); set head_l2=0")
    if head == "linear":
        top: nn.Module = nn.Linear(dim, num_classes)
    elif head == "study_e":
        top = StudyEHead(dim, num_classes, l2=head_l2)
    else:
        raise ValueError(f"unknown head {head!r}: use 'linear' or 'study_e'")
    model = Backbone(features, top)
    freeze(model.features, freeze_fraction)
    return model


def freeze(module: nn.Module, fraction: float) -> None:
    """Freeze the first `fraction` of `module`'s parameter tensors (in registration order, input side first)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"freeze_fraction must be within [0, 1], got {fraction}")
    params = list(module.parameters())
    cut = round(len(params) * fraction)
    for i, p in enumerate(params):
        p.requires_grad_(i >= cut)


def normalization_of(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a pretrained model expects, from its own timm, open_clip or BLIP preprocessing config;
    None for other models."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "mean" in cfg and "std" in cfg:
        return tuple(cfg["mean"]), tuple(cfg["std"])
    return None


def input_size_of(model: nn.Module) -> int | None:
    """The image side a model was built for (CLIP, BLIP, ViTs), from the same config; None when it has none."""
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
    return int(size[-1]) if size else None
