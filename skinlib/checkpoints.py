"""Checkpoints of the fit loop: one folder per run identity (settings, starting model, data, preprocessing), the
latest epoch's state in ``last.pt`` written atomically, the most recent few kept; a changed setting starts a new
folder and says in one line what changed. :func:`idle_checkpoints` finds those no live process writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import leftovers, paths
from .data.batches import Batches

if TYPE_CHECKING:
    from .train import FitConfig


def _digest(*parts) -> str:
    """A short hash of tensors (their bytes), numpy arrays and anything with a stable repr."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        if isinstance(part, torch.Tensor):
            h.update(part.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        elif isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()


def _module_digest(module: nn.Module) -> str:
    return _digest(repr(module), *module.state_dict().values(), [p.requires_grad for p in module.parameters()])


def _batches_digest(batches: Batches) -> str:
    images = batches.images[::max(1, len(batches.images) // 64)]          # a sample of the pixels, for speed
    return _digest(batches.image_ids.astype(str), batches.labels, images, tuple(batches.images.shape),
                   batches.batch_size, batches.shuffle, batches.seed, batches.drop_last, batches.weights,
                   *([batches.features] if getattr(batches, "features", None) is not None else []))


def run_identity(model: nn.Module, train: Batches, val: Batches, preprocess_train: nn.Module,
                 preprocess_eval: nn.Module, config: FitConfig) -> dict[str, str]:
    """What a checkpoint must match to be resumed: the settings, the model as it starts (architecture,
    initial or pretrained weights, frozen layers), the data (images, labels, order, batch size) and the
    preprocessing (augmentation, normalisation). One digest per part, so a refusal can say which differs."""
    return {"settings": config.digest(), "model": _module_digest(model),
            "data": _digest(_batches_digest(train), _batches_digest(val)),
            "preprocessing": _digest(_module_digest(preprocess_train), _module_digest(preprocess_eval))}


#: checkpoints kept per checkpoint_dir (one per run identity, the most recently written ones)
KEEP_CHECKPOINTS = 3
_INFO = "identity.json"
_WRITER = "writer"          # ``<pid>@<host>`` of the process training into the folder (:func:`idle_checkpoints`)


def _identity_key(identity: dict[str, str]) -> str:
    return _digest(*sorted(identity.items()))


def _changes(old: dict, identity: dict[str, str], config: FitConfig) -> list[str]:
    """What differs between a stored run (its ``identity.json``) and this one, in words: ``settings (lr)``, ``model``."""
    changes = []
    for part, value in identity.items():
        if old.get("identity", {}).get(part) == value:
            continue
        if part == "settings" and isinstance(old.get("settings"), dict):
            now = json.loads(json.dumps(asdict(config), default=str))
            fields = sorted(k for k in set(now) | set(old["settings"]) if now.get(k) != old["settings"].get(k))
            changes.append(f"settings changed ({', '.join(fields)})" if fields else "settings changed")
        else:
            changes.append(f"{part} changed")
    return changes


def checkpoint_for(root: Path, identity: dict[str, str], config: FitConfig, resume: bool, log) -> Path:
    """The checkpoint file of this run identity under `root` (``<root>/<identity key>/last.pt``). When this run
    has none but another run under the same root wrote one, say in one line what changed (training starts over)."""
    root.mkdir(parents=True, exist_ok=True)
    _adopt_legacy(root)
    folder = root / _identity_key(identity)
    path = folder / "last.pt"
    if path.is_file():
        (folder / _WRITER).write_text(paths.owner())
        if not resume:
            print("resume=False: training from the start (this run's checkpoint is replaced)", file=log, flush=True)
        return path
    others = sorted((p for p in root.glob(f"*/{_INFO}") if p.parent != folder), key=lambda p: _written(p.parent))
    if others and resume:
        try:
            old = json.loads(others[-1].read_text())
        except (OSError, ValueError):
            old = {}
        changes = _changes(old, identity, config) or ["run changed"]
        print(f"{' and '.join(changes)}: training from the start", file=log, flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _WRITER).write_text(paths.owner())                    # before _INFO: see idle_checkpoints
    info = {"identity": identity, "settings": json.loads(json.dumps(asdict(config), default=str))}
    (folder / _INFO).write_text(json.dumps(info, indent=1, sort_keys=True))
    return path


def idle_checkpoints(root: Path) -> list[Path]:
    """The checkpoints under `root` that no live process is training into: run-identity folders whose writer
    (the process that last opened them in :func:`fit`) is gone, and ``last.pt`` files of the layout before
    run identities. Deleting them is safe while other trainings write under the same root (a smoke run's
    checkpoints are deleted after each run while runs execute side by side, ``run_all.py --jobs``).

    Args:
        root: a checkpoint tree (e.g. ``<workspace>/checkpoints``); missing: nothing is idle.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    idle = []
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        if _INFO in files:                          # a run-identity folder (its writer is written before _INFO)
            dirs.clear()
            try:
                writer = (base / _WRITER).read_text().strip()
            except OSError:
                writer = ""                         # written before writers were recorded: no one writes it now
            if not writer or not leftovers.owner_alive(writer):
                idle.append(base)
        elif "last.pt" in files and _WRITER not in files:   # the layout before run identities (never written now)
            idle.append(base / "last.pt")
    return idle


def _adopt_legacy(root: Path) -> None:
    """A checkpoint written before checkpoints were kept per run identity (``<root>/last.pt``) moves to its folder."""
    legacy = root / "last.pt"
    if not legacy.is_file():
        return
    try:
        identity = torch.load(legacy, map_location="cpu", weights_only=False).get("identity") or {}
    except Exception:                                                 # unreadable: it could never be resumed
        identity = {}
    if not identity:
        legacy.unlink()
        return
    folder = root / _identity_key(identity)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _INFO).write_text(json.dumps({"identity": identity}, indent=1, sort_keys=True))
    os.replace(legacy, folder / "last.pt")


def _written(folder: Path) -> float:
    return max((f.stat().st_mtime for f in folder.iterdir()), default=0.0)


def prune(root: Path, keep: int) -> None:
    """Delete all but the `keep` most recently written run checkpoints under `root`."""
    folders = sorted((p for p in root.iterdir() if p.is_dir() and (p / _INFO).is_file()), key=_written, reverse=True)
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{paths.owner()}")    # the owner tag: a dead writer's is swept
    torch.save(obj, tmp)
    os.replace(tmp, path)
