"""One fit on several devices: PyTorch's DistributedDataParallel (DDP), for the runs too big for one GPU.

:func:`skinlib.train.fit` works inside a process group, however it was started:

- ``FitConfig(devices=N)`` from a notebook: :func:`launch` starts N processes with ``torch.multiprocessing``
  (one per GPU, or N CPU processes with the gloo backend), each runs ``fit``, and the kernel gets rank 0's model and
  history back. The notebook's story stays one process: only the fit is spread out. (accelerate's
  ``notebook_launcher`` does the same by forking, which CUDA forbids once the kernel has touched the GPU, as a
  notebook that looked at a batch has; spawning does not have that limit.)
- ``torchrun --nproc-per-node N script.py`` or ``srun`` with N tasks: the process group is initialised from the
  environment (:func:`init_from_environment`: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``; under
  Slurm ``SLURM_PROCID``/``SLURM_NTASKS``) and every rank calls ``fit`` itself.

What each rank does inside ``fit``: it trains on its share of every global batch (the batch size stays the global
one; rank r takes the r-th of ``world`` equal slices, so a step sees the same images as a single-process step, and
DDP averages the gradients); validation is predicted in shares and gathered, so every rank takes the same best-epoch
and early-stopping decisions from the same numbers; rank 0 alone prints and writes checkpoints; all ranks read the
checkpoint to resume, so exact resume is kept. Batch-norm statistics are each rank's own (DDP's default: rank 0's
buffers are broadcast at every forward pass).
"""

from __future__ import annotations

import copy
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in rank 0 (and outside a process group): the process that prints and writes files."""
    return world()[0] == 0


def local_rank() -> int:
    """This process's index on its machine (its GPU): ``LOCAL_RANK`` (torchrun), ``SLURM_LOCALID``, else the rank."""
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if name in os.environ:
            return int(os.environ[name])
    return world()[0]


def backend(asked: str = "auto") -> str:
    """``nccl`` where CUDA is available and `asked` (a ``FitConfig.device``) is not ``cpu``, else ``gloo``."""
    return "nccl" if asked != "cpu" and torch.cuda.is_available() else "gloo"


def init_from_environment() -> bool:
    """Initialise the process group from torchrun's or Slurm's environment when it describes more than one
    process and no group exists yet; returns whether this process is in a group of several.

    Raises:
        RuntimeError: Slurm describes several tasks but ``MASTER_ADDR`` is not set (say which node is rank 0).
    """
    if world()[1] > 1:
        return True
    if "WORLD_SIZE" not in os.environ and "SLURM_NTASKS" in os.environ and int(os.environ["SLURM_NTASKS"]) > 1:
        if "MASTER_ADDR" not in os.environ:
            raise RuntimeError("a Slurm job of several tasks: set MASTER_ADDR to the first node before srun, e.g. "
                               "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)")
        os.environ.setdefault("MASTER_PORT", "29500")
        os.environ["RANK"], os.environ["WORLD_SIZE"] = os.environ["SLURM_PROCID"], os.environ["SLURM_NTASKS"]
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend())
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    return True


def device(asked: str = "auto") -> torch.device:
    """The device of this rank: its own GPU (``cuda:<local rank>``) where CUDA is available and `asked` (a
    ``FitConfig.device``) is not ``cpu``, else the CPU."""
    if asked != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def wrap(model: torch.nn.Module, where: torch.device) -> torch.nn.Module:
    """`model` in DistributedDataParallel (gradients averaged over the ranks at each backward pass)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[where.index] if where.type == "cuda" else None)


def gather_rows(positions: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Every rank's `rows` (predictions of the images at `positions`) put together in one array of `n` rows, the
    same on every rank."""
    if world()[1] == 1:
        return rows
    parts: list[Any] = [None] * world()[1]
    dist.all_gather_object(parts, (np.asarray(positions), np.asarray(rows)))
    whole = np.empty((n,) + rows.shape[1:], dtype=rows.dtype)
    for where, values in parts:
        whole[where] = values
    return whole


def total(*values: float) -> list[float]:
    """The sums of `values` over all ranks (e.g. loss totals and counts of each rank's share)."""
    if world()[1] == 1:
        return list(values)
    summed = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(summed)
    return summed.tolist()


def from_main(value: Any) -> Any:
    """Rank 0's `value`, on every rank."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_in_step(model: torch.nn.Module) -> None:
    """Raise unless every rank holds the same weights (a check after training: DDP keeps them equal)."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        digest = float(sum(p.detach().double().sum() * (i + 1) for i, p in enumerate(model.parameters())))
    digests: list[Any] = [None] * world()[1]
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RuntimeError(f"the ranks' weights differ after training (digests {digests}): a bug in the fit loop")


def launch(devices: int, fit, fit_args: tuple, fit_kwargs: dict) -> tuple[dict, Any]:
    """Run ``fit(*fit_args, **fit_kwargs)`` (:func:`skinlib.train.fit`) in `devices` processes (one per GPU, or gloo on the CPU)
    and return rank 0's ``(model state dict, FitResult)``. Rank 0's log lines are echoed to ``fit_kwargs['log']``
    as they come.

    Raises:
        ValueError: more devices than GPUs, or an ``on_epoch_end`` callback (it cannot be sent to other processes).
        RuntimeError: a rank failed (its error is in the message).
    """
    import torch.multiprocessing as mp

    if backend(fit_args[5].device) == "nccl" and devices > torch.cuda.device_count():
        raise ValueError(f"devices={devices} but {torch.cuda.device_count()} GPU(s) are visible")
    if fit_kwargs.get("on_epoch_end") is not None:
        raise ValueError("on_epoch_end cannot be used with devices > 1 (the fit runs in other processes)")
    log = fit_kwargs.pop("log")
    with tempfile.TemporaryDirectory(prefix="skinlib-ddp-") as scratch:
        folder = Path(scratch)
        port = _free_port()
        context = mp.start_processes(_rank_main, args=(devices, port, folder, fit, fit_args, fit_kwargs), nprocs=devices,
                                     join=False, start_method="spawn")
        lines = folder / "rank0.log"
        echoed = 0
        while True:
            finished = context.join(timeout=1)
            if lines.is_file():
                text = lines.read_text()
                print(text[echoed:], end="", file=log, flush=True)
                echoed = len(text)
            if finished:
                break
        return torch.load(folder / "result.pt", weights_only=False)


def _rank_main(rank: int, devices: int, port: int, folder: Path, fit, fit_args: tuple, fit_kwargs: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    asked = fit_args[5].device
    dist.init_process_group(backend(asked), rank=rank, world_size=devices)
    if backend(asked) == "nccl":
        torch.cuda.set_device(rank)
    # the modules arrive with their tensors in memory shared by every rank (torch.multiprocessing): each rank
    # trains its own copy (else every rank's optimizer would step the same weights)
    model, train, val, preprocess_train, preprocess_eval, config = fit_args
    model, preprocess_train, preprocess_eval = (copy.deepcopy(m) for m in (model, preprocess_train, preprocess_eval))
    try:
        with open(folder / f"rank{rank}.log", "w") as log:
            result = fit(model, train, val, preprocess_train, preprocess_eval, config, log=log, **fit_kwargs)
        if rank == 0:
            state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
            staged = folder / "result.partial"
            torch.save((state, result), staged)
            staged.replace(folder / "result.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

