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
    assert not paths.display_path(paths.workspace() / "splits").startswith("$SKINLIB_WORKSPACE")
