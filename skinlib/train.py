"""One fit loop for every neural notebook: optimisers, schedules, weighted losses, bf16 on GPU,
early stopping with the best weights truly copied and restored, a checkpoint every epoch, exact resume.

Each epoch's randomness (shuffling, augmentation, dropout) is seeded from (seed, epoch), so a run
interrupted after epoch k and resumed from its checkpoint ends with the same weights as one that ran
straight through (bit for bit on CPU).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import distributed, estimate, parameters
from .checkpoints import KEEP_CHECKPOINTS, atomic_save, checkpoint_for, prune, run_identity
from .data.batches import Batches
from .parameters import OPTIMIZERS, SCHEDULERS  # noqa: F401  (the names allowed, kept importable here)
from .metrics import binary_metrics, classification_metrics
from .notebook import notice, resume_point


@dataclass
class FitConfig:
    """Settings of :func:`fit` (one line each; the defaults suit a quick CPU run).

    Args:
        max_epochs: epochs at most.
        lr: learning rate.
        optimizer: ``adam``, ``adamw`` or ``sgd`` (momentum 0.9).
        weight_decay: weight decay (L2 for adam / sgd, decoupled for adamw).
        scheduler: ``none``, ``step`` (StepLR), ``cosine`` (to 0 at max_epochs) or ``plateau`` (ReduceLROnPlateau on the monitored metric).
        step_size: StepLR period in epochs.
        gamma: StepLR / plateau decay factor.
        monitor: validation metric for early stopping, plateau and the best epoch (``balanced_accuracy``, ``auc``, ``loss``, ...).
        patience: epochs without improvement before stopping (0: never stop early).
        class_weights: per-class loss weights (from the train split only), or None.
        pos_weight: binary tasks: weight of the positive class in the BCE loss, or None.
        amp: bf16 autocast when training on CUDA (on a CPU only with ``$SKINLIB_CPU_BF16`` set, see :func:`cpu_bf16`).
        channels_last: channels-last memory format for convolutional models.
        compile: wrap the model in ``torch.compile``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        seed: seed of everything random in the run.
        devices: processes of one distributed (DDP) fit, one per GPU, or gloo processes on a CPU
            (:mod:`skinlib.distributed`); 1: this process alone.
    """

    max_epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 7
    gamma: float = 0.1
    monitor: str = "balanced_accuracy"
    patience: int = 0
    class_weights: list[float] | None = None
    pos_weight: float | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    devices: int = 1

    def __post_init__(self) -> None:
        parameters.check_all({k: getattr(self, k) for k in ("max_epochs", "lr", "optimizer", "weight_decay", "scheduler",
                                                       "step_size", "gamma", "patience", "device", "seed",
                                                       "devices")})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class FitResult:
    """What :func:`fit` returns; the model passed in holds the best epoch's weights."""

    history: pd.DataFrame
    best_epoch: int
    best_score: float
    stopped_early: bool
    resumed_from: int | None = None
    seconds: float = 0.0
    #: the best epoch's validation probabilities, as :func:`predict` gives them with the restored weights (None
    #: for a run resumed from a checkpoint written before they were kept)
    val_proba: np.ndarray | None = None


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an explicit ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but no CUDA GPU is available; use device='auto' or 'cpu'")
    return torch.device(device)


def _higher_is_better(metric: str) -> bool:
    return metric not in ("loss", "ece")


