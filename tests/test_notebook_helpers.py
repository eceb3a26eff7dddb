"""What a reader sees from the helpers every notebook calls first."""

from __future__ import annotations

from skinlib import paths
from skinlib.notebook import setup


def test_setup_prints_where_the_workspace_is(monkeypatch, capsys, tmp_path):
    setup({"seed": 0}, seed=0)
    assert f"workspace {paths.workspace()} (from $SKINLIB_WORKSPACE)" in capsys.readouterr().out
    monkeypatch.delenv("SKINLIB_WORKSPACE")
    monkeypatch.chdir(tmp_path)
    setup({"seed": 0}, seed=0)
    out = capsys.readouterr().out
    assert f"workspace {paths.workspace()} (" in out and "workspace $SKINLIB_WORKSPACE" not in out


def test_messages_print_real_paths(workspace):
    """A message names the file as it is on this machine (one can open or delete it), not ``<repo>/...``."""
    import pytest

    from skinlib.data.splits import load_split

    with pytest.raises(FileNotFoundError) as info:
        load_split("lesion-60-20-20-seed0")
    assert f"(looked in {paths.splits_dir() / 'lesion-60-20-20-seed0'})" in str(info.value)
