"""Notebooks 01 and 02 on a small dataset of every layout that holds the 7 classes (missing columns: "not
available"); an ISIC archive export, which does not, is refused in their first cell, naming what it holds."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, overrides: dict) -> dict:
    """Execute a notebook's code cells in this process (no kernel: fast), its parameters overridden; the namespace."""
    import matplotlib.pyplot as plt

    namespace: dict = {"_ih": [""]}                  # IPython's input history, which setup() reads the parameters from
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        namespace["_ih"].append(cell.source)
        exec(compile(cell.source, f"{path.name}", "exec"), namespace)
        if "parameters" in cell.metadata.get("tags", []):
            assert set(overrides) <= set(namespace), set(overrides) - set(namespace)
            namespace.update(overrides)
    plt.close("all")
    return namespace


@pytest.fixture(scope="module")
def every_layout(tmp_path_factory) -> Path:
    """A small dataset (120 images, 48 x 36) in every layout: the generator's three, and one folder per class."""
    import pandas as pd

    from skinlib.data.synthetic import generate

    root = generate(tmp_path_factory.mktemp("layouts") / "data", n=120, seed=1,
                    layouts=("ham10000", "isic2018", "isic_archive"), size=(48, 36), jobs=1)
    meta = pd.read_csv(root / "ham10000" / "HAM10000_metadata.csv")
    images = {p.stem: p for p in (root / "ham10000").rglob("*.jpg")}
    for image_id, dx in zip(meta["image_id"], meta["dx"]):
        target = root / "folders" / dx / f"{image_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(images[image_id].read_bytes())
    return root


@pytest.mark.parametrize("layout", ["ham10000", "isic2018", "folders"])
def test_eda_and_splits_run_on_every_layout(layout, every_layout, capsys):
    data = every_layout / layout
    common = {"data_dir": str(data), "layout": layout, "image_size": 16}
    eda = run_notebook(ROOT / "notebooks" / "01_eda.ipynb", {**common, "samples_per_class": 2})
    assert eda["catalog"].attrs["layout"] == layout
    splits = run_notebook(ROOT / "notebooks" / "02_splits.ipynb", {**common, "samples_per_split": 2})
    assert set(splits["grouped"]["split"]) <= {"train", "val", "test"} and len(splits["saved"]) == 2
    printed = capsys.readouterr().out
    if layout == "folders":                                         # no ages, sexes or sites in class folders
        assert "not available in this dataset" in printed


@pytest.mark.parametrize("notebook", ["01_eda", "02_splits"])
def test_an_archive_export_is_refused_by_the_7_class_notebooks_in_their_first_cell(notebook, every_layout):
    from skinlib.data.datasets import DataMismatch

    with pytest.raises(DataMismatch, match="is not dataset ham10000: found isic_archive"):
        run_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", {"data_dir": str(every_layout / "isic_archive")})

