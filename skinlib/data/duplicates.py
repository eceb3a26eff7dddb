"""Near-duplicate images: found from the pixels, so that data without lesion ids can still be split honestly.

A class-folder copy of HAM10000 (or ISIC 2018 without its groupings file) has no lesion ids, so every image is its
own group and a "grouped" split leaks like an image-level one. :func:`audit` finds images that are near-duplicates
of each other, in three steps:

1. **Descriptor** (cheap, from the image cache): a colour layout, the lowest :data:`KEEP` x :data:`KEEP` DCT
   coefficients of each CIELAB channel of a :data:`THUMB` x :data:`THUMB` thumbnail (MPEG-7's colour layout idea),
   each weighted by ``(1 + u + v) ** BOOST`` (frequencies ``u``, ``v``) so the finer layout counts beside the
   overall colour. These settings were chosen on the synthetic data of seed 0; ``tests/test_duplicates.py`` scores
   them on seed 1.
   Perceptual hashes of grey levels (``imagehash``'s phash, dhash, whash) were measured first and separate shots of
   one lesion from other lesions no better than chance on the synthetic data: skin lesions are all a dark blob on
   skin, and colour is what tells them apart at that scale.
2. **Candidates**: each image's :data:`NEIGHBOURS` nearest images by that descriptor (cosine similarity).
3. **Similarity** of each candidate pair: the cosine of image embeddings (a pretrained backbone's, computed by
   :func:`skinlib.models.embeddings.image_embeddings` when its weights are given), or of the descriptor itself when
   no embeddings are given (:attr:`Audit.method` says which), less how crowded each image's neighbourhood is
   (:func:`pair_similarity`: a pair of lesions that merely look like many others does not stand out).

**The threshold rule** (set by no lesion id and no score on any split: the audit comes before the split and reads
only the images and their diagnoses, all of them): images of different diagnoses are never the same lesion, so
candidate pairs of different diagnoses are known false pairs. The number of false pairs above a threshold is
estimated as the different-diagnosis pairs above it, scaled up by all pairs over different-diagnosis pairs
(same-diagnosis false pairs are assumed as frequent: an underestimate where classes look alike). The threshold is the lowest similarity at which that estimate stays within :data:`FALSE_PAIRS_PER_IMAGE`
per image. Every candidate pair is listed with its similarity; those at or above the threshold are duplicates, and
their connected components are the inferred groups (:func:`duplicate_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.fft
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.color import rgb2lab

from .cache import ImageCache

THUMB = 32                     # thumbnail side the colour layout is computed on
KEEP = 12                      # DCT coefficients kept per side and channel: 12 x 12 x 3 = 432 numbers
BOOST = 0.25                   # weight of coefficient (u, v): (1 + u + v) ** BOOST
NEIGHBOURS = 10                # candidates per image
FALSE_PAIRS_PER_IMAGE = 0.01   # the threshold rule's budget: one estimated false pair per 100 images
HASH_METHOD = "colour layout (DCT of a 32 px CIELAB thumbnail)"


class DuplicateError(ValueError):
    """An audit that cannot be made (too few images, or no pairs of different diagnoses to set its threshold)."""


def colour_layout(images: np.ndarray) -> np.ndarray:
    """The colour-layout descriptor of each image: (n, KEEP * KEEP * 3) float32.

    Args:
        images: (n, h, w, 3) uint8 RGB images (rows of the image cache).
    """
    thumbs = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im)).resize((THUMB, THUMB), Image.BOX))
                       for im in images]) if len(images) else np.zeros((0, THUMB, THUMB, 3), np.uint8)
    lab = rgb2lab(thumbs) if len(thumbs) else thumbs.astype(float)
    coefficients = scipy.fft.dctn(lab, axes=(1, 2), norm="ortho")[:, :KEEP, :KEEP, :]
    frequency = np.arange(KEEP)[:, None] + np.arange(KEEP)[None, :]
    coefficients = coefficients * ((1.0 + frequency) ** BOOST)[None, :, :, None]
    return coefficients.reshape(len(images), -1).astype(np.float32)


def descriptors(cache: ImageCache, image_ids, chunk: int = 1024) -> np.ndarray:
    """:func:`colour_layout` of `image_ids`, read from the image cache in chunks (rows in `image_ids` order).

    Args:
        cache: the image cache (:func:`skinlib.data.cache.build_cache`): the one image-reading path.
        image_ids: the images, in the order the rows are wanted.
        chunk: images read at once.
    """
    ids = list(image_ids)
    parts = [colour_layout(cache.images(ids[i:i + chunk])) for i in range(0, len(ids), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, KEEP * KEEP * 3), np.float32)


def _unit(x: np.ndarray, centre: bool) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if centre:
        x = x - x.mean(0, keepdims=True)        # the data set's mean look removed: what makes images differ
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest(features: np.ndarray, neighbours: int = NEIGHBOURS, centre: bool = True,
            block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `neighbours` nearest rows by cosine similarity, (n, k) indices, and the mean similarity to them
    (how crowded its neighbourhood is).

    Args:
        features: (n, d) rows (descriptors, or embeddings).
        neighbours: nearest rows kept per row.
        centre: remove the rows' mean first (descriptors: what makes images differ); embeddings are taken as they are.
        block: rows compared at once (memory: block x n floats).
    """
    unit = _unit(features, centre)
    n = len(unit)
    k = min(neighbours, n - 1)
    index = np.zeros((n, max(k, 0)), np.int64)
    crowd = np.zeros(n)
    for start in range(0, n if k >= 1 else 0, block):
        sim = unit[start:start + block] @ unit.T
        sim[np.arange(len(sim)), np.arange(start, start + len(sim))] = -np.inf     # not itself
        near = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        index[start:start + len(sim)] = near
        crowd[start:start + len(sim)] = np.take_along_axis(sim, near, axis=1).mean(1)
    return index, crowd


