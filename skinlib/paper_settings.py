"""What each study ran, per model row, in the notebooks' parameter names: the settings a run of ``params/full/``
that says ``reproduces: <row>`` must use, and the deliberate deviations from them with their reasons.

Beside the papers' numbers (:mod:`skinlib.papers`). ``tests/test_paper_settings.py`` resolves every run of the full
profile and compares its parameters with its row; a difference passes only when the row (or its study) lists it
as a deviation. docs/studies.md shows these tables, generated from here (:func:`markdown`;
``python -m skinlib.paper_settings docs/studies.md`` rewrites them, and the test checks they are current).

A row's ``settings`` hold what the study ran, as our knobs (``image_size``, ``optimizer``, ``lr``, ``batch_size``,
``max_epochs``, ``scheduler``, ``patience`` (early stopping), ``augment``, ``class_weighting`` / ``pos_weight``,
``head``, ``freeze_fraction``, ``backbone`` (the pretrained weights), ``normalize``, ``resample`` / ``crop``,
``split_name`` / ``ratios``); ``code`` names the settings taken from the authors' published code because the paper
does not give them; ``described`` says in words what no knob holds (early stopping's metric, the loss, the split).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The prefix of a run that reproduces no paper row (what follows says what it adds).
EXTENSION = "extension"


@dataclass(frozen=True)
class Row:
    """One model row of a study: what it ran (as our knobs), where each setting comes from, and our deviations."""

    key: str                                    #: ``<study>/<model>``, what a run's ``reproduces`` names
    notebook: str                               #: the notebook that runs it (its number)
    settings: dict[str, Any]                    #: knob -> the study's value
    code: tuple[str, ...] = ()                  #: knobs whose value is from the authors' code, not the paper
    described: dict[str, str] = field(default_factory=dict)   #: aspect -> the study's setting in words
    deviations: dict[str, str] = field(default_factory=dict)  #: knob -> why our run differs

    @property
    def study(self) -> str:
        return self.key.split("/", 1)[0]


_LESION = ("a lesion-grouped split (02): the study's image-level split puts images of one lesion on both sides, which "
           "inflates its numbers; `split_name` can name the image-level split (04 runs one such run to measure it)")
#: Deviations shared by every row of a study (knob -> reason); a row's own take precedence.
STUDY_DEVIATIONS: dict[str, dict[str, str]] = {
    "A": {"split_name": _LESION},
    "B": {},
    "C": {},
    "D": {},
    "E": {"patience": "early stopping and the plateau schedule watch validation balanced accuracy (the protocol's "
                      "headline), not validation loss / accuracy; the plateau factor is 0.1, not 0.5"},
}
#: What each study's split was, and ours.
SPLITS: dict[str, str] = {
    "A": "per class 75 / 10 / 15 by image (Table 1: 7,508 / 998 / 1,509); ours: grouped by lesion",
    "B": "stratified 70 / 15 / 15 by image (7,010 / 1,502 / 1,503), validation reported; ours: 70 / 15 / 15 grouped "
         "by lesion, test reported beside validation",
    "C": "its own 9,577 / 2,492 / 1,285 (of 13,354 images: not HAM10000's 10,015), validation reported; ours: 02's "
         "lesion-grouped split",
    "D": "the ISIC archive export, balanced subsets; ours: 70 / 15 / 15 grouped by patient, tests at the natural "
         "distribution, imputation fitted on train only",
    "E": "85 / 15 by image (8,516 / 1,499) through Keras' validation_split; the validation part chose the epoch and "
         "was reported; ours: 02's lesion-grouped 75 / 10 / 15, test reported",
}

_A = {"optimizer": "adam", "scheduler": "step", "patience": 0, "class_weighting": False, "augment": "study_a",
      "split_name": "image-75-10-15-seed0"}
_A_DESCRIBED = {"loss": "cross-entropy, unweighted", "early stopping": "none (the best validation epoch is kept)",
                "scheduler": "StepLR(7, 0.1)"}
_VL = {"optimizer": "adam", "scheduler": "none", "class_weighting": False, "image_size": 224, "crop": "center",
       "freeze_fraction": 0.0, "weight_decay": 0.0}
_B = {"task": "melanoma", "models": ["image"], "optimizer": "adam", "lr": 0.0001, "batch_size": 32, "max_epochs": 20,
      "patience": 0, "pos_weight": 8.0, "image_size": 224, "freeze_fraction": 0.0, "ratios": [0.7, 0.15, 0.15]}
_B_DESCRIBED = {"loss": "binary cross-entropy weighted 1.0 / 8.0", "early stopping": "none"}
_C = {"models": ["clip"], "head": "label_prompt", "lr": 0.00005, "batch_size": 16, "max_epochs": 20, "weight_decay": 0.0,
      "augment": "none", "class_weighting": False}
_C_DESCRIBED = {"scheduler": "\"with scheduler\" (kind not given; ours: cosine)",
                "optimizer": "not given (ours: adam; adamw for weight decay)",
                "model": "the diagnosis prompt is an input of the model (the label leaks into the prediction)"}
_C_DEVIATIONS = {"head": "the paper's model (`label_prompt`) takes the image's own diagnosis prompt as an input, which "
                         "leaks the label; our `prompt` head starts from the class prompts' text embeddings and sees "
                         "the image alone. `C-clip-label-input` runs the paper's model as an ablation beside "
                         "`C-clip-prompt`: the report's study C table shows how much the leak inflates",
                 "prompt_set": "the paper does not give its prompt wording: ours starts from the template it "
                               "proposes as future work"}
_D_BASE = {"task": "isic_archive", "optimizer": "adam", "lr": 0.001, "batch_size": 32, "max_epochs": 50,
           "patience": 10, "monitor": "loss", "drop_missing_sex": True}
_D = {**_D_BASE, "image_size": 128, "models": ["image"], "regimes": ["undersampled"]}
_D_MOBILENET = {**_D, "backbone": "mobilenetv2", "head": "mlp"}
_D_MULTICLASS = {k: v for k, v in {**_D_MOBILENET, "subtypes": "with_benign"}.items() if k != "regimes"}
_D_SAMPLER = {"regimes": "beside the paper's undersampled training, the weighted sampler (regime balanced, ours)"}
_D_SUBTYPES = {"subtypes": "both: the paper's model (benign + the 4 malignant subtypes) and, beside it, ours among "
                           "the malignant subtypes only"}
_D_DESCRIBED = {"loss": "binary cross-entropy", "early stopping": "validation loss, patience 10",
                "metadata": "age, sex, lesion size; rows without sex dropped, missing values mean-imputed on all rows"}
_E = {"image_size": 224, "batch_size": 64, "max_epochs": 30, "lr": 0.0001, "optimizer": "adam", "scheduler": "plateau",
      "patience": 2, "class_weighting": True, "head": "study_e", "head_l2": 0.01, "freeze_fraction": 0.0,
      "augment": "study_e", "normalize": "pretrained", "grayscale": False, "localization": None, "classes": None}
_E_CODE = ("lr", "scheduler", "patience", "class_weighting", "head", "head_l2")
_E_DESCRIBED = {"loss": "categorical cross-entropy, balanced class weights (computed on all images, test included; "
                        "ours: on train only)",
                "early stopping": "validation loss, patience 2; ReduceLROnPlateau on validation accuracy (0.5, "
                                  "patience 2, min lr 1e-5)",
                "normalisation": "each Keras model's preprocess_input (ours: the timm weights' own mean / std)"}
_KERAS_RESNET = ("Keras' ResNet50 ImageNet weights (the original Caffe model) are not published for timm; timm's "
                 "default ResNet-50 weights stand in")


def _e(key: str, backbone: str, deviations: dict | None = None, **settings) -> Row:
    return Row(key, "05", {**_E, "backbone": backbone, **settings}, code=_E_CODE, described=_E_DESCRIBED,
               deviations={**({"backbone": _KERAS_RESNET} if backbone == "keras-resnet50" else {}), **(deviations or {})})


#: Every model row of the five studies, by key.
ROWS: dict[str, Row] = {row.key: row for row in [
    # ---- study A (03-06)
    Row("A/random forest", "03", {"image_size": 450, "color_bins": 8, "pca_components": 500, "n_estimators": 100,
                                  "smote": True, "split_name": "image-75-10-15-seed0"},
        code=("color_bins", "pca_components", "n_estimators"),
        described={"features": "HOG on the grey image (9 orientations, 8 x 8 cells, 2 x 2 blocks, L2-Hys) + an 8 x 8 x 8 "
                               "colour histogram; SMOTE applied before the split, on every row"},
        deviations={"image_size": "HOG at 128 px: at 600 x 450 the features have ~147k dimensions and the code's SMOTE "
                                  "on them needs tens of GB; ours applies SMOTE to the training rows only, after PCA"}),
    Row("A/custom CNN", "04", {**_A, "image_size": 256, "batch_size": 16, "max_epochs": 25, "lr": 0.00001, "width": 64},
        code=("image_size", "batch_size", "max_epochs", "lr", "scheduler"), described=_A_DESCRIBED),
    Row("A/ResNet-50", "05", {**_A, "backbone": "resnet50.tv_in1k", "head": "linear", "freeze_fraction": 0.0,
                              "image_size": 512, "batch_size": 32, "max_epochs": 25, "lr": 0.00001, "normalize": "train",
                              "grayscale": False},
        code=("image_size", "batch_size", "max_epochs", "lr", "scheduler"),
        described={**_A_DESCRIBED, "normalisation": "the training split's mean / std (paper, section 3.2.4; the code "
                                                    "uses ImageNet's)",
                   "weights": "torchvision's ImageNet ResNet-50 (timm's tv_in1k tag)"}),
    Row("A/CLIP", "06", {**_VL, "models": ["clip"], "head": "linear", "lr": 0.00001, "batch_size": 16, "max_epochs": 20,
                         "patience": 0, "augment": "study_a"},
        code=("lr", "batch_size", "max_epochs", "crop"),
        described={"loss": "cross-entropy, unweighted", "normalisation": "CLIP's mean / std",
                   "augmentation": "Algorithm 1 (the code rotates by up to 30 degrees, the paper 90); evaluation: "
                                   "resize 224, centre crop"}),
    Row("A/BLIP", "06", {**_VL, "models": ["blip"], "blip_model": "Salesforce/blip-vqa-base", "blip_trainable_layers": 1,
                         "lr": 0.0001, "batch_size": 16, "max_epochs": 30, "patience": 5, "augment": "study_a"},
        code=("blip_model", "blip_trainable_layers", "lr", "batch_size", "max_epochs", "patience", "image_size", "crop"),
        described={"loss": "cross-entropy, unweighted", "early stopping": "validation loss, patience 5",
                   "normalisation": "ImageNet's mean / std (ours: BLIP's own)"},
        deviations={"image_size": "384 px, the resolution BLIP's tower was trained at: the code feeds 224 px, which "
                                  "uses only the first 197 of its 577 position embeddings"}),
    # ---- study B (07)
    Row("B/ResNet-18", "07", {**_B, "backbone": "resnet18.tv_in1k", "augment": "study_b", "resample": "bilinear",
                              "crop": "squash"}, described=_B_DESCRIBED),
    Row("B/DINO", "07", {**_B, "backbone": "vit_small_patch16_224.dino", "augment": "none", "resample": "bicubic",
                         "crop": "squash"}, described=_B_DESCRIBED),
    Row("B/CLIP", "07", {**_B, "backbone": "clip-ViT-B-32", "augment": "none", "resample": "bicubic", "crop": "center"},
        described={**_B_DESCRIBED, "head": "an MLP on the image embedding, fine-tuned end to end"}),
    Row("B/CLIP linear probe", "07", {**_B, "backbone": "clip-ViT-B-32", "augment": "none", "resample": "bicubic",
                                      "crop": "center", "freeze_fraction": 1.0},
        described={**_B_DESCRIBED, "finding": "fine-tuning beat linear probing (section 5.7); the probe's settings "
                                              "are not given: B/CLIP's, with the image tower frozen"}),
    # ---- study C (06)
    Row("C/CLIP prompts", "06", {**_C}, described=_C_DESCRIBED, deviations=_C_DEVIATIONS),
    Row("C/CLIP prompts, weight decay", "06", {**_C, "weight_decay": 0.01}, described=_C_DESCRIBED,
        deviations=_C_DEVIATIONS),
    Row("C/CLIP prompts, augmented", "06", {**_C, "augment": "study_c"}, described=_C_DESCRIBED,
        deviations={**_C_DEVIATIONS, "augment": "the crops and flips are drawn anew every epoch: the paper added one "
                                                "augmented copy of each image to the training set"}),
    # ---- study D (07)
    Row("D/metadata", "07", {**_D_BASE, "models": ["logreg", "mlp"], "regimes": ["natural"]},
        described={**_D_DESCRIBED, "figures": "1-2"},
        deviations={"regimes": "beside the paper's natural training, the weighted sampler (regime balanced, ours)"}),
    Row("D/small CNN", "07", {**_D, "backbone": "small_cnn", "pretrained": False, "augment": "none",
                              "evaluate_on": "balanced"},
        described={**_D_DESCRIBED, "figures": "3", "model": "conv, max-pool, flatten, dense (Fig. 3)"}),
    Row("D/MobileNetV2, balanced 5k", "07", {**_D_MOBILENET, "augment": "none", "freeze_fraction": 0.0,
                                             "evaluate_on": "balanced", "balanced_subset": 5000},
        described={**_D_DESCRIBED, "figures": "4-6"}),
    Row("D/MobileNetV2, balanced 10k", "07", {**_D_MOBILENET, "augment": "none", "freeze_fraction": 0.0,
                                              "evaluate_on": "balanced", "balanced_subset": 10000},
        described={**_D_DESCRIBED, "figures": "7"}),
    Row("D/MobileNetV2", "07", {**_D_MOBILENET, "augment": "none", "freeze_fraction": 0.0, "evaluate_on": "natural"},
        described={**_D_DESCRIBED, "figures": "8-9"}, deviations=_D_SAMPLER),
    Row("D/MobileNetV2, augmented", "07", {**_D_MOBILENET, "augment": "study_e", "freeze_fraction": 0.0,
                                           "evaluate_on": "natural"},
        described={**_D_DESCRIBED, "figures": "10-11", "augmentation": "flip, rotation, zoom"}),
    Row("D/MobileNetV2 frozen, augmented", "07", {**_D_MOBILENET, "augment": "study_e", "freeze_fraction": 1.0,
                                                  "evaluate_on": "natural"},
        described={**_D_DESCRIBED, "figures": "12-13", "augmentation": "flip, rotation, zoom"}),
    Row("D/MobileNetV2 multiclass", "07", {**_D_MULTICLASS, "freeze_fraction": 0.0},
        described={**_D_DESCRIBED, "figures": "18", "training distribution": "not given (ours: the run's regimes)"},
        deviations=_D_SUBTYPES),
    Row("D/MobileNetV2 frozen multiclass", "07", {**_D_MULTICLASS, "freeze_fraction": 1.0},
        described={**_D_DESCRIBED, "figures": "17", "training distribution": "not given (ours: the run's regimes)"},
        deviations=_D_SUBTYPES),
    Row("D/ResNet-50 top layers", "07", {**_D, "models": ["image"], "backbone": "resnet50", "head": "mlp",
                                         "freeze_fraction": 0.81, "augment": "none", "evaluate_on": "natural"},
        described={**_D_DESCRIBED, "figures": "14", "frozen": "all but the top layers (ours: 0.81 of the parameter "
                                                               "tensors, so the last stage, layer4, trains)"}),
    Row("D/MobileNetV2 with metadata", "07", {**_D, "models": ["fusion"], "backbone": "mobilenetv2",
                                              "evaluate_on": "natural"},
        described={**_D_DESCRIBED, "figures": "15-16", "fusion": "the metadata concatenated after the pooling"}),
    # ---- study E (05, 08, 09)
    _e("E/ResNet50", "keras-resnet50"),
    _e("E/ResNet50 grey", "keras-resnet50", grayscale=True),
    _e("E/ResNet50 without augmentation", "keras-resnet50", augment="none"),
    _e("E/ResNet50 lower extremity", "keras-resnet50", localization="lower extremity"),
    _e("E/ResNet50 colour augmentation", "keras-resnet50", augment="study_e_color",
       deviations={"augment": "the paper dropped its colour-augmented runs (they did worse) without their settings: "
                              "ours adds brightness, contrast and saturation 0.2 to the geometric augmentation"}),
    *(_e(f"E/ResNet50 {a} vs {b}", "keras-resnet50", classes=[a, b]) for a, b in (("mel", "nv"), ("akiec", "bcc"),
                                                                               ("mel", "bkl"))),
    _e("E/Xception", "xception"),
    _e("E/Xception grey", "xception", grayscale=True),
    _e("E/InceptionResNetV2", "inception_resnet_v2"),
    _e("E/InceptionResNetV2 grey", "inception_resnet_v2", grayscale=True),
    _e("E/VGG19", "keras-vgg19", deviations={"backbone": "Keras' VGG19 weights (the original Oxford model) are not in "
                                                          "timm; torchvision's stand in"}),
    _e("E/ViT-B/32", "vit_base_patch32_224", max_epochs=15, patience=10),
    _e("E/ViT-B/32 grey", "vit_base_patch32_224", max_epochs=15, patience=10, grayscale=True),
    Row("E/ensembles", "08", {"top_k": 3, "colours": "rgb"},
        described={"members": "ResNet50, Xception, InceptionResNetV2 (RGB): averaged and voted; the mix-model's "
                              "general model ResNet50 RGB aug with three specialists"}),
    Row("E/ensembles grey", "08", {"top_k": 3, "colours": "grey"},
        described={"members": "ResNet50, Xception, InceptionResNetV2 (grey-scale): averaged and voted (improved, by "
                              "less than the RGB ensembles; no number reported)"}),
    Row("E/Grad-CAM", "09", {}, described={"maps": "per class; RGB against grey-scale ResNet50"}),
    Row("B/Grad-CAM", "09", {}, described={"maps": "ResNet-18, melanoma and benign images"}),
]}


def deviation(row: Row, knob: str) -> str | None:
    """Why our runs of `row` differ from the study in `knob` (the row's reason, else its study's), or None."""
    return row.deviations.get(knob) or STUDY_DEVIATIONS.get(row.study, {}).get(knob)


def differences(row: Row, params: dict[str, Any], defaults: dict[str, Any]) -> list[tuple[str, Any, Any, str | None]]:
    """(knob, study's value, ours, the deviation's reason or None) for every setting of `row` a run does not use.

    Args:
        row: the paper row the run reproduces.
        params: the run's resolved parameters (those its parameter file sets).
        defaults: the notebook's defaults, for the knobs the file does not set.
    """
    out = []
    for knob, want in row.settings.items():
        have = params.get(knob, defaults.get(knob))
        if have != want and not (isinstance(want, list) and isinstance(have, (list, tuple)) and list(have) == want):
            out.append((knob, want, have, deviation(row, knob)))
    for knob, reason in row.deviations.items():          # deviations without a study value (e.g. prompt_set)
        if knob not in row.settings:
            out.append((knob, None, params.get(knob, defaults.get(knob)), reason))
    return out


def _cell(value: Any) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text.replace("|", "/")


def markdown(study: str) -> str:
    """`study`'s rows as docs/studies.md shows them: one table of settings (a `*` marks a value from the authors'
    code), then what is described in words and every deviation with its reason."""
    rows = [r for r in ROWS.values() if r.study == study]
    knobs = list(dict.fromkeys(k for r in rows for k in r.settings))
    lines = [f"<!-- settings {study}: generated by `python -m skinlib.paper_settings docs/studies.md` -->",
             f"Split: {SPLITS[study]}.", ""]
    if knobs:
        lines += ["| row | " + " | ".join(f"`{k}`" for k in knobs) + " |",
                  "|---|" + "---|" * len(knobs)]
        for r in rows:
            cells = [(_cell(r.settings[k]) + ("*" if k in r.code else "")) if k in r.settings else "" for k in knobs]
            lines.append(f"| {r.key.split('/', 1)[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    notes = {}
    for r in rows:
        for aspect, text in r.described.items():
            notes.setdefault(f"{aspect}: {text}", []).append(r.key.split("/", 1)[1])
    lines += [f"- {text} ({', '.join(names) if len(names) < len(rows) else 'every row'})" for text, names in notes.items()]
    devs: dict[str, list[str]] = {}
    for r in rows:
        for knob in dict.fromkeys([*r.deviations, *STUDY_DEVIATIONS.get(study, {})]):
            devs.setdefault(f"`{knob}`: {deviation(r, knob)}", []).append(r.key.split("/", 1)[1])
    lines += [f"- **Deviation**, {text} ({', '.join(names) if len(names) < len(rows) else 'every row'})"
              for text, names in devs.items()]
    lines.append(f"<!-- end of settings {study} -->")
    return "\n".join(lines)


def rewrite(path: str | Path) -> bool:
    """Replace every generated block of `path` (docs/studies.md) with :func:`markdown`'s; True when it changed."""
    path = Path(path)
    text = path.read_text()
    new = text
    for study in STUDY_DEVIATIONS:
        start, end = f"<!-- settings {study}:", f"<!-- end of settings {study} -->"
        if start not in new:
            raise ValueError(f"{path} has no block for study {study}: add the lines {start} ... --> and {end}")
        a, b = new.index(start), new.index(end) + len(end)
        new = new[:a] + markdown(study) + new[b:]
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":                                    # python -m skinlib.paper_settings docs/studies.md
    print("rewritten" if rewrite(sys.argv[1]) else "already current")
