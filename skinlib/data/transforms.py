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

from .. import parameters

_GRAY = torch.tensor([0.299, 0.587, 0.114])
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _uniform(n: int, low: float, high: float, device) -> torch.Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


class Scratch:
    """Intermediate buffers reused from batch to batch, never returned to a caller.

    On a CPU, a fresh 20 MB tensor per batch costs more in page faults than the arithmetic done on it (the
    allocator hands freed blocks of that size back to the system, and the next batch faults them in again).
    """

    def __init__(self):
        self.buffers: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised buffer `name` of `shape`, with `like`'s dtype and device (a view of a larger one
        kept from an earlier batch when there is one: a last, smaller batch does not reallocate)."""
        size = math.prod(shape)
        buf = self.buffers.get(name)
        if buf is None or buf.numel() < size or buf.dtype != like.dtype or buf.device != like.device:
            buf = self.buffers[name] = torch.empty(size, dtype=like.dtype, device=like.device)
        return buf[:size].view(shape)


def _warp(x: torch.Tensor, matrix: torch.Tensor, offset: torch.Tensor, padding: str, mode: str,
          scratch: Scratch) -> torch.Tensor:
    """Sample x at ``matrix @ p + offset`` for every output point p (normalised coordinates in [-1, 1]).

    The grid is what ``F.affine_grid`` computes, written in place as a sum of a row and a column term
    (two passes instead of a thin batched matmul, which BLAS does slowly on a CPU).
    """
    n, _, h, w = x.shape
    xs = ((torch.arange(w, dtype=x.dtype, device=x.device) * 2 + 1) / w - 1).view(1, 1, w)
    ys = ((torch.arange(h, dtype=x.dtype, device=x.device) * 2 + 1) / h - 1).view(1, h, 1)
    m, b = matrix.view(n, 2, 2, 1, 1), offset.view(n, 2, 1, 1)
    grid = scratch("grid", (n, h, w, 2), x)
    for k in range(2):
        torch.add(m[:, k, 0] * xs, m[:, k, 1] * ys + b[:, k], out=grid[..., k])
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


class NoiseBank:
    """Standard normal noise served as random windows of a few pre-drawn fields, redrawn after `refresh` windows.

    Drawing 2.4 million normals per batch costs more than the rest of the augmentation on a CPU; a window at a
    random offset of a random field is still N(0, 1) at every pixel, and no two images share a window in practice.
    """

    def __init__(self, fields: int = 4, margin: int = 32, refresh: int = 512):
        self.fields, self.margin, self.refresh = fields, margin, refresh
        self.bank: torch.Tensor | None = None
        self.uses = 0

    def window(self, shape: tuple[int, int, int], device) -> torch.Tensor:
        """One (C, H, W) field of standard normal noise: a read-only view into the bank."""
        c, h, w = shape
        if self.bank is None or self.bank.shape[1:] != (c, h + self.margin, w + self.margin) \
                or self.bank.device != torch.device(device) or self.uses >= self.refresh:
            self.bank = torch.randn(self.fields, c, h + self.margin, w + self.margin, device=device)
            self.uses = 0
        self.uses += 1
        k, y, x = torch.randint(0, self.fields, ()).item(), *torch.randint(0, self.margin + 1, (2,)).tolist()
        return self.bank[k, :, y:y + h, x:x + w]


class Augment(nn.Module):
    """A training augmentation of float batches, with the final normalisation fused into its last pass.

    ``forward(x, value_range, normalise)`` takes a float batch holding values in [0, `value_range`] (255 for a
    uint8 batch just converted, so no separate division pass is spent) and returns the augmented batch in [0, 1],
    or, when `normalise` is ``(mean, std)`` (tensors of shape (3,)), ``(augmented - mean) / std`` computed in the
    same pass. Subclasses draw every random parameter per sample.

    Args:
        interpolation: ``bilinear`` or ``nearest`` sampling for the geometric steps (see :func:`augmentation`).
    """

    def __init__(self, interpolation: str = "bilinear"):
        super().__init__()
        parameters.check("interpolation", interpolation)
        self.interpolation = interpolation
        self.scratch = Scratch()

    def extra_repr(self) -> str:
        return f"interpolation={self.interpolation!r}"


def _rescale(x: torch.Tensor, gain: float, normalise: tuple[torch.Tensor, torch.Tensor] | None,
             inplace: bool = False) -> torch.Tensor:
    """``x * gain``, then ``(. - mean) / std`` per channel when `normalise` is given: a single pass (or none),
    written over `x` when `inplace`."""
    out = x if inplace else None
    if normalise is None:
        return x if gain == 1 else torch.mul(x, gain, out=out)
    mean, std = (t.to(x.device).view(1, 3, 1, 1) for t in normalise)
    return torch.addcmul(-mean / std, x, gain / std, out=out)


class NoAugment(Augment):
    """No augmentation: only the rescaling (and normalisation) of :class:`Augment`'s contract."""

    def forward(self, x: torch.Tensor, value_range: float = 1.0,
                normalise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return _rescale(x, 1 / value_range, normalise)


class StudyAAugment(Augment):
    """Study A's Algorithm 1: rotation U(-90, 90), horizontal flip p 0.5, translation up to 10%, random resized
    crop (scale 0.8-1.0, ratio 3/4-4/3), colour jitter (brightness, contrast, saturation 0.2, hue 0.05),
    Gaussian noise sigma 0.01 with p 0.5, clamped to [0, 1].

    The geometric steps are one affine warp; colour, contrast, the 1 / `value_range` scaling and the
    normalisation are one 3x3 matrix and offset per image, applied in one pass, with the clamp to [0, 1] done
    on the normalised values (per-channel bounds), which is the same thing. Differences from torchvision, by
    design: the colour steps run in a fixed order (brightness, saturation, hue in YIQ space, contrast) with one
    clamp at the end, where ColorJitter shuffles them and clamps after each; the geometric steps are resampled
    once (torchvision resamples after each of them: nearest for rotation and translation, bilinear for the
    resize and the crop)."""

    def __init__(self, interpolation: str = "bilinear", *, rotation: float = 90.0, flip: float = 0.5,
                 translate: float = 0.1, scale: tuple[float, float] = (0.8, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), jitter: float = 0.2, hue: float = 0.05,
                 noise: float = 0.5):
        super().__init__(interpolation)
        self.noise = NoiseBank()
        self.rotation, self.flip, self.translate, self.scale, self.ratio = rotation, flip, translate, scale, ratio
        self.jitter, self.hue, self.noise_p = jitter, hue, noise

    def forward(self, x: torch.Tensor, value_range: float = 1.0,
                normalise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        rot = _rotation(-torch.deg2rad(_uniform(n, -self.rotation, self.rotation, dev)))   # inverse: output -> input
        flip = torch.where(torch.rand(n, device=dev) < self.flip, -1.0, 1.0)
        scale = _uniform(n, *self.scale, dev)
        ratio = torch.exp(_uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), dev))
        w, h = torch.sqrt(scale * ratio).clamp(max=1), torch.sqrt(scale / ratio).clamp(max=1)
        centre = torch.stack([(torch.rand(n, device=dev) * 2 - 1) * (1 - w), (torch.rand(n, device=dev) * 2 - 1) * (1 - h)], -1)
        shift = _uniform(2 * n, -2 * self.translate, 2 * self.translate, dev).view(n, 2)   # 10% of the side = 0.2
        pre = rot * torch.stack([flip, torch.ones_like(flip)], -1).unsqueeze(1)   # R^-1 @ diag(flip, 1)
        matrix = pre * torch.stack([w, h], -1).unsqueeze(1)
        offset = (pre @ (centre - shift).unsqueeze(-1)).squeeze(-1)
        x = _warp(x, matrix, offset, "zeros", self.interpolation, self.scratch)

        gray = _GRAY.to(dev)
        low, high = 1 - self.jitter, 1 + self.jitter
        brightness = _uniform(n, low, high, dev).view(n, 1, 1)
        saturation = _uniform(n, low, high, dev).view(n, 1, 1)
        hue = _uniform(n, -self.hue, self.hue, dev) * 2 * math.pi
        eye = torch.eye(3, device=dev)
        sat = saturation * eye + (1 - saturation) * gray.view(1, 1, 3)
        yiq = _YIQ.to(dev)
        c, s = torch.cos(hue), torch.sin(hue)
        rot_iq = torch.zeros(n, 3, 3, device=dev)
        rot_iq[:, 0, 0], rot_iq[:, 1, 1], rot_iq[:, 1, 2], rot_iq[:, 2, 1], rot_iq[:, 2, 2] = 1, c, -s, s, c
        colour = torch.linalg.inv(yiq) @ rot_iq @ yiq @ sat * (brightness / value_range)   # (n, 3, 3)
        # contrast blends towards the image's mean grey level; colour mixing is linear, so that mean is
        # known before mixing, and colour, contrast and their offset are one affine map: a single pass
        contrast = _uniform(n, low, high, dev).view(n, 1, 1)
        grey_mean = (colour @ x.mean((2, 3)).unsqueeze(-1)).squeeze(-1) @ gray      # (n,)
        bias = ((1 - contrast.view(n)) * grey_mean).view(n, 1, 1).expand(n, 3, 1)
        gain, low, high, sigma = colour * contrast, [0.0] * 3, [1.0] * 3, [0.01] * 3
        if normalise is not None:                # y -> (y - mean) / std, folded in; [0, 1] becomes [low, high]
            mean, std = (t.to(dev).view(3, 1) for t in normalise)
            gain, bias = gain / std, (bias - mean) / std
            m, sd = normalise[0].tolist(), normalise[1].tolist()
            low, high, sigma = [-a / b for a, b in zip(m, sd)], [(1 - a) / b for a, b in zip(m, sd)], [0.01 / b for b in sd]
        # the warped batch is fresh and becomes the result: the colour pass goes through a scratch buffer and the
        # clamp writes back into it, a channel at a time (scalar bounds are ~4x faster than broadcast tensor ones)
        mixed = torch.baddbmm(bias, gain, x.view(n, 3, -1), out=self.scratch("colour", (n, 3, x[0, 0].numel()), x))
        flat = x.view(n, 3, -1)
        for c in range(3):
            torch.clamp(mixed[:, c], low[c], high[c], out=flat[:, c])

        for i in (torch.rand(n, device=dev) < self.noise_p).nonzero().flatten().tolist():
            field = self.noise.window(tuple(x.shape[1:]), dev)
            for c in range(3):
                x[i, c].add_(field[c], alpha=sigma[c]).clamp_(low[c], high[c])
        return x


