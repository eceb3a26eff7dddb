"""The results registry: one folder per run, written atomically; later notebooks read only from here.

``results/<experiment>/<run>/`` holds ``params.json`` (resolved parameters), ``metrics.json``
(per split), ``predictions.csv`` (per image: split, label, one probability column per class),
``history.csv`` (per epoch), ``figures/*.png``, ``tables/*.csv``, ``run.json`` (status, timing,
versions) and, for neural models, ``model.safetensors`` + ``model.json`` (weights and how to rebuild the model,
see :func:`load_model`). A run is staged in a hidden folder and renamed into place when finished, so a folder under
``results/`` is always complete; re-running replaces it whole. Hidden folders left by a process that
died are cleared by :func:`skinlib.stale.sweep` (``run_all.py`` runs it first); readers never list them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__, paths, stale


#: Experiment of the split-cost measurements (:func:`skinlib.experiment.measure_split_cost`): runs that measure the
#: studies' split, not models; the report's run tables and 08's ensemble members leave them out.
SPLIT_COST = "split_cost"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=lambda o: o.item() if hasattr(o, "item") else str(o))


class RunRecorder:
    """Collects one run's outputs in a staging folder; :meth:`finish` moves it into the registry."""

    def __init__(self, experiment: str, run: str, params: dict[str, Any], root: Path | None = None):
        for label, value in (("experiment", experiment), ("run", run)):
            if not value or "/" in value or value.startswith("."):
                raise ValueError(f"{label} name {value!r} must be non-empty, without '/' and not start with '.'")
        self.root = Path(root) if root else paths.results_dir()
        self.experiment, self.run, self.params = experiment, run, dict(params)
        self.folder = self.root / experiment / run
        self.staging = self.root / experiment / f".{run}.partial-{paths.owner()}"
        stale.report(stale.sweep(self.root / experiment) if (self.root / experiment).is_dir() else [])
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.started = time.time()
        paths.write_atomic(self.staging / "params.json", _json(self.params))

    def metrics(self, metrics: dict[str, Any]) -> None:
        """Metrics per split, e.g. ``{"val": {...}, "test": {...}}``."""
        paths.write_atomic(self.staging / "metrics.json", _json(metrics))

    def predictions(self, table: pd.DataFrame) -> None:
        """Per-image predictions: ``image_id``, ``split``, ``label`` and probability columns ``p_<class>``."""
        missing = {"image_id", "split"} - set(table.columns)
        if missing:
            raise ValueError(f"predictions need columns {sorted(missing)}")
        exact = table.astype({c: float for c in table.columns if table[c].dtype.kind == "f"})   # float32 -> 64: exact
        paths.write_atomic(self.staging / "predictions.csv", exact.to_csv(index=False))   # unrounded, as evaluated

    def history(self, table: pd.DataFrame) -> None:
        paths.write_atomic(self.staging / "history.csv", table.to_csv(index=False, float_format="%.6g"))

    def table(self, table: pd.DataFrame, name: str) -> None:
        paths.write_atomic(self.staging / "tables" / f"{name}.csv", table.to_csv())

    def figure(self, fig, name: str) -> None:
        target = self.staging / "figures" / f"{name}.png"
        target.parent.mkdir(exist_ok=True)
        fig.savefig(target, dpi=110, bbox_inches="tight")

    def model(self, model, spec) -> None:
        """The model's weights (``model.safetensors``, shared tensors stored once) and its
        :class:`~skinlib.models.spec.ModelSpec` (``model.json``); read back by :func:`load_model`."""
        from safetensors.torch import save_model

        save_model(model, str(self.staging / "model.safetensors"), metadata={"format": "pt"})
        paths.write_atomic(self.staging / "model.json", _json(spec.to_dict()))

    def file(self, name: str) -> Path:
        """A path inside the run folder for anything else (e.g. an ISIC submission CSV)."""
        return self.staging / name

    def finish(self) -> Path:
        """Record status and timing and move the run into place (replacing an earlier run of the same name)."""
        info = {"experiment": self.experiment, "run": self.run, "status": "ok",
                "seconds": round(time.time() - self.started, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "skinlib": __version__, "python": platform.python_version()}
        paths.write_atomic(self.staging / "run.json", _json(info))
        old = None
        if self.folder.exists():
            old = self.folder.with_name(f".{self.run}.old-{paths.owner()}")
            os.replace(self.folder, old)
        os.replace(self.staging, self.folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.folder


@dataclass
class RunResult:
    """A finished run read back from the registry."""

    folder: Path
    params: dict[str, Any]
    metrics: dict[str, Any]
    info: dict[str, Any]

    @property
    def predictions(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "predictions.csv", dtype={"image_id": str, "split": str})

    @property
    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "history.csv")


def load_run(experiment: str, run: str, root: Path | None = None) -> RunResult:
    """One finished run (FileNotFoundError listing the runs that exist)."""
    base = Path(root) if root else paths.results_dir()
    folder = base / experiment / run
    if not (folder / "run.json").is_file():
        known = sorted(p.name for p in (base / experiment).iterdir() if not p.name.startswith(".")) if (base / experiment).is_dir() else []
        raise FileNotFoundError(f"no finished run {experiment}/{run} in the results registry; runs of {experiment!r}: {known}")
    read = lambda name: json.loads((folder / name).read_text()) if (folder / name).is_file() else {}  # noqa: E731
    return RunResult(folder, read("params.json"), read("metrics.json"), read("run.json"))


def gather(experiment: str | None = None, root: Path | None = None, split: str = "test",
           params: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per finished run: experiment, run, the chosen `params`, and the metrics of `split`."""
    base = Path(root) if root else paths.results_dir()
    rows = []
    experiments = [base / experiment] if experiment else sorted(
        p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    for exp in experiments:
        if not exp.is_dir():
            continue
        for folder in sorted(p for p in exp.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not (folder / "run.json").is_file():
                continue
            result = load_run(exp.name, folder.name, base)
            row = {"experiment": exp.name, "run": folder.name}
            row.update({p: result.params.get(p) for p in params})
            row.update({k: v for k, v in result.metrics.get(split, {}).items() if not isinstance(v, (dict, list))})
            rows.append(row)
    return pd.DataFrame(rows)


def has_model(experiment: str, run: str, root: Path | None = None) -> bool:
    """True when the run folder keeps a model (``model.safetensors`` and ``model.json``)."""
    folder = (Path(root) if root else paths.results_dir()) / experiment / run
    return (folder / "model.safetensors").is_file() and (folder / "model.json").is_file()


def load_model(experiment: str, run: str, root: Path | None = None, device: str = "cpu"):
    """The recorded model in eval mode and its evaluation preprocessing, from safetensors + JSON only.

    No training, no network (``pretrained`` is forced off; the run's own weights are loaded), no unpickling.

    Args:
        experiment, run: the run in the registry.
        root: the registry folder (default: the workspace's ``results/``).
        device: where the model and preprocessing are put.

    Returns:
        ``(model, preprocess)``: ``preprocess(uint8 batch)`` gives the model's input (a
        :class:`~skinlib.data.transforms.Preprocess` in eval mode).

    Raises:
        FileNotFoundError: the run does not exist or kept no model (it was recorded without ``model=``).
    """
    from safetensors.torch import load_model as load_weights

    from .data.transforms import Preprocess
    from .models.spec import ModelSpec, build_model

    result = load_run(experiment, run, root)
    weights, spec_file = result.folder / "model.safetensors", result.folder / "model.json"
    if not (weights.is_file() and spec_file.is_file()):
        raise FileNotFoundError(f"run {experiment}/{run} kept no model ({weights.name} and {spec_file.name} missing in "
                                f"{result.folder}); rerun its notebook to record one")
    try:
        spec = ModelSpec.from_dict(json.loads(spec_file.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{spec_file}: {exc}") from exc
    model = build_model(spec)
    load_weights(model, str(weights), strict=True, device=str(device))
    model.to(device).eval()
    preprocess = Preprocess(spec.mean, spec.std, grayscale=spec.grayscale).to(device).eval()
    return model, preprocess


def load_spec(experiment: str, run: str, root: Path | None = None):
    """The :class:`~skinlib.models.spec.ModelSpec` of a recorded model (image size, classes, grey-scale, ...)."""
    from .models.spec import ModelSpec

    folder = load_run(experiment, run, root).folder
    return ModelSpec.from_dict(json.loads((folder / "model.json").read_text()))
