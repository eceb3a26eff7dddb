"""The diagnosis vocabulary: class codes, their order, long names and every accepted alias."""

from __future__ import annotations

import re

#: The seven HAM10000 / ISIC 2018 Task 3 classes, in the order used for integer labels.
CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

#: Column order of the ISIC 2018 Task 3 ground-truth and scoring CSV files.
ISIC2018_COLUMNS: tuple[str, ...] = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")

LONG_NAMES: dict[str, str] = {
    "akiec": "Actinic keratoses / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesions",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevi",
    "vasc": "Vascular lesions",
}

#: Classes counted as malignant when a benign / malignant target is derived from ``dx``.
MALIGNANT: frozenset[str] = frozenset({"akiec", "bcc", "mel"})

# Names seen in the wild (Kaggle folder copies, ISIC archive diagnoses), normalised by `_norm`.
_ALIASES: dict[str, str] = {
    "actinic keratoses": "akiec",
    "actinic keratosis": "akiec",
    "actinic keratoses and intraepithelial carcinoma": "akiec",
    "actinic keratoses intraepithelial carcinoma": "akiec",
    "intraepithelial carcinoma": "akiec",
    "bowens disease": "akiec",
    "squamous cell carcinoma in situ": "akiec",
    "basal cell carcinoma": "bcc",
    "benign keratosis": "bkl",
    "benign keratosis like lesions": "bkl",
    "benign keratosis like lesion": "bkl",
    "pigmented benign keratosis": "bkl",
    "seborrheic keratosis": "bkl",
    "solar lentigo": "bkl",
    "lichen planus like keratosis": "bkl",
    "lichenoid keratosis": "bkl",
    "dermatofibroma": "df",
    "melanoma": "mel",
    "melanoma invasive": "mel",
    "melanoma in situ": "mel",
    "melanocytic nevi": "nv",
    "melanocytic nevus": "nv",
    "nevus": "nv",
    "nevi": "nv",
    "vascular lesions": "vasc",
    "vascular lesion": "vasc",
    "hemangioma": "vasc",
    "angioma": "vasc",
    "angiokeratoma": "vasc",
    "pyogenic granuloma": "vasc",
}


def _norm(name: str) -> str:
    """Lower-case, drop punctuation and collapse separators: ``"Benign_Keratosis-like"`` -> ``"benign keratosis like"``."""
    name = name.strip().lower().replace("'", "")
    return " ".join(re.split(r"[\s_\-/,()]+", name)).strip()


def to_code(name: str) -> str | None:
    """The class code for a diagnosis name in short or long form and any case, or None if it is not one of the 7."""
    key = _norm(str(name))
    if key.replace(" ", "") in CLASSES:
        return key.replace(" ", "")
    return _ALIASES.get(key)


def label_of(code: str) -> int:
    """Integer label of a class code (its position in `CLASSES`)."""
    return CLASSES.index(code)
