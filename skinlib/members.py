"""Which registry runs an ensemble combines and Grad-CAM explains, and their recorded probabilities: members of one
split, study E's specialists, the best run per kind, chosen on validation only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .data.labels import CLASSES
from .ensemble import STUDY_E_SPECIALISTS, Specialist
from . import provenance
from .notebook import notice
from .papers import reads_label
from .registry import SPLIT_COST, experiment_folders, gather, load_run


@dataclass
class Members:
    """Recorded probabilities of several runs on the same images, per split.

    Attributes:
        names: member names (``experiment/run``).
        image_ids, labels: per split, in one shared order (sorted by image id).
        proba: per split, member name -> (n, k) probabilities in that order.
        classes: class codes of the probability columns.
        groups: per split, each image's bootstrap group (its lesion or patient) as the first member recorded it.
    """

    names: list[str]
    image_ids: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    proba: dict[str, dict[str, np.ndarray]]
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, names: Sequence[str]) -> "Members":
        """Only the members `names` (in that order)."""
        return Members(list(names), self.image_ids, self.labels,
                       {s: {n: p[n] for n in names} for s, p in self.proba.items()}, self.classes, self.groups)

    def parts(self, target: str = "label") -> dict[str, pd.DataFrame]:
        """Per split, the table :func:`skinlib.evaluation.evaluate_splits` scores: ``image_id``, `target` (the
        labels) and ``group`` (so the intervals resample lesions), in the members' shared order."""
        return {s: pd.DataFrame({"image_id": self.image_ids[s], target: self.labels[s], "group": self.groups[s]})
                for s in self.image_ids}

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
    image_ids, labels, groups, proba = {}, {}, {}, {s: {} for s in splits}
    names = []
    for experiment, run in runs:
        name = f"{experiment}/{run}"
        table = load_run(experiment, run, root).predictions
        missing = [c for c in columns + ["group"] if c not in table]
        if missing:
            raise ValueError(f"run {name}: predictions.csv lacks {missing}; members must predict all of {list(classes)}"
                             + (" and record each image's group (rerun its notebook)" if "group" in missing else ""))
        for split in splits:
            part = table[table["split"] == split].sort_values("image_id")
            ids = part["image_id"].to_numpy()
            if split not in image_ids:
                image_ids[split], labels[split] = ids, part["label"].to_numpy().astype(int)
                groups[split] = part["group"].astype(str).to_numpy()
                first = name
            elif len(ids) != len(image_ids[split]) or (ids != image_ids[split]).any():
                extra = sorted(set(ids) ^ set(image_ids[split]))[:5]
                raise ValueError(f"runs {first} and {name} predicted different {split} images (e.g. {extra}); "
                                 "ensemble runs of the same split and data only")
            proba[split][name] = part[columns].to_numpy(float)
        names.append(name)
    return Members(names, image_ids, labels, proba, list(classes), groups)


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

    Variants of a model are no members of their own, and are left out saying so in one line: a test-time-augmented
    prediction (``tta_of``: the same weights as its plain run) and a run on a share of the training labels
    (``train_fraction`` below 1, a point of a label-efficiency curve). So is a model given each image's label as an
    input (:func:`skinlib.papers.reads_label`: study C's model, an ablation).
    """
    if experiments is None:
        experiments = [p.name for p in experiment_folders(root) if p.name not in exclude]
    frames = []
    for experiment in experiments:
        table = gather(experiment, root=root, split="val",
                       params=("classes", "localization", "grayscale", "backbone", "split_name", "tta_of",
                               "train_fraction", "head"))
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
    variant = table["tta_of"].notna() | (table["train_fraction"].fillna(1.0).astype(float) < 1)
    if variant.any():
        notice(f"{int(variant.sum())} variant run(s) left out (test-time augmentation, a share of the training "
               "labels): " + ", ".join(f"{r.experiment}/{r.run}" for r in table[variant].itertuples()))
    table = table[~variant].reset_index(drop=True)
    leaky = table["head"].map(lambda head: reads_label({"head": head})).astype(bool)
    if leaky.any():
        notice(f"{int(leaky.sum())} run(s) given each image's label as an input left out (study C's model, an "
               "ablation measuring the leak): " + ", ".join(f"{r.experiment}/{r.run}" for r in table[leaky].itertuples()))
    table = table[~leaky].reset_index(drop=True)
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
    hidden = ("classes", "localization", "split_name", "tta_of", "train_fraction", "head")
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
    from .registry import has_model

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

def binary_runs(root: Path | None = None, exclude: Sequence[str] = ("ensembles", SPLIT_COST)) -> pd.DataFrame:
    """Registry runs with a binary task: predictions with ``label`` 0 / 1 and exactly one probability column, outside
    the experiments `exclude` (08's own results, such as the DINO + CLIP ensemble, are never its members), variants
    of a model left out (a test-time-augmented prediction, a run on a share of the training labels).

    Returns experiment, run, the probability column and the run's parameters ``backbone`` / ``model`` (the
    members of study B's DINO + CLIP ensemble are recognised by these or the run name).
    """
    from . import paths

    base = Path(root) if root else paths.results_dir()
    for experiment in experiment_folders(base):
        provenance.note("registry-experiment", experiment)
    rows = []
    for folder in sorted(base.glob("*/*/predictions.csv")) if base.is_dir() else []:
        run = folder.parent
        if run.name.startswith(".") or not (run / "run.json").is_file() or run.parent.name in exclude:
            continue
        head = pd.read_csv(folder, nrows=0)
        proba_columns = [c for c in head if c.startswith("p_")]
        if len(proba_columns) != 1:
            continue
        result = load_run(run.parent.name, run.name, base)
        if result.params.get("tta_of") or float(result.params.get("train_fraction") or 1.0) < 1:
            continue                              # variants of a model, not models (see registry_runs)
        rows.append({"experiment": run.parent.name, "run": run.name, "column": proba_columns[0],
                     "backbone": str(result.params.get("backbone") or result.params.get("model") or ""),
                     "val_auc": result.metrics.get("val", {}).get("auc")})
    return pd.DataFrame(rows, columns=["experiment", "run", "column", "backbone", "val_auc"])


# --- choosing the members (08) --------------------------------------------------------------------------------

#: 08's ``colours``: which runs may be members
COLOURS = ("rgb", "grey", "any")


def candidate_runs(experiments: Sequence[str] | None = None, split_name: str | None = None, *, colours: str = "rgb",
                   at_least: int = 2, root: Path | None = None) -> pd.DataFrame:
    """08's candidate members: :func:`registry_runs` on `split_name`, of the colours asked for (study E ensembled its
    RGB models, and its grey-scale models apart).

    Args:
        experiments, split_name, root: as for :func:`registry_runs`.
        colours: ``rgb`` (runs on colour images), ``grey`` (runs on grey-scale images) or ``any``.
        at_least: the fewest candidates an ensemble needs.

    Raises:
        ValueError: `colours` is not one of :data:`COLOURS`.
        RuntimeError: fewer than `at_least` candidates (saying which notebooks record them).
    """
    if colours not in COLOURS:
        raise ValueError(f"colours = {colours!r}: use one of {', '.join(COLOURS)}")
    candidates = registry_runs(root, experiments=experiments, split_name=split_name)
    if colours != "any":
        candidates = candidates[candidates["grayscale"] == (colours == "grey")].reset_index(drop=True)
    if len(candidates) < at_least:
        raise RuntimeError(f"{len(candidates)} {'' if colours == 'any' else colours + ' '}candidate run(s) in the "
                           "registry: run notebooks 03-06 first")
    return candidates


def named_members(names: Sequence[str] | str, candidates: Sequence[str], parameter: str,
                  count: int | None = None) -> list[str]:
    """Runs 08 was asked to use by name (a study's pinned members or general model), checked against the candidates.

    Args:
        names: ``experiment/run`` names (one name alone is accepted too).
        candidates: the candidate members (:attr:`Members.names`).
        parameter: the notebook parameter that named them (for the error).
        count: how many names are needed (None: any number, at least one).

    Raises:
        ValueError: a name that is no candidate (a run missing, on another split, of other colours than ``colours``, or
            not a 7-class run), or the wrong number of names; the message lists the candidates.
    """
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in candidates]
    if unknown or not names:
        raise ValueError(f"{parameter}: {unknown or 'no run'} {'is' if len(unknown) == 1 else 'are'} not among the "
                         f"candidate members on this split: {', '.join(candidates)} (runs as 'experiment/run'; run the "
                         "notebook that records them first, or set the parameter to None to choose on validation)")
    if count is not None and len(names) != count:
        raise ValueError(f"{parameter} names {len(names)} run(s) where {count} are needed ({names})")
    if len(set(names)) != len(names):
        raise ValueError(f"{parameter} names a run twice: {names}")
    return names


def best_member(names: Sequence[str], val_score: Mapping[str, float]) -> str:
    """The member of `names` with the best validation score (the first of equals): the single model an ensemble
    of them is compared with."""
    return max(names, key=lambda n: val_score[n])


def best_per_kind(runs: pd.DataFrame, kinds: Sequence[str], score: str = "val_auc") -> list[pd.Series] | None:
    """For each of `kinds` (e.g. ``dino``, ``clip``), the run of `runs` (:func:`binary_runs`) whose backbone or run
    name contains it (case-insensitive) with the best `score`; None when a kind has no run.

    Args:
        runs: registry runs with ``backbone``, ``run`` and `score` columns.
        kinds: the parts of a name that mark each kind.
        score: the validation score that picks the best run (higher is better).
    """
    picked = []
    for kind in kinds:
        match = runs[runs["backbone"].str.contains(kind, case=False) | runs["run"].str.contains(kind, case=False)]
        if match.empty:
            return None
        picked.append(match.sort_values(score, ascending=False).iloc[0])
    return picked


def missing_kinds(runs: pd.DataFrame, kinds: Sequence[str]) -> list[str]:
    """Those of `kinds` that no run of `runs` (:func:`binary_runs`) is of, by backbone or run name, as for
    :func:`best_per_kind`: what an ensemble of one run per kind still needs."""
    if runs.empty:
        return list(kinds)
    return [kind for kind in kinds
            if not (runs["backbone"].str.contains(kind, case=False) | runs["run"].str.contains(kind, case=False)).any()]


def load_specialists(found: pd.DataFrame, table: pd.DataFrame, image_ids: Mapping[str, Sequence[str]], *,
                     batch_size: int = 64, device: str = "auto") -> dict[str, list[Specialist]]:
    """The specialists of `found` (:func:`registry_specialists`), each predicting every image of `table` with its
    recorded model, as :class:`Specialist` per split, rows aligned to `image_ids` (the members' images).

    Args:
        found: ``experiment``, ``run``, ``trigger`` and ``classes`` of each specialist.
        table: the split catalog the specialists predict.
        image_ids: split -> the image ids, in the members' order (:attr:`Members.image_ids`).
        batch_size, device: as for :func:`skinlib.registry.predict_recorded`.
    """
    from .inputs import by_split
    from .registry import predict_recorded

    order = by_split(table)
    specialists: dict[str, list[Specialist]] = {split: [] for split in image_ids}
    for _, row in found.iterrows():
        proba = predict_recorded(row["experiment"], row["run"], table, batch_size=batch_size, device=device)
        for split in specialists:
            aligned = pd.DataFrame(proba[split], index=order[split]["image_id"]).loc[list(image_ids[split])].to_numpy()
            specialists[split].append(Specialist(row["trigger"], row["classes"], aligned))
    return specialists


# --- choosing the models to explain (09) ------------------------------------------------------------------

def runs_to_explain(split_name: str | None = None, runs: Sequence[str] | None = None, max_models: int = 2,
                    root=None) -> tuple[list[str], list[str]]:
    """09's choice of models, as ``experiment/run`` names: up to `max_models` RGB runs and the best grey-scale one,
    among `runs`, or else every 7-class run on `split_name` that kept its model, best validation balanced accuracy
    first.

    Returns:
        (RGB runs, grey-scale runs: at most one).

    Raises:
        RuntimeError: no run to explain.
    """
    from .registry import has_model, load_spec

    if runs is None:
        candidates = registry_runs(root, split_name=split_name)
        kept = [has_model(e, r, root) for e, r in zip(candidates["experiment"], candidates["run"])]
        candidates = candidates[pd.Series(kept, index=candidates.index, dtype=bool)]   # an empty list picks columns
        candidates = candidates.sort_values("balanced_accuracy", ascending=False)
        runs = [f"{e}/{r}" for e, r in zip(candidates["experiment"], candidates["run"])]
    if not runs:
        raise RuntimeError(f"no run in the registry kept its model (a 7-class run on split {split_name!r}): run 04, 05 "
                           "or 06 first (python run_all.py --only 04 05)")
    gray = {n: bool(load_spec(*n.split("/"), root=root).grayscale) for n in runs}
    return [n for n in runs if not gray[n]][:max_models], [n for n in runs if gray[n]][:1]
