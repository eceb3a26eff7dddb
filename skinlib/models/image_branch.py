"""The image branch of the binary tasks (studies B and D) and the image-only model on it: study D's small CNN,
CLIP's image tower (``clip-<architecture>``, study B), or any timm backbone; one logit for a binary task,
``num_classes`` > 1 for study D's multiclass task.
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from .backbones import create_backbone
from .custom_cnn import SmallCNN
from .factories import CLIP_TINY, SMALL_CNN, clip_arguments, is_clip, register_model
from .heads import make_head


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
        backbone: ``small_cnn`` (study D's small CNN, :class:`SmallCNN`, trained from scratch; needs `image_size`),
            CLIP's image tower
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
        if not image_size:
            raise ValueError("small_cnn flattens its feature map, so it is built for one image side: give image_size")
        cnn = SmallCNN(image_size)
        return cnn, cnn.num_features
    model = create_backbone(backbone, 1, pretrained=pretrained, weights_dir=weights_dir,
                            freeze_fraction=freeze_fraction, image_size=image_size)
    return model.features, model.head.in_features


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
        self.head = make_head(head, dim, num_classes, hidden=hidden, dropout=dropout, input_dropout=dropout)

    def forward(self, x: Tensor | tuple[Tensor, ...]) -> Tensor:
        images = x[0] if isinstance(x, (tuple, list)) else x
        return self.head(self.encoder(images))


@register_model("image_model")
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
