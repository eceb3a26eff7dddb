"""What a profile will cost, before it runs (``run_all.py --estimate``).

Each run executes as usual (in a workspace of its own, so nothing it records mixes with real results), except that
every fit trains a few steps only: one to warm up (caches, kernels, compilation), then :data:`STEPS_ENV` steps
timed, then one validation pass. The fit notes what a full fit would take (epochs x (steps per epoch x seconds per
step + validation)) in the run's estimate file; ``run_all.py`` adds it to the run's measured time, less the few
steps it trained, and prints the table. Early stopping can only make a real run shorter: the figures are upper
bounds for the training part.
"""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path
from typing import Any

#: steps timed per fit; set (by ``run_all.py --estimate``) only while estimating
STEPS_ENV = "SKINLIB_ESTIMATE_STEPS"
#: the file a run's fits note their estimates in (JSON lines), set per run by the runner
FILE_ENV = "SKINLIB_ESTIMATE_FILE"


def steps() -> int | None:
    """Training steps to time in each fit, or None when not estimating."""
    value = os.environ.get(STEPS_ENV)
    return max(1, int(value)) if value else None


def peak_memory_gb(device=None) -> float:
    """Peak memory of this process so far: the GPU's allocations on CUDA, else the process's resident size."""
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20           # kB on Linux


def note(seconds_per_step: float, steps_per_epoch: int, val_seconds: float, epochs: int, fit_seconds: float,
         peak_gb: float) -> dict[str, Any]:
    """Note one fit's estimate in the run's file (when the runner gave one) and return it."""
    entry = {"seconds_per_step": seconds_per_step, "steps_per_epoch": steps_per_epoch, "val_seconds": val_seconds,
             "epochs": epochs, "fit_seconds": fit_seconds, "peak_memory_gb": peak_gb,
             "projected_seconds": epochs * (steps_per_epoch * seconds_per_step + val_seconds)}
    target = os.environ.get(FILE_ENV)
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(entry) + "\n")
    return entry


def projection(file: Path, measured_seconds: float) -> dict[str, Any]:
    """A run's projected cost from its estimate file and the time its estimating run took: the measured time less
    the fits' few steps, plus each fit's projected time."""
    entries = [json.loads(line) for line in file.read_text().splitlines() if line.strip()] if file.is_file() else []
    fits = sum(e["fit_seconds"] for e in entries)
    projected = sum(e["projected_seconds"] for e in entries)
    return {"fits": len(entries), "projected_seconds": max(0.0, measured_seconds - fits) + projected,
            "training_seconds": projected, "peak_memory_gb": max([e["peak_memory_gb"] for e in entries], default=None),
            "steps": sum(e["epochs"] * e["steps_per_epoch"] for e in entries)}


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """The estimate as a text table, one line per run and the total."""
    def hours(seconds: float) -> str:
        return f"{seconds / 3600:8.2f} h" if seconds >= 360 else f"{seconds / 60:8.1f} min"

    width = max([len(name) for name, _ in rows] + [5])
    lines = [f"{'run':<{width}}  {'fits':>4}  {'steps':>9}  {'projected':>12}  {'peak memory':>11}"]
    for name, row in rows:
        peak = f"{row['peak_memory_gb']:8.1f} GB" if row["peak_memory_gb"] is not None else "           "
        lines.append(f"{name:<{width}}  {row['fits']:>4}  {row['steps']:>9}  {hours(row['projected_seconds']):>12}  {peak}")
    total = sum(row["projected_seconds"] for _, row in rows)
    lines.append(f"{'total (one run at a time)':<{width}}  {'':>4}  {'':>9}  {hours(total):>12}")
    return "\n".join(lines)