def _optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The trained parameters in optimiser groups: all with `weight_decay`, except the weights of layers carrying an
    ``l2`` attribute (a Keras-style penalty ``l2 * sum(w ** 2)``, e.g. study E's head), which get ``2 * l2`` more:
    the same gradient for adam and sgd (decoupled, and so not the same, for adamw)."""
    extra = {id(m.weight): 2 * float(m.l2) for m in model.modules()
             if getattr(m, "l2", 0) and isinstance(getattr(m, "weight", None), torch.Tensor)}
    trained = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trained if id(p) not in extra], "weight_decay": weight_decay}]
    groups += [{"params": [p], "weight_decay": weight_decay + extra[id(p)]} for p in trained if id(p) in extra]
    return [g for g in groups if g["params"]]


def _scheduler(config: FitConfig, optimizer):
    if config.scheduler == "none":
        return None
    if config.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, config.step_size, config.gamma)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, config.max_epochs))
    if config.scheduler == "plateau":
        mode = "max" if _higher_is_better(config.monitor) else "min"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=config.gamma, patience=2)
    raise ValueError(f"unknown scheduler {config.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")


def _loss(config: FitConfig, binary: bool, device) -> nn.Module:
    if binary:
        pos = None if config.pos_weight is None else torch.tensor([config.pos_weight], device=device)
        return nn.BCEWithLogitsLoss(pos_weight=pos)
    weight = None if config.class_weights is None else torch.tensor(config.class_weights, dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight)


def _is_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules()) and not any(
        "Attention" in type(m).__name__ for m in model.modules())


#: set to 1: `amp` also autocasts to bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), as it does on a GPU. For
#: checking a GPU profile on such a CPU (CI's smoke run): the same precision path, about twice as fast.
CPU_BF16_ENV = "SKINLIB_CPU_BF16"


def cpu_bf16() -> bool:
    """Whether `amp` autocasts on this CPU: ``$SKINLIB_CPU_BF16`` is 1 and the CPU computes bf16 natively."""
    return os.environ.get(CPU_BF16_ENV, "").strip() == "1" and _native_bf16()


@functools.lru_cache(maxsize=1)
def _native_bf16() -> bool:
    """The CPU computes bf16 natively (asked once: `cpu_bf16` is called at every training step)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: torch.device, enabled: bool):
    on = enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16()))
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=on)


def _prepare(preprocess: nn.Module, inputs, device, channels_last: bool = False):
    """Preprocess a batch's input: the images, or the images of an ``(images, features)`` pair (features as is)."""
    if isinstance(inputs, (tuple, list)):
        return (_prepare(preprocess, inputs[0], device, channels_last),
                *[x.to(device, non_blocking=True).float() for x in inputs[1:]])
    x = preprocess(inputs.to(device))
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


@torch.no_grad()
def predict(model: nn.Module, batches: Batches, preprocess: nn.Module, *, amp: bool = True) -> np.ndarray:
    """Probabilities for every image of `batches`, in its order: (n, k) softmax, or (n,) sigmoid for one logit."""
    device = next(model.parameters()).device
    model.eval()
    preprocess.eval().to(device)
    outputs = []
    for images, _ in estimate.sampled(batches, len(batches), "predict"):   # run_all.py --estimate: a few batches
        with _autocast(device, amp):
            logits = model(_prepare(preprocess, images, device)).float()
        outputs.append(torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, 1))
    proba = estimate.padded(torch.cat(outputs).cpu().numpy(), len(batches.positions()))
    if batches.world > 1:                                          # this process's share: put every share together
        proba = distributed.gather_rows(batches.positions(), proba, len(batches.image_ids))
    return proba


def evaluate(y_true, proba: np.ndarray) -> dict[str, float]:
    """Metrics of predictions: multiclass or binary by the shape of `proba`."""
    return binary_metrics(y_true, proba) if proba.ndim == 1 else classification_metrics(y_true, proba)


def train_mode(model: nn.Module) -> nn.Module:
    """`model` in training mode except its frozen parts: every module whose parameters all have
    ``requires_grad = False`` stays in eval mode, so a frozen backbone's batch-norm statistics do not drift with the
    training data and its dropout stays off (``freeze_fraction = 1`` is a true linear probe).

    Args:
        model: the network being fitted.
    """
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
    return model


