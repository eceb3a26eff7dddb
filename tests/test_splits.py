"""Split invariants: groups never cross splits, class ratios hold, same seed same split, saved and checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinlib.data import load_catalog
from skinlib.data.splits import (
    SplitError, default_name, groups_of, leakage_report, load_split, make_folds, make_split, save_split, split_counts,
)


@pytest.fixture(scope="module")
def ham(synthetic_small):
    return load_catalog(synthetic_small, layout="ham10000")


@pytest.fixture(scope="module")
def archive(synthetic_small):
    with pytest.warns(UserWarning):
        return load_catalog(synthetic_small, layout="isic_archive")


def splits_per(catalog, split, column):
    merged = catalog.merge(split, on="image_id")
    merged = merged[merged[column] != ""]
    return merged.groupby(column)["split"].nunique()


def test_no_lesion_in_two_splits(ham):
    split = make_split(ham, seed=1)
    assert (splits_per(ham, split, "lesion_id") == 1).all()
    assert leakage_report(ham, split).loc["lesions", "shared"] == 0


def test_no_patient_in_two_splits(archive):
    split = make_split(archive, (0.7, 0.15, 0.15), seed=0, stratify="malignant")
    assert (splits_per(archive, split, "patient_id") == 1).all()
    assert (splits_per(archive, split, "lesion_id") == 1).all()
    report = leakage_report(archive, split)
    assert list(report.index) == ["lesions", "patients"] and report["shared"].sum() == 0


def test_class_ratios_within_tolerance(ham):
    ratios = (0.75, 0.10, 0.15)
    counts = split_counts(ham, make_split(ham, ratios, seed=2))
    share = counts[["train", "val", "test"]].div(counts["total"], axis=0)
    for cls in ("nv", "mel", "bkl", "bcc"):                 # classes with enough lesions to hit the ratio
        assert share.loc[cls].tolist() == pytest.approx(list(ratios), abs=0.05), cls
    for cls in ("df", "vasc", "akiec"):                     # rare classes still reach every split
        assert (counts.loc[cls, ["train", "val", "test"]] > 0).all(), cls
    assert share.loc["total"].tolist() == pytest.approx(list(ratios), abs=0.02)


def test_deterministic_for_a_seed_and_different_across_seeds(ham):
    a, b = make_split(ham, seed=5), make_split(ham, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(make_split(ham, seed=6)["split"])
    shuffled = ham.sample(frac=1, random_state=0)
    c = make_split(shuffled.sort_values("image_id").reset_index(drop=True), seed=5)
    pd.testing.assert_frame_equal(a, c)


def test_image_level_split_leaks_and_the_report_counts_it(ham):
    split = make_split(ham, seed=0, group_by="image")
    report = leakage_report(ham, split)
    shared = splits_per(ham, split, "lesion_id")
    assert report.loc["lesions", "shared"] == (shared > 1).sum() > 0
    assert report.loc["lesions", "images in shared"] == ham["lesion_id"].isin(shared[shared > 1].index).sum()


def test_leakage_report_on_a_hand_made_split():
    catalog = pd.DataFrame({"image_id": list("abcdef"), "lesion_id": ["L1", "L1", "L2", "L2", "L3", "L4"],
                            "patient_id": ["P1", "P1", "P1", "P2", "P3", "P3"]})
    split = pd.DataFrame({"image_id": list("abcdef"), "split": ["train", "test", "train", "train", "val", "test"]})
    report = leakage_report(catalog, split)
    assert report.loc["lesions"].to_dict() == {"train&val": 0, "train&test": 1, "val&test": 0, "shared": 1,
                                               "images in shared": 2, "total": 4}
    assert report.loc["patients", "shared"] == 2 and report.loc["patients", "val&test"] == 1


def test_groups_link_lesions_through_patients():
    catalog = pd.DataFrame({"lesion_id": ["L1", "L1", "L2", "L3"], "patient_id": ["", "P1", "P1", ""]})
    groups = groups_of(catalog, "auto")
    assert groups[0] == groups[1] == groups[2] != groups[3]
    assert len(set(groups_of(catalog, "lesion"))) == 3
    with pytest.raises(SplitError, match="no patient ids"):
        groups_of(catalog.assign(patient_id=""), "patient")


def test_official_test_set_is_the_test_split(synthetic_small):
    isic = load_catalog(synthetic_small, layout="isic2018")
    split = make_split(isic, seed=0).merge(isic[["image_id", "official_split"]], on="image_id")
    assert (split.loc[split.official_split == "test", "split"] == "test").all()
    assert (split.loc[split.official_split == "val", "split"] == "val").all()
    assert set(split.loc[split.official_split == "train", "split"]) == {"train", "val"}
    assert set(make_split(isic, seed=0, use_official_test=False)["split"]) == {"train", "val", "test"}


def test_bad_arguments(ham):
    with pytest.raises(SplitError, match=r"ratios = \[0.8, 0.2\] is not allowed: use three numbers >= 0"):
        make_split(ham, (0.8, 0.2))
    with pytest.raises(SplitError, match="'malignant' is not in the catalog"):
        make_split(ham, stratify="malignant")


def test_saved_split_round_trips_and_checks_the_catalog(ham):
    split = make_split(ham, seed=0)
    name = default_name("auto", (0.75, 0.10, 0.15), 0)
    assert name == "lesion-75-10-15-seed0"
    folder = save_split(ham, split, name, seed=0, ratios=(0.75, 0.10, 0.15), group_by="auto",
                        extra={"normalization": {"mean": [0.5] * 3}})
    loaded = load_split(name, ham)
    pd.testing.assert_frame_equal(loaded, split, check_dtype=False)
    manifest = loaded.attrs["manifest"]
    assert manifest["seed"] == 0 and manifest["shared_lesions"] == 0 and manifest["normalization"]["mean"] == [0.5] * 3
    assert not list(folder.glob(".*"))                       # no temporary files left behind
    with pytest.raises(SplitError, match="made from another catalog.*02_splits"):
        load_split(name, ham.iloc[:-1])
    with pytest.raises(FileNotFoundError, match="Run notebooks/02_splits.ipynb first.*lesion-75-10-15-seed0"):
        load_split("nope", ham)


def test_a_split_is_marked_saved_only_once_its_manifest_is_there(ham, tmp_path, monkeypatch):
    """split.csv marks a split as saved, so it is written last: a second run opening an empty workspace at the same
    time never finds split.csv without the manifest."""
    from skinlib import paths

    written, write = [], paths.write_atomic

    def record(path, *args, **kwargs):
        written.append((Path(path).name, sorted(p.name for p in Path(path).parent.glob("*"))))
        return write(path, *args, **kwargs)

    monkeypatch.setattr(paths, "write_atomic", record)
    save_split(ham, make_split(ham, seed=0), "s", seed=0, ratios=(0.75, 0.10, 0.15), group_by="auto", folder=tmp_path / "s")
    assert written == [("manifest.json", []), ("split.csv", ["manifest.json"])]


def test_folds_cover_every_image_once_and_keep_lesions_together(ham):
    grouped = make_folds(ham, 5, seed=0)
    image = make_folds(ham, 5, seed=0, group_by="image")
    for folds in (grouped, image):
        assert list(folds["image_id"]) == list(ham["image_id"]) and set(folds["fold"]) == set(range(5))
        sizes = folds["fold"].value_counts()
        assert sizes.max() - sizes.min() <= 0.1 * len(ham)              # about a fifth each
    per_lesion = ham.assign(fold=grouped["fold"].to_numpy()).groupby("lesion_id")["fold"].nunique()
    assert per_lesion.max() == 1
    spread = ham.assign(fold=image["fold"].to_numpy()).groupby("lesion_id")["fold"].nunique()
    assert (spread > 1).sum() > 20                                     # the studies' way: lesions cross folds
    nv = ham["dx"].eq("nv").to_numpy()
    for fold in range(5):                                              # stratified: nv's share holds in each fold
        assert abs(nv[grouped["fold"].to_numpy() == fold].mean() - nv.mean()) < 0.08
    assert make_folds(ham, 5, seed=0).equals(grouped) and not make_folds(ham, 5, seed=1).equals(grouped)
    with pytest.raises(ValueError, match="at least 2"):
        make_folds(ham, 1)
    with pytest.raises(KeyError, match="nope"):
        make_folds(ham, 5, stratify="nope")


def test_a_split_that_cannot_honour_its_ratios_says_so(capsys):
    """A tiny dataset: 2 single-image lesions per class cannot be cut 75/10/15; the split says what it became."""
    import pandas as pd

    from skinlib.data.labels import CLASSES
    from skinlib.data.splits import make_split

    ids = [f"{c}{i}" for c in CLASSES for i in range(3)]
    tiny = pd.DataFrame({"image_id": ids, "lesion_id": ids, "patient_id": "", "official_split": "",
                         "label": [i // 3 for i in range(len(ids))], "dx": [c for c in CLASSES for _ in range(3)]})
    counts = make_split(tiny, (0.75, 0.10, 0.15), seed=0)["split"].value_counts()
    text = capsys.readouterr().out
    assert f"({counts['train']}/{counts['val']}/{counts['test']} images), not the 75/10/15 asked" in text, text
    big = pd.concat([tiny.assign(image_id=tiny["image_id"] + f"-{k}", lesion_id=tiny["lesion_id"] + f"-{k}")
                     for k in range(40)])
    make_split(big, (0.75, 0.10, 0.15), seed=0)
    assert "not the" not in capsys.readouterr().out            # honoured: nothing said


def test_the_image_level_split_gives_study_a_table_1_exactly():
    """Study A's Table 1 (HAM10000 per image, 75 / 10 / 15 per class): train and val rounded down per class, the
    rest to test, which gives its 7,508 / 998 / 1,509 (largest-remainder rounding gave 7,506 / 1,005 / 1,504)."""
    table_1 = {"df": (86, 11, 18), "bkl": (824, 109, 166), "mel": (834, 111, 168), "vasc": (106, 14, 22),
               "nv": (5028, 670, 1007), "akiec": (245, 32, 50), "bcc": (385, 51, 78)}
    dx = np.concatenate([[c] * sum(counts) for c, counts in table_1.items()])
    catalog = pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(len(dx))], "dx": dx,
                            "lesion_id": [f"HAM_{i // 2:07d}" for i in range(len(dx))], "patient_id": ""})
    catalog["label"] = pd.Categorical(catalog["dx"]).codes
    split = make_split(catalog, (0.75, 0.10, 0.15), seed=3, group_by="image")
    counts = split_counts(catalog, split)
    for c, expected in table_1.items():
        assert tuple(counts.loc[c, ["train", "val", "test"]]) == expected, c
    assert tuple(counts.loc["total", ["train", "val", "test"]]) == (7508, 998, 1509)
    again = make_split(catalog, (0.75, 0.10, 0.15), seed=4, group_by="image")
    assert (again["split"] != split["split"]).any()                       # which images: from the seed
    official = make_split(catalog.assign(official_split=np.where(np.arange(len(dx)) % 10 == 0, "test", "train")),
                          (0.75, 0.10, 0.15), seed=3, group_by="image")
    assert (official["split"] != "").all() and set(official["split"]) == {"train", "val", "test"}


def _lesion_table(seed: int = 0) -> pd.DataFrame:
    """300 lesions of 1-4 images each, three classes of different sizes, some patients holding two lesions."""
    rng = np.random.default_rng(seed)
    rows = []
    for lesion in range(300):
        label = 0 if lesion < 180 else 1 if lesion < 270 else 2
        patient = f"p{lesion // 2}" if lesion % 5 == 0 else ""
        rows += [{"image_id": f"l{lesion}-{k}", "lesion_id": f"l{lesion}", "patient_id": patient, "label": label}
                 for k in range(int(rng.integers(1, 5)))]
    return pd.DataFrame(rows)


def test_a_train_fraction_keeps_whole_lesions_per_class_nested_per_seed():
    from skinlib.data.splits import train_fraction_subset

    table = _lesion_table()
    sizes = table["label"].value_counts()
    subsets = {f: train_fraction_subset(table, f, seed=3) for f in (0.01, 0.1, 0.5)}
    for fraction, subset in subsets.items():
        kept = set(subset["lesion_id"])
        assert table[table["lesion_id"].isin(kept)].index.equals(subset.index)      # whole lesions, or none
        patients = subset["patient_id"][subset["patient_id"] != ""]
        assert table[table["patient_id"].isin(set(patients))].index.isin(subset.index).all()  # whole patients
        counts = subset["label"].value_counts().reindex(sizes.index, fill_value=0)
        assert (counts >= 1).all()                                                  # every class keeps a lesion
        share = counts / sizes
        assert (share >= fraction - 1e-9).all() and (share <= fraction + 8 / sizes).all()   # stratified
    assert set(subsets[0.01]["image_id"]) <= set(subsets[0.1]["image_id"]) <= set(subsets[0.5]["image_id"])
    assert train_fraction_subset(table, 0.1, seed=3).equals(subsets[0.1])            # the same per seed
    assert not train_fraction_subset(table, 0.1, seed=4).equals(subsets[0.1])        # another seed, another subset
    assert train_fraction_subset(table, 1.0, seed=3) is table
    with pytest.raises(SplitError, match="train_fraction"):
        train_fraction_subset(table, 0.0)
    with pytest.raises(SplitError, match="target"):
        train_fraction_subset(table, 0.5, stratify="target")


def test_class_folders_split_is_not_named_lesion_and_readers_find_it(folders_dir, capsys):
    """#22 leftover: class folders have no lesion ids, so 02's default split there is ``ungrouped-...``, and a model
    notebook asking for the default split name reads that one, saying so."""
    from skinlib import inputs
    from skinlib.data.splits import make_and_save_splits

    with pytest.warns(UserWarning, match="carry no lesion ids"):
        folders = load_catalog(folders_dir, layout="folders")
    saved = make_and_save_splits(folders, image_size=32)
    assert list(saved) == ["ungrouped-75-10-15-seed0", "image-75-10-15-seed0"]
    with pytest.warns(UserWarning, match="carry no lesion ids"):
        table = inputs.split_catalog(folders_dir, "folders")
    assert table.attrs["split_name"] == "ungrouped-75-10-15-seed0"
    assert "ungrouped-75-10-15-seed0" in capsys.readouterr().out
