"""HOG features and the RF pipeline: SMOTE only ever sees training rows."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from skinlib.data import load_catalog
from skinlib.data.cache import build_cache
from skinlib.features import hog_features, hog_of
from skinlib.models.forest import rf_pipeline


class SpySMOTE(SMOTE):
    """SMOTE that records the rows it is given."""

    seen: list = []

    def fit_resample(self, X, y, **kwargs):
        SpySMOTE.seen.append(np.array(X, copy=True))
        return super().fit_resample(X, y, **kwargs)


def test_smote_never_touches_validation_or_test_rows():
    rng = np.random.default_rng(0)
    y_train = np.array([0] * 40 + [1] * 8 + [2] * 6)
    x_train = rng.normal(size=(len(y_train), 20)) + y_train[:, None]
    x_test = rng.normal(size=(30, 20))
    SpySMOTE.seen = []
    model = rf_pipeline(pca_components=5, n_estimators=10, seed=0, jobs=1)
    model.set_params(smote=SpySMOTE(k_neighbors=3, random_state=0))
    model.fit(x_train, y_train)
    assert len(SpySMOTE.seen) == 1 and SpySMOTE.seen[0].shape == (len(y_train), 5)
    transformed = model[:-2].transform(x_train)                       # scale + PCA of the training rows
    np.testing.assert_allclose(SpySMOTE.seen[0], transformed)
    model.predict_proba(x_test)
    model.predict(x_test)
    assert len(SpySMOTE.seen) == 1                                    # prediction never resamples
    assert np.bincount(model.named_steps["forest"].classes_.astype(int)).sum() == 3


def test_hog_matches_study_a_settings():
    image = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    features = hog_of(image)
    assert features.shape == ((64 // 8 - 1) ** 2 * 2 * 2 * 9,)
    assert hog_of(image, color_bins=8).shape == (features.shape[0] + 512,)
    assert hog_of(image, color_bins=8)[-512:].sum() == pytest.approx(1.0)


def test_hog_features_are_stored_and_reused(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000").iloc[:40]
    cache = build_cache(catalog, 32)
    ids = catalog["image_id"].iloc[[5, 1, 3]]
    first = hog_features(cache, ids, color_bins=4, jobs=2)
    stored = list(cache.folder.glob("hog-*.npy"))
    assert len(stored) == 1
    np.testing.assert_allclose(first, hog_features(cache, ids, color_bins=4))
    np.testing.assert_allclose(first[0], hog_of(cache.images(ids.iloc[:1])[0], color_bins=4))


class Memo:
    """A model that remembers the rows it was fitted on and predicts class 0 (to check out-of-fold use)."""

    fitted: list = []

    def fit(self, X, y):
        Memo.fitted.append(set(X[:, 0].tolist()))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        out = np.zeros((len(X), len(self.classes_)))
        out[:, 0] = 1
        return out


def test_cross_fit_predicts_each_row_with_a_model_that_never_saw_it():
    from skinlib.split_cost import cross_fit

    X = np.arange(40, dtype=float)[:, None]
    y = np.array([1, 2, 3] * 13 + [1])
    folds = np.arange(40) % 4
    y[folds == 2] = 1                                                  # fold 2 lacks classes 2 and 3 ...
    Memo.fitted = []
    proba = cross_fit(X, y, folds, Memo, n_classes=7)
    assert proba.shape == (40, 7) and np.allclose(proba.sum(1), 1) and len(Memo.fitted) == 4
    for fold, seen in enumerate(Memo.fitted):
        assert seen.isdisjoint(X[folds == fold, 0]) and seen == set(X[folds != fold, 0])
    assert (proba[:, 1] == 1).all()                                    # each model's first class is 1: column 1
    with pytest.raises(ValueError, match="differ in length"):
        cross_fit(X, y[:-1], folds, Memo)


def test_the_synthetic_images_of_a_lesion_leak_through_an_image_level_split(synthetic_small):
    """Shots of one lesion are alike (as in HAM10000): a nearest-neighbour model cross-fitted on image-level folds
    finds a lesion's other image and beats the same model on lesion-grouped folds, with an interval above 0."""
    from sklearn.neighbors import KNeighborsClassifier

    from skinlib import report
    from skinlib.data.labels import CLASSES
    from skinlib.split_cost import measure_split_cost
    from skinlib.registry import load_run

    table = load_catalog(synthetic_small, layout="ham10000")
    table["label"] = table["dx"].map(CLASSES.index)
    features = hog_features(build_cache(table, 32), table["image_id"], color_bins=4)
    runs = measure_split_cost(table, features, lambda: KNeighborsClassifier(1), "1nn", {"k": 1}, folds=5, seed=0)
    assert runs == {"lesion": "split_cost/1nn-lesion-5fold", "image": "split_cost/1nn-image-5fold"}
    run = load_run("split_cost", "1nn-image-5fold")
    assert run.params["folds"] == 5 and run.params["fold_group_by"] == "image"
    assert {"lesion_id", "fold"} <= set(run.predictions.columns) and len(run.predictions) == len(table)
    assert not (run.folder / "isic_test_predictions.csv").exists()
    cost = report.split_cost(runs["lesion"], runs["image"], n_boot=300)
    assert cost.index.name.startswith("cross-fitted") and (cost["low"] > 0.03).all()
