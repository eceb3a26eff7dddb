"""What a profile will cost, before it runs (``run_all.py --estimate``).

Each run executes as usual (in a workspace of its own, so nothing it records mixes with real results), except that
its passes over images are cut short and projected:

- every fit trains a few steps only: one to warm up (caches, kernels, compilation), then :data:`STEPS_ENV` steps
  timed, then one validation pass. It notes what a full fit would take (epochs x (steps per epoch x seconds per
  step + validation)) in the run's estimate file.
- every prediction pass (validation, test, test-time augmentation, zero-shot, the audit's embeddings) runs one
  warm-up batch and :data:`STEPS_ENV` timed batches (:func:`sampled`) and notes its projection (the warm-up batch
  plus the timed batches' mean for each other batch). The rows it did not compute are filled (:func:`padded`), so
  that the rest of the notebook runs on arrays of the true size: whatever it computes from them (metrics,
  bootstraps, plots) costs what it will cost, and means nothing.

``run_all.py`` adds the projections to each run's measured time, less the time its cut-short passes took, and
prints the table. Early stopping can only make a real run shorter: the figures are upper bounds for the training
part.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: steps timed per fit; set (by ``run_all.py --estimate``) only while estimating
STEPS_ENV = "SKINLIB_ESTIMATE_STEPS"
#: the file a run's fits note their estimates in (JSON lines), set per run by the runner
FILE_ENV = "SKINLIB_ESTIMATE_FILE"


def steps() -> int | None:
    """Training steps to time in each fit, or None when not estimating."""
    value = os.environ.get(STEPS_ENV)
    return max(1, int(value)) if value else None


def peak_memory_gb(device=None) -> float:
    """Peak memory of this process so far: the GPU's allocations on CUDA (`device`, or when none is given, the
    GPU's when torch has started CUDA), else the process's resident size."""
    if device is None:
        torch = sys.modules.get("torch")                   # a pass over images: on the GPU when CUDA is in use
        if torch is not None and torch.cuda.is_initialized():
            device = torch.device("cuda")
    if device is not None and getattr(device, "type", "") == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20           # kB on Linux


def _write(entry: dict[str, Any]) -> dict[str, Any]:
    target = os.environ.get(FILE_ENV)
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(entry) + "\n")
    return entry


def note(seconds_per_step: float, steps_per_epoch: int, val_seconds: float, epochs: int, seconds: float,
         peak_gb: float, *, val_noted: bool = False) -> dict[str, Any]:
    """Note one fit's estimate in the run's file (when the runner gave one) and return it.

    Args:
        seconds_per_step: the timed steps' mean.
        steps_per_epoch: training batches per epoch.
        val_seconds: one validation pass (projected, when the pass was cut short).
        epochs: the fit's epochs.
        seconds: what the estimating fit took, less its validation pass when that pass noted itself.
        peak_gb: peak memory.
        val_noted: the validation pass noted its own entry (:func:`sampled`): the fit's projection counts the other
            epochs' passes only.
    """
    passes = epochs - 1 if val_noted else epochs
    return _write({"kind": "fit", "seconds_per_step": seconds_per_step, "steps_per_epoch": steps_per_epoch,
                   "val_seconds": val_seconds, "epochs": epochs, "seconds": seconds, "peak_memory_gb": peak_gb,
                   "projected_seconds": epochs * steps_per_epoch * seconds_per_step + passes * val_seconds})


_last_pass: dict[str, Any] | None = None


def last_pass() -> dict[str, Any] | None:
    """The entry of the last pass :func:`sampled` noted in this process (a fit reads its validation pass here)."""
    return _last_pass


def sampled(batches: Iterable[T], total: int, what: str) -> Iterator[T]:
    """`batches` as they are; while estimating, only the first 1 + :func:`steps` of them, timed (each from its
    request to the next one's, so the caller's work on it counts), with the pass's projection noted in the run's
    file: the warm-up batch as measured, plus the timed batches' mean for each of the other ``total - 1``.

    Args:
        batches: the pass's batches.
        total: how many batches the whole pass has.
        what: what the pass is, for the estimate file (``predict``, ``embeddings``, ...).
    """
    global _last_pass
    budget = steps()
    if budget is None:
        yield from batches
        return
    times: list[float] = []
    started = tick = time.time()
    try:
        for item in batches:
            yield item
            now = time.time()
            times.append(now - tick)
            tick = now
            if len(times) > budget:
                break
    finally:
        seconds = time.time() - started
        timed = times[1:]
        if len(times) >= total or not timed:          # the whole pass ran (or too little of it to project)
            projected = seconds if len(times) >= total else seconds * total / max(len(times), 1)
        else:
            projected = times[0] + (total - 1) * sum(timed) / len(timed)
        _last_pass = _write({"kind": "pass", "what": what, "batches": total, "ran": len(times), "seconds": seconds,
                             "projected_seconds": projected, "peak_memory_gb": peak_memory_gb()})


def padded(rows: np.ndarray, n: int, *, noise: bool = False) -> np.ndarray:
    """`rows` computed by a cut-short pass (:func:`sampled`), filled to `n` rows so that what follows runs at its true
    size: the rows repeated in turn, or (`noise`) random rows with each column's mean and spread, for embeddings whose
    repeats would look like duplicate images. As is when it has `n` rows already.
    """
    if len(rows) >= n or len(rows) == 0:
        return rows
    if not noise:
        return np.resize(rows, (n, *rows.shape[1:])).astype(rows.dtype, copy=False)
    rng = np.random.default_rng(0)
    extra = rng.normal(rows.mean(0), rows.std(0) + 1e-6, size=(n - len(rows), *rows.shape[1:]))
    return np.concatenate([rows, extra.astype(rows.dtype)])


def projection(file: Path, measured_seconds: float) -> dict[str, Any]:
    """A run's projected cost from its estimate file and the time its estimating run took: the measured time less
    what its cut-short fits and passes took, plus their projections."""
    entries = [json.loads(line) for line in file.read_text().splitlines() if line.strip()] if file.is_file() else []
    fits = [e for e in entries if e.get("kind", "fit") == "fit"]
    spent = sum(e["seconds"] for e in entries)
    projected = sum(e["projected_seconds"] for e in entries)
    return {"fits": len(fits), "passes": len(entries) - len(fits),
            "projected_seconds": max(0.0, measured_seconds - spent) + projected,
            "training_seconds": sum(e["projected_seconds"] for e in fits),
            "peak_memory_gb": max([e["peak_memory_gb"] for e in entries], default=None),
            "steps": sum(e["epochs"] * e["steps_per_epoch"] for e in fits)}


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