def candidate_pairs(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, where one is among the other's nearest (`index`: :func:`nearest`'s indices)."""
    if index.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.repeat(np.arange(len(index)), index.shape[1])
    j = index.ravel()
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], 1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def pair_similarity(features: np.ndarray, i: np.ndarray, j: np.ndarray, centre: bool,
                    crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cosine of rows `i` and `j` of `features`, and the similarity the audit thresholds: that cosine less the
    crowding of both neighbourhoods, ``2 cos(i, j) - crowd[i] - crowd[j]`` (CSLS, Conneau et al. 2018), so a pair
    stands out only if it is closer than its images are to their other neighbours (lesions that all look alike
    do not). On the full-size synthetic set it lifts recall from 0.25 to 0.48 at the same threshold rule.

    Args:
        features: (n, d) rows; centre: as for :func:`nearest`; crowd: :func:`nearest`'s mean similarities.
    """
    unit = _unit(features, centre)
    cosine = np.einsum("nd,nd->n", unit[i], unit[j]).astype(float)
    return cosine, 2 * cosine - crowd[i] - crowd[j]


def threshold(similarity: np.ndarray, different: np.ndarray, n_images: int, share_different: float,
              false_pairs_per_image: float = FALSE_PAIRS_PER_IMAGE) -> float:
    """The module's threshold rule (see the module docstring): the lowest similarity at which the estimated false
    pairs above it (different-diagnosis pairs / `share_different`) stay within `false_pairs_per_image` x `n_images`.

    Args:
        similarity: each candidate pair's similarity.
        different: whether the pair's two images have different diagnoses.
        n_images: images audited.
        share_different: share of all image pairs whose diagnoses differ.
        false_pairs_per_image: the budget.
    """
    if share_different <= 0 or not different.any():
        raise DuplicateError("the threshold rule needs images of at least two diagnoses (pairs of different "
                             "diagnoses are its known false pairs); this data has one")
    allowed = false_pairs_per_image * n_images * share_different    # different-diagnosis pairs allowed above it
    null = np.sort(similarity[different])[::-1]
    m = int(np.floor(allowed))
    if m >= len(null):                                             # the budget admits every candidate
        return float(similarity.min())
    return float(np.nextafter(null[m], np.inf))                    # just above the (m+1)-th largest false pair


