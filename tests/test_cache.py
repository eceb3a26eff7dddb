"""The image cache: same pixels as decoding the file, reused when unchanged, rebuilt when the catalog changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import truncate
from skinlib.data import CatalogError, load_catalog
from skinlib.data.cache import build_cache, cache_key, channel_stats, load_image


def test_round_trip(ham_dir, tmp_path):
    catalog = load_catalog(ham_dir)
    cache = build_cache(catalog, 32, root=tmp_path, jobs=2)
    assert cache.array.shape == (len(catalog), 32, 32, 3) and cache.array.dtype == np.uint8
    for _, row in catalog.iterrows():
        np.testing.assert_array_equal(cache.images([row["image_id"]])[0], load_image(row["path"], 32))
    picked = catalog["image_id"].iloc[[4, 0, 2]]
    np.testing.assert_array_equal(cache.images(picked), np.stack([load_image(p, 32) for p in catalog["path"].iloc[[4, 0, 2]]]))
    with pytest.raises(KeyError, match="ISIC_9"):
        cache.rows(["ISIC_9"])


def test_reused_when_unchanged_rebuilt_when_changed(ham_dir, tmp_path):
    catalog = load_catalog(ham_dir)
    first = build_cache(catalog, 24, root=tmp_path, jobs=1)
    stamp = (first.folder / "images.npy").stat().st_mtime_ns
    again = build_cache(catalog, 24, root=tmp_path, jobs=1)
    assert again.folder == first.folder and (again.folder / "images.npy").stat().st_mtime_ns == stamp
    assert build_cache(catalog, 16, root=tmp_path, jobs=1).folder != first.folder      # another size
    smaller = catalog.iloc[1:]
    changed = build_cache(smaller, 24, root=tmp_path, jobs=1)
    assert changed.folder != first.folder and len(changed.image_ids) == len(catalog) - 1
    relabelled = catalog.assign(dx=catalog["dx"].where(catalog.index != 0, "mel"))
    assert cache_key(relabelled, 24) != cache_key(catalog, 24)
    moved = catalog.assign(path=catalog["path"])                # same content: same key
    assert cache_key(moved, 24) == cache_key(catalog, 24)


def test_bicubic_resize_is_a_cache_of_its_own(ham_dir, tmp_path):
    from skinlib.parameters import KnobError

    catalog = load_catalog(ham_dir)
    bilinear = build_cache(catalog, 24, root=tmp_path, jobs=1)
    bicubic = build_cache(catalog, 24, root=tmp_path, jobs=1, resample="bicubic")
    assert bicubic.folder != bilinear.folder and bicubic.folder.name == cache_key(catalog, 24, "bicubic")
    assert bilinear.folder.name == cache_key(catalog, 24)                     # the bilinear key is unchanged
    path = catalog["path"].iloc[0]
    np.testing.assert_array_equal(bicubic.images(catalog["image_id"].iloc[:1])[0], load_image(path, 24, "bicubic"))
    assert not np.array_equal(load_image(path, 24, "bicubic"), load_image(path, 24))
    with pytest.raises(KnobError, match="resample = 'lanczos'.*bilinear, bicubic"):
        build_cache(catalog, 24, root=tmp_path, resample="lanczos")


def test_undecodable_image_is_named_and_nothing_is_left(ham_dir, tmp_path):
    catalog = load_catalog(ham_dir)
    bad = Path(catalog["path"].iloc[3])
    truncate(bad)                                    # damaged after the catalog was validated
    root = tmp_path / "caches"
    with pytest.raises(CatalogError, match=f"1 images could not be decoded:\n    {bad}"):
        build_cache(catalog, 24, root=root, jobs=1)
    assert not any(root.iterdir())


def test_channel_stats_match_numpy(ham_dir, tmp_path):
    catalog = load_catalog(ham_dir)
    cache = build_cache(catalog, 20, root=tmp_path, jobs=1)
    ids = catalog["image_id"].iloc[:6]
    mean, std = channel_stats(cache, ids, chunk=4)
    pixels = cache.images(ids).reshape(-1, 3) / 255
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-4)


def test_draft_decoding_matches_full_decoding_closely(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000").iloc[:5]
    from PIL import Image
    for path in catalog["path"]:
        fast = load_image(path, 32).astype(int)
        with Image.open(path) as im:
            slow = np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR)).astype(int)
        assert np.abs(fast - slow).mean() < 4


def test_a_split_is_held_in_memory_once_not_three_times(tmp_path):
    """At 512 px HAM10000's train split is 5.9 GB: reading it whole (a fancy index, then the copy into order, then
    the channels-first transpose) held it three times over (18 GB, measured by benchmarks/real_scale.py). The
    cache's read and Batches' fill go a chunk at a time: the images are right, and NumPy's temporary memory stays a
    few chunks (traced by tracemalloc; the split's own tensor is torch's)."""
    import tracemalloc

    import torch

    from skinlib.data.batches import Batches
    from skinlib.data.cache import CHUNK, ImageCache

    n, size = 20 * CHUNK + 7, 16
    array = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    ids = np.array([f"img{i}" for i in range(n)])
    cache = ImageCache(tmp_path, ids, size, array)
    wanted = ids[np.random.default_rng(1).permutation(n)[: n - 100]]
    split_bytes = len(wanted) * size * size * 3
    tracemalloc.start()
    try:
        out = cache.images(wanted)
        after_read = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]          # `out`, still held
        batches = Batches(cache, wanted, np.zeros(len(wanted)), 32)
        after_batches = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    rows = pd.Index(ids).get_indexer(wanted)
    assert np.array_equal(out, array[rows])
    assert torch.equal(batches.images, torch.from_numpy(array[rows]).permute(0, 3, 1, 2))
    assert after_read < 1.3 * split_bytes, f"{after_read / split_bytes:.2f} copies of the split"
    assert after_batches < 0.5 * split_bytes, f"{after_batches / split_bytes:.2f} copies of the split in NumPy"
