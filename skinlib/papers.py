"""Numbers the studies report, each with the table or figure it comes from and the split it was measured on, and
the one rule that puts a registry run beside the paper row of the same model (:func:`matches`), used by 05, 06 and
the report alike. The studies measured on splits of their own (image-level, lesions leaking across them): context,
not targets our lesion-grouped protocol should match. See docs/studies.md; tests/test_papers.py holds a
transcription of the papers' tables against which every number here is checked."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

#: What each study's reported split was, in words (every study table labels the paper's numbers with it).
PAPER_SPLITS: dict[str, str] = {
    "A": "test: the study's own image-level 75/10/15 split",
    "B": "val: the study's own stratified 70/15/15 split (validation numbers)",
    "C": "val: the study's own split (validation and training accuracy)",
    "D": "own split (the text calls it test and validation)",
    "E": "val: the study's own 85/15 split, whose validation part also stopped training (no test set)",
}


def _transfer(backbone: str | list, head: str = "study_e", grayscale: bool = False,
              augment: str | tuple = ("study_e", "study_a"), localization: str | None = None) -> dict:
    return {"experiment": "transfer", "backbone": backbone, "head": head, "grayscale": grayscale, "augment": augment,
            "localization": localization}


def _table3(row: int, model: str, key: str, variant: str, accuracy: float, precision: float, recall: float,
            f1: float, backbone: str | list | None = None, **match) -> dict:
    """A row of study E's Table 3 (validation accuracy and macro precision / recall / F1); `key` is the model's
    short name, `backbone` the backbone parameter(s) of its runs (default: `key`)."""
    return {"study": "E", "model": model, "backbone": key, "variant": variant, "split": "val",
            "source": f"Table 3 row {row}", "accuracy": accuracy, "precision_macro": precision,
            "recall_macro": recall, "f1_macro": f1, "match": _transfer(backbone or key, **match)}


def _table2(model: str, backbone: str, accuracy: float, precision: float, recall: float, f1: float, match: dict) -> dict:
    """A row of study A's Table 2 (test accuracy and weighted precision / recall / F1)."""
    return {"study": "A", "model": model, "backbone": backbone, "variant": "", "split": "test", "source": "Table 2",
            "accuracy": accuracy, "precision_weighted": precision, "recall_weighted": recall, "f1_weighted": f1,
            "match": match}


_RESNET50 = ["resnet50", "resnet50.tv_in1k"]
_XCEPTION = ["xception", "legacy_xception.tf_in1k"]
_IRV2 = ["inception_resnet_v2"]

