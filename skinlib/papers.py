"""Numbers the studies report (test or validation sets of their own, image-level splits): context, not targets
our lesion-grouped protocol should match. See docs/studies.md."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

def _transfer(backbone: str, head: str, grayscale: bool = False, augment: str | tuple = ("study_e", "study_a")) -> dict:
    return {"experiment": "transfer", "backbone": backbone, "head": head, "grayscale": grayscale, "augment": augment,
            "localization": None}


#: (study, model, variant) -> reported metrics. Study A: weighted F1; study E: macro F1. ``match``: the registry
#: runs of the same model and variant (experiment and parameters), for the report.
REPORTED: list[dict] = [
    {"study": "A", "model": "random forest (HOG+PCA+SMOTE)", "backbone": "rf", "variant": "", "accuracy": 0.6740, "f1_weighted": 0.5755,
     "match": {"experiment": "random_forest"}},
    {"study": "A", "model": "custom residual CNN", "backbone": "custom_cnn", "variant": "", "accuracy": 0.7614, "f1_weighted": 0.7433,
     "match": {"experiment": "custom_cnn"}},
    {"study": "A", "model": "ResNet-50 fine-tuned", "backbone": "resnet50", "variant": "rgb, aug", "accuracy": 0.8516, "f1_weighted": 0.8485,
     "match": _transfer("resnet50", "linear")},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "rgb, aug", "accuracy": 0.885, "f1_macro": 0.79,
     "match": _transfer("resnet50", "study_e")},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "gray, aug", "accuracy": 0.81, "f1_macro": 0.67,
     "match": _transfer("resnet50", "study_e", grayscale=True)},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "rgb, no aug", "accuracy": 0.87, "f1_macro": 0.76,
     "match": _transfer("resnet50", "study_e", augment="none")},
    {"study": "E", "model": "Xception", "backbone": "xception", "variant": "rgb, aug", "accuracy": 0.87, "f1_macro": 0.78,
     "match": _transfer("xception", "study_e")},
    {"study": "E", "model": "InceptionResNetV2", "backbone": "inception_resnet_v2", "variant": "rgb, aug", "accuracy": 0.85, "f1_macro": 0.76,
     "match": _transfer("inception_resnet_v2", "study_e")},
    {"study": "E", "model": "VGG19", "backbone": "vgg19", "variant": "rgb, aug", "accuracy": 0.73, "f1_macro": 0.61,
     "match": _transfer("vgg19", "study_e")},
    {"study": "E", "model": "ViT-B/32", "backbone": "vit_base_patch32_224", "variant": "rgb, aug", "accuracy": 0.85, "f1_macro": 0.74,
     "match": _transfer("vit_base_patch32_224", "study_e")},
    # vision-language models (notebook 06); study C reports validation accuracy only
    {"study": "A", "model": "CLIP ViT-B/32, text frozen, linear head", "backbone": "clip", "variant": "linear", "accuracy": 0.8496, "f1_weighted": 0.8464,
     "match": {"experiment": "vision_language", "family": "clip", "head": "linear"}},
    {"study": "A", "model": "BLIP vision encoder (last layer trained), linear head", "backbone": "blip", "variant": "linear", "accuracy": 0.8323, "f1_weighted": 0.8203,
     "match": {"experiment": "vision_language", "family": "blip"}},
    {"study": "C", "model": "CLIP with diagnosis prompts", "backbone": "clip", "variant": "prompt", "split": "val", "accuracy": 0.818,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "weight_decay": 0.0, "augment": "none"}},
    {"study": "C", "model": "CLIP with diagnosis prompts, weight decay 0.01", "backbone": "clip", "variant": "prompt, weight decay", "split": "val", "accuracy": 0.804,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "weight_decay": 0.01}},
    {"study": "C", "model": "CLIP with diagnosis prompts, augmented", "backbone": "clip", "variant": "prompt, aug", "split": "val", "accuracy": 0.791,
     "match": {"experiment": "vision_language", "family": "clip", "head": "prompt", "augment": "study_c"}},
]

#: Study E's combinations (section 3.5): averaging and voting of its top 3 RGB models (ResNet50, Xception,
#: InceptionResNetV2), and the mix-model (ResNet50 RGB aug + three specialists; macro precision / recall / F1).
REPORTED_ENSEMBLES: list[dict] = [
    {"study": "E", "method": "average", "model": "averaging ensemble, top 3 RGB models", "accuracy": 0.90, "f1_macro": 0.82,
     "match": {"experiment": "ensembles", "run_prefix": "average-top-"}},
    {"study": "E", "method": "vote", "model": "voting ensemble, top 3 RGB models", "accuracy": 0.89, "f1_macro": 0.81,
     "match": {"experiment": "ensembles", "run_prefix": "vote-top-"}},
    {"study": "E", "method": "mix-model", "model": "ResNet50 + mel/nv, akiec/bcc, mel/bkl specialists", "accuracy": 0.89,
     "precision_macro": 0.78, "recall_macro": 0.85, "f1_macro": 0.81, "match": {"experiment": "ensembles", "run_prefix": "mix-model"}},
    {"study": "E", "method": "general", "model": "ResNet50 RGB aug (the mix-model's general model)", "accuracy": 0.88,
     "precision_macro": 0.77, "recall_macro": 0.81, "f1_macro": 0.79, "needs": "shown in 08 beside the mix-model"},
]


def _without_empty_columns(table: pd.DataFrame) -> pd.DataFrame:
    """`table` without the columns that hold nothing (all NaN or empty strings)."""
    empty = [c for c in table.columns if table[c].replace("", float("nan")).isna().all()]
    return table.drop(columns=empty)


def reported(backbone: str | None = None) -> pd.DataFrame:
    """The studies' reported numbers, optionally for one backbone (columns it has no number in left out)."""
    table = pd.DataFrame(REPORTED).drop(columns="match")
    table.insert(3, "split", table.pop("split").fillna("test"))
    return _without_empty_columns(table[table["backbone"] == backbone] if backbone else table).reset_index(drop=True)


