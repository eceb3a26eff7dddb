"""Study D's multiclass task: the malignant images of a binary split labelled by subtype (basal cell carcinoma,
melanoma, melanoma metastasis, squamous cell carcinoma), read from the archive's most specific diagnosis column;
as the paper's matrices, with the benign images as one more class (``with_benign``), or among the malignant ones only
(``malignant``, ours).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .binary import TARGET


#: Study D's malignant subtypes: class code -> name (the codes name the predictions columns ``p_<code>``).
SUBTYPES: dict[str, str] = {"bcc": "basal cell carcinoma", "mel": "melanoma", "metastasis": "melanoma metastasis",
                            "scc": "squamous cell carcinoma"}


def malignant_subtypes(table: pd.DataFrame) -> pd.Series:
    """Study D's malignant subtype of each malignant image from its archive ``diagnosis`` (empty for benign or
    unrecognised): basal cell carcinoma, melanoma, melanoma metastasis, squamous cell carcinoma.

    ``diagnosis`` is the export's most specific diagnosis column (``diagnosis_5`` ... ``diagnosis_2``, or a legacy
    ``diagnosis``; see :func:`skinlib.data.layouts.read_isic_archive`). A text naming a metastasis is ``melanoma
    metastasis``; other melanomas (invasive, in situ, ...) ``melanoma``; ``basal cell`` and ``squamous cell``
    carcinomas (in situ or invasive) their own; any other malignant diagnosis stays empty (left out).
    """
    if "diagnosis" not in table:
        return pd.Series("", index=table.index)
    text = table["diagnosis"].fillna("").str.lower()
    out = np.select([text.str.contains("metasta"), text.str.contains("melanoma"), text.str.contains("basal cell"),
                     text.str.contains("squamous cell")],
                    ["melanoma metastasis", "melanoma", "basal cell carcinoma", "squamous cell carcinoma"], "")
    return pd.Series(np.where(table.get(TARGET, table.get("malignant", 1)) == 1, out, ""), index=table.index)


#: The class code of the benign images in the multiclass task with benign as a class (the paper's Figs. 17 and 18).
BENIGN = "benign"
#: 07's ``subtypes``: which multiclass tasks to train -> the variants (``with_benign`` as a flag).
SUBTYPE_CHOICES: dict[str, tuple[bool, ...]] = {"none": (), "malignant": (False,), "with_benign": (True,),
                                                "both": (False, True)}


def variants(choice: str) -> tuple[bool, ...]:
    """The multiclass tasks 07's ``subtypes`` asks for, each as its ``with_benign`` flag (ValueError naming the
    choices otherwise)."""
    if choice not in SUBTYPE_CHOICES:
        raise ValueError(f"unknown subtypes {choice!r}; choose one of {', '.join(SUBTYPE_CHOICES)}")
    return SUBTYPE_CHOICES[choice]


def kind(with_benign: bool) -> str:
    """The model kind of a multiclass task in run names and the registry: ``subtypes`` (the malignant subtypes) or
    ``benign-subtypes`` (benign as a class too)."""
    return "benign-subtypes" if with_benign else "subtypes"


class SubtypesUnavailable(ValueError):
    """Study D's multiclass task cannot be made from this data (the message says why, in one line)."""


def subtype_table(table: pd.DataFrame, with_benign: bool = False) -> pd.DataFrame:
    """Study D's multiclass task: the malignant rows of a split table (``split`` and ``target`` columns) whose
    subtype is known, each keeping its split (the binary split restricted: no image changes split, so the split
    stays grouped by lesion and patient), with ``subtype`` (a code of :data:`SUBTYPES`) and ``label`` (its index
    among the classes). The classes are the subtypes with train images; val and test images of another subtype
    are left out (a model cannot predict a class it never saw). With `with_benign` every benign image is kept too,
    as the first class, :data:`BENIGN` (the paper's five-class matrices). ``attrs["classes"]`` lists the class
    codes, ``attrs["left_out"]`` counts the malignant images left out and why.

    Raises:
        SubtypesUnavailable: when the export has no diagnosis column more specific than benign / malignant, or
            fewer than 2 subtypes have train images.
    """
    names = malignant_subtypes(table)
    code_of = {name: code for code, name in SUBTYPES.items()}
    malignant = table[TARGET] == 1
    if "diagnosis" not in table or not (table.loc[malignant, "diagnosis"].fillna("") != "").any():
        raise SubtypesUnavailable(
            "the export has no diagnosis column more specific than benign / malignant (diagnosis_2 ... diagnosis_5 in "
            "metadata.csv), so the malignant subtypes are unknown")
    known = malignant & (names != "")
    train_counts = names[known & (table["split"] == "train")].value_counts()
    classes = [code for code, name in SUBTYPES.items() if train_counts.get(name, 0) > 0]
    if len(classes) < 2:
        raise SubtypesUnavailable(
            f"{len(classes)} malignant subtype(s) with train images ({', '.join(SUBTYPES[c] for c in classes) or 'none'}); "
            "a classifier among the subtypes needs at least 2")
    subtype = names.map(code_of)
    keep = known & subtype.isin(classes)
    if with_benign:
        classes = [BENIGN, *classes]
        subtype = subtype.where(malignant, BENIGN)
        keep = keep | ~malignant
    out = table[keep].copy()
    out["subtype"] = subtype[keep]
    out["label"] = out["subtype"].map({c: i for i, c in enumerate(classes)}).astype(int)
    out = out.reset_index(drop=True)
    out.attrs = dict(table.attrs, classes=classes,
                     left_out={"another malignant diagnosis": int((malignant & (names == "")).sum()),
                               "a subtype without train images": int((known & ~keep).sum())})
    return out
