"""Bad input is reported once, all problems together, naming the offenders and how to fix them."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import HAM_HEADER, HAM_ROWS, truncate, write_jpeg
from skinlib.data import CatalogError, CatalogWarning, load_catalog


def rewrite_metadata(root, edit) -> None:
    path = root / "HAM10000_metadata.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(table).to_csv(path, index=False)


def test_missing_column_is_named(ham_dir):
    rewrite_metadata(ham_dir, lambda t: t.drop(columns=["dx"]))
    with pytest.raises(CatalogError, match=r"lacks required column\(s\) 'dx'"):
        load_catalog(ham_dir)


def test_extra_column_is_reported(ham_dir):
    rewrite_metadata(ham_dir, lambda t: t.assign(notes="x"))
    with pytest.warns(CatalogWarning, match="'notes'"):
        load_catalog(ham_dir)


def test_unknown_label_names_value_and_line(ham_dir):
    rewrite_metadata(ham_dir, lambda t: t.assign(dx=t["dx"].where(t.index != 4, "melanomaa")))
    with pytest.raises(CatalogError, match=r"1 rows of HAM10000_metadata.csv have an unknown diagnosis .*"
                                           r"'melanomaa' \(HAM10000_metadata.csv line 6\).*on_unknown='drop'"):
        load_catalog(ham_dir)
    with pytest.warns(CatalogWarning, match="melanomaa"):
        assert len(load_catalog(ham_dir, on_unknown="drop")) == len(HAM_ROWS) - 1


def test_duplicate_ids_are_named(ham_dir):
    rewrite_metadata(ham_dir, lambda t: pd.concat([t, t.iloc[[2]]]))
    with pytest.raises(CatalogError, match=r"1 image ids occur more than once: ISIC_0026769 \(.*line 4 and .*line 12\)"):
        load_catalog(ham_dir)


def test_rows_without_image_are_named_and_can_be_left_out(ham_dir):
    next(ham_dir.rglob("ISIC_0031633.jpg")).unlink()
    with pytest.raises(CatalogError, match=r"1 catalog rows have no image file: ISIC_0031633 .*allow_missing=True"):
        load_catalog(ham_dir)
    with pytest.warns(CatalogWarning, match="ISIC_0031633"):
        catalog = load_catalog(ham_dir, allow_missing=True)
    assert "ISIC_0031633" not in set(catalog["image_id"])


def test_truncated_and_garbage_images_are_named(ham_dir):
    truncate(next(ham_dir.rglob("ISIC_0027419.jpg")))
    next(ham_dir.rglob("ISIC_0025030.jpg")).write_bytes(b"this is not a picture")
    with pytest.raises(CatalogError) as info:
        load_catalog(ham_dir)
    message = str(info.value)
    assert "2 image files are unreadable or truncated" in message
    assert "ISIC_0027419.jpg truncated" in message
    assert "ISIC_0025030.jpg cannot be opened" in message


def test_every_problem_is_reported_together(ham_dir):
    rewrite_metadata(ham_dir, lambda t: pd.concat([t.assign(dx=t["dx"].where(t.index != 0, "SCC")), t.iloc[[5]]]))
    next(ham_dir.rglob("ISIC_0031633.jpg")).unlink()
    truncate(next(ham_dir.rglob("ISIC_0024306.jpg")))
    with pytest.raises(CatalogError) as info:
        load_catalog(ham_dir)
    message = str(info.value)
    assert "4 problems found" in message
    for part in ("'SCC'", "ISIC_0029176", "ISIC_0031633", "ISIC_0024306.jpg truncated"):
        assert part in message


def test_isic2018_rows_must_be_one_hot(isic2018_dir):
    path = isic2018_dir / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    table = pd.read_csv(path)
    table.loc[2, "MEL"] = 1.0                                        # row 2 is nv: now two positives
    table.to_csv(path, index=False)
    with pytest.raises(CatalogError, match=r"do not have exactly one positive class: .*line 4"):
        load_catalog(isic2018_dir)


def test_isic2018_extra_class_column(isic2018_dir):
    path = isic2018_dir / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    pd.read_csv(path).assign(SCC=0.0).to_csv(path, index=False)
    with pytest.raises(CatalogError, match="outside the 7 classes: SCC"):
        load_catalog(isic2018_dir)


def test_unknown_class_folder_is_named(folders_dir):
    write_jpeg(folders_dir / "train" / "Squamous cell carcinoma" / "x.jpg")
    with pytest.raises(CatalogError, match=r"'Squamous cell carcinoma' \(1 images\).*on_unknown='drop'"):
        load_catalog(folders_dir)
    with pytest.warns(CatalogWarning):
        assert len(load_catalog(folders_dir, on_unknown="drop")) == 28


def test_archive_unknown_target_is_named(archive_dir):
    path = archive_dir / "metadata.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.loc[1, "diagnosis_1"] = "Maybe"
    table.to_csv(path, index=False)
    with pytest.raises(CatalogError, match=r"unknown 'diagnosis_1': 'Maybe' \(metadata.csv line 3\)"):
        load_catalog(archive_dir)


def test_archive_without_target_column(archive_dir):
    path = archive_dir / "metadata.csv"
    pd.read_csv(path).drop(columns=["diagnosis_1"]).to_csv(path, index=False)
    with pytest.raises(CatalogError, match="benign_malignant"):
        load_catalog(archive_dir)


def test_unreadable_csv(ham_dir):
    (ham_dir / "HAM10000_metadata.csv").write_bytes(b"\x00\xff\xfe garbage \x00")
    with pytest.raises(CatalogError):
        load_catalog(ham_dir)


def test_header_only_columns_missing_names_the_file(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    pd.DataFrame(columns=["image_id", "dx"]).to_csv(root / "HAM10000_metadata.csv", index=False)
    with pytest.raises(CatalogError, match=r"HAM10000_metadata.csv lacks required column\(s\) 'age', 'dx_type'"):
        load_catalog(root)
    assert HAM_HEADER  # the published header, for reference
