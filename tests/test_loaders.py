"""Every layout loads into the same catalog table, real-world mess included."""

from __future__ import annotations

import math
import warnings

import pandas as pd
import pytest

from conftest import HAM_HEADER, HAM_ROWS, write_isic2018, write_jpeg
from skinlib.data import COLUMNS, CatalogWarning, detect_layouts, load_catalog, to_code
from skinlib.data.labels import CLASSES


@pytest.mark.parametrize("name, code", [
    ("nv", "nv"), ("NV", "nv"), ("Melanocytic nevi", "nv"), ("melanocytic_nevi", "nv"),
    ("Actinic keratoses", "akiec"), ("AKIEC", "akiec"), ("Benign keratosis-like lesions", "bkl"),
    ("benign_keratosis-like_lesions", "bkl"), ("Vascular Lesions", "vasc"), ("Basal cell carcinoma", "bcc"),
    ("Melanoma Invasive", "mel"), ("squamous cell carcinoma", None), ("banana", None),
])
def test_class_names_in_any_form(name, code):
    assert to_code(name) == code


def assert_contract(catalog: pd.DataFrame) -> None:
    assert list(catalog.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert catalog["image_id"].is_unique
    known = catalog["dx"] != ""
    assert catalog.loc[known, "dx"].isin(CLASSES).all()
    assert (catalog.loc[known, "label"] == catalog.loc[known, "dx"].map(CLASSES.index)).all()
    assert (catalog["width"] > 0).all() and (catalog["height"] > 0).all()
    assert catalog["sex"].isin(["male", "female", "unknown"]).all()


def test_ham10000_as_published(ham_dir):
    catalog = load_catalog(ham_dir)
    assert_contract(catalog)
    assert len(catalog) == len(HAM_ROWS)
    assert catalog.attrs["layout"] == "ham10000" and not catalog.attrs["synthetic"]
    row = catalog.set_index("image_id").loc["ISIC_0025661"]         # the upper-case .JPG, empty age
    assert row["path"].endswith("ISIC_0025661.JPG")
    assert math.isnan(row["age"]) and row["sex"] == "unknown" and row["localization"] == "unknown"
    parts = {p.split("/")[-2] for p in catalog["path"]}
    assert parts == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert catalog.groupby("lesion_id").size().max() == 2


def test_ham10000_dataverse_tab_with_extra_dataset_column(tmp_path):
    root = tmp_path / "dv"
    table = pd.DataFrame(HAM_ROWS[:3], columns=HAM_HEADER).assign(dataset="vidir_modern")
    root.mkdir()
    table.to_csv(root / "HAM10000_metadata.tab", sep="\t", index=False)
    for i, r in enumerate(HAM_ROWS[:3]):
        write_jpeg(root / "images" / f"{r[1]}.jpg", seed=i)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CatalogWarning)   # 'dataset' is a known column: no warning
        catalog = load_catalog(root)
    assert len(catalog) == 3 and "dataset" in catalog


def test_kaggle_duplicate_lowercase_folder_is_harmless(ham_dir):
    upper = ham_dir / "HAM10000_images_part_1"
    lower = ham_dir / "ham10000_images_part_1"
    lower.mkdir()
    for f in upper.glob("*.jpg"):
        (lower / f.name).write_bytes(f.read_bytes())
    assert len(load_catalog(ham_dir)) == len(HAM_ROWS)


def test_isic2018_with_groupings_and_official_sets(isic2018_dir):
    catalog = load_catalog(isic2018_dir)
    assert_contract(catalog)
    assert catalog.attrs["layout"] == "isic2018"
    assert catalog["official_split"].value_counts().to_dict() == {"train": 8, "val": 1, "test": 1}
    train = catalog[catalog["official_split"] == "train"].set_index("image_id")
    assert train.loc["ISIC_0027419", "lesion_id"] == "HAM_0000118" == train.loc["ISIC_0025030", "lesion_id"]
    assert (train["dx_type"] == "histo").all()
    assert catalog.set_index("image_id").loc["ISIC_0031262", "dx"] == "vasc"


def test_isic2018_without_groupings_warns_about_leakage(tmp_path):
    root = write_isic2018(tmp_path / "isic", with_groupings=False)
    with pytest.warns(CatalogWarning, match="LesionGroupings.*leakage"):
        catalog = load_catalog(root)
    assert (catalog["lesion_id"] == catalog["image_id"]).all()


def test_class_folders_any_case_long_names_and_split_folders(folders_dir):
    with pytest.warns(CatalogWarning, match="no lesion ids"):
        catalog = load_catalog(folders_dir)
    assert_contract(catalog)
    assert catalog["dx"].value_counts().to_dict() == {c: 4 for c in CLASSES}


def test_isic_archive_export(archive_dir):
    with pytest.warns(CatalogWarning, match="1 rows .* indeterminate"):
        catalog = load_catalog(archive_dir)
    assert_contract(catalog)
    assert len(catalog) == 7
    row = catalog.set_index("image_id")
    assert row.loc["ISIC_0000003", "malignant"] == 1 and row.loc["ISIC_0000003", "dx"] == "mel"
    assert row.loc["ISIC_0000001", "malignant"] == 0 and row.loc["ISIC_0000001", "size_mm"] == 3.5
    assert row.loc["ISIC_0000007", "dx"] == ""                 # metastasis: malignant, not one of the 7 classes
    assert row.loc["ISIC_0000007", "label"] == -1
    assert row.loc["ISIC_0000005", "sex"] == "unknown"         # empty sex
    assert row.loc["ISIC_0000004", "localization"] == "unknown"
    assert row.loc["ISIC_0000002", "patient_id"] == "IP_0000001"


def test_isic_archive_legacy_benign_malignant_column(tmp_path):
    root = tmp_path / "legacy"
    root.mkdir()
    pd.DataFrame({"isic_id": ["ISIC_1", "ISIC_2"], "benign_malignant": ["benign", "malignant"],
                  "diagnosis": ["nevus", "melanoma"], "age_approx": ["30", "60"], "sex": ["male", "female"]}
                 ).to_csv(root / "metadata.csv", index=False)
    write_jpeg(root / "ISIC_1.jpg")
    write_jpeg(root / "ISIC_2.jpg")
    catalog = load_catalog(root)
    assert catalog["malignant"].tolist() == [0, 1] and catalog["dx"].tolist() == ["nv", "mel"]


def test_layout_detection(ham_dir, isic2018_dir, folders_dir, archive_dir):
    assert [lay for lay, _ in detect_layouts(ham_dir)] == ["ham10000"]
    assert [lay for lay, _ in detect_layouts(isic2018_dir)] == ["isic2018"]
    assert [lay for lay, _ in detect_layouts(folders_dir)] == ["folders"]
    assert [lay for lay, _ in detect_layouts(archive_dir)] == ["isic_archive"]
    # a layout one folder down (an unzipped archive) is found too
    assert detect_layouts(ham_dir.parent)[0] == ("ham10000", ham_dir)


def test_several_layouts_need_a_choice(synthetic_small):
    with pytest.raises(ValueError, match="several layouts.*layout="):
        load_catalog(synthetic_small)
    assert load_catalog(synthetic_small, layout="isic_archive").attrs["layout"] == "isic_archive"


def test_missing_folder_and_unknown_layout_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*SKINLIB_DATA"):
        load_catalog(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no dataset layout recognised.*HAM10000_metadata.csv"):
        load_catalog(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown layout 'ham'"):
        load_catalog(tmp_path / "empty", layout="ham")
