"""Study D's multiclass task: the malignant images of a binary split labelled by subtype (basal cell carcinoma,
melanoma, melanoma metastasis, squamous cell carcinoma), read from the archive's most specific diagnosis column.
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


class SubtypesUnavailable(ValueError):
    """Study D's multiclass task cannot be made from this data (the message says why, in one line)."""


def subtype_table(table: pd.DataFrame) -> pd.DataFrame:
    """Study D's multiclass task: the malignant rows of a split table (``split`` and ``target`` columns) whose
    subtype is known, each keeping its split (the binary split restricted: no image changes split, so the split
    stays grouped by lesion and patient), with ``subtype`` (a code of :data:`SUBTYPES`) and ``label`` (its index
    among the classes). The classes are the subtypes with train images; val and test images of another subtype
    are left out (a model cannot predict a class it never saw). ``attrs["classes"]`` lists the class codes,
    ``attrs["left_out"]`` counts the malignant images left out and why.

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
    out = table[keep].copy()
    out["subtype"] = subtype[keep]
    out["label"] = out["subtype"].map({c: i for i, c in enumerate(classes)}).astype(int)
    out = out.reset_index(drop=True)
    out.attrs = dict(table.attrs, classes=classes,
                     left_out={"another malignant diagnosis": int((malignant & (names == "")).sum()),
                               "a subtype without train images": int((known & ~keep).sum())})
    return out
