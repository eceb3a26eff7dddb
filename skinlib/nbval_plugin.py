"""pytest plugin (registered in pyproject.toml): nbval compares stdout only, never stderr.

Warnings and progress bars go to stderr and vary with library versions; the checked cells' meaning
(counts, split sizes, leakage) is printed to stdout.
"""

from __future__ import annotations

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to adjust
    IPyNbCell = None


def _stdout_only(outputs):
    return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]


if IPyNbCell is not None and not getattr(IPyNbCell, "_skinlib_stdout_only", False):
    _compare = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        return _compare(self, _stdout_only(test), _stdout_only(ref), skip_compare)

    IPyNbCell.compare_outputs = compare_outputs
    IPyNbCell._skinlib_stdout_only = True
