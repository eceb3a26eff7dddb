#!/usr/bin/env python
"""Speed of the data foundation on this machine, against a baseline measured in the same run.

    python benchmarks/data_pipeline.py            # full-size synthetic data (10,015 images at 600x450)
    python benchmarks/data_pipeline.py --n 2000   # a smaller, quicker variant

Measures, in a temporary workspace:
  1. ``--full-size`` synthetic generation (HAM10000 layout);
  2. building the 224 px image cache (JPEG draft decoding, all cores), against the plain way the
     studies load images (full decode, then resize, one process) on a sample of the same files;
  3. the default ``python run_all.py`` (notebooks 01-02), synthetic default data generated included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.data import load_catalog  # noqa: E402
from skinlib.data.cache import build_cache  # noqa: E402
from skinlib.data.synthetic import generate  # noqa: E402


def baseline_decode(paths: list[str], size: int) -> float:
    """Seconds to decode and resize `paths` the plain way: full decode, RGB, resize, one process."""
    started = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="images (default: --full-size, the real 10,015)")
    parser.add_argument("--size", type=int, default=224, help="cache image size (default 224)")
    parser.add_argument("--baseline-sample", type=int, default=1000, help="images decoded by the baseline")
    parser.add_argument("--skip-run-all", action="store_true", help="do not time run_all.py")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"machine: {cores} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKINLIB_WORKSPACE"] = str(Path(tmp) / "workspace")
        started = time.perf_counter()
        root = generate(Path(tmp) / "data", n=args.n or 0, full_size=args.n is None,
                        size=(600, 450), layouts=("ham10000",))
        gen = time.perf_counter() - started
        catalog = load_catalog(root / "ham10000")
        label = "--full-size" if args.n is None else f"--n {args.n} at 600x450"
        print(f"synthetic generation ({label}): {len(catalog)} images in {gen:.1f} s "
              f"({len(catalog) / gen:.0f} img/s){'  [target < 120 s]' if args.n is None else ''}")

        started = time.perf_counter()
        load_catalog(root / "ham10000")
        print(f"catalog load + validation of {len(catalog)} files: {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        build_cache(catalog, args.size)
        cache_s = time.perf_counter() - started
        sample = list(catalog["path"].sample(min(args.baseline_sample, len(catalog)), random_state=0))
        base_s = baseline_decode(sample, args.size) * len(catalog) / len(sample)
        print(f"image cache at {args.size} px (draft decode, {cores} processes): {cache_s:.1f} s "
              f"({len(catalog) / cache_s:.0f} img/s){'  [target < 120 s]' if args.n is None else ''}")
        print(f"baseline, full decode + resize in 1 process: {len(sample)} images, "
              f"{len(catalog) / base_s:.0f} img/s -> {base_s:.1f} s for all")
        print(f"ratio cache build vs baseline: {base_s / cache_s:.1f}x")

        if not args.skip_run_all:
            env = {**os.environ, "SKINLIB_WORKSPACE": str(Path(tmp) / "run_all_ws")}
            env.pop("SKINLIB_DATA", None)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, str(ROOT / "run_all.py"), "--no-progress"], env=env,
                                  capture_output=True, text=True)
            took = time.perf_counter() - started
            status = "ok" if done.returncode == 0 else f"FAILED\n{done.stdout}\n{done.stderr}"
            print(f"python run_all.py (default, fresh workspace, 01-02): {took:.1f} s, {status}  [target < 120 s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