def fit(
    model: nn.Module,
    train: Batches,
    val: Batches,
    preprocess_train: nn.Module,
    preprocess_eval: nn.Module,
    config: FitConfig,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    on_epoch_end: Callable[[int, dict, nn.Module], None] | None = None,
    log=sys.stdout,
) -> FitResult:
    """Train `model` on `train`, pick the best epoch on `val`, restore its weights, return the history.

    Args:
        model: the network (its output width decides multiclass vs binary: 1 logit = binary BCE).
        train, val: batches (the val split, never test: test is only ever predicted once, after training).
        preprocess_train: augmentation + normalisation for training batches.
        preprocess_eval: normalisation only, for validation.
        config: see :class:`FitConfig`.
        checkpoint_dir: the run's checkpoint folder (e.g. one per run name): a checkpoint is written after every
            epoch to ``<checkpoint_dir>/<run identity>/last.pt`` (see :func:`run_identity`), so an interrupted
            identical run resumes from it, while a run with other settings, model, data or preprocessing starts
            from scratch, saying in one line what changed. The newest :data:`KEEP_CHECKPOINTS` are kept.
        resume: False: train from the start even when this run's checkpoint exists (it is replaced).
        on_epoch_end: called as ``f(epoch, row, model)`` after each epoch (the row of the history).
        log: where the one line per epoch goes.
    """
    rank, size = distributed.world()
    if config.devices > 1 and size == 1:              # spread this fit over processes; rank 0's result comes back
        state, result = distributed.launch(
            config.devices, fit, (model, train, val, preprocess_train, preprocess_eval, config),
            dict(checkpoint_dir=checkpoint_dir, resume=resume, on_epoch_end=on_epoch_end, log=log))
        model.load_state_dict(state)
        return result
    device = resolve_device(config.device) if size == 1 else distributed.device(config.device)
    if size > 1:
        train.set_shard(rank, size)
        val.set_shard(rank, size)
        log = log if rank == 0 else open(os.devnull, "w")
    binary = _output_width(model) == 1
    identity = run_identity(model, train, val, preprocess_train, preprocess_eval, config) if checkpoint_dir else {}
    torch.manual_seed(config.seed)
    model.to(device)
    if config.channels_last and _is_conv(model):
        model.to(memory_format=torch.channels_last)
    preprocess_train.to(device)
    preprocess_eval.to(device)
    optimizer = _optimizer(config.optimizer, param_groups(model, config.weight_decay), config.lr, config.weight_decay)
    scheduler = _scheduler(config, optimizer)
    criterion = _loss(config, binary, device)
    step = distributed.wrap(model, device) if size > 1 else model
    step = torch.compile(step) if config.compile else step
    higher = _higher_is_better(config.monitor)
    best_score, best_epoch, best_state, bad_epochs, rows, start, resumed = -np.inf if higher else np.inf, -1, None, 0, [], 0, None
    best_proba = None

    ckpt_path = None
    if checkpoint_dir is not None:                    # rank 0 chooses the file; every rank resumes from it
        ckpt_path = distributed.from_main(checkpoint_for(Path(checkpoint_dir), identity, config, resume, log)
                                          if rank == 0 else None)
        if resume and ckpt_path.is_file():
            state = torch.load(ckpt_path, map_location=device, weights_only=False)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            best_score, best_epoch, best_state = state["best_score"], state["best_epoch"], state["best_state"]
            best_proba = state.get("best_val_proba")
            if state.get("best_is_last"):                          # the best epoch is the one saved as "model"
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in state["model"].items()}
            bad_epochs, rows, start = state["bad_epochs"], state["history"], state["epoch"] + 1
            resumed = state["epoch"]
            if state.get("stopped"):
                start = config.max_epochs
            if start >= config.max_epochs:
                why = f"early stopping after epoch {resumed + 1}" if state.get("stopped") else \
                    f"all {config.max_epochs} epochs"
                notice(f"already complete: its checkpoint holds the finished training ({why}), nothing left to "
                       "train (resume=False, or run_all.py --force, trains again)", file=log)
            else:
                notice(f"resumed from the checkpoint after epoch {resumed + 1}", file=log)

    started = time.time()
    stopped = False
    budget = estimate.steps()                 # run_all.py --estimate: time a few steps, validate once, note, stop
    if budget is not None:
        start = 0
    for epoch in range(start, config.max_epochs):
        t0 = time.time()
        torch.manual_seed(config.seed * 1_000_003 + epoch)          # augmentation and dropout of this epoch
        train.set_epoch(epoch)
        train_mode(model)
        preprocess_train.train()
        total, seen, correct, step_seconds = 0.0, 0, 0, []
        for images, labels in train:
            t_step = time.time()
            x = _prepare(preprocess_train, images, device, config.channels_last)
            with _autocast(device, config.amp):
                logits = step(x)
                target = labels.float().view(-1, 1) if binary else labels.long()
                loss = criterion(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(labels)
            seen += len(labels)
            with torch.no_grad():
                pred = (logits[:, 0] > 0).long() if binary else logits.argmax(1)
                correct += int((pred == labels.long()).sum())
            step_seconds.append(time.time() - t_step)                 # float(loss) above waited for the step
            if budget is not None and len(step_seconds) > budget:     # one warm-up step, then `budget` timed
                break
        total, seen, correct = distributed.total(total, seen, correct)      # every rank's share (one rank: as is)
        proba = predict(model, val, preprocess_eval, amp=config.amp)
        y_val = val.labels.numpy()
        scores = evaluate(y_val, proba)
        with torch.no_grad():
            p = torch.as_tensor(proba, dtype=torch.float32)
            t = torch.as_tensor(y_val)
            val_loss = (nn.functional.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), t.float()) if binary
                        else nn.functional.nll_loss(torch.log(p.clamp_min(1e-7)), t.long()))
        scores["loss"] = float(val_loss)
        score = scores[config.monitor]
        improved = score > best_score if higher else score < best_score
        if improved:
            best_score, best_epoch, bad_epochs, best_proba = score, epoch, 0, proba
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        lr = optimizer.param_groups[0]["lr"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        elif scheduler is not None:
            scheduler.step()
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": scores["loss"], **{f"val_{k}": v for k, v in scores.items() if k not in ("loss", "n", "threshold")},
               "seconds": time.time() - t0}
        rows.append(row)
        print(f"epoch {epoch + 1:>3}/{config.max_epochs}  train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}  "
              f"val loss {scores['loss']:.3f} {config.monitor} {score:.3f}  lr {lr:.2g}  {row['seconds']:.1f}s"
              + ("  *best" if improved else ""), file=log, flush=True)
        if budget is not None:            # the validation pass above was cut short and noted its own projection
            timed = step_seconds[1:] or step_seconds
            val_pass = estimate.last_pass()
            estimate.note(sum(timed) / len(timed), len(train), val_pass["projected_seconds"], config.max_epochs,
                          time.time() - started - val_pass["seconds"], estimate.peak_memory_gb(device), val_noted=True)
            break
        stopped = config.patience > 0 and bad_epochs >= config.patience
        if ckpt_path is not None and rank == 0:
            atomic_save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict() if scheduler is not None else None,
                          "best_score": best_score, "best_epoch": best_epoch,
                          # the best weights once only: when this epoch is the best, they are "model"
                          "best_state": None if best_epoch == epoch else best_state, "best_is_last": best_epoch == epoch,
                          "best_val_proba": best_proba, "bad_epochs": bad_epochs, "history": rows,
                          "identity": identity, "stopped": stopped},
                         ckpt_path)
            resume_point("after its training, which its checkpoint holds" if stopped or epoch + 1 >= config.max_epochs
                         else f"from epoch {epoch + 2}")
            if epoch == start:
                prune(ckpt_path.parent.parent, keep=KEEP_CHECKPOINTS)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row, model)
        if stopped:
            print(f"early stop: no {config.monitor} improvement for {config.patience} epochs", file=log, flush=True)
            break
    if best_state is not None:
        model.load_state_dict(best_state)                            # a real copy, not live weights
    distributed.check_in_step(model)
    history = pd.DataFrame(rows)
    return FitResult(history, best_epoch + 1, float(best_score), stopped, resumed, time.time() - started, best_proba)


def predict_splits(model: nn.Module, batches: dict[str, Batches], preprocess: nn.Module, fitted: FitResult | None = None,
                   splits: tuple[str, ...] = ("val", "test"), *, amp: bool = True) -> dict[str, np.ndarray]:
    """Probabilities of each split after training: ``{split: predict(model, batches[split], preprocess)}``, except
    that validation's are taken from `fitted` (:func:`fit` predicted validation with the best epoch's weights, the
    weights the model now holds), so validation is not predicted twice.

    Args:
        model: the trained network (holding the best epoch's weights, as :func:`fit` leaves it).
        batches: batches per split, validation's the ones `fitted` was validated on.
        preprocess: the evaluation preprocessing.
        fitted: what :func:`fit` returned for this model; None: every split is predicted.
        splits: the splits to predict.
        amp: as for :func:`predict`.
    """
    known = {"val": fitted.val_proba} if fitted is not None and fitted.val_proba is not None else {}
    return {split: known[split] if split in known else predict(model, batches[split], preprocess, amp=amp)
            for split in splits}


def _output_width(model: nn.Module) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else -1