#: (study, model, variant) -> reported metrics, each with ``source`` (table / figure) and ``split``. Study A:
#: weighted precision / recall / F1; study E: macro. ``match``: the registry runs of the same model and variant
#: (see :func:`matches`).
REPORTED: list[dict] = [
    _table2("random forest (HOG+PCA+SMOTE)", "rf", 0.6740, 0.5520, 0.6740, 0.5755, {"experiment": "random_forest"}),
    _table2("custom residual CNN", "custom_cnn", 0.7614, 0.7324, 0.7614, 0.7433, {"experiment": "custom_cnn"}),
    {**_table2("ResNet-50 fine-tuned", "resnet50", 0.8516, 0.8612, 0.8516, 0.8485,
               _transfer(_RESNET50, head="linear", augment="study_a")), "variant": "rgb, aug"},
    _table3(1, "ResNet50", "resnet50", "rgb, aug", 0.89, 0.77, 0.81, 0.79, backbone=_RESNET50),
    _table3(2, "ResNet50", "resnet50", "gray, aug", 0.81, 0.63, 0.74, 0.67, backbone=_RESNET50, grayscale=True),
    _table3(3, "Xception", "xception", "rgb, aug", 0.87, 0.75, 0.82, 0.78, backbone=_XCEPTION),
    _table3(4, "Xception", "xception", "gray, aug", 0.80, 0.61, 0.71, 0.66, backbone=_XCEPTION, grayscale=True),
    _table3(5, "InceptionResNetV2", "inception_resnet_v2", "rgb, aug", 0.85, 0.74, 0.78, 0.76, backbone=_IRV2),
    _table3(6, "InceptionResNetV2", "inception_resnet_v2", "gray, aug", 0.83, 0.67, 0.73, 0.70, backbone=_IRV2,
            grayscale=True),
    _table3(7, "VGG19", "vgg19", "rgb, aug", 0.73, 0.57, 0.69, 0.61, backbone="vgg19"),
    _table3(8, "ResNet50", "resnet50", "rgb, no aug", 0.87, 0.77, 0.78, 0.76, backbone=_RESNET50, augment="none"),
    _table3(9, "ResNet50, lower extremity only", "resnet50", "rgb, aug, lower extremity", 0.88, 0.80, 0.79, 0.79,
            backbone=_RESNET50, localization="lower extremity"),
    {**_table3(0, "ViT-B/32", "vit_base_patch32_224", "rgb, aug", 0.85, 0.71, 0.80, 0.74, backbone="vit_base_patch32_224"),
     "source": "Table 2 row 1"},
    {**_table3(0, "ViT-B/32", "vit_base_patch32_224", "gray, aug", 0.71, 0.49, 0.67, 0.53, backbone="vit_base_patch32_224",
               grayscale=True), "source": "Table 2 row 2"},
    # vision-language models (notebook 06)
    {**_table2("CLIP ViT-B/32, text frozen, linear head", "clip", 0.8496, 0.8487, 0.8496, 0.8464,
               {"experiment": "vision_language", "family": "clip", "head": "linear", "freeze_fraction": 0.0}),
     "variant": "linear"},
    {**_table2("BLIP vision encoder (last layer trained), linear head", "blip", 0.8323, 0.8202, 0.8323, 0.8203,
               {"experiment": "vision_language", "family": "blip"}), "variant": "linear"},
    # study C: validation and training accuracy (Table 1); our prompt head stands for its prompt input, and beside
    # its base row the paper's own model, given each image's diagnosis prompt (06's label_prompt head: the leak)
    {"study": "C", "model": "CLIP with diagnosis prompts", "backbone": "clip", "variant": "prompt", "split": "val",
     "source": "Table 1 (Base)", "accuracy": 0.818, "train_accuracy": 0.835,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "weight_decay": 0.0, "augment": "none"}},
    {"study": "C", "model": "CLIP given each image's own diagnosis prompt (the paper's model: the label leaks)",
     "backbone": "clip", "variant": "label as input", "split": "val", "source": "Table 1 (Base)", "accuracy": 0.818,
     "train_accuracy": 0.835, "needs": "the full profile's C-clip-label-input (06 with head = label_prompt)",
     "match": {"experiment": "vision_language", "family": "clip", "head": "label_prompt"}},
    {"study": "C", "model": "CLIP with diagnosis prompts, weight decay 0.01", "backbone": "clip",
     "variant": "prompt, weight decay", "split": "val", "source": "Table 1 (Regularization)", "accuracy": 0.804,
     "train_accuracy": 0.812,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "weight_decay": 0.01}},
    {"study": "C", "model": "CLIP with diagnosis prompts, augmented", "backbone": "clip", "variant": "prompt, aug",
     "split": "val", "source": "Table 1 (Augmented Data)", "accuracy": 0.791, "train_accuracy": 0.788,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "augment": "study_c"}},
]

