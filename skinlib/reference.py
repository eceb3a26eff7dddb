"""Numbers the studies report (test or validation sets of their own, image-level splits): context, not targets
our lesion-grouped protocol should match."""

from __future__ import annotations

import pandas as pd

#: (study, model, variant) -> reported metrics. Study A: weighted F1; study E: macro F1.
REPORTED: list[dict] = [
    {"study": "A", "model": "random forest (HOG+PCA+SMOTE)", "backbone": "rf", "variant": "", "accuracy": 0.6740, "f1_weighted": 0.5755},
    {"study": "A", "model": "custom residual CNN", "backbone": "custom_cnn", "variant": "", "accuracy": 0.7614, "f1_weighted": 0.7433},
    {"study": "A", "model": "ResNet-50 fine-tuned", "backbone": "resnet50", "variant": "rgb, aug", "accuracy": 0.8516, "f1_weighted": 0.8485},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "rgb, aug", "accuracy": 0.885, "f1_macro": 0.79},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "gray, aug", "accuracy": 0.81, "f1_macro": 0.67},
    {"study": "E", "model": "ResNet50", "backbone": "resnet50", "variant": "rgb, no aug", "accuracy": 0.87, "f1_macro": 0.76},
    {"study": "E", "model": "Xception", "backbone": "xception", "variant": "rgb, aug", "accuracy": 0.87, "f1_macro": 0.78},
    {"study": "E", "model": "InceptionResNetV2", "backbone": "inception_resnet_v2", "variant": "rgb, aug", "accuracy": 0.85, "f1_macro": 0.76},
    {"study": "E", "model": "VGG19", "backbone": "vgg19", "variant": "rgb, aug", "accuracy": 0.73, "f1_macro": 0.61},
    {"study": "E", "model": "ViT-B/32", "backbone": "vit_base_patch32_224", "variant": "rgb, aug", "accuracy": 0.85, "f1_macro": 0.74},
]


def reported(backbone: str | None = None) -> pd.DataFrame:
    """The studies' reported numbers, optionally for one backbone."""
    table = pd.DataFrame(REPORTED)
    return table[table["backbone"] == backbone] if backbone else table


def variant_of(grayscale: bool, augment: str) -> str:
    """The studies' wording of a run's variant, e.g. ``rgb, aug``."""
    return f"{'gray' if grayscale else 'rgb'}, {'no aug' if augment in (None, 'none') else 'aug'}"


def beside(runs: pd.DataFrame) -> pd.DataFrame:
    """Each registry run (from :func:`skinlib.results.gather` with backbone, grayscale and augment) with the
    paper's number for the same backbone and variant (study E first, else study A), where one exists."""
    table = reported()
    rows = []
    for _, run in runs.iterrows():
        variant = variant_of(bool(run.get("grayscale")), run.get("augment"))
        match = table[(table["backbone"] == run.get("backbone")) & (table["variant"] == variant)]
        match = match.sort_values("study", ascending=False).head(1)
        paper = match.iloc[0] if len(match) else None
        f1_kind = "f1_macro" if paper is not None and paper["study"] == "E" else "f1_weighted"
        rows.append({
            "run": run["run"], "backbone": run.get("backbone"), "variant": variant,
            "balanced_accuracy": run.get("balanced_accuracy"), "accuracy": run.get("accuracy"),
            "f1_macro": run.get("f1_macro"), "f1_weighted": run.get("f1_weighted"),
            "paper": f"study {paper['study']}" if paper is not None else "",
            "paper_accuracy": paper["accuracy"] if paper is not None else float("nan"),
            "paper_f1": paper[f1_kind] if paper is not None else float("nan"),
            "paper_f1_kind": f1_kind.replace("f1_", "") if paper is not None else "",
        })
    return pd.DataFrame(rows)


#: Binary tasks: study B's validation numbers (melanoma vs rest); study D reports AUCs near 0.5 and is a list of
#: experiments rather than numbers to match.
REPORTED_BINARY: list[dict] = [
    {"study": "B", "task": "melanoma", "model": "ResNet-18 (ImageNet, one logit)", "split": "val", "accuracy": 0.942, "precision": 0.788, "sensitivity": 0.647, "auc": 0.711, "average_precision": float("nan")},
    {"study": "B", "task": "melanoma", "model": "DINO ViT-S/16, linear head", "split": "val", "accuracy": 0.760, "precision": 0.290, "sensitivity": 0.796, "auc": 0.865, "average_precision": 0.441},
    {"study": "B", "task": "melanoma", "model": "CLIP ViT-B/32 + MLP head", "split": "val", "accuracy": 0.791, "precision": 0.320, "sensitivity": 0.782, "auc": 0.877, "average_precision": 0.415},
]


def reported_binary(task: str | None = None) -> pd.DataFrame:
    """The binary studies' reported numbers (study B), optionally for one task (empty for ``isic_archive``)."""
    table = pd.DataFrame(REPORTED_BINARY)
    return table[table["task"] == task].reset_index(drop=True) if task else table
