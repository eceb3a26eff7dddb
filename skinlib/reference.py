"""Numbers the studies report (test or validation sets of their own, image-level splits): context, not targets
our lesion-grouped protocol should match. See docs/studies.md."""

from __future__ import annotations

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
]

#: Study E's combinations (section 3.5): averaging and voting of its top 3 RGB models (ResNet50, Xception,
#: InceptionResNetV2), and the mix-model (ResNet50 RGB aug + three specialists; macro precision / recall / F1).
REPORTED_ENSEMBLES: list[dict] = [
    {"study": "E", "method": "average", "model": "averaging ensemble, top 3 RGB models", "accuracy": 0.90, "f1_macro": 0.82},
    {"study": "E", "method": "vote", "model": "voting ensemble, top 3 RGB models", "accuracy": 0.89, "f1_macro": 0.81},
    {"study": "E", "method": "mix-model", "model": "ResNet50 + mel/nv, akiec/bcc, mel/bkl specialists", "accuracy": 0.89,
     "precision_macro": 0.78, "recall_macro": 0.85, "f1_macro": 0.81},
    {"study": "E", "method": "general", "model": "ResNet50 RGB aug (the mix-model's general model)", "accuracy": 0.88,
     "precision_macro": 0.77, "recall_macro": 0.81, "f1_macro": 0.79},
]


def reported(backbone: str | None = None) -> pd.DataFrame:
    """The studies' reported numbers, optionally for one backbone."""
    table = pd.DataFrame(REPORTED).drop(columns="match")
    table = table[table["backbone"] == backbone] if backbone else table
    return table.dropna(axis=1, how="all")


def reported_ensembles() -> pd.DataFrame:
    """Study E's reported ensemble and mix-model numbers (one row per method)."""
    return pd.DataFrame(REPORTED_ENSEMBLES)


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
