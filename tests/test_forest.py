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
