"""Study A's random-forest baseline as one imbalanced-learn pipeline: scale -> PCA -> SMOTE -> forest.

Inside an imblearn Pipeline, SMOTE runs only in ``fit`` (on training rows) and is skipped by
``predict``: validation and test rows are never resampled or synthesised from (study A's code applied
SMOTE before the split's features were reduced, on all rows).
"""

from __future__ import annotations


def rf_pipeline(pca_components: int = 100, n_estimators: int = 200, smote: bool = True, class_weight: str | None = None,
                seed: int = 0, jobs: int | None = None):
    """An unfitted ``StandardScaler -> PCA -> SMOTE -> RandomForestClassifier`` pipeline.

    Args:
        pca_components: PCA dimensions (study A's code: 500; capped by the number of training rows at fit).
        n_estimators: trees (study A: 100).
        smote: oversample minority classes with SMOTE after PCA (training rows only).
        class_weight: the forest's class weighting (``balanced`` or None).
        seed: seed of PCA, SMOTE and the forest.
        jobs: cores for the forest (default: all).
    """
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.preprocessing import StandardScaler

    steps = [("scale", StandardScaler()), ("pca", PCA(n_components=pca_components, random_state=seed))]
    if smote:
        steps.append(("smote", SMOTE(k_neighbors=3, random_state=seed)))
    steps.append(("forest", RandomForestClassifier(n_estimators=n_estimators, class_weight=class_weight,
                                                   random_state=seed, n_jobs=jobs or -1)))
    return Pipeline(steps)
