"""Every run of params/full/ uses its paper row's settings, or lists why not (skinlib.paper_settings), and
docs/studies.md shows those settings as generated from the same table."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from skinlib import paper_settings
from skinlib.paper_settings import EXTENSION, ROWS
from skinlib.run.plan import notebook_parameters, plan

ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def _full_runs():
    return plan(ROOT / "notebooks", ROOT / "params", "full")


def test_every_full_run_names_its_row_and_uses_its_settings_or_a_listed_deviation():
    problems, reproduced = [], set()
    for run in _full_runs():
        claims = run.reproduces if isinstance(run.reproduces, list) else [run.reproduces]
        if not run.reproduces:
            problems.append(f"{run.name}: says neither `reproduces: <study>/<model>` nor `reproduces: {EXTENSION}: ...`")
            continue
        defaults = {k: p.default for k, p in notebook_parameters(run.notebook).items()}
        for claim in claims:
            if str(claim).startswith(f"{EXTENSION}:") and len(str(claim)) > len(EXTENSION) + 3:
                continue
            row = ROWS.get(claim)
            if row is None:
                problems.append(f"{run.name}: reproduces {claim!r}, which is no row of skinlib.paper_settings.ROWS")
                continue
            if row.notebook != run.notebook.name[:2]:
                problems.append(f"{run.name}: row {claim} runs in notebook {row.notebook}")
            reproduced.add(claim)
            for knob, want, have, reason in paper_settings.differences(row, run.params, defaults):
                if not reason:
                    problems.append(f"{run.name} ({claim}): {knob} = {have!r}, the study ran {want!r}; use the study's "
                                    "value or list a deviation with its reason in skinlib/paper_settings.py")
    missing = sorted(set(ROWS) - reproduced)
    assert not problems, "\n".join(problems)
    assert not missing, f"paper rows without a run in params/full: {missing}"


def test_a_difference_without_a_reason_fails():
    row = ROWS["A/ResNet-50"]
    diffs = {knob: reason for knob, _, _, reason in paper_settings.differences(row, {"lr": 0.001}, row.settings)}
    assert diffs == {"lr": None}
    split = paper_settings.differences(row, {"split_name": "lesion-75-10-15-seed0"}, row.settings)
    assert split[0][0] == "split_name" and "lesion-grouped" in split[0][3]


def test_docs_show_the_generated_settings(tmp_path):
    doc = ROOT / "docs" / "studies.md"
    copy = tmp_path / "studies.md"
    copy.write_text(doc.read_text())
    assert not paper_settings.rewrite(copy), \
        "docs/studies.md's settings tables are out of date: run `python -m skinlib.paper_settings docs/studies.md`"
    for study in paper_settings.STUDY_DEVIATIONS:
        assert paper_settings.markdown(study) in doc.read_text()


def test_reproduces_is_the_runners_key_not_a_parameter():
    data = yaml.safe_load((ROOT / "params" / "full" / "05_transfer_learning.yaml").read_text())
    assert all("reproduces" in run for run in data["runs"])
    assert all("reproduces" not in run.params for run in _full_runs())


def test_the_capabilities_the_rows_need(tmp_path):
    """Centre crop (CLIP's preprocessing), the study_e head's L2 penalty, studies B's and E's colour augmentations."""
    import numpy as np
    import torch
    from PIL import Image

    from skinlib.data.cache import load_image
    from skinlib.data.transforms import StudyBAugment, StudyEColorAugment, augmentation
    from skinlib.models import create_backbone
    from skinlib.train import param_groups

    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 16:64] = 255                                    # a white centre (wider than high) between black sides
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert load_image(tmp_path / "wide.png", 20, crop="center").min() > 200          # the black sides are cut off
    assert load_image(tmp_path / "wide.png", 20).min() == 0          # squash keeps the black sides
    model = create_backbone("resnet18", 7, head="study_e", head_l2=0.01)
    decays = sorted(g["weight_decay"] for g in param_groups(model, 0.0))
    assert decays == [0.0, 0.02]                            # Keras' l2(0.01) on the dense kernel: decay 2 * 0.01
    assert isinstance(augmentation("study_b"), StudyBAugment) and isinstance(augmentation("study_e_color"), StudyEColorAugment)
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    flat = torch.ones(8, 3, 16, 16) * 0.5
    assert not torch.allclose(augmentation("study_e_color")(flat.clone()), flat)      # colour changes a grey image
    assert torch.allclose(augmentation("study_e")(flat.clone()), flat, atol=1e-5)    # geometry alone does not
    assert augmentation("study_b")(x).shape == x.shape
