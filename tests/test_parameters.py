"""Allowed values of the shared knobs: checked by run_all.py before anything runs, and by the library functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinlib import parameters
from skinlib.parameters import KnobError
from skinlib.run.plan import ParameterError, find_notebooks, knob_rules, notebook_parameters, parse_value, plan
from test_runner import write_notebook

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ("image_size = 64  # side\nlr = 0.001  # learning rate\nratios = [0.75, 0.10, 0.15]  # fractions\n"
          "backbone = 'resnet18'  # model\naugment = 'none'  # augmentation\nmax_epochs = 3  # epochs\n"
          "run_name = None  # name\ndata_dir = None  # data\nother = 1  # not a knob")


@pytest.fixture
def project(tmp_path):
    write_notebook(tmp_path / "notebooks" / "05_model.ipynb", "pass", params=PARAMS)
    (tmp_path / "params" / "full").mkdir(parents=True)
    return tmp_path


def plan_with(project, text: str):
    (project / "params" / "full" / "05_model.yaml").write_text(text)
    return plan(project / "notebooks", project / "params", "full")


@pytest.mark.parametrize("line, expected", [
    ("image_size: -5", "image_size = -5 is not allowed: use an integer from 8 to 4096"),
    ("lr: 0", "lr = 0 is not allowed: use a number > 0"),
    ("ratios: [0.5, 0.5, 0.5]",
     "ratios = [0.5, 0.5, 0.5] is not allowed: use three numbers >= 0 (train, val, test) that sum to 1"),
    ("backbone: resnet51", "backbone = 'resnet51' is not allowed: use one of resnet18, resnet50"),
    ("augment: study_z",
     "augment = 'study_z' is not allowed: use one of study_a, study_e, none, study_c, study_b, study_e_color (did you mean 'study_e'?)"),
    ("max_epochs: 0", "max_epochs = 0 is not allowed: use an integer >= 1"),
    ("run_name: a/b", "run_name = 'a/b' is not allowed"),
    ("data_dir: /no/such/folder", "data_dir = '/no/such/folder' is not allowed: use None or an existing folder"),
])
def test_values_outside_their_range_stop_the_plan_naming_file_key_value_and_what_is_allowed(project, line, expected):
    with pytest.raises(ParameterError) as info:
        plan_with(project, line + "\n")
    assert f"05_model.yaml: parameter {expected}" in str(info.value)


def test_a_bad_value_in_a_run_names_the_run(project):
    with pytest.raises(ParameterError, match=r"05_model.yaml runs\[1\] \(fast\): parameter lr = -0.1 is not allowed"):
        plan_with(project, "runs:\n  - name: slow\n    lr: 0.0001\n  - name: fast\n    lr: -0.1\n")
    with pytest.raises(ParameterError, match=r"05_model.ipynb, from the command line: parameter image_size = 2 is"):
        plan(project / "notebooks", project / "params", "default", overrides={"image_size": 2})


def test_yaml_exponent_floats_are_floats(project):
    runs = plan_with(project, "lr: 1e-4\nruns:\n  - name: a\n    lr: 5E-3\n  - name: b\n")
    assert [r.params["lr"] for r in runs] == [0.005, 0.0001]
    assert parse_value("1e-4") == 0.0001 and parse_value("3") == 3 and parse_value("1e") == "1e"
    with pytest.raises(ParameterError, match=r"got '1e-4' \(str\) \(a number in quotes is text"):
        plan_with(project, "lr: '1e-4'\n")


def test_every_notebook_default_is_allowed():
    for notebook in find_notebooks(ROOT / "notebooks"):
        defaults = {name: p.default for name, p in notebook_parameters(notebook).items()}
        parameters.check_all(defaults, notebook.name, knob_rules(notebook.name))


def test_rules_are_easy_to_extend(monkeypatch):
    monkeypatch.setitem(parameters.KNOBS, "temperature", parameters.number(0, low_open=True))
    assert parameters.problem("temperature", 0.5) is None
    assert parameters.problem("temperature", 0) == "temperature = 0 is not allowed: use a number > 0"
    assert parameters.problem("not_a_knob", object()) is None
    import numpy as np

    assert parameters.problem("batch_size", np.int64(8)) is None and parameters.problem("lr", np.float32(0.1)) is None
    assert parameters.problem("lr", True) and parameters.problem("lr", float("nan")) and parameters.problem("seed", 1.5)
    monkeypatch.setitem(parameters.NOTEBOOK_KNOBS, "06", {"backbone": parameters.one_of("ViT-B-32")})
    assert parameters.problem("backbone", "ViT-B-32", "06_vision_language.ipynb") is None
    assert parameters.problem("backbone", "resnet50", "06_vision_language") == \
        "backbone = 'resnet50' is not allowed: use one of ViT-B-32"
    assert parameters.problem("backbone", "resnet50", "05_transfer_learning.ipynb") is None


def test_library_functions_check_their_own_arguments(ham_dir):
    from skinlib.data import open_catalog
    from skinlib.data.cache import build_cache
    from skinlib.data.splits import SplitError, make_split
    from skinlib.data.transforms import augmentation
    from skinlib.models import create_backbone
    from skinlib.train import FitConfig

    with pytest.raises(KnobError, match="lr = 0 is not allowed"):
        FitConfig(lr=0)
    with pytest.raises(KnobError, match="optimizer = 'adan' is not allowed.*did you mean 'adam'"):
        FitConfig(optimizer="adan")
    with pytest.raises(KnobError, match="augment = 'study_z' is not allowed"):
        augmentation("study_z")
    with pytest.raises(KnobError, match="head = 'mlp' is not allowed"):
        create_backbone("resnet18", head="mlp")
    catalog = open_catalog(ham_dir)
    with pytest.raises(SplitError, match=r"ratios = \[0.5, 0.5, 0.5\] is not allowed"):
        make_split(catalog, (0.5, 0.5, 0.5))
    with pytest.raises(KnobError, match="image_size = -5 is not allowed"):
        build_cache(catalog, -5)
    from skinlib import paths
    assert not any(paths.cache_dir().iterdir())                     # nothing half-made left behind
