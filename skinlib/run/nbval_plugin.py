"""pytest plugin (registered in pyproject.toml) adapting nbval to how the notebooks are stored.

* With ``SKINLIB_FORK_KERNELS=1`` (``make test``, CI), nbval's kernels start from :mod:`skinlib.run.forked_kernels`'
  zygote, as ``run_all.py``'s do then (a second, not ten); without it, jupyter_client's own kernels.
* nbval compares stdout only, never stderr: warnings and progress bars go to stderr and vary with library
  versions; the checked cells' meaning (counts, split sizes, leakage) is printed to stdout.
* Checked cells (tag ``nbval-check-output``) hold their reference output without an execution count, as
  nbstripout stores them (and as a reader should see them before running anything); nbval would take such a
  cell for "not run", so the count is supplied here.
* With pytest-xdist (``make test`` runs ``pytest -n 2 --dist loadgroup``) the notebooks share one workspace
  (03-10 read what 02 writes), so all their cells form one group that one worker runs in order, collected first so
  that it starts at once; the other tests spread over the other workers (and keep their ``xdist_group`` marks).
  The cores are shared out: each worker and the kernels it starts get ``cores // workers`` threads
  (``OMP_NUM_THREADS`` and the like, unless already set), so the workers do not oversubscribe the machine.
"""

from __future__ import annotations

import os

import pytest

from skinlib.run.schedule import THREAD_VARIABLES, cores

NOTEBOOK_GROUP = "notebooks"

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to adjust
    IPyNbCell = None


def _stdout_only(outputs):
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


if IPyNbCell is not None and not getattr(IPyNbCell, "_skinlib_adapted", False):
    import nbval.kernel

    from skinlib.run import forked_kernels

    if forked_kernels.enabled():                       # opt-in: kernels forked from a preloaded process
        nbval.kernel.KernelManager = forked_kernels.ForkedKernelManager
    _compare = IPyNbCell.compare_outputs
    _runtest = IPyNbCell.runtest

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _stdout_only(test), _stdout_only(ref), skip_compare)

    def runtest(self):
        if self.cell.get("execution_count") is None and self.cell.get("outputs"):
            self.cell.execution_count = 0           # a stored reference output: compare with it
        return _runtest(self)

    IPyNbCell.compare_outputs = compare_outputs
    IPyNbCell.runtest = runtest
    IPyNbCell._skinlib_adapted = True


def _is_cell(item) -> bool:
    return IPyNbCell is not None and isinstance(item, IPyNbCell)


def notebook_scope(nodeid: str) -> str | None:
    """The xdist scope of a notebook cell's test id (``notebooks/02_splits.ipynb::Cell 3``): one for every
    notebook; None for another test."""
    path = nodeid.split("::", 1)[0]
    return NOTEBOOK_GROUP if path.endswith(".ipynb") else None


def pytest_configure(config) -> None:
    """Under xdist (in the controller, before the workers start): refuse a distribution that would split the
    notebooks between workers, and give each worker its share of the cores."""
    os.environ.pop("JPY_SESSION_NAME", None)        # pytest started from a notebook: its kernels are not that notebook
    workers = getattr(config.option, "numprocesses", None) or 0
    if not workers or hasattr(config, "workerinput"):
        return
    if config.getoption("dist", "no") != "loadgroup":
        raise pytest.UsageError("the notebooks run in order in one worker (03-10 read what 02 writes): "
                                f"use --dist loadgroup with -n {workers}, e.g. `make test`")
    threads = str(max(1, cores() // workers))
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, threads)          # inherited by the workers and the kernels they start


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` with every notebook cell in one group. (xdist marks a group by renaming the test id,
    which pytest 9 no longer allows, so a ``xdist_group`` mark would not keep the notebooks together.)"""
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class NotebooksTogether(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return notebook_scope(nodeid) or super()._split_scope(nodeid)

    return NotebooksTogether(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """In an xdist worker, the notebooks first: the longest chain of tests starts at once."""
    cells = [item for item in items if _is_cell(item)]
    if hasattr(config, "workerinput") and cells:
        ids = {id(item) for item in cells}
        items[:] = cells + [item for item in items if id(item) not in ids]
