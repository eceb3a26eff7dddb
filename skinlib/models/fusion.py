"""Models of the binary tasks (studies B and D): a small CNN, a metadata MLP, and image + metadata fusion over any
image branch: a timm backbone, the small CNN, or CLIP's image tower (``clip-<architecture>``, study B). One logit
for a binary task; ``num_classes`` > 1 for study D's multiclass task among the malignant subtypes.

Every factory takes JSON-serialisable arguments only, so a model is rebuilt from ``{factory, kwargs}`` and
its weights. Models reading metadata take the ``(images, features)`` pair that
:class:`skinlib.data.batches.Batches` yields when given ``features``.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from .backbones import create_backbone
from .custom_cnn import ResidualCNN

SMALL_CNN = "small_cnn"
#: Image branches named ``clip-<open_clip architecture>[.<pretrained tag>]`` (``clip-ViT-B-32`` is OpenAI's ViT-B/32),
#: ``clip-hf-hub:org/repo``, or ``clip-tiny``: the narrow :data:`~skinlib.models.vision_language.TINY_CLIP` tower
#: for a quick CPU run, trained from scratch through the same code path.
CLIP_PREFIX = "clip-"
CLIP_TINY = "clip-tiny"


def is_clip(backbone: str) -> bool:
    """True when `backbone` names CLIP's image tower (``clip-...``)."""
    return isinstance(backbone, str) and backbone.startswith(CLIP_PREFIX)


def clip_arguments(backbone: str) -> dict:
    """The :func:`~skinlib.models.create_clip` arguments (name, tag, config) of a ``clip-...`` image branch.

    Args:
        backbone: ``clip-ViT-B-32`` (OpenAI weights), ``clip-ViT-B-32.laion2b_s34b_b79k`` (another open_clip tag),
            ``clip-hf-hub:org/repo`` or ``clip-tiny``.
    """
    from .vision_language import TINY_CLIP

    if not is_clip(backbone) or len(backbone) == len(CLIP_PREFIX):
        raise ValueError(f"{backbone!r} is not a CLIP image branch: use clip-<open_clip architecture> (e.g. "
                         "clip-ViT-B-32), clip-<architecture>.<tag>, clip-hf-hub:org/repo or clip-tiny")
    if backbone == CLIP_TINY:
        return {"name": "ViT-B-32", "tag": "openai", "config": TINY_CLIP}
    name = backbone[len(CLIP_PREFIX):]
    if name.startswith("hf-hub:"):
        return {"name": name, "tag": "openai", "config": None}
    name, _, tag = name.partition(".")
    return {"name": name, "tag": tag or "openai", "config": None}


class CLIPImageTower(nn.Module):
    """CLIP's image tower alone (the text tower is left out): images -> the projected image embedding."""

    def __init__(self, visual: nn.Module, pretrained_cfg: dict):
        super().__init__()
        self.visual = visual
        self.pretrained_cfg = pretrained_cfg

    def forward(self, images: Tensor) -> Tensor:
        return self.visual(images)


def clip_image_tower(backbone: str, *, pretrained: bool = False, weights_dir: str | os.PathLike | None = None,
                     freeze_fraction: float = 0.0, image_size: int | None = None) -> tuple[CLIPImageTower, int]:
    """CLIP's image tower of a ``clip-...`` branch (weights as :func:`~skinlib.models.create_clip` loads them) and
    its embedding width; its ``pretrained_cfg`` holds CLIP's mean, std and input size.

    Args:
        backbone: see :func:`clip_arguments`.
        pretrained, weights_dir, freeze_fraction, image_size: as for :func:`~skinlib.models.create_clip`.
    """
    from .vision_language import create_clip

    args = clip_arguments(backbone)
    if pretrained and args["config"] is not None:
        raise ValueError(f"{CLIP_TINY} has no pretrained weights; set pretrained=False or use e.g. clip-ViT-B-32")
    clip = create_clip(args["name"], 1, pretrained=pretrained, tag=args["tag"], weights_dir=weights_dir,
                       freeze_fraction=freeze_fraction, config=args["config"], image_size=image_size)
    dim = clip.head.in_features
    return CLIPImageTower(clip.visual, dict(clip.pretrained_cfg)), dim


def image_encoder(backbone: str = SMALL_CNN, *, pretrained: bool = False, weights_dir: str | os.PathLike | None = None,
                  freeze_fraction: float = 0.0, image_size: int | None = None) -> tuple[nn.Module, int]:
    """A network mapping images to pooled features, and the feature width.

    Args:
        backbone: ``small_cnn`` (a three-stage residual CNN, width 16, trained from scratch), CLIP's image tower
            (``clip-ViT-B-32``, ``clip-tiny``, see :func:`clip_arguments`), or any name
            :func:`skinlib.models.create_backbone` accepts (``resnet18``, ``mobilenetv2``, ``resnet50``, DINO, ...).
        pretrained, weights_dir, freeze_fraction, image_size: as for :func:`create_backbone`.
    """
    if is_clip(backbone):
        return clip_image_tower(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                freeze_fraction=freeze_fraction, image_size=image_size)
    if backbone == SMALL_CNN:
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; set pretrained=False or pick a timm backbone")
        cnn = ResidualCNN(num_classes=1, width=16, blocks=(1, 1, 1))
        return nn.Sequential(cnn.stem, cnn.stages, cnn.pool, nn.Flatten()), 64
    model = create_backbone(backbone, 1, pretrained=pretrained, weights_dir=weights_dir,
                            freeze_fraction=freeze_fraction, image_size=image_size)
    return model.features, model.head.in_features


