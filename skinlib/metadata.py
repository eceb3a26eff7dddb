"""Patient metadata as model input (study D): age, sex, lesion size and optionally the body site.

One scikit-learn pipeline turns the catalog's metadata into numbers: numeric columns are imputed (mean)
with a missing-value indicator and scaled, categorical ones one-hot encoded. It is **fitted on the train
split only**, so val and test rows never influence the imputed values or the scaling (study D imputed
with the mean of all rows). The same features feed the logistic regression, the metadata MLP and the
image + metadata fusion model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC: tuple[str, ...] = ("age", "size_mm")
CATEGORICAL: tuple[str, ...] = ("sex",)
SITE = "localization"


class NoMetadata(ValueError):
    """The data carries no patient metadata (ISIC 2018 Task 3, class folders): no age, sex, size or site known."""


def columns(table: pd.DataFrame, site: bool = False) -> tuple[list[str], list[str]]:
    """The (numeric, categorical) metadata columns `table` has: a numeric one needs at least one value, a
    categorical one at least one known value (the loaders write ``unknown`` where a layout has none).

    Args:
        table: the catalog (or its train split).
        site: add the body site (``localization``) as a categorical column.

    Raises:
        NoMetadata: none of them holds anything (the message names the layout).
    """
    numeric = [c for c in NUMERIC if c in table and pd.to_numeric(table[c], errors="coerce").notna().any()]
    categorical = [c for c in CATEGORICAL + ((SITE,) if site else ()) if c in table
                   and (~table[c].astype(str).isin(["unknown", ""])).any()]
    if not numeric and not categorical:
        raise NoMetadata(f"no patient metadata in this data (layout {table.attrs.get('layout', '?')}): none of "
                         f"{', '.join(NUMERIC + CATEGORICAL + ((SITE,) if site else ()))} holds a value; the metadata "
                         "models (logreg, mlp, fusion) need an ISIC archive export or HAM10000's metadata CSV")
    return numeric, categorical


def drop_rows_without_sex(table: pd.DataFrame) -> pd.DataFrame:
    """Study D's row rule: leave out images whose sex is unknown (use it on every split alike)."""
    keep = table["sex"].isin(["male", "female"])
    out = table[keep].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    return out


def preprocessor(numeric: Sequence[str], categorical: Sequence[str]) -> ColumnTransformer:
    """Mean imputation (+ missing indicators) and scaling for numeric columns; one-hot for categorical ones."""
    parts = []
    if numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True), StandardScaler()),
                      list(numeric)))
    if categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(categorical)))
    return ColumnTransformer(parts)


def _frame(table: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.to_numeric(table[c], errors="coerce").astype(float) for c in numeric},
                         index=table.index)
    for c in categorical:
        frame[c] = table[c].astype(str)
    return frame


class MetadataFeatures:
    """Metadata -> float32 matrix, fitted on the train split only.

    Args:
        numeric, categorical: the columns used (see :func:`columns`).
    """

    def __init__(self, numeric: Sequence[str], categorical: Sequence[str]):
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.pipeline = preprocessor(self.numeric, self.categorical)

    def fit(self, train: pd.DataFrame) -> "MetadataFeatures":
        """Fit imputation, scaling and encoding on the train split's rows."""
        self.pipeline.fit(_frame(train, self.numeric, self.categorical))
        return self

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """The feature matrix of any split, with the train split's statistics."""
        return self.pipeline.transform(_frame(table, self.numeric, self.categorical)).astype(np.float32)

    @property
    def names(self) -> list[str]:
        """Feature names, in column order."""
        return [n.split("__", 1)[1] for n in self.pipeline.get_feature_names_out()]

    @property
    def imputed(self) -> dict[str, float]:
        """The values imputed for missing numeric entries (the train split's means)."""
        if not self.numeric:
            return {}
        imputer = self.pipeline.named_transformers_["numeric"][0]
        return dict(zip(self.numeric, map(float, imputer.statistics_)))


def logistic_regression(numeric: Sequence[str], categorical: Sequence[str], balanced: bool = False,
                        seed: int = 0) -> Pipeline:
    """The metadata-only baseline: the metadata pipeline, then a logistic regression.

    Args:
        numeric, categorical: metadata columns.
        balanced: weight the classes inversely to their train-split frequency (the balanced regime).
        seed: seed of the solver.
    """
    return Pipeline([("features", preprocessor(numeric, categorical)),
                     ("model", LogisticRegression(max_iter=1000, class_weight="balanced" if balanced else None,
                                                  random_state=seed))])


def fit_predict(model: Pipeline, parts: dict[str, pd.DataFrame], numeric: Sequence[str],
                categorical: Sequence[str], target: str = "target", train: pd.DataFrame | None = None
                ) -> dict[str, np.ndarray]:
    """Fit a scikit-learn pipeline on the train split (or `train`, e.g. an undersampled copy) and return the
    positive-class probabilities of val and test."""
    train = parts["train"] if train is None else train
    model.fit(_frame(train, numeric, categorical), train[target].to_numpy())
    return {s: model.predict_proba(_frame(parts[s], numeric, categorical))[:, 1] for s in ("val", "test")}
