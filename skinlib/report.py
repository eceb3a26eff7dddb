"""The report: every run of the results registry beside the papers' numbers, the measured cost of the studies'
image-level split, calibration of the best model, and the standalone HTML export.

Reads only the registry (:func:`skinlib.registry.gather`, :func:`skinlib.registry.load_run`); trains nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import metrics, paths, provenance, tables
from .data.labels import CLASSES
from .papers import ALL_REPORTED, METRICS as PAPER_METRICS, matches, reads_label
from .registry import SPLIT_COST, experiment_folders, gather, load_run

#: experiment -> family shown in the forest plot (in this order).
FAMILIES: dict[str, str] = {"random_forest": "random forest", "custom_cnn": "custom CNN", "transfer": "transfer",
                            "vision_language": "vision-language", "binary": "binary", "ensembles": "ensembles"}
#: Which study each experiment's runs belong to (a run may belong to several: its table shows it in each).
STUDIES: dict[str, str] = {
    "A": "HAM10000, 7 classes: random forest, custom CNN, ResNet-50, CLIP, BLIP (accuracy, weighted F1)",
    "B": "melanoma vs rest: ResNet-18, DINO, CLIP (validation accuracy, precision, recall, AUC, AP)",
    "C": "CLIP with text prompts (accuracy)",
    "D": "ISIC archive benign vs malignant with patient metadata (AUC)",
    "E": "HAM10000 transfer learning, ensembles, mix-model (accuracy, macro F1)",
}


def _ci(metrics_json: dict, key: str) -> tuple[float, float]:
    ci = (metrics_json.get("test_ci") or {}).get(key) or {}
    return ci.get("low", math.nan), ci.get("high", math.nan)


def reported_counts() -> dict[str, int]:
    """How many model and variant rows with a number each study reported, from :mod:`skinlib.papers` (study D's
    figures without a number in its text, and our additions beside them, not counted; a row shown twice, beside two
    of our runs, counted once: study C's base row stands beside our prompt head and beside its own model)."""
    rows = {(r["study"], r.get("source"), tuple((m, r.get(m)) for m in PAPER_METRICS if r.get(m) is not None
                                                and not _isnan(r.get(m))))
            for r in ALL_REPORTED}
    return {study: sum(s == study and bool(numbers) for s, _, numbers in rows) for study in STUDIES}


def task_of(run) -> tuple[str, float]:
    """A recorded run's task family and its chance balanced accuracy, from its probability columns: ``binary``
    (one column, chance 0.5) or ``<k>-class`` (chance 1/k; 7-class for HAM10000, 4-class for study D's subtypes).

    Args:
        run: a :class:`skinlib.registry.RunResult`.
    """
    file = run.folder / "predictions.csv"
    k = sum(c.startswith("p_") for c in pd.read_csv(file, nrows=0).columns) if file.is_file() else 0
    if k == 1:
        return "binary", 0.5
    return (f"{k}-class", 1 / k) if k else ("unknown", math.nan)


def _headline(run, metrics_json: dict, task: str) -> tuple[float, float, float]:
    """The balanced accuracy the forest plot shows, with its interval: of the argmax for a multiclass run, at the
    validation-chosen (Youden) threshold for a binary one."""
    if task == "binary":
        test = metrics_json.get("test", {})
        return (test.get("youden_balanced_accuracy", math.nan), test.get("youden_balanced_accuracy_low", math.nan),
                test.get("youden_balanced_accuracy_high", math.nan))
    low, high = _ci(metrics_json, "balanced_accuracy")
    return metrics_json.get("test", {}).get("balanced_accuracy", math.nan), low, high


def runs_table(root: Path | None = None, split: str = "test", experiment: str | None = None) -> pd.DataFrame:
    """One row per finished run: experiment, family, run, its parameters, `split` metrics, and the 95% bootstrap
    interval of the test balanced accuracy (``ba_low``, ``ba_high``) where the run recorded one; its ``task``
    (:func:`task_of`) and ``chance``, and the ``headline`` balanced accuracy the forest plot shows with its interval
    (``headline_low``, ``headline_high``: a binary run's at its validation-chosen threshold), and the validation
    accuracy; `experiment`: that experiment's runs only."""
    table = gather(experiment, root=root, split=split)
    if table.empty:
        return table
    table = table[table["experiment"] != SPLIT_COST]           # measurements, not models (see split_cost)
    rows = []
    for _, row in table.iterrows():
        run = load_run(row["experiment"], row["run"], root)
        if run.params.get("classes") and list(run.params["classes"]) != list(CLASSES):
            continue            # a specialist of a few classes (05 with `classes`): 08's mix-model uses it
        low, high = _ci(run.metrics, "balanced_accuracy")
        val = run.metrics.get("val", {})
        task, chance = task_of(run)
        headline = dict(zip(("headline", "headline_low", "headline_high"), _headline(run, run.metrics, task)))
        rows.append({**row.to_dict(), "family": FAMILIES.get(row["experiment"], row["experiment"]),
                     "ba_low": low, "ba_high": high, "val_balanced_accuracy": val.get("balanced_accuracy", math.nan),
                     "task": task, "chance": chance, **headline, "val_accuracy": val.get("accuracy", math.nan),
                     "params": run.params,
                     "data": run.info.get("data") or {}})
    return pd.DataFrame(rows)


def require_runs(runs: pd.DataFrame) -> None:
    """Raise, saying what to run first, when the registry holds no run to report (10 on an empty workspace).

    Raises:
        RuntimeError: `runs` (:func:`runs_table`) is empty.
    """
    if runs.empty:
        raise RuntimeError(f"the registry ({paths.results_dir()}) holds no finished run to report: "
                           "run the notebooks that train first (03-08: python run_all.py, or --only 03 04 05 06 07)")


def is_synthetic(data: dict | None) -> bool | None:
    """Whether a run read the built-in synthetic data, as its record says (``run.json``'s ``data``, written as it
    ran); None when the run recorded no dataset (recorded by an older skinlib: run it again)."""
    dataset = (data or {}).get("dataset") or {}
    return bool(dataset["synthetic"]) if "synthetic" in dataset else None


def banner(runs: pd.DataFrame) -> None:
    """What data the registry's runs read, from each run's record: the synthetic-data warning when any read
    synthetic data, which datasets the real ones read, and the runs whose record says nothing (never guessed)."""
    from IPython.display import display

    from .notebook import BANNER

    rows = list(runs.itertuples()) if len(runs) else []
    read = {f"{r.experiment}/{r.run}": is_synthetic(getattr(r, "data", None)) for r in rows}
    synthetic = [name for name, value in read.items() if value]
    unknown = [name for name, value in read.items() if value is None]
    real = sorted({f"{d.get('name') or d.get('layout', '?')} ({d.get('layout', '?')}, catalog {d.get('fingerprint', '?')})"
                   for r in rows for d in [((getattr(r, "data", None) or {}).get("dataset") or {})]
                   if d.get("synthetic") is False})
    if real:
        print(f"{len(read) - len(synthetic) - len(unknown)} run(s) on real data: " + "; ".join(real))
    if unknown:
        print(f"{len(unknown)} run(s) recorded no dataset (an older skinlib): what they read is not known; run them "
              "again: " + ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else ""))
    if not synthetic:
        return
    text = f"{BANNER} ({len(synthetic)} of {len(runs)} runs in the registry)"
    display({"text/html": f'<div style="background:#fff3cd;border:2px solid #e0a800;padding:8px 12px;'
                          f'font-weight:bold">&#9888; {text}</div>', "text/plain": f"WARNING: {text}"}, raw=True)