def _head(kind: str, dim: int, num_classes: int, dropout: float, hidden: int) -> nn.Module:
    if kind == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))
    if kind == "mlp":                                   # the same MLP head as 06's CLIP models (study B)
        from .vision_language import _head as clip_head

        return clip_head("mlp", dim, num_classes, hidden, dropout)
    raise ValueError(f"unknown head {kind!r}: use 'linear' or 'mlp'")


class ImageClassifier(nn.Module):
    """Image-only model: an image encoder and a head (one logit for a binary task).

    Args:
        encoder: images -> pooled features of width `dim`.
        dim: width of the image features.
        dropout: dropout before the last layer.
        num_classes: outputs (1: one logit).
        head: ``linear`` or ``mlp`` (features -> `hidden` -> outputs, study B's CLIP head).
        hidden: width of the ``mlp`` head.
    """

    def __init__(self, encoder: nn.Module, dim: int, dropout: float = 0.0, num_classes: int = 1,
                 head: str = "linear", hidden: int = 256):
        super().__init__()
        self.encoder = encoder
        self.pretrained_cfg = getattr(encoder, "pretrained_cfg", {})
        self.head = _head(head, dim, num_classes, dropout, hidden)

    def forward(self, x: Tensor | tuple[Tensor, ...]) -> Tensor:
        images = x[0] if isinstance(x, (tuple, list)) else x
        return self.head(self.encoder(images))


class MetadataMLP(nn.Module):
    """Study D's metadata model: two dense layers with ReLU and dropout, then one logit.

    Args:
        n_features: metadata features per image.
        hidden: width of both dense layers.
        dropout: dropout after each dense layer.
    """

    def __init__(self, n_features: int, hidden: int = 32, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: Tensor | tuple[Tensor, ...]) -> Tensor:
        features = x[-1] if isinstance(x, (tuple, list)) else x
        return self.net(features)


class FusionNet(nn.Module):
    """Image + metadata fusion: pooled image features concatenated with a small metadata embedding, then a head.

    Args:
        encoder: images -> pooled features of width `image_dim`.
        image_dim: width of the image features.
        n_features: metadata features per image.
        meta_dim: width of the metadata embedding.
        hidden: width of the head's hidden layer.
        dropout: dropout in the head.
        num_classes: outputs (1: one logit).
    """

    def __init__(self, encoder: nn.Module, image_dim: int, n_features: int, meta_dim: int = 16, hidden: int = 64,
                 dropout: float = 0.3, num_classes: int = 1):
        super().__init__()
        self.encoder = encoder
        self.pretrained_cfg = getattr(encoder, "pretrained_cfg", {})
        self.meta = nn.Sequential(nn.Linear(n_features, meta_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(image_dim + meta_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise TypeError("FusionNet takes the pair (images, metadata features): build Batches with features=")
        images, features = x
        return self.head(torch.cat([self.encoder(images).float(), self.meta(features.float())], 1))


def create_image_model(backbone: str = SMALL_CNN, *, pretrained: bool = False, weights_dir: str | None = None,
                       freeze_fraction: float = 0.0, image_size: int | None = None, dropout: float = 0.0,
                       num_classes: int = 1, head: str = "linear", hidden: int = 256) -> ImageClassifier:
    """Image-only model on any image branch: one logit, or `num_classes` outputs (softmax).

    Args:
        backbone, pretrained, weights_dir, freeze_fraction, image_size: the image branch (see :func:`image_encoder`).
        dropout, num_classes, head, hidden: the head (see :class:`ImageClassifier`).
    """
    encoder, dim = image_encoder(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                 freeze_fraction=freeze_fraction, image_size=image_size)
    return ImageClassifier(encoder, dim, dropout, num_classes, head, hidden)


def create_metadata_mlp(n_features: int, hidden: int = 32, dropout: float = 0.3) -> MetadataMLP:
    """Metadata-only binary model (see :class:`MetadataMLP`)."""
    return MetadataMLP(n_features, hidden, dropout)


def create_fusion(backbone: str = SMALL_CNN, n_features: int = 4, *, meta_dim: int = 16, hidden: int = 64,
                  dropout: float = 0.3, pretrained: bool = False, weights_dir: str | None = None,
                  freeze_fraction: float = 0.0, image_size: int | None = None, num_classes: int = 1) -> FusionNet:
    """Image + metadata fusion on any backbone (see :class:`FusionNet` and :func:`image_encoder`)."""
    encoder, dim = image_encoder(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                 freeze_fraction=freeze_fraction, image_size=image_size)
    return FusionNet(encoder, dim, n_features, meta_dim, hidden, dropout, num_classes)