#: Study E's combinations (section 3.5.3: macro F1 only) and the mix-model beside its general model (Table 6).
REPORTED_ENSEMBLES: list[dict] = [
    {"study": "E", "method": "average", "model": "averaging ensemble, top 3 RGB models (ResNet50, Xception, "
     "InceptionResNetV2)", "split": "val", "source": "section 3.5.3", "f1_macro": 0.82,
     "match": {"experiment": "ensembles", "run_prefix": "average-top-"}},
    {"study": "E", "method": "vote", "model": "voting ensemble, top 3 RGB models", "split": "val",
     "source": "section 3.5.3", "f1_macro": 0.81, "match": {"experiment": "ensembles", "run_prefix": "vote-top-"}},
    {"study": "E", "method": "mix-model", "model": "ResNet50 + mel/nv, akiec/bcc, mel/bkl specialists", "split": "val",
     "source": "Table 6 row 2", "accuracy": 0.89, "precision_macro": 0.78, "recall_macro": 0.85, "f1_macro": 0.81,
     "match": {"experiment": "ensembles", "run_prefix": "mix-model"}},
    {"study": "E", "method": "general", "model": "ResNet50 RGB aug (the mix-model's general model)", "split": "val",
     "source": "Table 6 row 1", "accuracy": 0.88, "precision_macro": 0.77, "recall_macro": 0.81, "f1_macro": 0.79,
     "needs": "shown in 08 beside the mix-model"},
]

def _study_d(figure: str, model: str, variant: str, match: dict, ours: Sequence[str] = ("auc",), **numbers) -> dict:
    """One row of study D: a figure (or our addition, ``ours``) with the numbers its text gives, and the runs that
    stand beside it (07's parameters; every run of the ``isic_archive`` task)."""
    source = "our addition" if figure == "ours" else f"section VII, Fig. {figure}"
    return {"study": "D", "task": "isic_archive", "figure": figure, "model": model, "variant": variant, "split": "test",
            "source": source, **numbers, "ours": list(ours), "match": {"experiment": "binary", "task": "isic_archive", **match}}


_MOBILENET = {"model": "image", "backbone": "mobilenetv2"}
_NATURAL_TEST = {"evaluate_on": "natural", "regime": "undersampled"}
#: Study D, one row per figure (its Figs. 1-18; a figure's ROC curve and confusion matrix share a row): the AUCs and
#: confusion-matrix counts (true positives ``tp``, false negatives ``fn``, false positives ``fp``; ours at 0.5, as
#: a sigmoid output's default) its text gives, nothing read off a plot; rows ``ours`` are our additions beside them.
#: The paper's counts come from test sets of its own size, so compare rates, not counts.
STUDY_D: list[dict] = [
    _study_d("1", "metadata logistic regression (age, sex, size)", "precision-recall curve", {"model": "logreg"},
             ours=("average_precision", "auc")),
    _study_d("2", "metadata MLP (two dense ReLU layers, dropout)", "natural test", {"model": "mlp"}),
    _study_d("3", "small CNN (conv, max-pool, flatten, dense)", "balanced train and test",
             {"model": "image", "backbone": "small_cnn", "evaluate_on": "balanced"}),
    _study_d("4-6", "MobileNetV2, GAP + dense ReLU head", "balanced train and test, 5000 / 5000",
             {**_MOBILENET, "evaluate_on": "balanced", "balanced_subset": 5000, "augment": "none"},
             ours=("auc", "tp", "fn", "fp", "val_accuracy"), auc=0.4935, fp=38447, fn=330, val_accuracy=0.8455),
    _study_d("7", "MobileNetV2, GAP + dense ReLU head", "balanced train and test, 10000 per class",
             {**_MOBILENET, "evaluate_on": "balanced", "balanced_subset": 10000, "augment": "none"}),
    _study_d("8-9", "MobileNetV2, GAP + dense ReLU head", "balanced (undersampled) train, natural test",
             {**_MOBILENET, **_NATURAL_TEST, "augment": "none", "freeze_fraction": 0.0},
             ours=("auc", "tp", "fn", "fp"), auc=0.4985, tp=1276, fn=550, fp=32809),
    _study_d("10-11", "MobileNetV2, GAP + dense ReLU head", "augmented balanced train, natural test",
             {**_MOBILENET, **_NATURAL_TEST, "augment": "study_e", "freeze_fraction": 0.0},
             ours=("auc", "tp"), auc=0.5034, tp=1020),
    _study_d("12-13", "MobileNetV2, base frozen", "augmented balanced train, natural test",
             {**_MOBILENET, **_NATURAL_TEST, "augment": "study_e", "freeze_fraction": 1.0}, auc=0.5052),
    _study_d("14", "ResNet-50, top layers fine-tuned", "balanced train, natural test",
             {"model": "image", "backbone": "resnet50", **_NATURAL_TEST, "freeze_fraction": 0.81},
             ours=("auc", "tp", "fn"), tp=1643, fn=183),
    _study_d("15-16", "MobileNetV2 + metadata (concatenated after pooling)", "balanced train, natural test",
             {"model": "fusion", "backbone": "mobilenetv2", **_NATURAL_TEST},
             ours=("auc", "tp", "fn"), auc=0.4699, fn=1423, tp=403),
    _study_d("17", "multiclass: benign + 4 malignant subtypes, base frozen", "confusion matrix",
             {"model": "benign-subtypes", "freeze_fraction": 1.0}, ours=("balanced_accuracy", "f1_macro")),
    _study_d("18", "multiclass: benign + 4 malignant subtypes, base fine-tuned", "confusion matrix",
             {"model": "benign-subtypes", "freeze_fraction": 0.0}, ours=("balanced_accuracy", "f1_macro")),
    _study_d("ours", "MobileNetV2, weighted sampler instead of undersampling", "balanced train, natural test",
             {**_MOBILENET, "evaluate_on": "natural", "regime": "balanced"}),
    _study_d("ours", "ResNet-50, fully fine-tuned", "balanced train, natural test",
             {"model": "image", "backbone": "resnet50", **_NATURAL_TEST, "freeze_fraction": 0.0}),
    _study_d("ours", "multiclass among the 4 malignant subtypes only", "confusion matrix",
             {"model": "subtypes"}, ours=("balanced_accuracy", "f1_macro")),
]


