"""Test-time augmentation: a trained model's probabilities averaged over fixed views of each image.

Evaluation only: :func:`skinlib.train.fit` never sees these views. Three kinds (``tta`` in 05, 06 and 07):

* ``none``: the image as it is (one view, the plain prediction);
* ``flips``: the 8 views of the dihedral group, the four 90° rotations of the image and of its mirror image
  (what ISIC challenge winners averaged over: a dermoscopic image has no "up");
* ``flips+crops``: those 8, plus 5 ordered crops (the four corners and the centre, each :data:`CROP_SCALE` of the
  side) resized back to the input size: 13 views.

The views act on the model's input (after :class:`skinlib.data.transforms.Preprocess`, whose per-channel
normalisation commutes with them), so every image model of skinlib takes them without change; a fusion model's
metadata features are left as they are. Probabilities (softmax, or a binary model's sigmoid) are averaged, in the
order of the views. The averaged prediction is recorded as its own run, a variant of the plain one (same weights,
another prediction: :func:`variant_name`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .parameters import TTA
from .train import predict

#: the kinds of test-time augmentation, as 05, 06 and 07's ``tta`` parameter names them
KINDS = TTA

#: side of each of the 5 ordered crops, as a share of the image's side
CROP_SCALE = 0.875

View = Callable[[torch.Tensor], torch.Tensor]


def dihedral(k: int) -> View:
    """The `k`-th of the 8 dihedral views (0: the identity): ``k % 4`` quarter turns, of the mirror image when
    ``k >= 4``. Acts on the last two dimensions of a batch."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral view {k}: there are 8, numbered 0-7")

    def view(x: torch.Tensor) -> torch.Tensor:
        x = torch.flip(x, dims=(-1,)) if k >= 4 else x
        return torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x
    return view


def crop(position: str, scale: float = CROP_SCALE) -> View:
    """An ordered crop resized back to the input's size: ``position`` one of ``top_left``, ``top_right``,
    ``bottom_left``, ``bottom_right``, ``center``; its side `scale` of the image's (bilinear resize)."""
    corners = {"top_left": (0, 0), "top_right": (0, 1), "bottom_left": (1, 0), "bottom_right": (1, 1),
               "center": (0.5, 0.5)}
    if position not in corners:
        raise ValueError(f"crop position {position!r}: use one of {sorted(corners)}")
    fy, fx = corners[position]

    def view(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ch, cw = max(1, round(h * scale)), max(1, round(w * scale))
        top, left = round((h - ch) * fy), round((w - cw) * fx)
        part = x[..., top:top + ch, left:left + cw]
        return F.interpolate(part.float(), size=(h, w), mode="bilinear", align_corners=False).to(x.dtype)
    return view


CROPS = ("top_left", "top_right", "bottom_left", "bottom_right", "center")


def views(kind: str) -> list[View]:
    """The ordered views of a kind of :data:`KINDS` (the first is always the image itself).

    Raises:
        ValueError: an unknown kind, naming the known ones.
    """
    if kind not in KINDS:
        raise ValueError(f"tta = {kind!r}: use one of {', '.join(KINDS)}")
    if kind == "none":
        return [dihedral(0)]
    flips = [dihedral(k) for k in range(8)]
    return flips + [crop(p) for p in CROPS] if kind == "flips+crops" else flips


class _Viewed(nn.Module):
    """The evaluation preprocessing followed by one view."""

    def __init__(self, preprocess: nn.Module, view: View):
        super().__init__()
        self.preprocess, self.view = preprocess, view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.view(self.preprocess(x))


def predict_tta(model: nn.Module, batches, preprocess: nn.Module, kind: str = "flips", *,
                amp: bool = True) -> np.ndarray:
    """The probabilities of `model` on every image of `batches`, averaged over the views of `kind`
    (:func:`skinlib.train.predict` once per view; ``none`` is the plain prediction).

    Args:
        model: a trained network (eval mode is set).
        batches: a :class:`skinlib.data.batches.Batches` in its rows' order (no shuffling).
        preprocess: the evaluation preprocessing (no augmentation).
        kind: one of :data:`KINDS`.
        amp: as for :func:`skinlib.train.predict`.
    """
    total = None
    chosen = views(kind)
    for view in chosen:
        proba = predict(model, batches, _Viewed(preprocess, view), amp=amp).astype(np.float64)
        total = proba if total is None else total + proba
    return total / len(chosen)


def predict_splits_tta(model: nn.Module, batches: dict, preprocess: nn.Module, kind: str,
                       splits: Sequence[str] = ("val", "test"), *, amp: bool = True) -> dict[str, np.ndarray]:
    """:func:`predict_tta` on each of `splits` (validation too: whatever is chosen on validation for this variant,
    a threshold, a member, is chosen on its own predictions).

    Args:
        model, preprocess, kind, amp: as for :func:`predict_tta`.
        batches: batches per split.
        splits: the splits to predict.
    """
    return {split: predict_tta(model, batches[split], preprocess, kind, amp=amp) for split in splits}


def variant_name(run: str, kind: str) -> str:
    """The registry name of a run's test-time-augmented variant, e.g. ``resnet18-scratch-rgb-noaug-tta_flips``."""
    if kind not in KINDS or kind == "none":
        raise ValueError(f"tta = {kind!r} has no variant: use one of {', '.join(KINDS[1:])}")
    return f"{run}-tta_{kind.replace('+', '_')}"


def variant_params(params: dict, run: str, kind: str) -> dict:
    """The recorded parameters of a variant: the plain run's, with ``tta`` set to `kind`, ``run_name`` to the
    variant's name and ``tta_of`` naming the plain run (the report pairs the two on the same test images)."""
    return {**params, "tta": kind, "run_name": variant_name(run, kind), "tta_of": run}


def plain_params(params: dict) -> dict:
    """The recorded parameters of the plain prediction (``tta`` = ``none``) of a run whose notebook asked for a
    variant as well."""
    return {**params, "tta": "none"}