@dataclass
class Audit:
    """The pairs an audit found, and how.

    Attributes:
        pairs: every candidate pair: ``image_a``, ``image_b``, ``cosine``, ``similarity`` (the cosine less its
            neighbourhoods' crowding, :func:`pair_similarity`), ``duplicate`` (at or above the threshold),
            ``same_dx``; with lesion ids, ``same_lesion``. Sorted by similarity, highest first.
        threshold: the similarity from which a pair is a near-duplicate (:func:`threshold`).
        method: what scored the pairs: the descriptor alone, or a named backbone's embeddings.
        n_images: images audited.
    """

    pairs: pd.DataFrame
    threshold: float
    method: str
    n_images: int
    settings: dict = field(default_factory=dict)

    @property
    def duplicates(self) -> pd.DataFrame:
        """The near-duplicate pairs only."""
        return self.pairs[self.pairs["duplicate"]].reset_index(drop=True)


def audit(catalog: pd.DataFrame, cache: ImageCache, *, embeddings: np.ndarray | None = None,
          embedding_name: str | None = None, neighbours: int = NEIGHBOURS,
          false_pairs_per_image: float = FALSE_PAIRS_PER_IMAGE) -> Audit:
    """Near-duplicate pairs of the catalog's images (module docstring: descriptor, candidates, threshold rule).

    Args:
        catalog: the catalog (``image_id``, ``dx``, ``lesion_id``).
        cache: its image cache (any size; 64 px and up).
        embeddings: (n, d) image embeddings in catalog order, scoring the candidate pairs; None: the descriptor.
        embedding_name: what made the embeddings (said in :attr:`Audit.method`); needed with `embeddings`.
        neighbours: candidates per image.
        false_pairs_per_image: the threshold rule's budget.

    Raises:
        DuplicateError: fewer than two images, one diagnosis only, or embeddings that do not fit the catalog.
    """
    n = len(catalog)
    if n < 2:
        raise DuplicateError(f"a duplicate audit needs at least two images, the catalog has {n}")
    ids = catalog["image_id"].to_numpy()
    described = descriptors(cache, ids)
    index, crowd = nearest(described, neighbours)
    i, j = candidate_pairs(index)
    if embeddings is None:
        cosine, similarity = pair_similarity(described, i, j, True, crowd)
        method = HASH_METHOD
    else:
        if len(embeddings) != n or not embedding_name:
            raise DuplicateError(f"embeddings must have one row per catalog image ({n}, got {len(embeddings)}) and "
                                 "embedding_name must say what made them")
        cosine, similarity = pair_similarity(embeddings, i, j, False, nearest(embeddings, neighbours, False)[1])
        method = f"embeddings of {embedding_name}"
    dx = catalog["dx"].astype(str).to_numpy()
    counts = pd.Series(dx).value_counts().to_numpy(float)
    share_different = 1.0 - float((counts * (counts - 1)).sum() / (n * (n - 1)))
    different = dx[i] != dx[j]
    cut = threshold(similarity, different, n, share_different, false_pairs_per_image)
    pairs = pd.DataFrame({"image_a": ids[i], "image_b": ids[j], "cosine": cosine, "similarity": similarity,
                          "duplicate": similarity >= cut, "same_dx": ~different})
    if has_lesion_ids(catalog):
        lesion = catalog["lesion_id"].astype(str).to_numpy()
        pairs["same_lesion"] = lesion[i] == lesion[j]
    pairs = pairs.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)
    return Audit(pairs, cut, method, n, {"neighbours": neighbours, "false_pairs_per_image": false_pairs_per_image,
                                         "thumb": THUMB, "keep": KEEP, "boost": BOOST})


def has_lesion_ids(catalog: pd.DataFrame) -> bool:
    """Whether the catalog knows lesions (some lesion id differs from its image id; class folders do not)."""
    return bool((catalog["lesion_id"].astype(str) != catalog["image_id"].astype(str)).any())


