#!/usr/bin/env python
"""Zero-shot evaluation of several prompt sets on val and test, as notebook 06 does it: one ``zero_shot`` call per
(prompt set, split), which encodes the split's images and the set's prompts each time (the baseline), against one
``zero_shot_many`` call, which encodes every image and every prompt once.

    python benchmarks/zero_shot.py                      # CLIP ViT-B/32 (random weights), 28 images per split, 224 px
    python benchmarks/zero_shot.py --images 64 --threads 2

Both produce the same probabilities (checked); prints the medians of alternating rounds and their ratio, from this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.models import create_clip, zero_shot, zero_shot_many  # noqa: E402

SETS = ["codes", "names", "study_c", "dermoscopic", "ensemble"]     # 06's default, and the full profile's prompts run


class ToUnit(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=28, help="images per split (val and test)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_clip("ViT-B-32", 7)                       # the real architecture, random weights (no download)
    size = model.clip.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randint(0, 256, (2 * args.images, 3, size, size), dtype=torch.uint8)
    split = lambda part: [(b, None) for b in part.split(args.batch_size)]          # noqa: E731
    batches = {"val": split(images[:args.images]), "test": split(images[args.images:])}
    pre = ToUnit()

    def per_pair():
        return {(s, p): zero_shot(model, batches[p], pre, s) for s in SETS for p in batches}

    def once():
        return zero_shot_many(model, batches, pre, SETS)

    a, b = per_pair(), once()
    assert all(np.allclose(a[k], b[k], atol=1e-5) for k in a), "the two ways disagree"
    times = {"per (set, split)": [], "zero_shot_many": []}
    for _ in range(args.rounds):
        for name, fn in (("per (set, split)", per_pair), ("zero_shot_many", once)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base, new = (statistics.median(times[k]) for k in times)
    print(f"{len(SETS)} prompt sets x 2 splits of {args.images} images, {size} px, {args.threads} thread(s), "
          f"median of {args.rounds}:")
    print(f"  one zero_shot call per (set, split): {base:.2f} s")
    print(f"  zero_shot_many:                      {new:.2f} s   ({base / new:.1f}x faster)")


if __name__ == "__main__":
    main()
