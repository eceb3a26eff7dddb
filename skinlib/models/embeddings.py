"""Image embeddings of a pretrained timm backbone, for the near-duplicate audit (:mod:`skinlib.data.duplicates`).

The backbone comes from :func:`skinlib.models.backbones.create_backbone`, the project's one way of loading weights:
a backbone named without its weights available fails with its :class:`~skinlib.models.weights.WeightsError` (where
to put them), never with a silent fall back to the descriptor.

Embeddings are kept beside the image cache they were computed from (``<cache>/embeddings/``), keyed by the images,
the backbone, its input size and a digest of its weights: 02 reuses 01's audit embeddings (10 to 20 minutes of a
CPU on HAM10000), while other weights (a smoke run's random ones, another weights file) or other images compute
their own.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .. import estimate
from ..data.cache import ImageCache
from ..data.duplicates import Audit, audit


def image_embeddings(cache: ImageCache, image_ids, backbone: str, *, weights_dir: str | os.PathLike | None = None,
                     pretrained: bool = True, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Pooled features of `backbone` for `image_ids` read from the image cache: (n, d) float32, in `image_ids` order.

    Args:
        cache: the image cache (resized to the backbone's input size when it differs).
        image_ids: the images.
        backbone: a timm backbone name (:data:`skinlib.models.factories.BACKBONES` or any timm name).
        weights_dir: folder with its weights (else ``$SKINLIB_WEIGHTS``, else the Hugging Face hub cache).
        pretrained: False only in tests (random weights say nothing about duplicates).
        batch_size: images per forward pass.
        device: where the backbone runs.

    Raises:
        WeightsError: the weights cannot be loaded (the message says where to put them).
    """
    import torch                     # here: the audit without a backbone (01, 02's default) never imports torch
    import torch.nn.functional as F

    from .backbones import create_backbone, input_size_of, normalization_of

    model = create_backbone(backbone, num_classes=1, pretrained=pretrained, weights_dir=weights_dir)
    features = model.features.eval().to(device)
    mean, std = normalization_of(model) or ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    side = input_size_of(model) or cache.size
    ids = list(image_ids)
    stored = _stored(cache, ids, backbone, side, model)
    if stored.is_file():
        return np.load(stored)
    out = []
    starts = range(0, len(ids), batch_size)
    with torch.no_grad():
        for start in estimate.sampled(starts, len(starts), "embeddings"):     # run_all.py --estimate: a few batches
            x = torch.from_numpy(cache.images(ids[start:start + batch_size])).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255)
            if x.shape[-1] != side:
                x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
            out.append(features((x - mean_t) / std_t).flatten(1).float().cpu().numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    embeddings = estimate.padded(np.concatenate(out), len(ids), noise=True)
    _save(stored, embeddings)
    return embeddings


def _stored(cache: ImageCache, ids: list, backbone: str, side: int, model) -> Path:
    """Where the embeddings of `ids` by `model` are kept: beside the image cache, keyed by the images, the backbone,
    its input size and its weights (every tensor's bytes), so that nothing but the same computation is reused."""
    import torch

    digest = hashlib.sha256(f"{backbone}|{side}|{cache.size}|".encode())
    digest.update("\n".join(map(str, ids)).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(dtype=torch.uint8).numpy())
    return Path(cache.folder) / "embeddings" / f"{digest.hexdigest()[:24]}.npy"


def _save(path: Path, embeddings: np.ndarray) -> None:
    """Write `embeddings` to `path` atomically (a run stopped while writing leaves no half file to reuse)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, embeddings)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def near_duplicates(catalog: pd.DataFrame, cache: ImageCache, backbone: str | None = None, *,
                    weights_dir: str | os.PathLike | None = None, pretrained: bool = True,
                    device: str = "auto") -> Audit:
    """The near-duplicate audit of `catalog`: candidate pairs by the colour-layout descriptor, scored by the cosine
    of `backbone`'s pretrained embeddings, or by the descriptor alone when `backbone` is None (the audit's
    ``method`` says which).

    Args:
        catalog: the catalog.
        cache: its image cache.
        backbone: a timm backbone whose pretrained weights are available, or None.
        weights_dir: where its weights are (as for :func:`image_embeddings`).
        pretrained: False: the backbone's random weights, which say nothing about duplicates (a smoke run checks
            the path with them; the audit's ``method`` says so).
        device: where the backbone runs: ``auto`` (a GPU when there is one), ``cpu`` or ``cuda``.
    """
    if backbone is None:
        return audit(catalog, cache)
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    embeddings = image_embeddings(cache, catalog["image_id"], backbone, weights_dir=weights_dir,
                                  pretrained=pretrained, device=device)
    weights = "pretrained" if pretrained else "random weights: says nothing about duplicates"
    return audit(catalog, cache, embeddings=embeddings, embedding_name=f"{backbone} ({weights})")