class StudyEAugment(Augment):
    """Study E's Keras generator: horizontal and vertical flips, rotation U(-30, 30), shifts up to 10%, zoom
    0.8-1.2 per axis, shear 0.1 degrees (Keras' unit), border pixels repeated. Geometric only: the study found
    colour augmentation hurt."""

    def forward(self, x: torch.Tensor, value_range: float = 1.0,
                normalise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
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
        warped = _warp(x, matrix, offset, "border", self.interpolation, self.scratch)          # fresh: the result
        return _rescale(warped, 1 / value_range, normalise, inplace=True)


class StudyCAugment(Augment):
    """Study C's augmented copies: resize to 256, random crop 224, horizontal flip p 0.5: a random square crop of
    224 / 256 of the side, resized back to the input size, and flipped."""

    crop = 224 / 256

    def forward(self, x: torch.Tensor, value_range: float = 1.0,
                normalise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        n, dev = x.shape[0], x.device
        flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
        matrix = torch.zeros(n, 2, 2, device=dev)
        matrix[:, 0, 0], matrix[:, 1, 1] = flip * self.crop, self.crop
        offset = _uniform(2 * n, -(1 - self.crop), 1 - self.crop, dev).view(n, 2)   # the crop's centre
        warped = _warp(x, matrix, offset, "border", self.interpolation, self.scratch)
        return _rescale(warped, 1 / value_range, normalise, inplace=True)


class StudyBAugment(StudyAAugment):
    """Study B's ResNet augmentation (torchvision's RandomHorizontalFlip, RandomResizedCrop with its default scale
    0.08-1 and ratio 3/4-4/3, ColorJitter of brightness, contrast and saturation): the study gives no jitter
    strength, so 0.2 as study A's. :class:`StudyAAugment`'s passes without rotation, translation, hue or noise."""

    def __init__(self, interpolation: str = "bilinear"):
        super().__init__(interpolation, rotation=0.0, translate=0.0, scale=(0.08, 1.0), hue=0.0, noise=0.0)


class StudyEColorAugment(StudyEAugment):
    """Study E's geometric augmentation followed by colour jitter (brightness, contrast and saturation 0.2): the
    colour augmentation study E tried and dropped because it did worse (its strength is not given)."""

    def __init__(self, interpolation: str = "bilinear"):
        super().__init__(interpolation)
        self.colour = StudyAAugment(interpolation, rotation=0.0, flip=0.0, translate=0.0, scale=(1.0, 1.0),
                                    ratio=(1.0, 1.0), hue=0.0, noise=0.0)

    def forward(self, x: torch.Tensor, value_range: float = 1.0,
                normalise: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return self.colour(super().forward(x, value_range), 1.0, normalise)


def augmentation(kind: str, interpolation: str = "bilinear") -> Augment:
    """The training augmentation `kind` (``study_a``, ``study_b``, ``study_e``, ``study_e_color``, ``study_c`` or
    ``none``).

    `interpolation` samples the one composed geometric warp: ``bilinear`` (smoother, the default) or
    ``nearest`` (torchvision's default for rotation and translation; about twice as fast on a CPU).
    """
    parameters.check("augment", kind)
    if kind == "study_a":
        return StudyAAugment(interpolation)
    if kind == "study_e":
        return StudyEAugment(interpolation)
    if kind == "study_c":
        return StudyCAugment(interpolation)
    if kind == "study_b":
        return StudyBAugment(interpolation)
    if kind == "study_e_color":
        return StudyEColorAugment(interpolation)
    return NoAugment(interpolation)


class Preprocess(nn.Module):
    """uint8 (B, 3, S, S) -> float, augmented in train mode, optionally grey (3 channels), normalised.

    Args:
        mean, std: per-channel normalisation (train-split statistics, or the backbone's pretrained ones).
        augment: training augmentation (see :func:`augmentation`); not applied in eval mode.
        grayscale: convert to luminance and repeat it on 3 channels (the studies' grey-scale runs).

    Converting, augmenting and normalising take as few passes over the batch as the recipe allows: the
    1 / 255 scaling and the normalisation are folded into the augmentation's last pass (see :class:`Augment`).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], augment: Augment | None = None,
                 grayscale: bool = False):
        super().__init__()
        self.augment = augment if augment is not None else NoAugment()
        self.grayscale = grayscale
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        # grey-scale: z_c = (sum_k gray_k x_k - mean_c) / std_c, one 3x3 matrix for the whole map
        self.register_buffer("gray_matrix", _GRAY.repeat(3, 1) / self.std.view(3, 1))
        self.scratch = Scratch()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.scratch("float", tuple(images.shape), self.mean).copy_(images)  # values in [0, 255]
        augment = self.training and not isinstance(self.augment, NoAugment)
        if not self.grayscale:
            normalise = (self.mean, self.std)
            return self.augment(x, 255.0, normalise) if augment else _rescale(x, 1 / 255, normalise)
        matrix = self.gray_matrix / 255
        if augment:
            x, matrix = self.augment(x, 255.0), self.gray_matrix               # augmented, in [0, 1]
        n = x.shape[0]
        bias = (-self.mean / self.std).view(1, 3, 1).expand(n, 3, 1)
        return torch.baddbmm(bias, matrix.expand(n, 3, 3), x.reshape(n, 3, -1)).view_as(x)
