"""Augmentation and normalisation, applied to whole uint8 batches on the training device.

Every random parameter is drawn per sample (a batch of 64 gets 64 different rotations, crops and
colour shifts, as a per-sample torchvision pipeline would), with whole-batch tensor operations. The geometric steps
of a recipe are composed into one affine matrix per image and applied with a single ``grid_sample``;
the colour steps are one 3x3 matrix per image plus the contrast blend. Randomness comes from torch's
global generator, which :func:`skinlib.train.fit` seeds from (seed, epoch). Evaluation batches are only
converted and normalised, never augmented.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

AUGMENTATIONS = ("study_a", "study_e", "none")
_GRAY = torch.tensor([0.299, 0.587, 0.114])
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _uniform(n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _warp(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor, padding: str) -> torch.Tensor:
    """Sample x at ``matrix @ p + offset`` for every output point p (normalised coordinates in [-1, 1]).

    The grid is what ``F.affine_grid`` computes, written in place as a sum of a row and a column term
    (two passes instead of a thin batched matmul, which BLAS does slowly on a CPU).
    """
    n, _, h, w = x.shape
    xs = ((torch.arange(w, dtype=x.dtype, device=x.device) * 2 + 1) / w - 1).view(1, 1, w)
    ys = ((torch.arange(h, dtype=x.dtype, device=x.device) * 2 + 1) / h - 1).view(1, h, 1)
    m, b = matrix.view(n, 2, 2, 1, 1), offset.view(n, 2, 1, 1)
    grid = torch.empty(n, h, w, 2, dtype=x.dtype, device=x.device)
    for k in range(2):
        torch.add(m[:, k, 0] * xs, m[:, k, 1] * ys + b[:, k], out=grid[..., k])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


class NoiseBank:
    """Standard normal noise served as random windows of a few pre-drawn fields, redrawn after `refresh` windows.

    Drawing 2.4 million normals per batch costs more than the rest of the augmentation on a CPU; a window at a
    random offset of a random field is still N(0, 1) at every pixel, and no two images share a window in practice.
    """

    def __init__(self, fields: int = 4, margin: int = 32, refresh: int = 512):
        self.fields, self.margin, self.refresh = fields, margin, refresh
        self.bank: torch.Tensor | None = None
        self.uses = 0

    def take(self, n: int, shape: tuple[int, int, int], device) -> torch.Tensor:
        c, h, w = shape
        if self.bank is None or self.bank.shape[1:] != (c, h + self.margin, w + self.margin) \
                or self.bank.device != torch.device(device) or self.uses >= self.refresh:
            self.bank = torch.randn(self.fields, c, h + self.margin, w + self.margin, device=device)
            self.uses = 0
        self.uses += n
        pick = torch.randint(0, self.fields, (n,)).tolist()
        oy = torch.randint(0, self.margin + 1, (n,)).tolist()
        ox = torch.randint(0, self.margin + 1, (n,)).tolist()
        return torch.stack([self.bank[k, :, y:y + h, x:x + w] for k, y, x in zip(pick, oy, ox)])


class StudyAAugment(nn.Module):
    """Study A's Algorithm 1 on a batch in [0, 1]: rotation U(-90, 90), horizontal flip p 0.5, translation up
    to 10%, random resized crop (scale 0.8-1.0, ratio 3/4-4/3), colour jitter (brightness, contrast,
    saturation 0.2, hue 0.05), Gaussian noise sigma 0.01 with p 0.5, clamped to [0, 1].

    Differences from torchvision, by design: the colour steps run in a fixed order (brightness, saturation,
    hue in YIQ space, contrast) with one clamp at the end, where ColorJitter shuffles them and clamps after
    each; rotation is bilinear where RandomRotation defaults to nearest."""

    def __init__(self):
        super().__init__()
        self.noise = NoiseBank()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        rot = _rotation(-torch.deg2rad(_uniform(n, -90, 90, dev)))          # inverse rotation: output -> input
        flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
        scale = _uniform(n, 0.8, 1.0, dev)
        ratio = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), dev))
        w, h = torch.sqrt(scale * ratio).clamp(max=1), torch.sqrt(scale / ratio).clamp(max=1)
        centre = torch.stack([(torch.rand(n, device=dev) * 2 - 1) * (1 - w), (torch.rand(n, device=dev) * 2 - 1) * (1 - h)], -1)
        shift = _uniform(2 * n, -0.2, 0.2, dev).view(n, 2)                   # 10% of the side = 0.2 normalised
        pre = rot * torch.stack([flip, torch.ones_like(flip)], -1).unsqueeze(1)   # R^-1 @ diag(flip, 1)
        matrix = pre * torch.stack([w, h], -1).unsqueeze(1)
        offset = (pre @ (centre - shift).unsqueeze(-1)).squeeze(-1)
        x = _warp(x, matrix, offset, "zeros")

        gray = _GRAY.to(dev)
        brightness = _uniform(n, 0.8, 1.2, dev).view(n, 1, 1)
        saturation = _uniform(n, 0.8, 1.2, dev).view(n, 1, 1)
        hue = _uniform(n, -0.05, 0.05, dev) * 2 * math.pi
        eye = torch.eye(3, device=dev)
        sat = saturation * eye + (1 - saturation) * gray.view(1, 1, 3)
        yiq = _YIQ.to(dev)
        c, s = torch.cos(hue), torch.sin(hue)
        rot_iq = torch.zeros(n, 3, 3, device=dev)
        rot_iq[:, 0, 0], rot_iq[:, 1, 1], rot_iq[:, 1, 2], rot_iq[:, 2, 1], rot_iq[:, 2, 2] = 1, c, -s, s, c
        colour = torch.linalg.inv(yiq) @ rot_iq @ yiq @ sat * brightness          # (n, 3, 3)
        # contrast blends towards the image's mean grey level; colour mixing is linear, so that mean is
        # known before mixing, and colour, contrast and their offset are one affine map: a single pass
        contrast = _uniform(n, 0.8, 1.2, dev).view(n, 1, 1)
        grey_mean = (colour @ x.mean((2, 3)).unsqueeze(-1)).squeeze(-1) @ gray      # (n,)
        offset = ((1 - contrast.view(n)) * grey_mean).view(n, 1, 1).expand(n, 3, 1)
        flat = torch.baddbmm(offset, colour * contrast, x.reshape(n, 3, -1)).clamp_(0, 1)
        x = flat.view_as(x)

        for i in (torch.rand(n, device=dev) < 0.5).nonzero().flatten().tolist():
            x[i].add_(self.noise.take(1, tuple(x.shape[1:]), dev)[0], alpha=0.01).clamp_(0, 1)
        return x


class StudyEAugment(nn.Module):
    """Study E's Keras generator on a batch in [0, 1]: horizontal and vertical flips, rotation U(-30, 30),
    shifts up to 10%, zoom 0.8-1.2 per axis, shear 0.1 degrees (Keras' unit), border pixels repeated.
    Geometric only: the study found colour augmentation hurt."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        rot = _rotation(-torch.deg2rad(_uniform(n, -30, 30, dev)))
        shear = torch.deg2rad(_uniform(n, -0.1, 0.1, dev))
        shear_m = torch.eye(2, device=dev).repeat(n, 1, 1)
        shear_m[:, 0, 1] = -torch.sin(shear)
        shear_m[:, 1, 1] = torch.cos(shear)
        flips = torch.where(torch.rand(n, 2, device=dev) < 0.5, -1.0, 1.0)
        zoom = _uniform(2 * n, 0.8, 1.2, dev).view(n, 2)
        matrix = rot @ shear_m * (flips * zoom).unsqueeze(1)
        offset = _uniform(2 * n, -0.2, 0.2, dev).view(n, 2)
        return _warp(x, matrix, offset, "border")


def augmentation(kind: str) -> nn.Module:
    """The training augmentation `kind` (``study_a``, ``study_e`` or ``none``) for float batches in [0, 1]."""
    if kind == "study_a":
        return StudyAAugment()
    if kind == "study_e":
        return StudyEAugment()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {', '.join(AUGMENTATIONS)}")


class Preprocess(nn.Module):
    """uint8 (B, 3, S, S) -> float, augmented in train mode, optionally grey (3 channels), normalised.

    Args:
        mean, std: per-channel normalisation (train-split statistics, or the backbone's pretrained ones).
        augment: training augmentation (see :func:`augmentation`); not applied in eval mode.
        grayscale: convert to luminance and repeat it on 3 channels (the studies' grey-scale runs).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], augment: nn.Module | None = None,
                 grayscale: bool = False):
        super().__init__()
        self.augment = augment or nn.Identity()
        self.grayscale = grayscale
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        self.register_buffer("scale", 1 / std_t)                # (x - mean) / std as one multiply-add
        self.register_buffer("shift", -mean_t / std_t)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        if self.training:
            x = self.augment(x)
        if self.grayscale:
            g = _GRAY.tolist()
            x = (g[0] * x[:, 0:1] + g[1] * x[:, 1:2] + g[2] * x[:, 2:3]).repeat(1, 3, 1, 1)
        return torch.addcmul(self.shift, x, self.scale)
