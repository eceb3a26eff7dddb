"""Handcrafted features for the random-forest baseline: HOG (study A) and an optional colour histogram.

Computed from the image cache in parallel and saved beside it, keyed by the cache and the settings,
so a second run (or another notebook) reads them back instead of recomputing.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from joblib import Parallel, delayed

from .data.cache import ImageCache


def hog_of(image: np.ndarray, orientations: int = 9, pixels_per_cell: int = 8, cells_per_block: int = 2,
           color_bins: int = 0) -> np.ndarray:
    """HOG of the grey image (L2-Hys blocks, as study A), plus a ``color_bins``^3 RGB histogram if > 0."""
    from skimage.color import rgb2gray
    from skimage.feature import hog

    features = hog(rgb2gray(image), orientations=orientations, pixels_per_cell=(pixels_per_cell, pixels_per_cell),
                   cells_per_block=(cells_per_block, cells_per_block), block_norm="L2-Hys", feature_vector=True)
    if color_bins > 0:
        q = (image.astype(np.int64) * color_bins) // 256
        codes = (q[..., 0] * color_bins + q[..., 1]) * color_bins + q[..., 2]
        hist = np.bincount(codes.ravel(), minlength=color_bins ** 3) / codes.size
        features = np.concatenate([features, hist])
    return features.astype(np.float32)


def _chunk(cache: ImageCache, rows: np.ndarray, settings: dict) -> np.ndarray:
    return np.stack([hog_of(cache.array[r], **settings) for r in rows])


def hog_features(cache: ImageCache, image_ids, *, orientations: int = 9, pixels_per_cell: int = 8,
                 cells_per_block: int = 2, color_bins: int = 0, jobs: int | None = None,
                 store: bool = True) -> np.ndarray:
    """HOG (+ colour histogram) features of `image_ids`, one row each, computed for the whole cache once.

    Args:
        cache: the image cache (its size is the HOG input size).
        image_ids: rows to return, in this order.
        orientations, pixels_per_cell, cells_per_block: HOG settings (study A: 9, 8, 2).
        color_bins: bins per channel of an RGB histogram appended to HOG (study A's code: 8; 0: none).
        jobs: worker processes (default: all cores).
        store: save the features beside the cache and reuse them next time.
    """
    settings = {"orientations": orientations, "pixels_per_cell": pixels_per_cell,
                "cells_per_block": cells_per_block, "color_bins": color_bins}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = cache.folder / f"hog-{key}.npy"
    if store and path.is_file():
        features = np.load(path, mmap_mode="r")
    else:
        jobs = jobs or os.cpu_count() or 1
        chunks = np.array_split(np.arange(len(cache.image_ids)), max(1, jobs * 4))
        parts = Parallel(n_jobs=jobs)(delayed(_chunk)(cache, rows, settings) for rows in chunks if len(rows))
        features = np.concatenate(parts)
        if store:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.npy")
            np.save(tmp, features)
            os.replace(tmp, path)
    return np.asarray(features[cache.rows(image_ids)])
