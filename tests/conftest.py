"""Shared fixtures: an isolated workspace, and small datasets written in the real on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinlib import provenance

try:
    # OpenCV (imported by grad-cam) prepends its folder to LD_LIBRARY_PATH when it is first imported. Imported here,
    # before any kernel zygote starts, it leaves every test process's environment one thing all along: otherwise a
    # test importing grad-cam changes it between a zygote's start and a later kernel, which then starts the usual
    # way (tests/test_forked_kernels.py compares a kernel with its zygote).
    import cv2  # noqa: F401
except ImportError:
    pass
from skinlib.data.labels import ISIC2018_COLUMNS

HAM_HEADER = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


@pytest.fixture(autouse=True)
def workspace(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own workspace and no SKINLIB_DATA (nor SKINLIB_DATA_<NAME>), so nothing leaks between tests or into the repo."""
    ws = tmp_path_factory.mktemp("workspace")
    monkeypatch.setenv("SKINLIB_WORKSPACE", str(ws))
    monkeypatch.delenv("SKINLIB_DATA", raising=False)
    for name in ("HAM10000", "ISIC2018", "ISIC_ARCHIVE"):
        monkeypatch.delenv(f"SKINLIB_DATA_{name}", raising=False)
    monkeypatch.setattr(provenance, "_DATA", {})      # what an earlier test read is not this test's runs' data
    return ws


@pytest.fixture
def plain_kernels(monkeypatch) -> None:
    """Kernels started as new processes (tests whose tiny notebooks import nothing heavy: the kernel zygote of
    skinlib.run.forked_kernels would only add its own start)."""
    monkeypatch.setenv("SKINLIB_FORK_KERNELS", "0")


def write_jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30)) -> Path:
    """A small random JPEG (or PNG, by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path


def truncate(path: Path) -> Path:
    """Cut a file in half, as an interrupted download would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


