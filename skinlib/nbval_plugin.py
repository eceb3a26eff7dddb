"""pytest plugin (registered in pyproject.toml) adapting nbval to how the notebooks are stored.

* nbval compares stdout only, never stderr: warnings and progress bars go to stderr and vary with library
  versions; the checked cells' meaning (counts, split sizes, leakage) is printed to stdout.
* Checked cells (tag ``nbval-check-output``) hold their reference output without an execution count, as
  nbstripout stores them (and as a reader should see them before running anything); nbval would take such a
  cell for "not run", so the count is supplied here.
"""

from __future__ import annotations

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to adjust
    IPyNbCell = None


def _stdout_only(outputs):
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


if IPyNbCell is not None and not getattr(IPyNbCell, "_skinlib_adapted", False):
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
