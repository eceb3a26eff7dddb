#!/usr/bin/env python
"""Training-batch throughput: the studies' input pipeline against skinlib's, same machine, same run.

    python benchmarks/input_pipeline.py               # --full-size synthetic data (10,015 JPEGs, 600x450)
    python benchmarks/input_pipeline.py --data DIR    # any dataset skinlib can read
    python benchmarks/input_pipeline.py --n 2000      # a quicker variant

Studies' pipeline (study A, Algorithm 1): a folder of full-size JPEGs, PIL decoding, per-sample torchvision
transforms (resize 224, rotation 90, hflip, translate 10%, random resized crop, colour jitter, to tensor,
Gaussian noise, normalise), a DataLoader with one worker per core. skinlib's: batches from the uint8 image
cache, study A's augmentation drawn per sample but applied to the whole batch at once. Both produce
normalised float batches of 32 x 3 x 224 x 224 ready for the model.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.data import load_catalog  # noqa: E402
from skinlib.data.batches import Batches  # noqa: E402
from skinlib.data.cache import build_cache  # noqa: E402
from skinlib.data.synthetic import generate  # noqa: E402
from skinlib.parameters import INTERPOLATIONS  # noqa: E402
from skinlib.data.transforms import Preprocess, augmentation  # noqa: E402

MEAN, STD = (0.76, 0.62, 0.55), (0.14, 0.14, 0.13)


class AddGaussianNoise:
    """Study A's noise transform: N(0, 0.01) with p 0.5, clamped to [0, 1]."""

    def __call__(self, x):
        if torch.rand(1).item() < 0.5:
            x = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
        return x


class JpegFolder(torch.utils.data.Dataset):
    """The studies' dataset: open a JPEG with PIL per sample, then transform."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = list(paths), list(labels), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            return self.transform(im.convert("RGB")), self.labels[i]


def studies_loader(catalog, batch_size, workers):
    from torchvision import transforms as T

    transform = T.Compose([
        T.Resize((224, 224)), T.RandomRotation(90), T.RandomHorizontalFlip(), T.RandomAffine(0, translate=(0.1, 0.1)),
        T.RandomResizedCrop(224, scale=(0.8, 1.0)), T.ColorJitter(0.2, 0.2, 0.2, 0.05), T.ToTensor(),
        AddGaussianNoise(), T.Normalize(MEAN, STD)])
    dataset = JpegFolder(catalog["path"], catalog["label"], transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True)   # workers end with each iterator: no background load


def throughput(batches, n_batches: int, step=None) -> tuple[float, float]:
    """Images per second over `n_batches` batches, after one warm-up batch, and the page faults of this
    process per batch (the DataLoader's workers are other processes: their faults are not counted)."""
    it = iter(batches)
    x, _ = next(it)
    if step:
        step(x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started, seen = time.perf_counter(), 0
    for _ in range(n_batches):
        x, _ = next(it)
        if step:
            x = step(x)
        seen += x.shape[0]
    rate = seen / (time.perf_counter() - started)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / n_batches
    del it                                                    # stops DataLoader workers before the next round
    gc.collect()
    time.sleep(1.0)                                           # ... and lets them exit
    return rate, faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="dataset root (default: generate --full-size synthetic data)")
    parser.add_argument("--n", type=int, help="generate this many images instead of the full 10,015")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per round (default 40)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per pipeline; medians reported")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKINLIB_WORKSPACE"] = str(Path(tmp) / "workspace")
        if args.data:
            catalog = load_catalog(args.data)
        else:
            root = generate(Path(tmp) / "data", n=args.n or 0, full_size=args.n is None, size=(600, 450))
            catalog = load_catalog(root / "ham10000")
        print(f"{len(catalog)} images, {catalog['width'].iloc[0]}x{catalog['height'].iloc[0]}; {cores} cores; "
              f"torch {torch.__version__}; batches of {args.batch_size} at 224 px; {args.rounds} alternating rounds "
              f"of {args.batches} batches per pipeline")
        started = time.perf_counter()
        cache = build_cache(catalog, 224)
        cache_s = time.perf_counter() - started
        batches = Batches(cache, catalog["image_id"], catalog["label"], args.batch_size, shuffle=True, seed=0)
        preps = {mode: Preprocess(MEAN, STD, augmentation("study_a", mode)).train() for mode in INTERPOLATIONS}
        loader = studies_loader(catalog, args.batch_size, cores)
        bases, ours_all, faults = [], {mode: [] for mode in INTERPOLATIONS}, []
        for r in range(args.rounds):
            bases.append(throughput(loader, args.batches)[0])
            line = f"  round {r + 1}: studies' {bases[-1]:6.0f} img/s"
            for mode, prep in preps.items():
                batches.set_epoch(r)
                rate, per_batch = throughput(batches, args.batches, prep)
                ours_all[mode].append(rate)
                faults.append(per_batch)
                line += f", skinlib {mode} {rate:6.0f} img/s"
            print(line)
        base = float(np.median(bases))
        print(f"studies' pipeline (PIL decode + per-sample torchvision, {cores} workers): {base:8.0f} img/s (median)")
        for mode, rates in ours_all.items():
            ratios = [rate / b for rate, b in zip(rates, bases)]
            print(f"skinlib, {mode + ' warp:':17s} {np.median(rates):8.0f} img/s (median), ratio {np.median(rates) / base:.1f}x "
                  f"(per round {min(ratios):.1f}x - {max(ratios):.1f}x)")
        print(f"skinlib: {np.median(faults):.0f} page faults per batch (median)")
        ours = float(np.median(ours_all["bilinear"]))                 # the default, for the epoch times
        epoch_base = len(catalog) / base
        epoch_ours = len(catalog) / ours
        print(f"one-off 224 px cache build: {cache_s:.1f} s; first epoch including it: {epoch_ours + cache_s:.0f} s "
              f"vs {epoch_base:.0f} s ({epoch_base / (epoch_ours + cache_s):.1f}x); later epochs {epoch_ours:.0f} s "
              f"vs {epoch_base:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