HAM_ROWS = [
    # lesion_id, image_id, dx, dx_type, age, sex, localization
    ("HAM_0000118", "ISIC_0027419", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0000118", "ISIC_0025030", "bkl", "histo", "80.0", "male", "scalp"),
    ("HAM_0002730", "ISIC_0026769", "nv", "follow_up", "", "unknown", "unknown"),     # empty age
    ("HAM_0002730", "ISIC_0025661", "nv", "follow_up", "", "unknown", "unknown"),
    ("HAM_0001466", "ISIC_0031633", "mel", "histo", "75.0", "male", "ear"),
    ("HAM_0002761", "ISIC_0029176", "akiec", "histo", "60.0", "female", "face"),
    ("HAM_0005132", "ISIC_0025837", "bcc", "histo", "70.0", "female", "back"),
    ("HAM_0001396", "ISIC_0025276", "df", "consensus", "55.0", "female", "lower extremity"),
    ("HAM_0004729", "ISIC_0031262", "vasc", "consensus", "5.0", "female", "abdomen"),
    ("HAM_0000550", "ISIC_0024306", "nv", "follow_up", "45.0", "male", "trunk"),
]


@pytest.fixture
def ham_dir(tmp_path) -> Path:
    """HAM10000 as published: metadata CSV, images spread over part_1 and part_2, one upper-case .JPG, stray files."""
    root = tmp_path / "HAM10000"
    root.mkdir()
    pd.DataFrame(HAM_ROWS, columns=HAM_HEADER).to_csv(root / "HAM10000_metadata.csv", index=False)
    for i, row in enumerate(HAM_ROWS):
        part = 1 if i % 2 == 0 else 2
        suffix = ".JPG" if i == 3 else ".jpg"
        write_jpeg(root / f"HAM10000_images_part_{part}" / f"{row[1]}{suffix}", seed=i)
    (root / "HAM10000_images_part_1" / ".DS_Store").write_bytes(b"\0\0")
    (root / "HAM10000_images_part_2" / "LICENSE.txt").write_text("CC BY-NC 4.0")
    return root


def write_isic2018(root: Path, with_groupings: bool = True, with_test: bool = True) -> Path:
    """ISIC 2018 Task 3: one-hot ground truth per set, input folders with LICENSE / ATTRIBUTION files."""
    sets = {"Training": HAM_ROWS[:8], "Validation": HAM_ROWS[8:9], "Test": HAM_ROWS[9:]}
    if not with_test:
        del sets["Test"]
    for name, rows in sets.items():
        table = pd.DataFrame({"image": [r[1] for r in rows]})
        for col in ISIC2018_COLUMNS:
            table[col] = [1.0 if r[2].upper() == col else 0.0 for r in rows]
        gt = root / f"ISIC2018_Task3_{name}_GroundTruth"
        gt.mkdir(parents=True)
        table.to_csv(gt / f"ISIC2018_Task3_{name}_GroundTruth.csv", index=False)
        folder = root / f"ISIC2018_Task3_{name}_Input"
        for i, r in enumerate(rows):
            write_jpeg(folder / f"{r[1]}.jpg", seed=i)
        (folder / "LICENSE.txt").write_text("licence")
        (folder / "ATTRIBUTION.txt").write_text("attribution")
    if with_groupings:
        pd.DataFrame({"image": [r[1] for r in HAM_ROWS[:8]], "lesion_id": [r[0] for r in HAM_ROWS[:8]],
                      "diagnosis_confirm_type": ["histopathology"] * 8}).to_csv(
            root / "ISIC2018_Task3_Training_LesionGroupings.csv", index=False)
    return root


@pytest.fixture
def isic2018_dir(tmp_path) -> Path:
    return write_isic2018(tmp_path / "ISIC2018")


@pytest.fixture
def folders_dir(tmp_path) -> Path:
    """The Kaggle copies: one folder per class, long names in mixed case, inside train / test folders."""
    root = tmp_path / "kaggle"
    names = {"Actinic keratoses": "akiec", "basal_cell_carcinoma": "bcc", "Benign keratosis-like lesions": "bkl",
             "DF": "df", "Melanoma": "mel", "Melanocytic nevi": "nv", "Vascular Lesions": "vasc"}
    k = 0
    for split in ("train", "test"):
        for folder in names:
            for j in range(2):
                write_jpeg(root / split / folder / f"img_{k:04d}.jpg", seed=k)
                k += 1
    (root / "README.md").write_text("downloaded from kaggle")
    return root


ARCHIVE_ROWS = [
    # isic_id, diagnosis_1, diagnosis_3, age_approx, sex, site, size, patient, lesion
    ("ISIC_0000001", "Benign", "Nevus", "45", "female", "posterior torso", "3.5", "IP_0000001", "IL_0000001"),
    ("ISIC_0000002", "Benign", "Nevus", "45", "female", "posterior torso", "", "IP_0000001", "IL_0000001"),
    ("ISIC_0000003", "Malignant", "Melanoma Invasive", "70", "male", "head/neck", "7.0", "IP_0000002", "IL_0000002"),
    ("ISIC_0000004", "Malignant", "Basal cell carcinoma", "", "male", "", "", "IP_0000002", "IL_0000003"),
    ("ISIC_0000005", "Benign", "Seborrheic keratosis", "65", "", "anterior torso", "5.0", "IP_0000003", "IL_0000004"),
    ("ISIC_0000006", "Indeterminate", "", "50", "female", "lower extremity", "", "IP_0000004", "IL_0000005"),
    ("ISIC_0000007", "Malignant", "Melanoma metastasis", "80", "male", "upper extremity", "", "IP_0000005", "IL_0000006"),
    ("ISIC_0000008", "Benign", "Dermatofibroma", "35", "female", "lower extremity", "4.0", "IP_0000006", "IL_0000007"),
]


@pytest.fixture
def archive_dir(tmp_path) -> Path:
    """An ISIC archive export: metadata.csv (new-style diagnosis_1) with the images beside it."""
    root = tmp_path / "archive"
    root.mkdir()
    table = pd.DataFrame(ARCHIVE_ROWS, columns=["isic_id", "diagnosis_1", "diagnosis_3", "age_approx", "sex",
                                                "anatom_site_general", "clin_size_long_diam_mm", "patient_id",
                                                "lesion_id"])
    table.insert(1, "attribution", "Anonymous")
    table.insert(2, "copyright_license", "CC-BY")
    table.to_csv(root / "metadata.csv", index=False)
    for i, r in enumerate(ARCHIVE_ROWS):
        write_jpeg(root / f"{r[0]}.jpg", seed=i)
    return root


@pytest.fixture(scope="session")
def synthetic_small(tmp_path_factory) -> Path:
    """A small synthetic dataset in all layouts (generated once per test session)."""
    from skinlib.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("syn") / "data", n=600, seed=3,
                    layouts=("ham10000", "isic2018", "isic_archive"), size=(96, 72), jobs=2)
