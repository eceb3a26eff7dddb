"""Mini-batches from the image cache: uint8 tensors in memory, shuffled per epoch from (seed, epoch).

No JPEG decoding and no per-sample Python work at training time: a batch is one indexed copy from a
preloaded uint8 array. Augmentation happens afterwards, batched, on the training device
(:mod:`skinlib.data.transforms`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from .. import parameters
from .cache import CHUNK, ImageCache


class Batches:
    """Iterable of ``(images, labels)``: images uint8 (B, 3, S, S) on `device`, labels long or float.

    With `features` (e.g. patient metadata), the input is the pair ``(images, features)`` instead of the images:
    ``((images, features), labels)``, features float32 (B, F); models taking both (fusion) read the pair.

    Args:
        cache: the image cache holding every image of `image_ids`.
        image_ids: which images, in this order (predictions come back in it).
        labels: one target per image (class index, or 0 / 1 for a binary task).
        batch_size: images per batch.
        shuffle: draw a new order each epoch (a function of `seed` and the epoch only, so runs resume exactly).
        weights: per-image sampling weights: draws with replacement (a weighted sampler) instead of shuffling.
        seed: seed of the order.
        drop_last: drop a last, smaller batch when shuffling.
        device: where batches are put (pinned memory and non-blocking copies on CUDA).
        features: optional per-image float features (n, F), in the order of `image_ids`.
    """

    def __init__(self, cache: ImageCache, image_ids: Sequence[str], labels: Sequence[float], batch_size: int,
                 *, shuffle: bool = False, weights: Sequence[float] | None = None, seed: int = 0,
                 drop_last: bool = False, device: str | torch.device = "cpu", features=None):
        parameters.check("batch_size", batch_size)
        self.image_ids = np.asarray(image_ids)
        # (N, 3, S, S) uint8 in RAM, transposed once here so that a batch is a plain gather; filled a chunk at a time,
        # so the split is in memory once (a whole-split read and transpose held it three times over: 18 GB for
        # HAM10000's train split at 512 px, which is 5.9 GB)
        self.images = torch.empty(0)
        for start in range(0, max(1, len(self.image_ids)), CHUNK):
            chunk = torch.from_numpy(cache.images(self.image_ids[start:start + CHUNK])).permute(0, 3, 1, 2)
            if start == 0:
                self.images = torch.empty((len(self.image_ids), *chunk.shape[1:]), dtype=chunk.dtype)
            self.images[start:start + len(chunk)] = chunk
        self.labels = torch.as_tensor(np.array(labels))                        # a copy: writable, owned
        if len(self.labels) != len(self.image_ids):
            raise ValueError(f"{len(self.image_ids)} images but {len(self.labels)} labels")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.features = None if features is None else torch.as_tensor(np.asarray(features, dtype=np.float32))
        if self.features is not None and (self.features.ndim != 2 or len(self.features) != len(self.image_ids)):
            raise ValueError(f"features must be (n images, n features) = ({len(self.image_ids)}, F), "
                             f"got shape {tuple(self.features.shape)}")
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.device = torch.device(device)
        if self.device.type == "cuda":
            self.images = self.images.pin_memory()
        self.epoch = 0
        self.rank, self.world = 0, 1

    def set_shard(self, rank: int, world: int) -> None:
        """Iterate over the share of process `rank` of `world` (a distributed fit, :mod:`skinlib.distributed`):
        the `rank`-th of `world` near-equal slices of every batch, `batch_size` staying the global batch. Training
        batches (shuffled or sampled) too small to share are skipped by every process alike."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        """Select the order of epoch `epoch` (call before iterating)."""
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        n = len(self.image_ids)
        if not (self.shuffle or self.weights is not None):
            return torch.arange(n)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def __len__(self) -> int:
        n = len(self.image_ids)
        return n // self.batch_size if (self.drop_last and self.shuffle and n >= self.batch_size) else -(-n // self.batch_size)

    def _shares(self) -> Iterator[torch.Tensor]:
        """Positions (into `image_ids`) of each batch this process iterates."""
        order = self.order()
        training = self.shuffle or self.weights is not None
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.world > 1:
                if training and len(idx) < self.world:
                    break
                idx = torch.tensor_split(idx, self.world)[self.rank]
                if len(idx) == 0:
                    continue
            yield idx

    def positions(self) -> np.ndarray:
        """Positions (into `image_ids`) of the images this process iterates, in its order (all of them, in order,
        outside a distributed fit when not shuffled)."""
        shares = list(self._shares())
        return torch.cat(shares).numpy() if shares else np.zeros(0, dtype=np.int64)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in self._shares():
            images = self.images[idx].to(self.device, non_blocking=True)
            if self.features is not None:
                images = (images, self.features[idx].to(self.device, non_blocking=True))
            yield images, self.labels[idx].to(self.device, non_blocking=True)


def class_weights(labels: Sequence[int], n_classes: int) -> np.ndarray:
    """scikit-learn's 'balanced' weights n / (k * count_c) over the k classes present in `labels` (always the
    train split's), 0 for classes absent from it, as a vector of length `n_classes`."""
    from sklearn.utils.class_weight import compute_class_weight

    labels = np.asarray(labels, dtype=int)
    present = np.unique(labels)
    weights = np.zeros(n_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights
