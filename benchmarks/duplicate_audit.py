#!/usr/bin/env python
"""The near-duplicate audit (skinlib.data.duplicates) of a HAM10000-size data set, on the CPU.

    python -m skinlib.data.synthetic DATA --layout ham10000 --full-size     # 10,015 images of 7,470 lesions
    python benchmarks/duplicate_audit.py --data DATA/ham10000

Works on a real copy too (any layout 01 reads). In a temporary workspace (or ``--workspace``) it times:
  1. the catalog (loading and validating it);
  2. the image cache at ``--image-size`` (224: what 01 builds anyway, so the audit reads it for free there): the
     baseline, reading every image once;
  3. the audit itself: descriptors from the cache, nearest-neighbour candidates, similarity, threshold;
  4. the inferred groups and a split grouped by lesion and near-duplicates (what 02 adds).
With lesion ids (the synthetic data: shots of one session share one), it prints the precision and recall of the
pairs found against them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a data set folder (e.g. DATA/ham10000)")
    parser.add_argument("--layout", default=None, help="force a layout (default: detect)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the cached images (01: 224)")
    parser.add_argument("--workspace", type=Path, default=None, help="workspace (default: a temporary folder)")
    args = parser.parse_args()

    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="skinlib-dup-bench-"))
    os.environ["SKINLIB_WORKSPACE"] = str(workspace)
    from skinlib.data import duplicates, open_catalog
    from skinlib.data.cache import build_cache
    from skinlib.data.splits import leakage_report, make_split, with_duplicate_groups

    try:
        print(f"{os.cpu_count()} CPU cores; data {args.data}; cache at {args.image_size} px")
        started = time.perf_counter()
        catalog = open_catalog(args.data, args.layout)
        print(f"catalog: {len(catalog)} images, {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        cache = build_cache(catalog, args.image_size)
        cache_s = time.perf_counter() - started
        print(f"image cache (the baseline: every image read once): {cache_s:.1f} s")
        started = time.perf_counter()
        found = duplicates.audit(catalog, cache)
        audit_s = time.perf_counter() - started
        print(f"audit ({found.method}): {audit_s:.1f} s, {audit_s / cache_s:.2f} x the cache")
        print(duplicates.summary(catalog, found).to_string())
        started = time.perf_counter()
        grouped = with_duplicate_groups(catalog, found)
        split = make_split(grouped, group_by="lesion+duplicates")
        print(f"groups and a lesion+duplicates split: {time.perf_counter() - started:.1f} s")
        print(leakage_report(grouped, split, found).to_string())
        if duplicates.has_lesion_ids(catalog):
            scores = duplicates.truth_scores(catalog, found)
            print(f"against the lesion ids: precision {scores['precision']:.3f}, recall {scores['recall']:.3f} "
                  f"({scores['pairs found']} pairs found, {scores['true pairs']} pairs of images of one lesion)")
    finally:
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)


if __name__ == "__main__":
    main()