def compare(metrics: dict[str, float], backbone: str, label: str = "this run (test)") -> pd.DataFrame:
    """One run's test metrics in a row above each number a study reported for the same model.

    Args:
        metrics: the run's test metrics (``accuracy``, ``balanced_accuracy``, ``f1_weighted``, ...).
        backbone: the model's key in :data:`REPORTED` (``custom_cnn``, ``rf``, ``resnet50``, ...).
        label: the name of the run's row.
    """
    papers = reported(backbone)
    columns = ["balanced_accuracy", *(c for c in ("accuracy", "f1_weighted", "f1_macro") if c in papers)]
    rows = {label: {c: metrics.get(c) for c in columns}}
    for _, paper in papers.iterrows():
        name = f"study {paper['study']}, reported" + (f" ({paper['variant']})" if paper.get("variant") else "")
        rows[name] = {c: paper.get(c) for c in columns}
    return pd.DataFrame(rows).T.astype(float)


def reported_ensembles() -> pd.DataFrame:
    """Study E's reported ensemble and mix-model numbers (one row per method)."""
    return pd.DataFrame(REPORTED_ENSEMBLES).drop(columns=["match", "needs"], errors="ignore")


def variant_of(grayscale: bool, augment: str) -> str:
    """The studies' wording of a run's variant, e.g. ``rgb, aug``."""
    return f"{'gray' if grayscale else 'rgb'}, {'no aug' if augment in (None, 'none') else 'aug'}"


def beside(runs: pd.DataFrame) -> pd.DataFrame:
    """Each registry run (from :func:`skinlib.registry.gather` with backbone, grayscale and augment) with the
    paper's number for the same backbone and variant (study E first, else study A), where one exists; one row
    per run (the index), columns no run has a number in left out."""
    table = reported()
    rows = []
    for _, run in runs.iterrows():
        variant = variant_of(bool(run.get("grayscale")), run.get("augment"))
        match = table[(table["backbone"] == run.get("backbone")) & (table["variant"] == variant)]
        match = match.sort_values("study", ascending=False).head(1)
        paper = match.iloc[0] if len(match) else None
        f1_kind = "f1_macro" if paper is not None and paper["study"] == "E" else "f1_weighted"
        rows.append({
            "run": run["run"], "variant": variant,
            "balanced_accuracy": run.get("balanced_accuracy"), "accuracy": run.get("accuracy"),
            "f1_macro": run.get("f1_macro"), "f1_weighted": run.get("f1_weighted"),
            "paper": f"study {paper['study']}" if paper is not None else "",
            "paper_accuracy": paper["accuracy"] if paper is not None else float("nan"),
            "paper_f1": paper[f1_kind] if paper is not None else float("nan"),
            "paper_f1_kind": f1_kind.replace("f1_", "") if paper is not None else "",
        })
    return _without_empty_columns(pd.DataFrame(rows)).set_index("run") if rows else pd.DataFrame(rows)


def vision_language_variant(family: str, head: str | None, weight_decay: float | None = 0.0, augment: str | None = "none") -> str:
    """The studies' wording of a vision-language run: ``linear`` (study A), ``prompt`` with ``weight decay`` or
    ``aug`` (study C's base, regularised and augmented runs; our prompt head stands for their prompts)."""
    if family == "blip" or head != "prompt":
        return head or "linear"
    extras = (["weight decay"] if weight_decay else []) + ([] if augment in (None, "none") else ["aug"])
    return ", ".join(["prompt", *extras[:1]])


