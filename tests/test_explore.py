"""Exploring as a newcomer does, through run_all's runner: open a model notebook first, change a parameter and rerun."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from skinlib import paths
from skinlib.data.splits import DEFAULT_SPLIT
from skinlib.inputs import split_catalog
from skinlib.run.plan import notebook_parameters, plan, select
from skinlib.run.schedule import run_all

ROOT = Path(__file__).resolve().parents[1]
QUICK = "image_size: 32\nwidth: 8\nmax_epochs: 2\nbatch_size: 64\n"


def test_02_defaults_are_the_default_split():
    """A model notebook opened first makes the split 02 would make with its defaults."""
    from skinlib.data.splits import DEFAULTS, default_name

    params = {name: p.default for name, p in notebook_parameters(ROOT / "notebooks" / "02_splits.ipynb").items()}
    assert tuple(params["ratios"]) == DEFAULTS["ratios"]
    assert {k: params[k] for k in ("seed", "group_by", "stratify", "image_size")} == \
        {k: DEFAULTS[k] for k in ("seed", "group_by", "stratify", "image_size")}
    assert default_name(params["group_by"], params["ratios"], params["seed"]) == DEFAULT_SPLIT
    for nb in ("03_random_forest", "04_custom_cnn", "05_transfer_learning"):
        assert notebook_parameters(ROOT / "notebooks" / f"{nb}.ipynb")["split_name"].default == DEFAULT_SPLIT


def test_a_missing_split_named_explicitly_stays_an_error(ham_dir):
    with pytest.raises(FileNotFoundError, match="no saved split 'lesion-70-15-15-seed1'.*02_splits"):
        split_catalog(ham_dir, split_name="lesion-70-15-15-seed1")
    assert not any(paths.splits_dir().iterdir())


def _executed_text(out: Path) -> str:
    nb = json.loads((out / "04_custom_cnn.ipynb").read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def _registry(name: str) -> tuple[dict, dict]:
    folder = paths.results_dir() / "custom_cnn" / "custom-cnn"
    return tuple(json.loads((folder / f).read_text()) for f in (f"{name}.json", "metrics.json"))  # type: ignore[return-value]


def test_open_04_first_change_a_parameter_and_rerun(tmp_path):
    """On an empty workspace 04 runs without 02 (making the default split); after a finished run, changing lr
    and rerunning trains afresh and updates the registry; going back to the first settings resumes that run's
    finished checkpoint and gives exactly its results."""
    (tmp_path / "params" / "quick").mkdir(parents=True)
    (tmp_path / "params" / "quick" / "04_custom_cnn.yaml").write_text(QUICK)
    runs = select(plan(ROOT / "notebooks", tmp_path / "params", "quick"), only=["04"])
    out = tmp_path / "out"

    def run(force: bool = False) -> str:
        log = io.StringIO()
        assert run_all(runs, out, ROOT / "notebooks", force=force, progress=False, log=log) == 0, log.getvalue()
        return _executed_text(out)

    text = run()
    assert f"no split {DEFAULT_SPLIT!r} saved yet: made it as 02_splits does with its defaults" in text
    assert "epoch   2/2" in text and "resumed" not in text
    params, first = _registry("params")
    assert params["lr"] == 0.001

    runs[0].params["lr"] = 0.01
    text = run()
    assert "settings changed (lr): training from the start" in text and "epoch   1/2" in text
    params, changed = _registry("params")
    assert params["lr"] == 0.01 and changed != first

    del runs[0].params["lr"]
    text = run(force=True)
    assert "already complete: its checkpoint holds the finished training (all 2 epochs)" in text   # not "resumed"
    assert "epoch   1/2" not in text
    assert _registry("params")[0]["lr"] == 0.001 and _registry("params")[1] == first
