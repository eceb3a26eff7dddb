"""run_all.py --set (validated like parameter files) and --smoke (tiny data, one epoch, a workspace of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_runner import project, write_notebook  # noqa: F401  (fixture)

from skinlib.inputs import SMOKE_ENV, smoke_subset
from skinlib.run.plan import ParameterError, SMOKE_LIMITS, parse_sets, plan, smoke

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]


def test_set_values_are_read_as_yaml():
    assert parse_sets(["lr=1e-3", "pretrained=false", "ratios=[0.7, 0.15, 0.15]", "run_name="]) == {
        "lr": 0.001, "pretrained": False, "ratios": [0.7, 0.15, 0.15], "run_name": None}
    with pytest.raises(ParameterError, match="expected key=value"):
        parse_sets(["max_epochs"])


def test_set_overrides_every_run_that_has_the_key(project):  # noqa: F811
    (project / "params" / "full" / "01_first.yaml").write_text("n: 5\nruns:\n  - name: a\n  - name: b\n    n: 6\n")
    runs = plan(project / "notebooks", project / "params", "full", sets={"n": 2, "rate": 0.1})
    assert [r.params["n"] for r in runs] == [2, 2, 2] and all(r.params["rate"] == 0.1 for r in runs)


def test_set_rejects_unknown_keys_and_wrong_types(project):  # noqa: F811
    with pytest.raises(ParameterError, match=r"--set: unknown parameter 'nn'; did you mean 'n'\?"):
        plan(project / "notebooks", project / "params", "default", sets={"nn": 2})
    with pytest.raises(ParameterError) as info:
        plan(project / "notebooks", project / "params", "default", sets={"n": "two"})
    assert "--set (notebook 01_first.ipynb): parameter 'n' should be like its default 3 (int), got 'two'" in str(info.value)
    assert "02_second.ipynb" in str(info.value)                       # every notebook that has the key is checked


def test_smoke_shrinks_epochs_and_batches_never_the_model(project):  # noqa: F811
    write_notebook(project / "notebooks" / "03_model.ipynb", "pass",
                   params="max_epochs = 20  # epochs\nbatch_size = 32  # batch\nimage_size = 224  # px\nbackbone = 'resnet50'  # model")
    (project / "params" / "full" / "03_model.yaml").write_text("runs:\n  - name: a\n    batch_size: 3\n  - name: b\n    max_epochs: 3\n")
    runs = {r.name: r.params for r in smoke(plan(project / "notebooks", project / "params", "full"))}
    assert runs["03_model--a"] == {"max_epochs": 1, "batch_size": 3}          # lower than the limit: kept
    assert runs["03_model--b"] == {"max_epochs": 1, "batch_size": SMOKE_LIMITS["batch_size"]}
    assert runs["01_first"] == {}                                             # no such knobs: untouched


def test_smoke_explains_every_model_on_fewer_images():
    """09's smoke run draws and tests Grad-CAM for every model of the profile, on a few images."""
    runs = {r.name: r.params for r in smoke(plan(ROOT / "notebooks", ROOT / "params", "full"))}
    full = {r.name: r.params for r in plan(ROOT / "notebooks", ROOT / "params", "full")}
    assert runs["09_gradcam"]["per_class"] == 1 and runs["09_gradcam"]["n_faithfulness"] == 2
    assert runs["09_gradcam"]["max_models"] == full["09_gradcam"]["max_models"] == 6      # never fewer models


def test_smoke_subset_keeps_a_few_images_per_class_and_split(monkeypatch, capsys):
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(60)], "label": [k % 3 for k in range(60)],
                          "split": ["train"] * 40 + ["val"] * 10 + ["test"] * 10})
    monkeypatch.delenv(SMOKE_ENV, raising=False)
    assert smoke_subset(table) is table                                       # outside a smoke run: unchanged
    monkeypatch.setenv(SMOKE_ENV, "2")
    subset = smoke_subset(table)
    assert subset.groupby(["split", "label"]).size().max() == 2 and set(subset["split"]) == {"train", "val", "test"}
    assert subset["image_id"].tolist() == sorted(subset["image_id"], key=lambda i: int(i[1:]))   # order kept
    assert "SMOKE RUN" in capsys.readouterr().out


def test_smoke_run_writes_only_to_its_own_workspace(tmp_path):
    env = {**os.environ, "SKINLIB_WORKSPACE": str(tmp_path)}
    left = tmp_path / "smoke" / "checkpoints" / "transfer" / "vgg19" / "last.pt"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"0" * 1024)                                               # as a smoke run of 05 leaves it
    done = subprocess.run([sys.executable, "run_all.py", "--smoke", "--only", "01", "--no-progress"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SMOKE run of profile default" in done.stdout
    assert (tmp_path / "smoke" / "outputs" / "default" / "01_eda.ipynb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smoke"]            # nothing next to the real outputs
    assert not left.exists()                             # smoke checkpoints are deleted after each run (disk space)
