"""Ensembles of registry runs: averaging, voting, validation-fitted weights, member selection, study E's mix-model.

Everything here works on recorded per-image probabilities (``predictions.csv`` of each run), aligned by image
id. Choices (members, weights) are made from validation rows only; test rows are only ever scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import metrics
from .notebook import notice
from .data.labels import CLASSES
from .results import SPLIT_COST, gather, load_run

#: Study E's mix-model: when the general model predicts the key, the specialist for these classes is consulted.
STUDY_E_SPECIALISTS: dict[str, tuple[str, str]] = {"nv": ("mel", "nv"), "bcc": ("akiec", "bcc"), "bkl": ("mel", "bkl")}


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean recall over the classes present in `y` (scikit-learn's balanced accuracy), from the argmax."""
    return label_metrics(y, np.asarray(proba).argmax(1))["balanced_accuracy"]


@dataclass
class Members:
    """Recorded probabilities of several runs on the same images, per split.

    Attributes:
        names: member names (``experiment/run``).
        image_ids, labels: per split, in one shared order (sorted by image id).
        proba: per split, member name -> (n, k) probabilities in that order.
        classes: class codes of the probability columns.
    """

    names: list[str]
    image_ids: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    proba: dict[str, dict[str, np.ndarray]]
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    def subset(self, names: Sequence[str]) -> "Members":
        """Only the members `names` (in that order)."""
        return Members(list(names), self.image_ids, self.labels,
                       {s: {n: p[n] for n in names} for s, p in self.proba.items()}, self.classes)

    def stack(self, split: str, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """The members' probabilities on `split`, in `names` order (default: all)."""
        return [self.proba[split][n] for n in (names or self.names)]


def load_members(runs: Sequence[tuple[str, str]], root: Path | None = None, splits: Sequence[str] = ("val", "test"),
                 classes: Sequence[str] = CLASSES) -> Members:
    """The recorded predictions of `runs`, aligned by image id.

    Args:
        runs: ``(experiment, run)`` pairs from the registry.
        root: the registry folder (default: the workspace's ``results/``).
        splits: splits to read.
        classes: the probability columns every member must have (``p_<class>``).

    Raises:
        ValueError: a run without these columns, or runs that predicted different images (names both runs).
    """
    if not runs:
        raise ValueError("no runs given: an ensemble needs at least one registry run")
    columns = [f"p_{c}" for c in classes]
    image_ids, labels, proba = {}, {}, {s: {} for s in splits}
    names = []
    for experiment, run in runs:
        name = f"{experiment}/{run}"
        table = load_run(experiment, run, root).predictions
        missing = [c for c in columns if c not in table]
        if missing:
            raise ValueError(f"run {name}: predictions.csv lacks {missing}; members must predict all of {list(classes)}")
        for split in splits:
            part = table[table["split"] == split].sort_values("image_id")
            ids = part["image_id"].to_numpy()
            if split not in image_ids:
                image_ids[split], labels[split] = ids, part["label"].to_numpy().astype(int)
                first = name
            elif len(ids) != len(image_ids[split]) or (ids != image_ids[split]).any():
                extra = sorted(set(ids) ^ set(image_ids[split]))[:5]
                raise ValueError(f"runs {first} and {name} predicted different {split} images (e.g. {extra}); "
                                 "ensemble runs of the same split and data only")
            proba[split][name] = part[columns].to_numpy(float)
        names.append(name)
    return Members(names, image_ids, labels, proba, list(classes))


def registry_runs(root: Path | None = None, experiments: Sequence[str] | None = None,
                  classes: Sequence[str] = CLASSES, exclude: Sequence[str] = ("ensembles", SPLIT_COST),
                  split_name: str | None = None) -> pd.DataFrame:
    """Finished runs whose predictions cover every class of `classes` (no specialists) on every image (no body-site
    subset), with their validation metrics: the candidate ensemble members.

    Args:
        root: the registry folder.
        experiments: experiments to look in; None: every experiment in the registry but `exclude`.
        classes: the classes a member must predict.
        exclude: experiments never used as members (08's own results, the split-cost measurements).
        split_name: keep only runs trained on this saved split (their ``split_name`` parameter), saying in one line
            which runs on other splits are left out (e.g. a profile's run on the image-level split in the same
            workspace); None: every split.
    """
    from . import paths

    base = Path(root) if root else paths.results_dir()
    if experiments is None:
        experiments = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in exclude) if base.is_dir() else []
    frames = []
    for experiment in experiments:
        table = gather(experiment, root=root, split="val",
                       params=("classes", "localization", "grayscale", "backbone", "split_name"))
        if not table.empty:
            frames.append(table)
    columns = ["experiment", "run", "grayscale", "backbone", "balanced_accuracy"]
    if not frames:
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True)
    keep = []
    for _, row in table.iterrows():
        file = load_run(row["experiment"], row["run"], root).folder / "predictions.csv"
        head = pd.read_csv(file, nrows=0) if file.is_file() else pd.DataFrame()
        subset = isinstance(row.get("localization"), str) and bool(row["localization"])
        keep.append(all(f"p_{c}" in head for c in classes) and not subset)
    table = table[keep].reset_index(drop=True)
    if split_name is not None:
        other = table["split_name"].notna() & (table["split_name"] != split_name)
        if other.any():
            notice(f"{int(other.sum())} run(s) on another split than {split_name!r} left out: " + ", ".join(
                f"{r.experiment}/{r.run} ({r.split_name})" for r in table[other].itertuples()))
        table = table[~other].reset_index(drop=True)
    for column in columns:
        if column not in table:
            table[column] = np.nan
    table["grayscale"] = table["grayscale"].fillna(False).astype(bool)
    hidden = ("classes", "localization", "split_name")
    return table[columns + [c for c in table.columns if c not in columns and c not in hidden]]


