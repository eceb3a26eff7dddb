"""A run is done only while nothing it read has changed: the registry runs it consumed, the split, the dataset,
the library's code (issue: 08-10 exported an old report after 05 was run again)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from skinlib import provenance
from skinlib.run import execute
from skinlib.run.execute import why_pending
from skinlib.run.plan import plan, select
from skinlib.run.schedule import run_all
from test_runner import write_notebook

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

WRITES = """
from skinlib.registry import RunRecorder
rec = RunRecorder("transfer", run_name, {"run_name": run_name})
rec.metrics({"test": {"balanced_accuracy": 0.5}})
rec.finish()
from skinlib.registry import gather
print(len(gather("transfer")))        # each run lists its notebook's runs (as 05's table does): no dependency
"""
ENSEMBLE = """
from skinlib.registry import gather, load_run
table = gather("transfer")
assert len(table) == 2, table
load_run("transfer", "a")
open("ensembles.txt", "a").write("ran\\n")
"""
REPORT = """
from skinlib.registry import gather
gather()
open("report.txt", "a").write("ran\\n")
"""
WHOLE = """
from skinlib.registry import RunRecorder, gather
gather()                               # the whole registry, as 08's candidate members and 10's tables
rec = RunRecorder(experiment, "r", {})
rec.finish()
"""


@pytest.fixture
def staged(tmp_path):
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "05_transfer.ipynb", WRITES, params="run_name = 'x'  # the run")
    write_notebook(nbs / "08_ensembles.ipynb", ENSEMBLE, params="k = 2  # members")
    write_notebook(nbs / "10_report.ipynb", REPORT, params="k = 2  # unused")
    (tmp_path / "params" / "p").mkdir(parents=True)
    (tmp_path / "params" / "p" / "05_transfer.yaml").write_text("runs:\n  - name: a\n  - name: b\n")
    return tmp_path


def _plan(root: Path):
    return plan(root / "notebooks", root / "params", "p")


def _ran(root: Path, name: str) -> int:
    path = root / "notebooks" / name
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_a_run_upstream_reruns_what_read_it(staged):
    out, log = staged / "outputs", io.StringIO()
    runs = _plan(staged)
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log) == 0, log.getvalue()
    assert [why_pending(out, r) for r in runs] == [None] * 4, "05's runs read each other's, yet are done"
    record = execute._read_record(execute.record_path(out, runs[2]))
    assert [provenance.describe(k) for k in record["reads"]] == [
        "the registry's runs of 'transfer'", "registry run transfer/a", "registry run transfer/b"]

    log = io.StringIO()                          # 05 --force: a new run of transfer/a
    assert run_all(select(runs, ["05_transfer--a"]), out, staged / "notebooks", force=True, progress=False,
                   log=log) == 0
    reasons = {r.name: why_pending(out, r) for r in runs}
    assert reasons["05_transfer--a"] is None and reasons["05_transfer--b"] is None
    assert "what it read changed since: the registry's runs of 'transfer', registry run transfer/a" \
        == reasons["08_ensembles"]
    assert "what it read changed since" in reasons["10_report"]

    log = io.StringIO()                          # the next plain run executes 08 and 10 again, and only them
    assert run_all(runs, out, staged / "notebooks", progress=False, log=log) == 0
    assert log.getvalue().count("already done") == 2 and _ran(staged, "ensembles.txt") == 2
    assert _ran(staged, "report.txt") == 2 and all(why_pending(out, r) is None for r in runs)


def test_list_says_why_a_run_is_pending(staged, monkeypatch):
    out = staged / "outputs"
    runs = _plan(staged)
    assert why_pending(out, runs[0]) == "not run yet"
    assert run_all(runs, out, staged / "notebooks", progress=False, log=io.StringIO()) == 0
    runs[0].params["run_name"] = "c"             # the same run with other parameters
    assert why_pending(out, runs[0]) == "its parameters changed"
    monkeypatch.setattr(execute, "library_version", lambda: "changed")
    assert why_pending(out, runs[1]) == "skinlib's code changed"


def test_what_a_notebook_reads_is_noted_and_a_changed_dataset_or_split_is_seen(ham_dir, tmp_path, monkeypatch):
    import os

    from skinlib.data import open_catalog
    from skinlib.data.splits import load_split

    split = tmp_path / "splits" / "s"
    split.mkdir(parents=True)
    (split / "split.csv").write_text("image_id,split\nISIC_0027419,train\n")
    (split / "manifest.json").write_text('{"name": "s", "catalog_fingerprint": "x"}')
    reads = tmp_path / "reads.txt"
    monkeypatch.setenv(provenance.READS_ENV, str(reads))
    open_catalog(ham_dir)
    load_split(split)
    seen = provenance.noted(reads)
    keys = list(seen)
    assert [k.split(":")[0] for k in keys] == ["dataset", "split"]
    before = provenance.versions(keys)
    assert before == seen, "each input noted with its version when read"
    metadata = ham_dir / "HAM10000_metadata.csv"
    metadata.write_text(metadata.read_text() + "\n")            # the dataset's metadata rewritten
    (split / "split.csv").write_text((split / "split.csv").read_text())    # the same rows written again
    os.utime(split / "split.csv", (0, 0))
    after = provenance.versions(keys)
    assert after[keys[0]] != before[keys[0]]
    assert after[keys[1]] == before[keys[1]], "a split is its content: the same rows written again change nothing"
    monkeypatch.delenv(provenance.READS_ENV)
    open_catalog(ham_dir)                                           # outside run_all.py: nothing noted
    assert provenance.noted(reads) == seen


def test_a_run_depends_on_earlier_notebooks_only_and_sees_a_new_experiment(tmp_path):
    """08 lists the whole registry, then 09 writes to it: 08 does not depend on 09 (no rerun after a full run); a run
    appearing in a new experiment (a notebook that failed before, or one written by hand) reruns both."""
    nbs = tmp_path / "notebooks"
    write_notebook(nbs / "08_whole.ipynb", WHOLE, params="experiment = 'ensembles'  # where it writes")
    write_notebook(nbs / "09_whole.ipynb", WHOLE, params="experiment = 'explanations'  # where it writes")
    out = tmp_path / "outputs"
    runs = plan(nbs, None, "default")
    assert run_all(runs, out, nbs, progress=False, log=io.StringIO()) == 0
    assert [why_pending(out, r) for r in runs] == [None, None]
    from skinlib.registry import RunRecorder

    RunRecorder("vision_language", "clip", {}).finish()      # outside run_all.py: an input of every notebook
    assert all("the registry's experiments" in why_pending(out, r) for r in runs)


def test_an_unknown_kind_of_input_counts_as_changed():
    assert provenance.version("from-a-newer-skinlib:/x") == "unknown"
    assert provenance.upstream("05_transfer", "08_ensembles") and not provenance.upstream("09_gradcam", "08_ensembles")
    assert not provenance.upstream("08_a", "08_b") and provenance.upstream("", "08_ensembles")


def test_the_library_version_covers_skinlib_but_not_the_runner(tmp_path):
    import shutil

    copy = tmp_path / "skinlib"
    shutil.copytree(execute.LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = execute.library_version(copy)
    (copy / "run" / "plan.py").write_text((copy / "run" / "plan.py").read_text() + "\n# a runner change\n")
    execute.library_version.cache_clear()
    assert execute.library_version(copy) == first
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# a metric fixed\n")
    execute.library_version.cache_clear()
    assert execute.library_version(copy) != first
