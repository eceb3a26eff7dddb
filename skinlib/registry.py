"""The results registry: one folder per run, written atomically (:func:`record`); later notebooks read only from here.

``results/<experiment>/<run>/`` holds ``params.json`` (resolved parameters), ``metrics.json``
(per split), ``predictions.csv`` (per image: split, the bootstrap's group (its lesion, or patient), label, one
probability column per class: every interval can be recomputed from it),
``history.csv`` (per epoch), ``figures/*.png``, ``tables/*.csv``, ``run.json`` (status, timing, versions, the
data it read: its dataset and split, :func:`skinlib.provenance.data_read`, and the environment: torch's thread
count and the libraries' versions, :func:`skinlib.provenance.environment`) and, for neural models,
``model.safetensors`` + ``model.json`` (weights and how to rebuild the model, see :func:`load_model`). A run is
staged in a hidden folder and renamed into place when finished, so a folder under ``results/`` is always complete;
re-running replaces it whole. Hidden folders left by a process that
died are cleared by :func:`skinlib.leftovers.sweep` (``run_all.py`` runs it first); readers never list them.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from . import __version__, leftovers, metrics, paths, provenance
from .data.labels import CLASSES
from .evaluation import Evaluation

if TYPE_CHECKING:
    from torch import nn

    from .models.spec import ModelSpec


#: Experiment of the split-cost measurements (:func:`skinlib.split_cost.measure_split_cost`): runs that measure the
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
        leftovers.report(leftovers.sweep(self.root / experiment) if (self.root / experiment).is_dir() else [])
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.started = time.time()
        paths.write_atomic(self.staging / "params.json", _json(self.params))

    def metrics(self, metrics: dict[str, Any]) -> None:
        """Metrics per split, e.g. ``{"val": {...}, "test": {...}}``."""
        paths.write_atomic(self.staging / "metrics.json", _json(metrics))

    def predictions(self, table: pd.DataFrame) -> None:
        """Per-image predictions: ``image_id``, ``split``, ``group`` (what the bootstrap resamples, see
        :func:`skinlib.metrics.bootstrap_groups`), ``label`` and probability columns ``p_<class>``."""
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

    def _data_read(self) -> dict:
        """What this process read (:func:`skinlib.provenance.data_read`), the split left out when it is not the
        one the run's ``split_name`` names."""
        read = provenance.data_read()
        named = self.params.get("split_name")
        if isinstance(named, str) and read.get("split", {}).get("name") not in (None, named):
            read.pop("split")
        return read

    def finish(self) -> Path:
        """Record status and timing and move the run into place (replacing an earlier run of the same name)."""
        info = {"experiment": self.experiment, "run": self.run, "status": "ok",
                "seconds": round(time.time() - self.started, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "skinlib": __version__, "python": platform.python_version(), "notebook": provenance.writer(),
                "data": self._data_read(), "environment": provenance.environment()}
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
        return pd.read_csv(self.folder / "predictions.csv", dtype={"image_id": str, "split": str, "group": str})

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
    provenance.note("registry-run", folder)
    read = lambda name: json.loads((folder / name).read_text()) if (folder / name).is_file() else {}  # noqa: E731
    return RunResult(folder, read("params.json"), read("metrics.json"), read("run.json"))


def experiment_folders(root: Path | None = None) -> list[Path]:
    """The registry's experiment folders (hidden ones left out), noted as read (:mod:`skinlib.provenance`).

    Args:
        root: the registry folder (default: the workspace's).
    """
    base = Path(root) if root else paths.results_dir()
    provenance.note("registry", base)
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def gather(experiment: str | None = None, root: Path | None = None, split: str = "test",
           params: tuple[str, ...] = ()) -> pd.DataFrame:
    """One row per finished run: experiment, run, the chosen `params`, and the metrics of `split`."""
    base = Path(root) if root else paths.results_dir()
    rows = []
    experiments = [base / experiment] if experiment else experiment_folders(base)
    for exp in experiments:
        provenance.note("registry-experiment", exp)           # also when missing: a run appearing there is new input
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
    provenance.note("registry-run", folder)
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


def record(experiment: str, run: str, params: dict[str, Any], parts: dict[str, pd.DataFrame], evaluation: Evaluation,
           history: pd.DataFrame | None = None, figures: dict[str, Any] | None = None,
           model: nn.Module | None = None, spec: ModelSpec | None = None,
           classes: Sequence[str] = CLASSES, columns: Sequence[str] = (), isic_csv: bool = True) -> RunRecorder:
    """Write a finished run to the registry: params, metrics, per-image predictions, tables, figures, an
    ISIC-format CSV of the test predictions, and the model (weights + spec) when given. Returns the recorder
    (already finished).

    Args:
        experiment, run: where the run goes (``results/<experiment>/<run>/``).
        params: the notebook's resolved parameters.
        parts: the splits' tables, rows in the order of `evaluation`'s probabilities.
        evaluation: from :func:`evaluate_splits`.
        history: per-epoch training history.
        figures: name -> matplotlib figure.
        model: the trained model: its weights go to ``model.safetensors`` (rebuilt by
            :func:`skinlib.registry.load_model`).
        spec: how to rebuild `model` (``model.json``); required with `model`.
        classes: class codes of the probability columns (a specialist's subset; the ISIC CSV needs all seven).
        columns: more columns of `parts` kept in the predictions table (e.g. ``lesion_id``, ``fold``).
        isic_csv: write the ISIC-format CSV of the test predictions (cross-fitted predictions are not a test split).

    A binary run (:func:`evaluate_binary`) has one predictions column ``p_<positive>`` and no ISIC CSV.
    """
    if model is not None and spec is None:
        raise ValueError("record(model=...) needs spec=ModelSpec(...) saying how to rebuild the model "
                         "(factory, kwargs, mean, std, image_size)")
    if spec is not None and model is None:
        raise ValueError("record(spec=...) given without model=")
    classes = list(classes)
    recorder = RunRecorder(experiment, run, params)
    rows = []
    binary = evaluation.positive is not None
    for split, p in evaluation.proba.items():
        frame = pd.DataFrame(p, columns=[f"p_{evaluation.positive}"] if binary else [f"p_{c}" for c in classes])
        frame.insert(0, "label", parts[split][evaluation.target].to_numpy())
        groups = (evaluation.groups or {}).get(split)
        frame.insert(0, "group", groups if groups is not None else metrics.bootstrap_groups(parts[split]))
        for i, column in enumerate(columns):
            frame.insert(i, column, parts[split][column].to_numpy())
        frame.insert(0, "split", split)
        frame.insert(0, "image_id", parts[split]["image_id"].to_numpy())
        rows.append(frame)
    recorder.predictions(pd.concat(rows, ignore_index=True))
    recorder.metrics({**evaluation.metrics, "test_ci": evaluation.ci.to_dict(orient="index")})
    recorder.table(evaluation.per_class, "thresholds_test" if binary else "per_class_test")
    recorder.table(evaluation.confusion, "confusion_test")
    if history is not None:
        recorder.history(history)
    for name, fig in (figures or {}).items():
        recorder.figure(fig, name)
    if isic_csv and not binary and classes == list(CLASSES):
        metrics.to_isic_csv(parts["test"]["image_id"], evaluation.proba["test"], recorder.file("isic_test_predictions.csv"))
    if model is not None:
        recorder.model(model, spec)
    recorder.finish()
    return recorder


def predict_recorded(experiment: str, run: str, table: pd.DataFrame, splits: Sequence[str] = ("val", "test"), *,
                     batch_size: int = 64, device: str = "auto", root=None) -> dict[str, np.ndarray]:
    """Probabilities of a model kept in the registry on every image of `splits`, without retraining.

    Args:
        experiment, run: the run (it must have been recorded with ``model=``).
        table: the split catalog (:func:`skinlib.inputs.split_catalog`); its image cache at the model's size is used or built.
        splits: which splits to predict, rows in the order of ``by_split(table)[split]`` (all classes: a
            specialist sees every image it is asked about).
        batch_size: images per batch.
        device: auto (GPU when present), cpu or cuda.
        root: the registry folder (default: the workspace's).
    """
    from .data.batches import Batches
    from .data.cache import build_cache
    from .train import predict, resolve_device

    dev = resolve_device(device)
    spec = load_spec(experiment, run, root)
    model, preprocess = load_model(experiment, run, root, device=str(dev))
    cache = build_cache(table, spec.image_size, resample=spec.resample, crop=spec.crop)
    parts = {split: table[table["split"] == split] for split in splits}
    return {split: predict(model, Batches(cache, parts[split]["image_id"], np.zeros(len(parts[split]), dtype=int),
                                          batch_size, device=dev), preprocess) for split in splits}