def registry_specialists(root: Path | None = None, experiment: str = "transfer",
                         wiring: Mapping[str, Sequence[str]] = STUDY_E_SPECIALISTS,
                         split_name: str | None = None) -> pd.DataFrame:
    """Specialists in the registry for the mix-model: runs of `experiment` trained on exactly the classes of a
    `wiring` entry (05 with ``classes``), with a recorded model; the best on validation per trigger.

    Args:
        root: the registry folder.
        experiment: where specialists are recorded.
        wiring: trigger class -> the specialist's classes (default: study E's three).
        split_name: only specialists trained on this saved split (one trained on another split may have seen
            the test images it is asked about); None: any split.

    Returns:
        one row per trigger found: trigger, experiment, run, classes (in the run's output order), val balanced accuracy.
    """
    from .results import has_model

    table = gather(experiment, root=root, split="val", params=("classes", "localization", "split_name"))
    rows = []
    for trigger, wanted in wiring.items():
        best = None
        for _, row in table.iterrows() if not table.empty else []:
            classes = row.get("classes")
            if not isinstance(classes, list) or set(classes) != set(wanted) or len(classes) != len(wanted):
                continue
            if split_name is not None and isinstance(row.get("split_name"), str) and row["split_name"] != split_name:
                continue
            if (isinstance(row.get("localization"), str) and row["localization"]) or not has_model(experiment, row["run"], root):
                continue
            score = row.get("balanced_accuracy", np.nan)
            if best is None or score > best["val_balanced_accuracy"]:
                best = {"trigger": trigger, "experiment": experiment, "run": row["run"], "classes": list(classes),
                        "val_balanced_accuracy": score}
        if best is not None:
            rows.append(best)
    return pd.DataFrame(rows, columns=["trigger", "experiment", "run", "classes", "val_balanced_accuracy"])


# --- combination rules --------------------------------------------------------------------------------------