#: Binary tasks. Study B: validation numbers (melanoma vs rest; Table 1, average precision in section 5.4).
#: Study D: its figures (:data:`STUDY_D`; the AUCs near 0.5: what was run, not a bar to clear).
REPORTED_BINARY: list[dict] = [
    {"study": "B", "task": "melanoma", "model": "ResNet-18 (ImageNet, one logit)", "split": "val", "source": "Table 1",
     "accuracy": 0.942, "precision": 0.788, "sensitivity": 0.647, "auc": 0.711,
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone": ["resnet18", "resnet18.tv_in1k"],
               "freeze_fraction": 0.0}},
    {"study": "B", "task": "melanoma", "model": "DINO ViT-S/16, linear head", "split": "val", "source": "Table 1",
     "sources": {"average_precision": "section 5.4, Figure 7"},
     "accuracy": 0.760, "precision": 0.290, "sensitivity": 0.796, "auc": 0.865, "average_precision": 0.441,
     "match": {"experiment": "binary", "task": "melanoma", "model": "image",
               "backbone": ["vit_small_patch16_224.dino", "dino"]}},
    {"study": "B", "task": "melanoma", "model": "CLIP ViT-B/32 + MLP head", "split": "val", "source": "Table 1",
     "sources": {"average_precision": "section 5.4, Figure 7"},
     "accuracy": 0.791, "precision": 0.320, "sensitivity": 0.782, "auc": 0.877, "average_precision": 0.415,
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone_prefix": "clip-",
               "freeze_fraction": 0.0}},
    {"study": "B", "task": "melanoma", "model": "CLIP ViT-B/32, image tower frozen (linear probe)", "split": "val",
     "source": "section 5.7", "note": "fine-tuning beat linear probing (no number given)",
     "ours": ["auc", "average_precision"],
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone_prefix": "clip-",
               "freeze_fraction": 1.0}},
    {"study": "B", "task": "melanoma", "model": "ensemble of DINO and CLIP (average of the two)", "split": "test",
     "source": "sections 5.7 and 6 (future work)", "note": "study B proposed it as future work: no number to match",
     "ours": ["auc", "average_precision", "sensitivity", "precision"],
     "needs": "07's DINO and CLIP melanoma runs (full profile), then 08",
     "match": {"experiment": "ensembles", "run_prefix": "dino-clip"}},
    *STUDY_D,
]

