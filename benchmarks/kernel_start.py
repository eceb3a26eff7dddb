#!/usr/bin/env python
"""Kernel start-up: a notebook whose only cell is a model notebook's imports, executed in a kernel started as a new
process (jupyter_client's own manager) and in one forked from skinlib's preloaded zygote (skinlib.run.forked_kernels).

    python benchmarks/kernel_start.py             # 5 alternating rounds of each
    python benchmarks/kernel_start.py --rounds 9

Each round is one whole execution through nbclient, as run_all.py, nbval and the teaching tests do it: start the
kernel, import, shut down. The zygote's own start (once per launching process) is timed apart. Prints the
medians and their ratio, from this run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.run import forked_kernels  # noqa: E402

IMPORTS = ROOT / "notebooks" / "05_transfer_learning.ipynb"


def imports_cell() -> str:
    """The import lines of 05's first code cell after its parameters."""
    nb = nbformat.read(IMPORTS, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return "\n".join(line for line in code[1].source.splitlines() if line.startswith(("import ", "from ")))


def execute(source: str, manager) -> float:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    started = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", kernel_manager_class=manager,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not forked_kernels.enabled():
        sys.exit("kernels are forked on Linux only (and not with SKINLIB_FORK_KERNELS=0)")
    source = imports_cell()
    started = time.perf_counter()
    execute("pass", forked_kernels.AsyncForkedKernelManager)
    print(f"zygote start (once per launching process) and a first kernel: {time.perf_counter() - started:.1f} s")
    new, forked = [], []
    for _ in range(args.rounds):
        new.append(execute(source, AsyncKernelManager))
        forked.append(execute(source, forked_kernels.AsyncForkedKernelManager))
    a, b = statistics.median(new), statistics.median(forked)
    print(f"new process: median {a:.2f} s  (rounds: {', '.join(f'{t:.1f}' for t in new)})")
    print(f"forked:      median {b:.2f} s  (rounds: {', '.join(f'{t:.1f}' for t in forked)})")
    print(f"ratio: {a / b:.1f}x faster, {a - b:.1f} s saved per kernel")


if __name__ == "__main__":
    main()
