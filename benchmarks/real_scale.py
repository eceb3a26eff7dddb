#!/usr/bin/env python
"""A dress rehearsal of the full profile's data path at real scale: time, peak memory and disk.

    python -m skinlib.data.synthetic DATA --layout ham10000 isic_archive --full-size   # 10,015 + 40,000 images
    python benchmarks/real_scale.py --ham DATA/ham10000 --archive DATA/isic_archive

Works on real copies as well. In a temporary workspace (or ``--workspace``), for every run of the full profile
(``params/full``) it does what the run does with its data before training, and nothing else:
  1. loads and validates both catalogs (every file's header and end marker);
  2. makes the splits the profile saves: 02's grouped and image-level splits of HAM10000 (with their normalisation
     statistics) and 07's task splits (melanoma vs rest on HAM10000, benign vs malignant on the archive);
  3. builds every image cache the profile's runs read: one per dataset, image size, resize filter and crop;
  4. draws one epoch of training batches per training run, with its batch size and augmentation (on the CPU).
Prints each step's time, its peak resident memory (this process and its decoding workers together) and what the step
added to what was resident when it began, and the disk the datasets and the workspace hold at the end. A run on a
subset (05's lower-extremity run) is timed on its whole train split.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.run.plan import notebook_parameters, plan  # noqa: E402


class Peak:
    """Samples, every 0.1 s, the resident memory of this process and its children (the cache's decoding workers)
    together; ``peak`` is the largest sum since the last :meth:`reset`, ``start`` the sum at that reset, ``overall``
    the largest since the start. Resident memory counts the memory-mapped cache pages the batches touched (the kernel
    can drop them when short), so the pages of every cache read so far stay in later steps' ``peak``: a step's own
    need is ``peak - start`` (what one run adds: its split's images copied into memory, and its cache's pages)."""

    def __init__(self):
        import psutil          # ipykernel's dependency, so present wherever the notebooks run

        self.process, self.peak, self.overall = psutil.Process(), 0, 0
        self.start = self.resident()
        threading.Thread(target=self._sample, daemon=True).start()

    def resident(self) -> int:
        """The resident memory of this process and its children now (bytes)."""
        try:
            return sum(p.memory_info().rss for p in [self.process, *self.process.children(recursive=True)])
        except Exception:           # a worker ended while being read
            return 0

    def update(self) -> None:
        """Take one sample now."""
        total = self.resident()
        self.peak, self.overall = max(self.peak, total), max(self.overall, total)

    def _sample(self) -> None:
        while True:
            self.update()
            time.sleep(0.1)

    def reset(self) -> None:
        self.peak, self.start = 0, self.resident()


PEAK: Peak | None = None


def disk_mib(path: Path) -> float:
    """Disk used under `path` (MiB; ``du``, so hard links count once)."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def step(label: str, started: float) -> None:
    """Print a step's time and its peak memory, and start the next step's."""
    PEAK.update()
    print(f"{label:<76} {time.perf_counter() - started:8.1f} s   peak {PEAK.peak / 2**20:7.0f} MiB   "
          f"added {max(0, PEAK.peak - PEAK.start) / 2**20:7.0f} MiB", flush=True)
    PEAK.reset()


def runs_of_the_profile(profile: str) -> list[dict]:
    """Every run of `profile` with the data settings it resolves to: dataset, image size, resize filter, batch
    size, augmentation, task (notebook defaults where the profile sets nothing)."""
    out = []
    for run in plan(ROOT / "notebooks", ROOT / "params", profile):
        defaults = {k: p.default for k, p in notebook_parameters(run.notebook).items()}
        params = {**defaults, **run.params}
        if "image_size" not in params:
            continue
        archive = run.notebook.stem.startswith("07") and params.get("task") == "isic_archive"
        out.append({"run": run.name, "dataset": "isic_archive" if archive else "ham10000",
                    "image_size": int(params["image_size"]), "resample": params.get("resample") or "bilinear",
                    "crop": params.get("crop") or "squash",
                    "batch_size": params.get("batch_size"), "augment": params.get("augment") or "none",
                    "task": params.get("task"),
                    "reads_images": not set(params.get("models") or ["image"]) <= {"logreg", "mlp"}})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ham", type=Path, required=True, help="a HAM10000 folder (or the synthetic one)")
    parser.add_argument("--archive", type=Path, required=True, help="an ISIC archive export (or the synthetic one)")
    parser.add_argument("--profile", default="full", help="the profile whose runs are rehearsed (default full)")
    parser.add_argument("--workspace", type=Path, default=None, help="workspace to fill (default: a temporary one, "
                        "deleted at the end)")
    parser.add_argument("--max-batches", type=int, default=None, help="batches per run (default: one whole epoch)")
    args = parser.parse_args()
    tmp = None
    if args.workspace is None:
        tmp = tempfile.mkdtemp(prefix="skinlib-rehearsal-")
        args.workspace = Path(tmp)
    os.environ["SKINLIB_WORKSPACE"] = str(args.workspace)

    import numpy as np
    import torch

    from skinlib import binary
    from skinlib.data import open_catalog
    from skinlib.data.batches import Batches
    from skinlib.data.cache import build_cache
    from skinlib.data.splits import load_split, make_and_save_splits
    from skinlib.data.transforms import Preprocess, augmentation

    global PEAK
    PEAK = Peak()
    print(f"machine: {os.cpu_count()} cores; torch threads {torch.get_num_threads()}; python {sys.version.split()[0]}")
    print(f"datasets on disk: HAM10000 {disk_mib(args.ham):,.0f} MiB, ISIC archive {disk_mib(args.archive):,.0f} MiB")
    total = time.perf_counter()
    catalogs = {}
    for name, folder in (("ham10000", args.ham), ("isic_archive", args.archive)):
        started = time.perf_counter()
        catalogs[name] = open_catalog(folder, name)
        step(f"catalog load and validation, {name} ({len(catalogs[name]):,} images)", started)

    started = time.perf_counter()
    splits02 = next(r for r in plan(ROOT / "notebooks", ROOT / "params", args.profile) if r.notebook.stem.startswith("02"))
    settings = {k: splits02.params[k] for k in ("ratios", "group_by", "image_size") if k in splits02.params}
    settings["ratios"] = tuple(settings.get("ratios", (0.70, 0.15, 0.15)))
    grouped = next(iter(make_and_save_splits(catalogs["ham10000"], **settings)))
    step(f"02's splits of HAM10000 (grouped, image-level; statistics on a cache), {settings}", started)
    trains = {"ham10000": load_split(grouped, catalogs["ham10000"]).query("split == 'train'")}
    for task, dataset in (("melanoma", "ham10000"), ("isic_archive", "isic_archive")):
        started = time.perf_counter()
        table = binary.with_target(catalogs[dataset], task)
        split = binary.binary_split(table, task, (0.70, 0.15, 0.15), seed=0)
        trains[task] = split[split["split"] == "train"]
        step(f"07's {task} split of {dataset}", started)

    runs = runs_of_the_profile(args.profile)
    caches = {}
    for key in sorted({(r["dataset"], r["image_size"], r["resample"], r["crop"]) for r in runs}):
        started = time.perf_counter()
        caches[key] = build_cache(catalogs[key[0]], key[1], resample=key[2], crop=key[3])
        step(f"image cache {key[0]} {key[1]} px {key[2]} {key[3]} ({len(catalogs[key[0]]):,} images)", started)

    for r in runs:
        if not r["batch_size"] or not r["reads_images"]:
            continue
        train = trains[r["task"] if r["run"].startswith("07") else r["dataset"]]
        started = time.perf_counter()
        pre = Preprocess((0.5,) * 3, (0.25,) * 3, augmentation(r["augment"]))
        batches = Batches(caches[(r["dataset"], r["image_size"], r["resample"], r["crop"])], train["image_id"],
                          np.zeros(len(train), np.float32), int(r["batch_size"]), shuffle=True, seed=0)
        seen = 0
        for i, (images, _) in enumerate(batches):
            pre(images)
            seen += len(images)
            if args.max_batches and i + 1 >= args.max_batches:
                break
        step(f"epoch of batches: {r['run']} ({seen:,} images, {r['image_size']} px, {r['augment']})", started)

    print(f"{'total':<76} {time.perf_counter() - total:8.1f} s   peak {PEAK.overall / 2**20:7.0f} MiB")
    for sub in ("cache", "splits"):
        print(f"workspace {sub}/: {disk_mib(args.workspace / sub):,.0f} MiB")
    print(f"workspace in all: {disk_mib(args.workspace):,.0f} MiB")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