def split_of(params: dict | None, data: dict | None = None) -> str:
    """How a run's data was split, in words: from its record (``run.json``'s ``data``: what the split kept together
    on the data it divided), else from its ``split_name`` (02's names start with how they group):
    ``lesion-grouped``, ``patient-grouped``, ``lesion- and patient-grouped``, ``image-level (lesions leak)``,
    ``ungrouped (no lesion ids)`` for a grouped split of data without lesion ids, another name as it is, or ""."""
    from .data.splits import grouping_words

    split = (data or {}).get("split") or {}
    if "grouped_by" in split:
        return grouping_words(split["grouped_by"], split.get("group_by") or "auto")
    name = (params or {}).get("split_name")
    if not isinstance(name, str) or not name:
        return ""
    kind = name.split("-", 1)[0]
    return {"lesion": "lesion-grouped", "patient": "patient-grouped", "image": "image-level (lesions leak)",
            "ungrouped": grouping_words([]), "duplicates": grouping_words(["duplicates"]),
            "lesion+duplicates": grouping_words(["lesion", "duplicates"])}.get(kind, name)


def study_table(study: str, runs: pd.DataFrame, reported: Sequence[dict] = ALL_REPORTED,
                matched_only: bool = False) -> pd.DataFrame:
    """Each number `study` reported beside our run(s) of the same model and variant, on the same metric, with our
    balanced accuracy and its 95% interval as the headline; a binary run's thresholded numbers (sensitivity,
    precision, accuracy, ...) and balanced accuracy are at the threshold it chose on validation (Youden's J, shown),
    not at 0.5 (study D's confusion counts ``tp``, ``fn``, ``fp``: at 0.5, a sigmoid's default, as the paper's). Study
    D: one row per figure, with the paper's figure number; rows ``ours`` are our additions. A paper row without a
    run says "not run" (`matched_only`: is left out). Each run shows its split (:func:`split_of`), each paper
    row the split it was measured on (``paper split``: val or test of the study's own, see
    :data:`~skinlib.papers.PAPER_SPLITS`) and its table or figure; a run on the studies' image-level split comes
    after the grouped ones, since
    its number is inflated by lesions in both train and test."""
    rows = []
    for paper in (r for r in reported if r["study"] == study):
        metric_cols = [m for m in PAPER_METRICS if paper.get(m) is not None and not _isnan(paper.get(m))]
        ours_cols = [*(m for m in metric_cols if m != "train_accuracy"),
                     *(m for m in paper.get("ours", []) if m not in metric_cols)]
        matched = runs[runs.apply(lambda r: matches(paper, r), axis=1)] if len(runs) else runs
        base = {**({"figure": paper["figure"]} if paper.get("figure") else {}),
                "model": paper["model"], "variant": paper.get("variant") or paper.get("split", ""),
                "paper split": paper.get("split", ""), "paper source": paper.get("source", ""),
                **({"paper": paper["note"]} if paper.get("note") else {}),
                **{f"paper {m}": paper[m] for m in metric_cols}}
        if matched is None or matched.empty:
            if matched_only:
                continue
            rows.append({**base, "our run": f"not run: {paper.get('needs', 'needs the full profile')}"})
            continue
        order = matched.apply(lambda r: split_of(r.get("params"), r.get("data")).startswith("image-level"), axis=1)
        for _, run in matched.loc[order.sort_values(kind="stable").index].iterrows():
            thresholded = _at_chosen_threshold(run)
            rows.append({**base, "our run": f"{run['experiment']}/{run['run']}", "our split": split_of(run.get("params"), run.get("data")) or None,
                         "balanced accuracy [95% CI]": _fmt_ci(*_headline_of(run)),
                         **({"our threshold (chosen on val)": run["youden_threshold"]} if thresholded else {}),
                         **{f"ours {m}": _ours(run, m, thresholded) for m in ours_cols}})
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    table = _grouped(table.dropna(axis=1, how="all"))
    # too wide for the page: shown as two tables, the paper's columns then ours, each with the row's names
    table.attrs[tables.KEY_COLUMNS] = [c for c in ("figure", "model", "variant") if c in table]
    table.attrs[tables.COLUMN_GROUPS] = [[c for c in table if c.startswith("paper")],
                                         [c for c in table if c.startswith("our") or c.startswith("balanced accuracy")]]
    return table


