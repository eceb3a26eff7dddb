"""Which data a run needs, checked before anything runs (issues 21 and 26): each dataset given once by name, a
folder of the wrong layout refused naming what it holds, a missing dataset stops the start naming the runs that
need it, and a run's identity holds the catalog's fingerprint."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import run_all
from skinlib.data.datasets import DATASETS, DataMismatch, check_layout, locate
from skinlib.run.data import DataError, check_data, parse_data
from skinlib.run.execute import identity
from skinlib.run.plan import plan

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def environ():
    """run_all.main sets the workspace and the datasets' variables for the kernels it starts: undone after (and the
    working folder)."""
    saved, cwd = dict(os.environ), os.getcwd()
    yield
    os.environ.clear()
    os.environ.update(saved)
    os.chdir(cwd)


#: layout fixture -> the datasets it may be given as
FITS = {"ham_dir": {"ham10000"}, "isic2018_dir": {"ham10000", "isic2018"}, "folders_dir": {"ham10000"},
        "archive_dir": {"isic_archive"}}
FOUND = {"ham_dir": "ham10000", "isic2018_dir": "isic2018", "folders_dir": "folders", "archive_dir": "isic_archive"}


@pytest.mark.parametrize("fixture", sorted(FITS))
def test_each_layout_is_accepted_by_its_datasets_and_refused_by_the_others_naming_what_it_holds(fixture, request):
    root = request.getfixturevalue(fixture)
    for name in DATASETS:
        if name in FITS[fixture]:
            layout, _ = check_layout(name, root)
            assert layout == FOUND[fixture]
        else:
            with pytest.raises(DataMismatch) as caught:
                check_layout(name, root, origin=f"--data {name}=")
            message = str(caught.value)
            assert f"found {FOUND[fixture]}" in message and f"--data {name}=PATH" in message, message


def test_a_notebook_run_by_hand_reads_its_dataset_from_its_variable_and_says_so(ham_dir, archive_dir, monkeypatch,
                                                                               capsys):
    assert locate("ham10000") == (None, "ham10000")                             # nothing given: synthetic
    assert "synthetic" in capsys.readouterr().out
    monkeypatch.setenv("SKINLIB_DATA_ISIC_ARCHIVE", str(archive_dir))
    monkeypatch.setenv("SKINLIB_DATA", str(ham_dir))                            # the bare one: today's meaning
    assert locate("isic_archive", task="isic_archive") == (archive_dir, "isic_archive")
    assert locate("ham10000") == (ham_dir, "ham10000")
    assert "$SKINLIB_DATA_ISIC_ARCHIVE" in capsys.readouterr().out
    monkeypatch.delenv("SKINLIB_DATA_ISIC_ARCHIVE")
    with pytest.raises(DataMismatch, match=r"\$SKINLIB_DATA: .* is not dataset isic_archive: found ham10000"):
        locate("isic_archive")                                                 # 07 by hand on HAM10000
    with pytest.raises(DataMismatch, match="task 'isic_archive' needs benign / malignant labels"):
        locate("ham10000", task="isic_archive")


@pytest.fixture(scope="module")
def default_runs():
    return plan(ROOT / "notebooks", ROOT / "params", "default")


def test_the_default_profile_needs_ham10000_and_the_archive_and_runs_on_synthetic_data_with_nothing_given(default_runs):
    needs = {run.name: run.data.get("dataset") for run in default_runs}
    assert needs["07_binary_isic--isic_archive"] == "isic_archive"
    assert needs["07_binary_isic--melanoma"] == needs["03_random_forest"] == "ham10000"
    assert needs["10_report"] is None
    found = check_data(default_runs, parse_data([], environ={}))
    assert not found.given and not found.skipped()


def test_one_dataset_missing_stops_before_anything_runs_naming_the_runs_that_need_it(ham_dir, capsys, workspace,
                                                                                    environ):
    assert run_all.main(["--data", f"ham10000={ham_dir}", "--only", "01", "07"]) == 2
    err = capsys.readouterr().err
    assert "dataset isic_archive is not given; 1 run(s) need it: 07_binary_isic--isic_archive" in err
    assert "--data isic_archive=PATH" in err and "--keep-going" in err
    assert not (workspace / "outputs" / "default").exists()                      # nothing ran


def test_a_folder_of_the_wrong_layout_is_refused_before_anything_runs(ham_dir, archive_dir, capsys, environ):
    assert run_all.main(["--data", f"isic_archive={ham_dir}", "--data", f"ham10000={archive_dir}", "--list"]) == 2
    err = capsys.readouterr().err
    assert "is not dataset isic_archive: found ham10000" in err and "is not dataset ham10000: found isic_archive" in err
    with pytest.raises(DataError, match="unknown dataset 'ham'"):
        parse_data(["ham=/nowhere"], environ={})
    os.chdir(ham_dir.parent)                                        # a relative folder reaches the kernels whole
    assert parse_data([f"ham10000={ham_dir.name}"], environ={}).named["ham10000"][0] == ham_dir


def test_a_bare_folder_serves_the_runs_it_fits_and_the_others_are_skipped_saying_how(ham_dir, default_runs):
    found = check_data(default_runs, parse_data([str(ham_dir)], environ={}))
    assert found.given["ham10000"][:2] == ("ham10000", ham_dir)
    assert found.not_applicable == {"isic_archive": ["07_binary_isic--isic_archive"]} and not found.missing
    (line,) = found.not_applicable_lines()
    assert "07_binary_isic--isic_archive" in line and "--data isic_archive=PATH" in line


def test_a_broken_catalog_is_reported_once_before_anything_runs(ham_dir, default_runs):
    next((ham_dir / "HAM10000_images_part_1").glob("*.jpg")).unlink()
    with pytest.raises(DataError, match="catalog rows have no image file"):
        check_data(default_runs, parse_data([f"ham10000={ham_dir}"], environ={}))


def test_identity_holds_the_catalog_fingerprint_of_the_data_read(ham_dir, tmp_path, monkeypatch, default_runs):
    run = next(r for r in default_runs if r.name == "03_random_forest")
    synthetic = identity(run)["data"]
    assert synthetic.startswith("ham10000:synthetic-ham10000")
    monkeypatch.setenv("SKINLIB_DATA_HAM10000", str(ham_dir))
    real = identity(run)["data"]
    same = shutil.copytree(ham_dir, tmp_path / "same copy")
    monkeypatch.setenv("SKINLIB_DATA_HAM10000", str(same))
    assert identity(run)["data"] == real != synthetic              # the same data elsewhere: the same run
    other = shutil.copytree(ham_dir, tmp_path / "another copy")
    meta = pd.read_csv(other / "HAM10000_metadata.csv")
    meta.loc[0, "dx"] = "mel"                                       # a relabelled image: another dataset
    meta.to_csv(other / "HAM10000_metadata.csv", index=False)
    monkeypatch.setenv("SKINLIB_DATA_HAM10000", str(other))
    assert identity(run)["data"] not in (real, synthetic)


def test_data_without_patient_metadata_says_so_and_image_models_need_none(isic2018_dir, folders_dir, ham_dir):
    from skinlib import metadata
    from skinlib.data import load_catalog

    for root in (isic2018_dir, folders_dir):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                  # class folders: no lesion ids (said elsewhere)
            catalog = load_catalog(root)
        with pytest.raises(metadata.NoMetadata, match="no patient metadata"):
            metadata.columns(catalog)                        # 07 skips its metadata section (no subplots(1, 0))
    assert metadata.columns(load_catalog(ham_dir)) == (["age"], ["sex"])


def test_09_and_10_on_an_empty_registry_say_what_to_run_first():
    from skinlib import members, report

    with pytest.raises(RuntimeError, match="run 04, 05 or 06 first"):
        members.runs_to_explain("lesion-75-10-15-seed0")
    with pytest.raises(RuntimeError, match="run the notebooks that train first"):
        report.require_runs(report.runs_table())


def _main(argv: list[str]) -> int:
    """run_all.main, the environment as it was after (it sets the workspace and the datasets' variables)."""
    saved = dict(os.environ)
    try:
        return run_all.main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_run_all_on_a_small_ham10000_folder_ends_0_with_a_report_skipping_what_needs_the_archive(
        synthetic_small, workspace, capfd):
    """Issue 26's first case, kept cheap (--smoke, one model notebook): 02, 04 and the report run on the HAM10000
    folder, 07's archive run is skipped saying how to give the archive; first a report on an empty registry, which
    fails saying what to run first and exports nothing."""
    out = workspace / "smoke" / "outputs" / "default"
    assert _main(["--smoke", "--no-progress", "--only", "10"]) == 1
    said = capfd.readouterr().out
    assert "run the notebooks that train first" in said and "no report exported" in said
    assert "open it in a browser" not in said and not (out / "report.html").exists()
    ham = synthetic_small / "ham10000"
    assert _main(["--data", str(ham), "--smoke", "--no-progress", "--only", "02", "04", "07_binary_isic--isic_archive",
                  "10"]) == 0
    said = capfd.readouterr().out
    assert "skipped 07_binary_isic--isic_archive: it needs dataset isic_archive" in said
    assert "--data isic_archive=PATH" in said and "04_custom_cnn: done" in said
    assert "report (HTML, open it in a browser)" in said and (out / "report.html").is_file()


def test_each_run_records_the_dataset_it_read_and_the_report_reads_that_record(synthetic_small, folders_dir, ham_dir,
                                                                                monkeypatch):
    """Issue 22: what data a run read is recorded as it runs, not guessed at report time from data_dir or
    $SKINLIB_DATA; a split of data without lesion ids is not called lesion-grouped."""
    from skinlib import provenance, registry, report
    from skinlib.data import load_catalog
    from skinlib.data.splits import load_split, save_split
    from skinlib.data.synthetic import GENERATOR_VERSION

    monkeypatch.setattr(provenance, "_DATA", {})

    def run_on(name: str, root: Path, group_by: str = "auto") -> dict:
        locate("ham10000", root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            catalog = load_catalog(root)
        split = pd.DataFrame({"image_id": catalog["image_id"],
                              "split": [("train", "val", "test")[i % 3] for i in range(len(catalog))]})
        save_split(catalog, split, f"lesion-{name}", seed=0, ratios=(0.4, 0.3, 0.3), group_by=group_by)   # a name
        load_split(f"lesion-{name}", catalog)                                                        # claiming lesions
        rec = registry.RunRecorder("custom_cnn", name, {"split_name": f"lesion-{name}"})
        rec.metrics({"test": {"balanced_accuracy": 0.5}})
        return registry.load_run("custom_cnn", rec.finish().name).info["data"]

    synthetic = run_on("synthetic", synthetic_small / "ham10000")
    assert synthetic["dataset"]["synthetic"] is True and synthetic["dataset"]["name"] == "ham10000"
    assert synthetic["dataset"]["generator_version"] == GENERATOR_VERSION
    assert synthetic["dataset"]["lesion_ids"] is True and synthetic["split"]["grouped_by"] == ["lesion"]
    real = run_on("ham", ham_dir)
    assert real["dataset"]["synthetic"] is False and real["dataset"]["layout"] == "ham10000"
    folders = run_on("folders", folders_dir)
    assert folders["dataset"]["lesion_ids"] is False and folders["split"]["grouped_by"] == []
    monkeypatch.setenv("SKINLIB_DATA", str(ham_dir))                # what the environment says now changes nothing
    runs = report.runs_table().set_index("run")
    assert [report.is_synthetic(runs.loc[r, "data"]) for r in ("synthetic", "ham", "folders")] == [True, False, False]
    split = {r: report.split_of(runs.loc[r, "params"], runs.loc[r, "data"]) for r in ("synthetic", "ham", "folders")}
    assert split["synthetic"] == split["ham"] == "lesion-grouped" and split["folders"].startswith("ungrouped")
    assert report.is_synthetic({}) is None                          # no record: not known, never guessed