#: Every metric a paper row may hold, in the order tables show them.
METRICS = ("accuracy", "train_accuracy", "precision_weighted", "recall_weighted", "f1_weighted", "precision_macro",
           "recall_macro", "f1_macro", "precision", "sensitivity", "auc", "average_precision", "val_accuracy", "tp",
           "fn", "fp")
#: Everything the studies reported: 7-class models, binary tasks, ensembles.
ALL_REPORTED: list[dict] = [*REPORTED, *REPORTED_BINARY, *REPORTED_ENSEMBLES]
#: The run parameters the ``match`` rules read (what 05 and 06 gather from the registry for :func:`beside`).
MATCH_KEYS: tuple[str, ...] = tuple(sorted({k.removesuffix("_prefix") for r in ALL_REPORTED
                                            for k in (r.get("match") or {}) if k not in ("experiment", "run_prefix")}
                                           | {"tta_of", "train_fraction"}))   # a variant matches no row


def numbers(rows: list[dict] = ALL_REPORTED) -> list[dict]:
    """Every number of `rows`, one entry each: study, model, variant, metric, value and source (table / figure)."""
    out = []
    for row in rows:
        for metric in METRICS:
            value = row.get(metric)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                out.append({"study": row["study"], "model": row["model"], "variant": row.get("variant", ""),
                            "metric": metric, "value": value,
                            "source": (row.get("sources") or {}).get(metric, row["source"])})
    return out


def matches(paper: dict, run) -> bool:
    """Whether a registry run is a run of the paper row's model and variant: every key of the row's ``match`` equals
    the run's parameter (or its experiment); a list means any of its values; a key ``<name>_prefix`` asks the run's
    name (``run_prefix``) or parameter ``<name>`` to start with the value. The run is a mapping (a row of
    :func:`skinlib.registry.gather`) holding its parameters under ``params`` or as columns of their own. A variant
    (a test-time-augmented prediction, a fit on a share of the training labels) matches no paper row."""
    want = paper.get("match") or {}
    params = run.get("params")
    params = params if isinstance(params, dict) else run
    if _variant(params):
        return False
    for key, value in want.items():
        if key.endswith("_prefix"):
            have = run.get("run", "") if key == "run_prefix" else params.get(key[:-len("_prefix")])
            if not str(have or "").startswith(value):
                return False
            continue
        have = run.get("experiment") if key == "experiment" else params.get(key)
        if isinstance(have, float) and math.isnan(have):
            have = None
        if isinstance(value, (list, tuple, set)):
            if have not in value:
                return False
        elif have != value:
            return False
    return bool(want)


def _variant(params) -> bool:
    """Whether a run is a variant of a model rather than the model as its study ran it: a test-time-augmented
    prediction (``tta_of``) or a fit on a share of the training labels (``train_fraction`` below 1)."""
    def given(value) -> bool:
        return value is not None and not (isinstance(value, float) and math.isnan(value)) and value != ""

    fraction = params.get("train_fraction")
    return given(params.get("tta_of")) or (given(fraction) and float(fraction) < 1)


#: The head of study C's model as its paper ran it (06's ``label_prompt``): it reads the label it predicts.
LABEL_INPUT_HEAD = "label_prompt"