def beside_all(vision_language: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """Vision-language runs (from :func:`skinlib.registry.gather` with family, head, weight_decay, augment and a
    ``val_accuracy`` column) and transfer runs (as for :func:`beside`), each with the paper's number for the same
    model and variant where one exists; columns empty in every row are left out.

    Args:
        vision_language: runs of the ``vision_language`` experiment.
        transfer: runs of the ``transfer`` experiment.
    """
    table = reported()
    rows = []
    for _, run in vision_language.iterrows():
        family = run.get("family") or ""
        variant = "zero-shot" if run.get("head") == "zero-shot" else vision_language_variant(
            family, run.get("head"), run.get("weight_decay"), run.get("augment"))
        match = table[(table["backbone"] == family) & (table["variant"] == variant)]
        paper = match.iloc[0] if len(match) else None
        rows.append({
            "experiment": "vision_language", "run": run["run"], "model": family, "variant": variant,
            "balanced_accuracy": run.get("balanced_accuracy"), "accuracy": run.get("accuracy"),
            "val_accuracy": run.get("val_accuracy"), "f1_macro": run.get("f1_macro"), "f1_weighted": run.get("f1_weighted"),
            "paper": f"study {paper['study']}" if paper is not None else "",
            "paper_split": paper["split"] if paper is not None else "",
            "paper_accuracy": paper["accuracy"] if paper is not None else float("nan"),
            "paper_f1": paper.get("f1_weighted", float("nan")) if paper is not None else float("nan"),
            "paper_f1_kind": "weighted" if paper is not None and pd.notna(paper.get("f1_weighted")) else "",
        })
    if len(transfer):
        backbones = dict(zip(transfer["run"], transfer["backbone"]))
        for _, row in beside(transfer).reset_index().iterrows():
            rows.append({"experiment": "transfer", "model": backbones.get(row["run"]), **row.to_dict(),
                         "paper_split": "test" if row.get("paper") else ""})
    out = pd.DataFrame(rows)
    empty = [c for c in out.columns if out[c].isna().all() or (out[c].astype(str) == "").all()]
    return out.drop(columns=empty)


    return pd.DataFrame(rows)


def _study_d(figure: str, model: str, variant: str, match: dict, ours: Sequence[str] = ("auc",), **numbers) -> dict:
    """One row of study D: a figure (or our addition, ``ours``) with the numbers its text gives, and the runs that
    stand beside it (07's parameters; every run of the ``isic_archive`` task)."""
    return {"study": "D", "task": "isic_archive", "figure": figure, "model": model, "variant": variant, "split": "test",
            **numbers, "ours": list(ours), "match": {"experiment": "binary", "task": "isic_archive", **match}}


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

#: Binary tasks: study B's validation numbers (melanoma vs rest) and study D's figures (:data:`STUDY_D`).
REPORTED_BINARY: list[dict] = [
    *STUDY_D,
    {"study": "B", "task": "melanoma", "model": "ResNet-18 (ImageNet, one logit)", "split": "val", "accuracy": 0.942, "precision": 0.788, "sensitivity": 0.647, "auc": 0.711, "average_precision": float("nan"),
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone": "resnet18"}},
    {"study": "B", "task": "melanoma", "model": "DINO ViT-S/16, linear head", "split": "val", "accuracy": 0.760, "precision": 0.290, "sensitivity": 0.796, "auc": 0.865, "average_precision": 0.441,
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone": ["vit_small_patch16_224.dino", "dino"]}},
    {"study": "B", "task": "melanoma", "model": "CLIP ViT-B/32 + MLP head", "split": "val", "accuracy": 0.791, "precision": 0.320, "sensitivity": 0.782, "auc": 0.877, "average_precision": 0.415,
     "match": {"experiment": "binary", "task": "melanoma", "model": "image", "backbone_prefix": "clip-"}},
    {"study": "B", "task": "melanoma", "model": "ensemble of DINO and CLIP (average of the two)", "split": "test",
     "note": "study B proposed it as future work: no number to match", "ours": ["auc", "average_precision",
     "sensitivity", "precision"], "needs": "07's DINO and CLIP melanoma runs (full profile), then 08",
     "match": {"experiment": "ensembles", "run_prefix": "dino-clip"}},
]


def reported_binary(task: str | None = None) -> pd.DataFrame:
    """The binary studies' reported numbers (study B), optionally for one task (empty for ``isic_archive``)."""
    table = pd.DataFrame([r for r in REPORTED_BINARY if r["study"] == "B" and "note" not in r]).drop(
        columns=["match", "needs"], errors="ignore")
    return table[table["task"] == task].reset_index(drop=True) if task else table
