"""What the command line asks reaches every run it concerns: a split setting (``--set ratios``) the runs that read
the split, ``--force`` a run's training (trained again, not resumed), ``--allow-missing`` empty and truncated images."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from conftest import truncate
from skinlib.data import CatalogWarning, load_catalog
from skinlib.data.catalog import CatalogError
from skinlib.run.execute import identity
from skinlib.run.plan import ParameterError, plan, train_again

ROOT = Path(__file__).resolve().parents[1]


def runs_of(profile: str = "default", **sets):
    return {run.name: run for run in plan(ROOT / "notebooks", ROOT / "params", profile, sets=sets)}


def test_set_ratios_reaches_every_run_that_reads_the_split():
    before = runs_of()
    assert "split_name" not in before["04_custom_cnn"].params
    runs = runs_of(ratios=[0.6, 0.2, 0.2])
    for name, run in runs.items():
        if run.notebook.stem[:2] in ("03", "04", "05", "06", "08", "09"):
            assert run.params["split_name"] == "lesion-60-20-20-seed0", name
    assert runs["02_splits"].params["ratios"] == [0.6, 0.2, 0.2]
    assert runs_of(seed=3)["04_custom_cnn"].params["split_name"] == "lesion-75-10-15-seed3"
    full = runs_of("full", ratios=[0.6, 0.2, 0.2])          # the image-level split's run keeps its kind
    assert {run.params["split_name"] for name, run in full.items() if name.startswith("04_")} == \
        {"lesion-60-20-20-seed0", "image-60-20-20-seed0"}
    assert runs_of(ratios=[0.6, 0.2, 0.2], split_name="mine")["04_custom_cnn"].params["split_name"] == "mine"


def test_a_split_the_command_line_cannot_rename_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "04_custom_cnn.yaml").write_text("split_name: my-own-split\n")
    with pytest.raises(ParameterError, match=r"04_custom_cnn reads the split 'my-own-split'.*--set split_name=.*"
                                             r"'lesion-60-20-20-seed0'"):
        plan(ROOT / "notebooks", ROOT / "params", str(tmp_path / "mine"), sets={"ratios": [0.6, 0.2, 0.2]})


def test_force_trains_again_and_is_still_the_same_run():
    runs = runs_of()
    before = {name: identity(run) for name, run in runs.items()}
    train_again(list(runs.values()))
    assert runs["04_custom_cnn"].params["resume"] is False and "resume" not in runs["03_random_forest"].params
    assert {name: identity(run) for name, run in runs.items()} == before      # not a new run: resume is how, not what
    kept = runs_of(resume=True)
    train_again(list(kept.values()), {"resume": True})
    assert kept["04_custom_cnn"].params["resume"] is True
    listed = subprocess.run([sys.executable, "run_all.py", "--only", "04", "--force", "--list"], cwd=ROOT,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "'resume': False" in listed.stdout, listed.stdout + listed.stderr


def test_allow_missing_leaves_out_empty_and_truncated_images(ham_dir):
    empty = next(ham_dir.rglob("ISIC_0031633.jpg"))
    empty.write_bytes(b"")                                      # a zero-byte download
    truncate(next(ham_dir.rglob("ISIC_0025837.jpg")))
    with pytest.raises(CatalogError, match=r"2 image files are unreadable or truncated.*--allow-missing"):
        load_catalog(ham_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog = load_catalog(ham_dir, allow_missing=True)
    assert len(catalog) == 8 and not {"ISIC_0031633", "ISIC_0025837"} & set(catalog["image_id"])
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, CatalogWarning))
    assert "2 image files are unreadable or truncated" in text and "ISIC_0031633.jpg" in text and "ISIC_0025837" in text