def soft_average(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of the members' probabilities (equal weights by default); rows still sum to one.

    Args:
        probas: (n, k) probabilities of each member.
        weights: one non-negative weight per member (normalised to sum to one).
    """
    stack = np.stack([np.asarray(p, float) for p in probas])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, float)
    if len(w) != len(stack) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {len(stack)} non-negative weights with a positive sum, got {list(w)}")
    return np.tensordot(w / w.sum(), stack, axes=1)


def hard_vote(probas: Sequence[np.ndarray]) -> np.ndarray:
    """Majority vote of the members' predicted classes, as vote shares (n, k).

    ``hard_vote(...).argmax(1)`` is the ensemble's class; a tie goes to the lowest class index (study E's rule:
    labels sorted ascending, the first wins), which is what ``argmax`` returns.
    """
    stack = np.stack([np.asarray(p, float) for p in probas])
    k = stack.shape[2]
    votes = np.zeros(stack.shape[1:])
    for member in stack:
        votes[np.arange(len(member)), member.argmax(1)] += 1
    return votes / len(stack) if k else votes


def fit_weights(probas: Sequence[np.ndarray], y: Sequence[int], seed: int = 0) -> np.ndarray:
    """Weights of a weighted average minimising the log loss on (validation) labels `y`.

    Args:
        probas: the members' (n, k) validation probabilities.
        y: validation labels.
        seed: seed of the optimiser's starting point jitter (the problem is convex in the weights).

    Returns:
        non-negative weights summing to one, one per member.
    """
    from scipy.optimize import minimize

    stack = np.stack([np.asarray(p, float) for p in probas])
    y = np.asarray(y, int)
    picked = stack[:, np.arange(len(y)), y]                           # (members, n): probability of the truth

    def loss(z):
        w = np.exp(z - z.max())
        w /= w.sum()
        return -np.mean(np.log(np.clip(w @ picked, 1e-12, None)))

    start = np.random.default_rng(seed).normal(0, 1e-3, len(stack))
    z = minimize(loss, start, method="L-BFGS-B").x
    w = np.exp(z - z.max())
    return w / w.sum()


# --- member selection (validation only) ----------------------------------------------------------------------

def top_k(val: Mapping[str, np.ndarray], y_val: Sequence[int], k: int = 3) -> list[str]:
    """The `k` members with the highest validation balanced accuracy (ties: the earlier name).

    Args:
        val: member name -> validation probabilities.
        y_val: validation labels.
        k: how many (study E: the top 3 RGB models).
    """
    y_val = np.asarray(y_val)
    scores = {n: _balanced_accuracy(y_val, p) for n, p in val.items()}
    return sorted(scores, key=lambda n: (-scores[n], list(val).index(n)))[:k]


def greedy_forward(val: Mapping[str, np.ndarray], y_val: Sequence[int], max_members: int | None = None,
                   score: Callable[[np.ndarray, np.ndarray], float] = _balanced_accuracy) -> list[str]:
    """Forward selection (Caruana et al. 2004, without replacement): start from the best member, add the one
    that most improves the soft average's validation score, stop when nothing improves it.

    Args:
        val: member name -> validation probabilities.
        y_val: validation labels.
        max_members: stop at this many members (default: no limit).
        score: ``score(y, proba)``, higher is better (default: balanced accuracy).
    """
    y_val = np.asarray(y_val)
    names = list(val)
    chosen = [max(names, key=lambda n: (score(y_val, val[n]), -names.index(n)))]
    best = score(y_val, val[chosen[0]])
    while max_members is None or len(chosen) < max_members:
        trials = {n: score(y_val, soft_average([val[m] for m in chosen + [n]])) for n in names if n not in chosen}
        if not trials:
            break
        pick = max(trials, key=lambda n: (trials[n], -names.index(n)))
        if trials[pick] <= best:
            break
        chosen.append(pick)
        best = trials[pick]
    return chosen


# --- evaluation ---------------------------------------------------------------------------------------------

def label_metrics(y: Sequence[int], pred: Sequence[int]) -> dict[str, float]:
    """Balanced accuracy, accuracy and macro precision / recall / F1 from predicted labels, over the classes present
    in `y` (as :func:`skinlib.metrics.classification_metrics` computes them), with one confusion count: fast enough
    for thousands of bootstrap resamples.

    Args:
        y: true labels.
        pred: predicted labels.
    """
    y, pred = np.asarray(y, int), np.asarray(pred, int)
    k = int(max(y.max(initial=0), pred.max(initial=0))) + 1
    counts = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    present = np.flatnonzero(counts.sum(1))
    tp = np.diag(counts)[present].astype(float)
    support, predicted = counts.sum(1)[present], counts.sum(0)[present]
    recall = tp / support
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    return {"balanced_accuracy": float(recall.mean()), "accuracy": float(tp.sum() / len(y)),
            "precision_macro": float(precision.mean()), "recall_macro": float(recall.mean()), "f1_macro": float(f1.mean())}


_LABEL_KEYS = ("balanced_accuracy", "accuracy", "f1_macro", "precision_macro", "recall_macro")


def evaluate(parts: Mapping[str, pd.DataFrame], proba: Mapping[str, np.ndarray], n_boot: int = 500,
             seed: int = 0):
    """:func:`skinlib.experiment.evaluate_splits` for ensembles: the same metrics, with bootstrap intervals of the
    label metrics (balanced accuracy, accuracy, macro precision / recall / F1) computed from one confusion count per
    resample.

    Args:
        parts: split -> table with ``label``.
        proba: split -> (n, k) probabilities (vote shares for voting).
        n_boot, seed: bootstrap resamples and their seed.
    """
    from .experiment import Evaluation

    results = {s: metrics.classification_metrics(parts[s]["label"].to_numpy(), p) for s, p in proba.items()}
    y_test, p_test = parts["test"]["label"].to_numpy(), proba["test"]
    ci = metrics.bootstrap_ci(y_test, p_test, metric=lambda t, p: label_metrics(t, p.argmax(1)), keys=_LABEL_KEYS,
                              n_boot=n_boot, seed=seed)
    return Evaluation(dict(proba), results, metrics.per_class_report(y_test, p_test),
                      metrics.confusion(y_test, p_test.argmax(1)),
                      metrics.confusion(y_test, p_test.argmax(1), normalize=True), ci)


def paired_bootstrap_gain(y: Sequence[int], proba: np.ndarray, baseline: np.ndarray, metric: str = "balanced_accuracy",
                          n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Gain of `proba` over `baseline` on the same images, with a paired percentile bootstrap interval.

    Both are scored on the same resampled images each time, so the interval reflects the difference, not the
    two models' separate noise. ``p_not_better`` is the share of resamples where the gain is <= 0.

    Args:
        y: labels.
        proba, baseline: (n, k) probabilities of the ensemble and of the member it is compared with.
        metric: a key of :func:`skinlib.metrics.classification_metrics`.
        n_boot, level, seed: bootstrap resamples, interval level and seed.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    if metric in _LABEL_KEYS:                                 # from predicted labels only: much faster
        score = lambda t, p: label_metrics(t, p)[metric]  # noqa: E731
        a, b = np.asarray(proba).argmax(1), np.asarray(baseline).argmax(1)
    else:
        score = lambda t, p: metrics.classification_metrics(t, p)[metric]  # noqa: E731
        a, b = np.asarray(proba), np.asarray(baseline)
    point = score(y, a) - score(y, b)
    gains = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        gains.append(score(y[idx], a[idx]) - score(y[idx], b[idx]))
    gains = np.asarray(gains)
    if not len(gains):
        return {"gain": float(point), "low": float("nan"), "high": float("nan"), "p_not_better": float("nan")}
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {"gain": float(point), "low": float(np.nanquantile(gains, lo)), "high": float(np.nanquantile(gains, hi)),
            "p_not_better": float(np.mean(gains <= 0))}


def one_hot(labels: Sequence[int], k: int = len(CLASSES)) -> np.ndarray:
    """(n, k) indicator matrix of predicted labels (for rules that output classes, not probabilities)."""
    labels = np.asarray(labels, int)
    out = np.zeros((len(labels), k))
    out[np.arange(len(labels)), labels] = 1.0
    return out


# --- study E's mix-model --------------------------------------------------------------------------------------

@dataclass
class Specialist:
    """A model of a few classes, consulted when the general model predicts `trigger`.

    Attributes:
        trigger: the general model's class that routes an image to this specialist.
        classes: the specialist's class codes, in its output order.
        proba: (n, len(classes)) probabilities on every image the general model saw, same order.
    """

    trigger: str
    classes: Sequence[str]
    proba: np.ndarray


def mix_model(general: np.ndarray, specialists: Sequence[Specialist],
              classes: Sequence[str] = CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Study E's mix-model: the general model predicts; when its class is a specialist's trigger, that specialist
    is consulted and the more confident answer wins (the general model's top probability against the
    specialist's; a tie keeps the general answer).

    Args:
        general: (n, k) probabilities of the general model.
        specialists: at most one per trigger class.
        classes: class codes of `general`'s columns.

    Returns:
        ``(proba, consulted)``: (n, k) probabilities whose argmax is the mix-model's class (the general model's row,
        or where the specialist won, its probabilities on its classes and 0 elsewhere), and for each image the
        trigger of the specialist that decided it ('' where the general model's answer stands).
    """
    general = np.asarray(general, float)
    classes = list(classes)
    out = general.copy()
    confidence = general.max(1)
    decided = np.full(len(general), "", dtype=object)
    triggers = [s.trigger for s in specialists]
    if len(set(triggers)) != len(triggers):
        raise ValueError(f"one specialist per trigger class, got triggers {triggers}")
    for spec in specialists:
        unknown = [c for c in [spec.trigger, *spec.classes] if c not in classes]
        if unknown:
            raise ValueError(f"specialist {spec.trigger}: classes {unknown} are not among {classes}")
        proba = np.asarray(spec.proba, float)
        if proba.shape != (len(general), len(spec.classes)):
            raise ValueError(f"specialist {spec.trigger}: probabilities of shape {proba.shape}, expected "
                             f"{(len(general), len(spec.classes))}")
        routed = general.argmax(1) == classes.index(spec.trigger)
        wins = routed & (proba.max(1) > confidence)
        mapped = [classes.index(c) for c in spec.classes]
        replaced = np.zeros((int(wins.sum()), len(classes)))
        replaced[:, mapped] = proba[wins]
        out[wins] = replaced
        decided[wins] = spec.trigger
    return out, decided


