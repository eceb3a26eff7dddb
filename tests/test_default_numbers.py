"""tools/default_numbers.py: the figures the docs quote are compared with a measurement (no notebook runs here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("default_numbers", ROOT / "tools" / "default_numbers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(tool, shift: float = 0.0) -> dict:
    measured = {}
    for seed in (0, 1, 2):
        for threads in (1, 2):
            value = 0.3 + 0.05 * seed + (shift if threads == 2 else 0.0)
            measured[f"{seed}/{threads}"] = {
                "runs": {label: {"test": value, "val": value} for label, _, _ in tool.RUNS},
                "split_cost": {metric: {"lesion-grouped": 0.25, "image-level": 0.4, "inflation": 0.15, "low": 0.1,
                                        "high": 0.2} for metric in ("accuracy", "balanced_accuracy")},
                "seconds": {"04_custom_cnn": 60.0}}
    return {"seeds": [0, 1, 2], "threads": [1, 2], "measured": measured}


def test_blocks_give_mean_range_and_the_thread_change():
    tool = _tool()
    learn = tool.blocks(_summary(tool, shift=0.1))["learn"]
    assert "| 04 custom CNN | 0.35 [0.30, 0.40] | 0.45 [0.40, 0.50] | 0.10 |" in learn
    assert "seeds 0-2" in learn
    cost = tool.blocks(_summary(tool))["split-cost"]
    assert "| 1 | 0.250 → 0.400 | +0.150 [+0.100, +0.200] | 0.250 → 0.400 | +0.150 [+0.100, +0.200] |" in cost


def test_docs_are_checked_and_rewritten(tmp_path):
    tool = _tool()
    rendered = tool.blocks(_summary(tool))
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- default_numbers: learn -->\n" + rendered["learn"] + "<!-- /default_numbers -->\nafter\n")
    assert tool.check_docs(rendered, 0.05, write=False, pages=[page]) == []
    off = tool.blocks(_summary(tool, shift=0.2))                 # the docs quote figures 0.2 from these
    problems = tool.check_docs(off, 0.05, write=False, pages=[page])
    assert problems and all("quoted" in p for p in problems)
    assert tool.check_docs(off, 0.05, write=True, pages=[page])  # reported, and the page rewritten
    assert tool.check_docs(off, 0.05, write=False, pages=[page]) == []
    assert page.read_text().startswith("before\n") and page.read_text().endswith("after\n")
    one_thread = tool.blocks({**_summary(tool), "threads": [1]})    # another measurement's shape: never compared
    assert any("more than its numbers" in p for p in tool.check_docs(one_thread, 0.05, write=False, pages=[page]))
    (tmp_path / "none.md").write_text("no block here\n")
    assert tool.check_docs(off, 0.05, write=False, pages=[tmp_path / "none.md"]) == [
        "no block <!-- default_numbers: NAME --> found in none.md"]
