"""Binary models for study D: a small CNN, a metadata MLP, and image + metadata fusion over any backbone.

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


def image_encoder(backbone: str = SMALL_CNN, *, pretrained: bool = False, weights_dir: str | os.PathLike | None = None,
                  freeze_fraction: float = 0.0, image_size: int | None = None) -> tuple[nn.Module, int]:
    """A network mapping images to pooled features, and the feature width.

    Args:
        backbone: ``small_cnn`` (a three-stage residual CNN, width 16, trained from scratch) or any name
            :func:`skinlib.models.create_backbone` accepts (``resnet18``, ``mobilenetv2``, ``resnet50``, DINO, ...).
        pretrained, weights_dir, freeze_fraction, image_size: as for :func:`create_backbone`.
    """
    if backbone == SMALL_CNN:
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; set pretrained=False or pick a timm backbone")
        cnn = ResidualCNN(num_classes=1, width=16, blocks=(1, 1, 1))
        return nn.Sequential(cnn.stem, cnn.stages, cnn.pool, nn.Flatten()), 64
    model = create_backbone(backbone, 1, pretrained=pretrained, weights_dir=weights_dir,
                            freeze_fraction=freeze_fraction, image_size=image_size)
    return model.features, model.head.in_features


class ImageClassifier(nn.Module):
    """Image-only binary model: an image encoder and one logit."""

    def __init__(self, encoder: nn.Module, dim: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.pretrained_cfg = getattr(encoder, "pretrained_cfg", {})
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, 1))

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
    """

    def __init__(self, encoder: nn.Module, image_dim: int, n_features: int, meta_dim: int = 16, hidden: int = 64,
                 dropout: float = 0.3):
        super().__init__()
        self.encoder = encoder
        self.pretrained_cfg = getattr(encoder, "pretrained_cfg", {})
        self.meta = nn.Sequential(nn.Linear(n_features, meta_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(image_dim + meta_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, 1))

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise TypeError("FusionNet takes the pair (images, metadata features): build Batches with features=")
        images, features = x
        return self.head(torch.cat([self.encoder(images).float(), self.meta(features.float())], 1))


def create_image_model(backbone: str = SMALL_CNN, *, pretrained: bool = False, weights_dir: str | None = None,
                       freeze_fraction: float = 0.0, image_size: int | None = None, dropout: float = 0.0) -> ImageClassifier:
    """Image-only binary model (one logit) on any backbone (see :func:`image_encoder` for the arguments)."""
    encoder, dim = image_encoder(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                 freeze_fraction=freeze_fraction, image_size=image_size)
    return ImageClassifier(encoder, dim, dropout)


def create_metadata_mlp(n_features: int, hidden: int = 32, dropout: float = 0.3) -> MetadataMLP:
    """Metadata-only binary model (see :class:`MetadataMLP`)."""
    return MetadataMLP(n_features, hidden, dropout)


def create_fusion(backbone: str = SMALL_CNN, n_features: int = 4, *, meta_dim: int = 16, hidden: int = 64,
                  dropout: float = 0.3, pretrained: bool = False, weights_dir: str | None = None,
                  freeze_fraction: float = 0.0, image_size: int | None = None) -> FusionNet:
    """Image + metadata fusion on any backbone (see :class:`FusionNet` and :func:`image_encoder`)."""
    encoder, dim = image_encoder(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                 freeze_fraction=freeze_fraction, image_size=image_size)
    return FusionNet(encoder, dim, n_features, meta_dim, hidden, dropout)