def reads_label(params) -> bool:
    """Whether a run's model was given each image's label as an input (06's ``label_prompt`` head: study C's model,
    kept as an ablation that measures the leak). Its scores measure the leak, not a diagnosis: it stands beside
    study C's rows in the report and is never an ensemble member, a Grad-CAM subject or the calibration model."""
    return params.get("head") == LABEL_INPUT_HEAD


def _without_empty_columns(table: pd.DataFrame) -> pd.DataFrame:
    """`table` without the columns that hold nothing (all NaN or empty strings)."""
    empty = [c for c in table.columns if table[c].replace("", float("nan")).isna().all()]
    return table.drop(columns=empty)


def reported(backbone: str | None = None) -> pd.DataFrame:
    """The studies' reported numbers of 7-class models, optionally for one backbone (columns it has no number in
    left out), each with its split and source."""
    table = pd.DataFrame(REPORTED).drop(columns="match")
    return _without_empty_columns(table[table["backbone"] == backbone] if backbone else table).reset_index(drop=True)


def compare(metrics: dict[str, float], backbone: str, label: str = "this run (test)") -> pd.DataFrame:
    """One run's test metrics in a row above each number a study reported for the same model.

    Args:
        metrics: the run's test metrics (``accuracy``, ``balanced_accuracy``, ``f1_weighted``, ...).
        backbone: the model's key in :data:`REPORTED` (``custom_cnn``, ``rf``, ``resnet50``, ...).
        label: the name of the run's row.
    """
    papers = reported(backbone)
    columns = ["balanced_accuracy", *(c for c in METRICS if c in papers and c != "train_accuracy")]
    rows = {label: {c: metrics.get(c) for c in columns}}
    for _, paper in papers.iterrows():
        name = f"study {paper['study']}, reported ({paper['split']})" + (f", {paper['variant']}" if paper.get("variant") else "")
        rows[name] = {c: paper.get(c) for c in columns}
    return pd.DataFrame(rows).T.astype(float)


def reported_ensembles() -> pd.DataFrame:
    """Study E's reported ensemble and mix-model numbers (one row per method)."""
    return pd.DataFrame(REPORTED_ENSEMBLES).drop(columns=["match", "needs"], errors="ignore")


def beside(runs: pd.DataFrame, rows: list[dict] = REPORTED) -> pd.DataFrame:
    """Each registry run (a row of :func:`skinlib.registry.gather` with ``experiment`` and the parameters of
    :data:`MATCH_KEYS`) beside every paper row it :func:`matches`, on the paper's metrics; a run no paper row matches
    has one row with empty paper columns. Columns empty in every row are left out.

    Args:
        runs: registry runs.
        rows: the paper rows to look in (default: the 7-class models of every study).
    """
    ours = ("balanced_accuracy", "accuracy", "val_accuracy", "f1_weighted", "f1_macro")
    out = []
    for _, run in runs.iterrows():
        base = {"experiment": run.get("experiment", ""), "run": run["run"], **{m: run.get(m) for m in ours}}
        found = [paper for paper in rows if matches(paper, run)]
        for paper in found or [None]:
            if paper is None:
                out.append(base)
                continue
            out.append({**base, "paper": f"study {paper['study']}: {paper['model']}"
                        + (f" ({paper['variant']})" if paper.get("variant") else ""),
                        "paper_split": paper.get("split", ""), "paper_source": paper.get("source", ""),
                        **{f"paper_{m}": paper[m] for m in METRICS if m in paper}})
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table = table.drop(columns="experiment") if (table["experiment"].astype(str) == "").all() else table
    return _without_empty_columns(table).set_index("run")


def reported_binary(task: str | None = None) -> pd.DataFrame:
    """The binary studies' reported numbers (B and D), optionally for one task."""
    table = pd.DataFrame([r for r in REPORTED_BINARY if "note" not in r]).drop(columns=["match", "needs", "sources"],
                                                                                  errors="ignore")
    return _without_empty_columns(table[table["task"] == task] if task else table).reset_index(drop=True)