def _grouped(table: pd.DataFrame) -> pd.DataFrame:
    """A study table's columns in two groups, the paper's then ours, each metric in :data:`PAPER_METRICS` order."""
    def rank(column: str) -> tuple[int, int]:
        for group, prefix in enumerate(("paper ", "ours ")):
            if column.startswith(prefix) and column[len(prefix):] in PAPER_METRICS:
                return (2 * group + 1, PAPER_METRICS.index(column[len(prefix):]))
        return (0, 0) if column in ("figure", "model", "variant", "paper") else (2, 0) if column.startswith("our") \
            or column.startswith("balanced accuracy") else (4, 0)
    return table[sorted(table.columns, key=rank)]


def _at_chosen_threshold(run: pd.Series) -> bool:
    """Whether a run is a binary one with a threshold 07 (or 08) chose on validation (``youden_threshold``)."""
    value = run.get("youden_threshold")
    return value is not None and not _isnan(value)


def _ours(run: pd.Series, metric: str, thresholded: bool) -> float:
    """Our number for a paper's `metric`: a binary run's thresholded metrics at its validation-chosen (Youden)
    threshold, never at 0.5 (the papers' thresholds were theirs; ours is chosen on validation, as 07 does)."""
    if thresholded and f"youden_{metric}" in run.index:
        return run.get(f"youden_{metric}", math.nan)
    return run.get(metric, math.nan)


