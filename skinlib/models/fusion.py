"""Image + metadata fusion (study D) over any image branch (:mod:`skinlib.models.image_branch`).

Every factory takes JSON-serialisable arguments only, so a model is rebuilt from ``{factory, kwargs}`` and
its weights. Models reading metadata take the ``(images, features)`` pair that
:class:`skinlib.data.batches.Batches` yields when given ``features``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .factories import SMALL_CNN, register_model
from .image_branch import image_encoder


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


@register_model("fusion")
def create_fusion(backbone: str = SMALL_CNN, n_features: int = 4, *, meta_dim: int = 16, hidden: int = 64,
                  dropout: float = 0.3, pretrained: bool = False, weights_dir: str | None = None,
                  freeze_fraction: float = 0.0, image_size: int | None = None, num_classes: int = 1) -> FusionNet:
    """Image + metadata fusion on any backbone (see :class:`FusionNet` and :func:`image_encoder`)."""
    encoder, dim = image_encoder(backbone, pretrained=pretrained, weights_dir=weights_dir,
                                 freeze_fraction=freeze_fraction, image_size=image_size)
    return FusionNet(encoder, dim, n_features, meta_dim, hidden, dropout, num_classes)
