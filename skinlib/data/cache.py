"""The image cache: every image decoded and resized once, stored as one uint8 array on disk (memory-mapped).

Keyed by the catalog fingerprint, the image size, the resampling filter (``bilinear``; ``bicubic`` for the
preprocessing of CLIP and DINO) and the crop (``squash``; ``center`` for CLIP's), so a changed catalog gets a new cache and a moved dataset keeps its old one.
Decoding uses the JPEG decoder's DCT scaling (PIL ``draft``): a 600 x 450 JPEG wanted at 224 px is decoded at
300 x 225 directly, about 3x less work.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .. import leftovers, parameters, paths
from .catalog import CatalogError, fingerprint

CACHE_VERSION = 1
#: images copied from the cache at a time (:meth:`ImageCache.images`, :class:`skinlib.data.batches.Batches`)
CHUNK = 512
#: Resampling filters of the resize, by name (a knob: ``resample``).
FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def load_image(path: str | Path, size: int, resample: str = "bilinear", crop: str = "squash") -> np.ndarray:
    """Decode one image to RGB uint8 `size` x `size`.

    Args:
        path: the image file.
        size: side of the square output.
        resample: the resize filter, ``bilinear`` or ``bicubic``.
        crop: ``squash`` (the whole image resized to a square, aspect ratio not kept, as most studies did) or
            ``center`` (shorter side resized to `size`, then the central square: CLIP's preprocessing).
    """
    with Image.open(path) as im:
        im.draft("RGB", (size, size))          # JPEG: decode at 1/2, 1/4 or 1/8 scale when that stays >= size
        im = im.convert("RGB")
        if crop == "center" and im.size[0] != im.size[1]:
            w, h = im.size
            scale = size / min(w, h)
            w, h = max(size, round(w * scale)), max(size, round(h * scale))
            im = im.resize((w, h), FILTERS[resample])
            left, top = (w - size) // 2, (h - size) // 2        # torchvision's CenterCrop rounds the same way
            im = im.crop((left, top, left + size, top + size))
        if im.size != (size, size):
            im = im.resize((size, size), FILTERS[resample])
        return np.asarray(im)


@dataclass
class ImageCache:
    """Images of a catalog as an (N, size, size, 3) uint8 memory-mapped array, in catalog order of ``image_ids``."""

    folder: Path
    image_ids: np.ndarray
    size: int
    array: np.ndarray

    def rows(self, image_ids) -> np.ndarray:
        """Row numbers of `image_ids` in the array (KeyError naming the first unknown id)."""
        position = pd.Index(self.image_ids)
        rows = position.get_indexer(pd.Index(image_ids))
        if (rows < 0).any():
            raise KeyError(f"image {list(pd.Index(image_ids)[rows < 0])[0]!r} is not in this cache")
        return rows

    def images(self, image_ids) -> np.ndarray:
        """The images of `image_ids`, as an in-memory (n, size, size, 3) uint8 array: one copy, filled a chunk of
        :data:`CHUNK` images at a time (a whole-split fancy index made a second, temporary copy of the split:
        at 512 px HAM10000's train split is 5.9 GB)."""
        rows = self.rows(image_ids)
        order = np.argsort(rows)                   # read the memmap in file order
        out = np.empty((len(rows), self.size, self.size, 3), np.uint8)
        for start in range(0, len(rows), CHUNK):
            part = order[start:start + CHUNK]
            out[part] = self.array[rows[part]]
        return out


def _fill(args: tuple[str, int, int, list[str], str, str]) -> list[str]:
    array_path, size, start, files, resample, crop = args
    array = np.load(array_path, mmap_mode="r+")
    failures = []
    for i, path in enumerate(files):
        try:
            array[start + i] = load_image(path, size, resample, crop)
        except Exception as exc:
            failures.append(f"{path} ({type(exc).__name__}: {exc})")
    array.flush()
    return failures


def _folder_name(catalog_print: str, size: int, resample: str, crop: str = "squash") -> str:
    return (f"{catalog_print}-{size}px" + ("" if resample == "bilinear" else f"-{resample}")
            + ("" if crop == "squash" else f"-{crop}"))


def cache_key(catalog: pd.DataFrame, size: int, resample: str = "bilinear", crop: str = "squash") -> str:
    """Folder name of the cache for this catalog at this size and resize filter."""
    return _folder_name(fingerprint(catalog), size, resample, crop)    # the folder build_cache uses


def build_cache(
    catalog: pd.DataFrame,
    image_size: int = 224,
    *,
    root: Path | None = None,
    jobs: int | None = None,
    rebuild: bool = False,
    progress: bool = False,
    resample: str = "bilinear",
    crop: str = "squash",
) -> ImageCache:
    """The image cache of `catalog` at `image_size`: opened if it exists, else built (in parallel) and saved.

    Args:
        catalog: the catalog table (its fingerprint keys the cache).
        image_size: side of the square images stored.
        root: folder holding caches (default: ``$SKINLIB_WORKSPACE/cache``).
        jobs: decoding processes (default: all cores).
        rebuild: build again even if a cache exists.
        progress: print progress to stderr.
        resample: the resize filter: ``bilinear``, or ``bicubic`` (CLIP's and DINO's preprocessing).
        crop: ``squash`` (whole image to a square) or ``center`` (shorter side to `image_size`, central square:
            CLIP's preprocessing); see :func:`load_image`.

    Raises:
        KnobError: an image size outside :data:`skinlib.parameters.KNOBS`' range.
        CatalogError: naming every image that could not be decoded; no cache is left behind.
    """
    parameters.check("image_size", image_size)
    parameters.check("resample", resample)
    parameters.check("crop", crop)
    root = Path(root) if root else paths.cache_dir()
    catalog_print = fingerprint(catalog)            # stats every file once: reuse it for the key and the meta
    folder = root / _folder_name(catalog_print, image_size, resample, crop)
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "meta.json").is_file():
        leftovers.report(leftovers.sweep(root) if root.is_dir() else [])
        tmp = folder.with_name(folder.name + f".partial-{paths.owner()}")
        try:
            _build(catalog, image_size, folder, tmp, jobs or os.cpu_count() or 1, progress, catalog_print, resample,
                   crop)
        except BaseException:                       # an error or Ctrl-C: no half-built cache stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    meta = json.loads((folder / "meta.json").read_text())
    ids = pd.read_csv(folder / "image_ids.csv", dtype=str, keep_default_na=False)["image_id"].to_numpy()
    return ImageCache(folder, ids, meta["size"], np.load(folder / "images.npy", mmap_mode="r"))


def _build(catalog: pd.DataFrame, size: int, folder: Path, tmp: Path, jobs: int, progress: bool,
           catalog_print: str, resample: str = "bilinear", crop: str = "squash") -> None:
    started = time.time()
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = list(catalog["path"])
    array_path = str(tmp / "images.npy")
    np.lib.format.open_memmap(array_path, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 3)).flush()
    chunk = max(16, min(256, len(files) // (4 * jobs) + 1))
    tasks = [(array_path, size, s, files[s:s + chunk], resample, crop) for s in range(0, len(files), chunk)]
    failures: list[str] = []
    if jobs <= 1:
        results = map(_fill, tasks)
    else:
        pool = ProcessPoolExecutor(jobs)
        results = pool.map(_fill, tasks)
    done = 0
    for task, result in zip(tasks, results):
        failures += result
        done += len(task[3])
        if progress:
            print(f"\rcaching images at {size}px: {done}/{len(files)}", end="", file=sys.stderr, flush=True)
    if jobs > 1:
        pool.shutdown()
    if progress:
        print(f" ({time.time() - started:.1f}s)", file=sys.stderr)
    if failures:
        shutil.rmtree(tmp, ignore_errors=True)
        shown = "\n    ".join(failures[:10])
        raise CatalogError(f"{len(failures)} images could not be decoded:\n    {shown}\n"
                           "Download these files again, or remove them and their catalog rows.")
    catalog[["image_id"]].to_csv(tmp / "image_ids.csv", index=False)
    meta = {"version": CACHE_VERSION, "size": size, "resample": resample, "crop": crop, "n": len(files),
            "catalog_fingerprint": catalog_print,
            "seconds": round(time.time() - started, 1)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    try:
        tmp.rename(folder)
    except OSError:                                 # another process finished the same cache first
        shutil.rmtree(tmp, ignore_errors=True)


def channel_stats(cache: ImageCache, image_ids, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (RGB, in [0, 1]) over the images `image_ids`, e.g. the train split."""
    rows = np.sort(cache.rows(image_ids))
    if len(rows) == 0:
        raise ValueError("no images to compute channel statistics on: the split is empty (a dataset this small "
                         "cannot be split into train, val and test; use more images)")
    total = np.zeros(3)
    squares = np.zeros(3)
    for s in range(0, len(rows), chunk):
        block = cache.array[rows[s:s + chunk]].reshape(-1, 3).astype(np.float64)
        total += block.sum(0)
        squares += np.square(block).sum(0)
    n = len(rows) * cache.size * cache.size
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0))
    return (mean / 255).astype(np.float32), (std / 255).astype(np.float32)