def _headline_of(run: pd.Series) -> tuple:
    if "headline" in run.index and not _isnan(run.get("headline")):
        return run.get("headline"), run.get("headline_low"), run.get("headline_high")
    return run.get("balanced_accuracy"), run.get("ba_low"), run.get("ba_high")


def _isnan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _fmt_ci(value, low, high) -> str:
    if value is None or _isnan(value):
        return ""
    if low is None or _isnan(low):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


#: The forest plot's panels, in this order (other tasks follow).
TASK_ORDER = ("7-class", "binary", "4-class")
TASK_AXIS = {"binary": "test balanced accuracy at the validation-chosen (Youden) threshold"}


def forest_plot(runs: pd.DataFrame):
    """Balanced accuracy with its 95% bootstrap interval (resampling lesions) for every run: one panel per task
    family (7-class, binary, 4-class: :func:`task_of`), each with its own chance line; within a panel grouped by
    family, one row each; the legend lists the families in the order they appear, top to bottom. A model given each
    image's label (:func:`skinlib.papers.reads_label`) is no model of the diagnosis: it is left out (study C's table
    shows it)."""
    import matplotlib.pyplot as plt

    order = list(FAMILIES.values())
    table = runs.dropna(subset=["headline"]).copy() if len(runs) else runs
    if len(table) and "params" in table:       # a model given its label measures the leak: study C's table shows it
        table = table[~table["params"].map(lambda p: isinstance(p, dict) and reads_label(p))]
    tasks = [t for t in TASK_ORDER if len(table) and t in set(table["task"])]
    tasks += sorted(set(table["task"]) - set(tasks)) if len(table) else []
    heights = [max(1, int((table["task"] == t).sum())) for t in tasks] or [1]
    labels = [f"{e}/{r}" for e, r in zip(table["experiment"], table["run"])] if len(table) else []
    # wide enough for the longest row label (about 0.075 inch a character) beside an axis of 4.5 inches and the
    # legend (about 1.6 inches): a fixed width squeezed the axis to a sliver beside the full profile's long names
    width = max(8.0, 0.6 + 0.075 * max(map(len, labels), default=0) + 4.5 + 1.6)
    fig, axes = plt.subplots(len(heights), 1, figsize=(width, 0.32 * sum(heights) + 1.3 * len(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    palette = plt.get_cmap("tab10")
    for ax, task in zip(axes[:, 0], tasks):
        part = table[table["task"] == task].copy()
        part["rank"] = part["family"].map(lambda f: order.index(f) if f in order else len(order))
        part = part.sort_values(["rank", "headline"], ascending=[False, True]).reset_index(drop=True)
        legend = {}
        for i, row in part.iterrows():
            colour = palette(order.index(row["family"]) % 10 if row["family"] in order else 9)
            if not _isnan(row["headline_low"]):
                ax.plot([row["headline_low"], row["headline_high"]], [i, i], color=colour, lw=2)
            legend[row["family"]] = ax.plot(row["headline"], i, "o", color=colour)[0]
        ax.set_yticks(range(len(part)), [f"{r.experiment}/{r.run}" for r in part.itertuples()])
        chance = float(part["chance"].iloc[0])
        if not math.isnan(chance):
            ax.axvline(chance, ls="--", color="grey", lw=1)
            ax.text(chance, len(part) - 0.4, f" chance {chance:.2f}", color="grey", va="bottom", fontsize=8)
        top_down = list(reversed(legend))                     # rows are drawn bottom-up
        ax.legend([legend[f] for f in top_down], top_down, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
                  frameon=False)                      # beside the axes: it covers no row
        ax.set_title(task, loc="left", fontsize=10)
        ax.set_xlabel(TASK_AXIS.get(task, "test balanced accuracy") + " (95% interval, lesions resampled)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.6, len(part) + 0.2)
    if not tasks:
        axes[0, 0].text(0.5, 0.5, "no runs in the registry", ha="center", va="center")
    fig.tight_layout()
    return fig


def split_cost(grouped: str, image_level: str, n_boot: int = 2000, seed: int = 0,
               root: Path | None = None) -> pd.DataFrame | pd.Series:
    """How much the studies' image-level split inflates a result: the same model trained on the image-level split
    minus on the lesion-grouped split, in balanced accuracy (our headline) and in accuracy (what studies A, B and E
    reported), each with a 95% bootstrap interval. One row per metric; the index's name says which design was used.

    Two designs, chosen by what the runs hold:

    * cross-fitted runs (:func:`skinlib.split_cost.measure_split_cost`: every image predicted once under each kind
      of split): the two are compared on the same images, and the bootstrap resamples lesions (all images of a
      lesion together), which keeps the pairing;
    * runs on 02's two saved splits (each evaluated on its own test split): the two test sets are resampled
      independently, each by lesion.

    The groups are the predictions' ``group`` column (:func:`skinlib.metrics.bootstrap_groups`).

    When a run is missing, a Series saying which and how to make it.

    Args:
        grouped, image_level: ``experiment/run`` of the run on each split.
        n_boot: bootstrap resamples.
        seed: seed of the resampling.
    """
    base = Path(root) if root else paths.results_dir()
    for name in (grouped, image_level):
        provenance.note("registry-run", base / name)         # also when missing: its appearance is new input
    missing = [name for name in (grouped, image_level) if not (base / name / "run.json").is_file()]
    if missing:
        return pd.Series({"not run": ", ".join(missing),
                          "how": "cross-fitted: run 03_random_forest with split_cost_folds = 5 (its default); on "
                                 "02's splits: run 04_custom_cnn with split_name = the image-level split "
                                 "(params/full/04_custom_cnn.yaml has it as a run)"})
    tests = {}
    for name, key in (("lesion-grouped", grouped), ("image-level", image_level)):
        experiment, run = key.split("/", 1)
        pred = load_run(experiment, run, root).predictions
        tests[name] = pred[pred["split"] == "test"].reset_index(drop=True)
    lesion, image = tests["lesion-grouped"], tests["image-level"]
    paired = set(lesion["image_id"]) == set(image["image_id"]) and len(lesion) == len(image)
    if paired:
        image = image.set_index("image_id").loc[lesion["image_id"]].reset_index()
    named = (("lesion-grouped", lesion), ("image-level", image))
    y = {name: test["label"].to_numpy(int) for name, test in named}
    p = {name: test[[f"p_{c}" for c in CLASSES]].to_numpy(float).argmax(1) for name, test in named}
    groups = {name: metrics.bootstrap_groups(test) for name, test in named}
    if paired:
        counts = dict.fromkeys(y, metrics.bootstrap_counts(groups["lesion-grouped"], n_boot, seed))
        design = f"cross-fitted: the same {len(lesion)} images, resampled by lesion"
    else:
        counts = {name: metrics.bootstrap_counts(groups[name], n_boot, seed + i) for i, name in enumerate(y)}
        design = (f"each on its own test split ({len(lesion)} and {len(image)} images), each resampled by lesion, "
                  "independently")
    boots = {name: metrics.resampled_label_metrics(y[name], p[name], counts[name]) for name in y}
    rows = {}
    for metric in ("balanced_accuracy", "accuracy"):
        value = {name: metrics.label_metrics(y[name], p[name])[metric] for name in y}
        diff = boots["image-level"][metric] - boots["lesion-grouped"][metric]
        rows[metric] = {"lesion-grouped": value["lesion-grouped"], "image-level": value["image-level"],
                        "inflation": value["image-level"] - value["lesion-grouped"],
                        "low": float(np.quantile(diff, 0.025)), "high": float(np.quantile(diff, 0.975)),
                        "share of resamples without inflation": float((diff <= 0).mean())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = design                     # shown as the table's caption (skinlib.tables.CORNER_CHARS)
    return table


#: Experiments whose validation predictions chose something: 08 chose its ensembles' members, weights and the
#: mix-model's general model on validation, so their validation score is in-sample (and a vote's shares are not
#: probabilities). The calibration model is never one of them.
CHOSE_ON_VALIDATION: tuple[str, ...] = ("ensembles",)


def best_run(runs: pd.DataFrame, experiments: Sequence[str] | None = None, task: str = "7-class") -> pd.Series:
    """The run of `task` with the highest *validation* balanced accuracy (test data chooses nothing), among single
    models, whose validation predictions chose at most their own epoch (not 08's ensembles:
    :data:`CHOSE_ON_VALIDATION`), on grouped splits (on the image-level split, validation shares lesions with train,
    so its score is inflated too), that do not read their label (:func:`skinlib.papers.reads_label`).

    Args:
        runs: :func:`runs_table`.
        experiments: only these experiments (default: every one but :data:`CHOSE_ON_VALIDATION`).
        task: the task family (:func:`task_of`).
    """
    table = runs if experiments is None else runs[runs["experiment"].isin(experiments)]
    table = table[~table["experiment"].isin(CHOSE_ON_VALIDATION)] if len(table) else table
    if "task" in table:
        table = table[table["task"] == task]
    table = table.dropna(subset=["val_balanced_accuracy"])
    if "params" in table and len(table):
        table = table[~table.apply(lambda r: split_of(r["params"], r.get("data")).startswith("image-level")
                                   or reads_label(r["params"]), axis=1)]
    if table.empty:
        raise ValueError(f"no single {task} model on a grouped split with a validation balanced accuracy in the "
                         "registry (08's ensembles are not candidates: validation chose their members and weights)")
    return table.loc[table["val_balanced_accuracy"].idxmax()]


def reliability(experiment: str, run: str, split: str = "test", n_bins: int = metrics.ECE_BINS,
                root: Path | None = None) -> tuple[pd.DataFrame, float]:
    """Reliability table of a multiclass run's top-class confidence (per bin: count, mean confidence, accuracy)
    and its expected calibration error, with the registry's bins (:func:`skinlib.metrics.calibration_bins`): the
    ECE shown is the ``ece`` the run recorded."""
    pred = load_run(experiment, run, root).predictions
    part = pred[pred["split"] == split]
    proba = part[[f"p_{c}" for c in CLASSES]].to_numpy(float)
    y = part["label"].to_numpy(int)
    return metrics.calibration_bins(y, proba, n_bins), metrics.expected_calibration_error(y, proba, n_bins)


def reliability_diagram(table: pd.DataFrame, ece: float, title: str = "", ax=None):
    """Accuracy against confidence per bin (the diagonal is perfect calibration), bar width by bin."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    ax.plot(table["confidence"], table["accuracy"], "o-", label="this model")
    for conf, acc, n in zip(table["confidence"], table["accuracy"], table["n"]):
        ax.annotate(str(int(n)), (conf, acc), textcoords="offset points", xytext=(4, -10), fontsize=7, color="grey")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class)", ylabel="accuracy",
           title=f"{title}  ECE {ece:.3f}".strip())
    ax.legend(loc="upper left", fontsize=8)
    return ax.figure


def isic_csvs(root: Path | None = None) -> pd.DataFrame:
    """Every ISIC 2018 scoring CSV in the registry, with its run, number of images, and the test balanced accuracy
    the ISIC scorer's rule gives it (each row's largest value, :func:`skinlib.metrics.isic_decisions`) beside the one
    in the run's ``metrics.json`` (a file that scores another classifier than the one recorded shows here), and its
    path (from the folder that holds the registry: ``results/<experiment>/<run>/isic_test_predictions.csv``)."""
    base = Path(root) if root else paths.results_dir()
    for experiment in experiment_folders(base):
        provenance.note("registry-experiment", experiment)
    rows = []
    for path in sorted(base.glob("*/*/isic_test_predictions.csv")):
        if path.parent.name.startswith("."):
            continue
        run = load_run(path.parent.parent.name, path.parent.name, base)
        ids, decided = metrics.isic_decisions(path)
        pred = run.predictions
        truth = pred[pred["split"] == "test"].set_index("image_id")["label"].reindex(ids)
        scored = metrics.balanced_accuracy(truth.to_numpy(int), decided) if truth.notna().all() else math.nan
        recorded = run.metrics.get("test", {}).get("balanced_accuracy", math.nan)
        rows.append({"experiment": path.parent.parent.name, "run": path.parent.name, "images": len(ids),
                     "scorer's balanced accuracy": scored, "metrics.json": recorded,
                     "agree": bool(abs(scored - recorded) < 1e-9), "file": path.relative_to(base.parent).as_posix()})
    return pd.DataFrame(rows)


def export_html(notebook: str | Path, target: str | Path | None = None) -> Path:
    """A standalone HTML copy of an executed notebook for sharing (figures embedded; returns its path): no code
    cells, none of the exercises for a course (the ``## Exercises`` section and everything after it, model answers
    included), and the notebook's title (its first ``#`` heading) as the page's title."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    target = Path(target) if target else notebook.with_suffix(".html")
    nb = without_exercises(nbformat.read(notebook, as_version=4))
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page_title(nb, notebook.stem)}})
    return paths.write_atomic(target, body)


def without_exercises(nb):
    """`nb` without its exercises: the cells from its ``## Exercises`` heading on, and any cell nbgrader marks."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("## Exercises"):
            break
        if not cell.metadata.get("nbgrader"):
            cells.append(cell)
    nb.cells = cells
    return nb


def page_title(nb, default: str) -> str:
    """The text of the notebook's first ``#`` heading ("skinlib: 10 · The report"), else `default`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return f"skinlib: {line[2:].strip()}"
    return default
