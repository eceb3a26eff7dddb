"""Ensembles: averaging, voting, validation-fitted weights, member selection, study E's mix-model.

Everything here works on per-image probabilities aligned by image id (registry runs' recorded ones:
:mod:`skinlib.members`). Choices (members, weights) are made from validation rows only; test rows are only ever
scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import metrics
from .data.labels import CLASSES

#: Study E's mix-model: when the general model predicts the key, the specialist for these classes is consulted.
STUDY_E_SPECIALISTS: dict[str, tuple[str, str]] = {"nv": ("mel", "nv"), "bcc": ("akiec", "bcc"), "bkl": ("mel", "bkl")}


def _balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Balanced accuracy of the argmax (:func:`skinlib.metrics.balanced_accuracy`)."""
    return metrics.balanced_accuracy(y, np.asarray(proba).argmax(1))


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

def evaluate(parts: Mapping[str, pd.DataFrame], proba: Mapping[str, np.ndarray], n_boot: int = 500,
             seed: int = 0):
    """:func:`skinlib.evaluation.evaluate_splits` for ensembles, with bootstrap intervals of the label metrics only
    (balanced accuracy, accuracy, macro precision / recall / F1): a vote's shares rank nothing.

    Args:
        parts: split -> table with ``label``.
        proba: split -> (n, k) probabilities (vote shares for voting).
        n_boot, seed: bootstrap resamples and their seed.
    """
    from .evaluation import evaluate_splits

    return evaluate_splits(parts, proba, n_boot=n_boot, seed=seed, ci_keys=metrics.LABEL_KEYS)


def paired_bootstrap_gain(y: Sequence[int], proba: np.ndarray, baseline: np.ndarray, groups: Sequence | None,
                          metric: str = "balanced_accuracy", n_boot: int = 1000, level: float = 0.95,
                          seed: int = 0) -> dict[str, float]:
    """Gain of `proba` over `baseline` on the same images, with a paired percentile bootstrap interval that resamples
    lesions (:func:`skinlib.metrics.bootstrap_counts`).

    Both are scored on the same resampled lesions each time, so the interval reflects the difference, not the
    two models' separate noise. ``p_not_better`` is the share of resamples where the gain is <= 0.

    Args:
        y: labels.
        proba, baseline: (n, k) probabilities of the ensemble and of the member it is compared with; or (n,)
            probabilities of the positive class, compared by ROC-AUC (threshold-free, so the comparison does not
            depend on a threshold chosen on either's validation).
        groups: each image's lesion (or patient) group (:func:`skinlib.metrics.bootstrap_groups`; the registry's
            ``group`` column); None only where every image is its own lesion.
        metric: a key of :func:`skinlib.metrics.classification_metrics`; ``auc`` for (n,) probabilities.
        n_boot, level, seed: bootstrap resamples, interval level and seed.
    """
    y = np.asarray(y)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    counts = metrics.bootstrap_counts(groups, n_boot, seed)
    if np.ndim(proba) == 1:                         # binary: ROC-AUC, a resample's counts as the images' weights
        if metric != "auc":
            raise ValueError(f"metric {metric!r} for one probability per image: binary runs compare by 'auc'")
        a, b = np.asarray(proba, float), np.asarray(baseline, float)
        point = _auc(y, a) - _auc(y, b)
        gains = np.array([_auc(y, a, c) - _auc(y, b, c) for c in counts])
    elif metric in metrics.LABEL_KEYS:                                 # from predicted labels, all resamples at once
        a, b = np.asarray(proba).argmax(1), np.asarray(baseline).argmax(1)
        point = metrics.label_metrics(y, a)[metric] - metrics.label_metrics(y, b)[metric]
        gains = (metrics.resampled_label_metrics(y, a, counts)[metric]
                 - metrics.resampled_label_metrics(y, b, counts)[metric])
    else:
        score = lambda t, p: metrics.classification_metrics(t, p)[metric]  # noqa: E731
        a, b = np.asarray(proba), np.asarray(baseline)
        point = score(y, a) - score(y, b)
        rows = np.arange(len(y))
        gains = np.array([score(y[i], a[i]) - score(y[i], b[i]) for i in (np.repeat(rows, c) for c in counts)])
    gains = gains[np.isfinite(gains)]                 # a resample without some class scores nothing
    if not len(gains):
        return {"gain": float(point), "low": float("nan"), "high": float("nan"), "p_not_better": float("nan")}
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {"gain": float(point), "low": float(np.quantile(gains, lo)), "high": float(np.quantile(gains, hi)),
            "p_not_better": float(np.mean(gains <= 0))}


def _auc(y: np.ndarray, p: np.ndarray, weight: np.ndarray | None = None) -> float:
    """ROC-AUC of `p`, the images weighted (a bootstrap resample's counts); NaN when one class is missing."""
    from sklearn.metrics import roc_auc_score

    present = y if weight is None else y[weight > 0]
    return float(roc_auc_score(y, p, sample_weight=weight)) if len(np.unique(present)) == 2 else float("nan")


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


def evaluate_binary_average(members, positive: str, negative: str = "rest", min_sensitivity: float = 0.90,
                            n_boot: int = 500, seed: int = 0):
    """Study B's DINO + CLIP ensemble evaluated as 07 evaluates a binary run: the average of the members'
    positive-class probabilities (:func:`binary_average`), thresholds chosen on validation and applied to test,
    intervals resampling lesions (:func:`skinlib.evaluation.evaluate_binary`). Returns ``(parts, evaluation)``, what
    :func:`skinlib.registry.record` takes.

    Args:
        members: the binary members (:func:`skinlib.members.load_members` with ``classes=[positive]``).
        positive, negative: the class names (predictions column ``p_<positive>``).
        min_sensitivity, n_boot, seed: as for :func:`skinlib.evaluation.evaluate_binary`.
    """
    from .evaluation import evaluate_binary

    parts = members.parts(target="target")
    proba = {s: binary_average([members.proba[s][n][:, 0] for n in members.names]) for s in parts}
    return parts, evaluate_binary(parts, proba, positive, negative=negative, min_sensitivity=min_sensitivity,
                                  n_boot=n_boot, seed=seed)