def duplicate_groups(catalog: pd.DataFrame, found: Audit) -> np.ndarray:
    """An integer group per catalog image: the connected components of the near-duplicate pairs.

    Args:
        catalog: the catalog the audit was made on (rows in its order).
        found: the audit.
    """
    position = pd.Index(catalog["image_id"].astype(str))
    dup = found.duplicates
    a, b = position.get_indexer(dup["image_a"]), position.get_indexer(dup["image_b"])
    if (a < 0).any() or (b < 0).any():
        raise DuplicateError("the audit was made on another catalog (its images are not all in this one): "
                             "run duplicates.audit on this catalog")
    n = len(catalog)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def summary(catalog: pd.DataFrame, found: Audit) -> pd.Series:
    """The audit in numbers: images, candidate pairs, near-duplicate pairs, those crossing lesion ids (with lesion
    ids), images in a near-duplicate pair, inferred groups, the largest group, and the threshold."""
    dup = found.duplicates
    groups = duplicate_groups(catalog, found)
    sizes = np.bincount(groups)
    row = {"images": found.n_images, "candidate pairs": len(found.pairs), "near-duplicate pairs": len(dup)}
    if "same_lesion" in dup:
        row["pairs across lesion ids"] = int((~dup["same_lesion"]).sum())
    row.update({"images in a pair": int(pd.concat([dup["image_a"], dup["image_b"]]).nunique()),
                "inferred groups": len(sizes), "largest group": int(sizes.max()),
                "threshold": round(found.threshold, 4)})
    return pd.Series(row, name=found.method, dtype=object)


def truth_scores(catalog: pd.DataFrame, found: Audit) -> dict[str, float]:
    """Precision and recall of the near-duplicate pairs against the lesion ids taken as truth (the synthetic data,
    where every image of a lesion is a shot of one session and lesions differ): pairs found that share a lesion over
    pairs found, and over all pairs of images that share a lesion.

    Raises:
        DuplicateError: the catalog has no lesion ids to score against.
    """
    if not has_lesion_ids(catalog):
        raise DuplicateError("this catalog has no lesion ids, so there is no truth to score the audit against")
    size = catalog.groupby("lesion_id")["image_id"].size().to_numpy()
    true_pairs = int((size * (size - 1) // 2).sum())
    dup = found.duplicates
    hits = int(dup["same_lesion"].sum())
    return {"pairs found": len(dup), "true pairs": true_pairs,
            "precision": hits / len(dup) if len(dup) else float("nan"),
            "recall": hits / true_pairs if true_pairs else float("nan")}


def pairs_to_show(found: Audit, cache: ImageCache, k: int = 4) -> dict[str, np.ndarray]:
    """Up to `k` near-duplicate pairs, side by side, for :func:`skinlib.plots.image_grid`: with lesion ids, the most
    similar pairs under two lesion ids first, then shots of one lesion nearest the threshold (the least alike found);
    without, the most and the least similar. Each is labelled with its similarity.

    Args:
        found: the audit.
        cache: the image cache to read the images from.
        k: pairs shown.
    """
    dup = found.duplicates
    if "same_lesion" in dup:
        across = dup[~dup["same_lesion"]].head(k // 2)
        dup = pd.concat([across, dup[dup["same_lesion"]].tail(k - len(across))])
    else:
        dup = dup.iloc[sorted(set(range(min(k - k // 2, len(dup)))) | set(range(max(0, len(dup) - k // 2), len(dup))))]
    shown = {}
    for n, row in enumerate(dup.itertuples(), 1):
        lesions = {True: ", one lesion", False: ", two lesion ids"}.get(getattr(row, "same_lesion", None), "")
        shown[f"{n}. {row.similarity:.3f}{lesions}"] = cache.images([row.image_a, row.image_b])
    return shown


def crossing_pairs(found: Audit, split: pd.DataFrame) -> pd.Series:
    """Near-duplicate pairs whose images lie in two splits, per pair of splits (``train&val``, ...), with
    ``shared`` (all crossing pairs), ``images in shared`` and ``total`` (all near-duplicate pairs): a row for
    :func:`skinlib.data.splits.leakage_report`.

    Args:
        found: the audit.
        split: ``image_id, split``.
    """
    where = dict(zip(split["image_id"].astype(str), split["split"]))
    dup = found.duplicates
    a = dup["image_a"].map(where).to_numpy()
    b = dup["image_b"].map(where).to_numpy()
    names = ("train", "val", "test")
    row = {f"{x}&{y}": int((((a == x) & (b == y)) | ((a == y) & (b == x))).sum())
           for k, x in enumerate(names) for y in names[k + 1:]}
    crossing = a != b
    row["shared"] = int(crossing.sum())
    row["images in shared"] = int(pd.concat([dup["image_a"][crossing], dup["image_b"][crossing]]).nunique())
    row["total"] = len(dup)
    return pd.Series(row, name="near-duplicate pairs")