def binary_average(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Average of the members' positive-class probabilities (study B's DINO + CLIP ensemble for melanoma vs rest).

    Args:
        probas: (n,) probabilities of the positive class, one array per member, same images.
        weights: optional non-negative weights (normalised).
    """
    return soft_average([np.asarray(p, float).reshape(-1, 1) for p in probas], weights)[:, 0]


def binary_runs(root: Path | None = None) -> pd.DataFrame:
    """Registry runs with a binary task: predictions with ``label`` 0 / 1 and exactly one probability column.

    Returns experiment, run, the probability column and the run's parameters ``backbone`` / ``model`` (the
    members of study B's DINO + CLIP ensemble are recognised by these or the run name).
    """
    from . import paths

    base = Path(root) if root else paths.results_dir()
    rows = []
    for folder in sorted(base.glob("*/*/predictions.csv")) if base.is_dir() else []:
        run = folder.parent
        if run.name.startswith(".") or not (run / "run.json").is_file():
            continue
        head = pd.read_csv(folder, nrows=0)
        proba_columns = [c for c in head if c.startswith("p_")]
        if len(proba_columns) != 1:
            continue
        result = load_run(run.parent.name, run.name, base)
        rows.append({"experiment": run.parent.name, "run": run.name, "column": proba_columns[0],
                     "backbone": str(result.params.get("backbone") or result.params.get("model") or ""),
                     "val_auc": result.metrics.get("val", {}).get("auc")})
    return pd.DataFrame(rows, columns=["experiment", "run", "column", "backbone", "val_auc"])
