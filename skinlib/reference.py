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
    # vision-language models (notebook 06); study C reports validation accuracy only
    {"study": "A", "model": "CLIP ViT-B/32, text frozen, linear head", "backbone": "clip", "variant": "linear", "accuracy": 0.8496, "f1_weighted": 0.8464},
    {"study": "A", "model": "BLIP vision encoder (last layer trained), linear head", "backbone": "blip", "variant": "linear", "accuracy": 0.8323, "f1_weighted": 0.8203},
    {"study": "C", "model": "CLIP with diagnosis prompts", "backbone": "clip", "variant": "prompt", "split": "val", "accuracy": 0.818},
    {"study": "C", "model": "CLIP with diagnosis prompts, weight decay 0.01", "backbone": "clip", "variant": "prompt, weight decay", "split": "val", "accuracy": 0.804},
    {"study": "C", "model": "CLIP with diagnosis prompts, augmented", "backbone": "clip", "variant": "prompt, aug", "split": "val", "accuracy": 0.791},
]


def reported(backbone: str | None = None) -> pd.DataFrame:
    """The studies' reported numbers, optionally for one backbone."""
    table = pd.DataFrame(REPORTED)
    table.insert(3, "split", table.pop("split").fillna("test"))
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


def vision_language_variant(family: str, head: str | None, weight_decay: float | None = 0.0, augment: str | None = "none") -> str:
    """The studies' wording of a vision-language run: ``linear`` (study A), ``prompt`` with ``weight decay`` or
    ``aug`` (study C's base, regularised and augmented runs; our prompt head stands for their prompts)."""
    if family == "blip" or head != "prompt":
        return head or "linear"
    extras = (["weight decay"] if weight_decay else []) + ([] if augment in (None, "none") else ["aug"])
    return ", ".join(["prompt", *extras[:1]])


def beside_all(vision_language: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """Vision-language runs (from :func:`skinlib.results.gather` with family, head, weight_decay, augment and a
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
        for _, row in beside(transfer).iterrows():
            rows.append({"experiment": "transfer", "model": row["backbone"], **row.drop("backbone").to_dict(),
                         "paper_split": "test" if row["paper"] else ""})
    out = pd.DataFrame(rows)
    empty = [c for c in out.columns if out[c].isna().all() or (out[c].astype(str) == "").all()]
    return out.drop(columns=empty)
