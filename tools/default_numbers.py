#!/usr/bin/env python
"""Measure what the default notebooks learn, over seeds and thread counts, and check the figures the docs quote.

    python tools/default_numbers.py                       # seeds 0-2, 1 and 2 torch threads: 02-05 six times
    python tools/default_numbers.py --seeds 0 --threads 2 # one default run
    python tools/default_numbers.py --check               # ... and fail when a figure quoted in the docs is off
    python tools/default_numbers.py --write               # ... and rewrite the quoted figures from this run

Each (seed, threads) runs ``run_all.py --only 02 03 04 05 --set seed=S`` (03-05 then read 02's split of that seed) in
a workspace of its own (under ``--workdir``, default ``<workspace>/default_numbers``), with torch, OpenMP and MKL
limited to that many threads (``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, which each notebook's kernel inherits;
the recorded ``environment.torch_threads`` of every run is checked against it). 05 runs its default run only (the
specialists of ``params/default/`` are 08's). The seed sets the synthetic dataset, the split and the models, so the
spread over seeds is what a newcomer may see; the change from 1 to 2 threads is what the thread count alone does
(the same seed: the same data, split and initial weights, float sums added in another order).

It prints, for each run, the test balanced accuracy per seed, its mean and range, and the largest change between
thread counts; 03's split-cost measurement (lesion-grouped vs image-level folds); and each notebook's seconds.
The docs quote these figures between ``<!-- default_numbers: NAME -->`` and ``<!-- /default_numbers -->``:
``--check`` compares every number there with this measurement (within ``--tolerance``), ``--write`` rewrites them.
The measurement is kept in ``<workdir>/summary.json``; ``--summary FILE`` checks or writes from one without
running anything, ``--reread`` from the workspaces an earlier measurement left.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib import paths  # noqa: E402

#: the runs measured: (label, experiment, run) in the registry
RUNS = (("03 random forest (HOG)", "random_forest", "rf-hog"),
        ("04 custom CNN", "custom_cnn", "custom-cnn"),
        ("05 ResNet-18 from scratch", "transfer", "resnet18-scratch-rgb-noaug"))
SPLIT_COST = ("rf-hog-lesion-5fold", "rf-hog-image-5fold")
ONLY = ("02", "03", "04", "05_transfer_learning--resnet18-scratch-rgb-noaug")
#: the pages whose marked blocks this script writes and checks
DOCS = (ROOT / "README.md", ROOT / "docs" / "models-and-training.md", ROOT / "docs" / "report.md")
BLOCK = re.compile(r"(<!-- default_numbers: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /default_numbers -->)", re.S)
NUMBER = re.compile(r"[+-]?\d+\.\d+")


def run_one(seed: int, threads: int, workdir: Path, data_from: Path | None, log) -> Path:
    """Run 02-05 for one seed with `threads` threads in a workspace of its own; return that workspace."""
    workspace = workdir / f"seed{seed}-threads{threads}"
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)
    if data_from is not None and (data_from / "synthetic").is_dir():     # the same seed's data: linked, not redrawn
        shutil.copytree(data_from / "synthetic", workspace / "synthetic", copy_function=os.link)
    env = {**os.environ, paths.WORKSPACE_ENV: str(workspace), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, str(ROOT / "run_all.py"), "--only", *ONLY, "--no-progress", "--set", f"seed={seed}"]
    started = time.time()
    with open(workspace / "run_all.log", "w") as out:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    print(f"seed {seed}, {threads} thread(s): {'ok' if code == 0 else f'FAILED ({code})'} in "
          f"{time.time() - started:.0f} s (log: {workspace / 'run_all.log'})", file=log, flush=True)
    if code != 0:
        raise SystemExit(f"run_all.py failed for seed {seed} with {threads} thread(s); see {workspace / 'run_all.log'}")
    return workspace


def read_workspace(workspace: Path, seed: int, threads: int) -> dict:
    """The measured figures of one workspace: test (and val) balanced accuracy of each run, the split cost, the
    seconds of each notebook."""
    results = workspace / "results"
    found: dict = {"runs": {}, "split_cost": {}, "seconds": {}}
    for label, experiment, run in RUNS:
        folder = results / experiment / run
        metrics = json.loads((folder / "metrics.json").read_text())
        info = json.loads((folder / "run.json").read_text())
        recorded = (info.get("environment") or {}).get("torch_threads")
        if recorded is not None and recorded != threads:
            raise SystemExit(f"{folder}: ran with {recorded} torch threads, not {threads}: is OMP_NUM_THREADS "
                             "overridden elsewhere?")
        found["runs"][label] = {"test": metrics["test"]["balanced_accuracy"], "val": metrics["val"]["balanced_accuracy"]}
    from skinlib.report import split_cost

    cost = split_cost(*(f"split_cost/{run}" for run in SPLIT_COST), seed=seed, root=results)   # as 03 shows it
    found["split_cost"] = {metric: {k: float(cost.loc[metric, k]) for k in ("lesion-grouped", "image-level",
                                                                          "inflation", "low", "high")}
                           for metric in ("accuracy", "balanced_accuracy")}
    for record in sorted((workspace / "outputs" / "default").glob("*.run.json")):
        info = json.loads(record.read_text())
        found["seconds"][info["run"]] = info["seconds"]
    return found


def measure(seeds: list[int], threads: list[int], workdir: Path, parallel: int, log=sys.stdout,
            run: bool = True) -> dict:
    """Run every (seed, threads) and gather the figures: ``{"seeds", "threads", "measured": {"S/T": ...}}``.

    Args:
        run: False: read the workspaces an earlier measurement left in `workdir`, run nothing.
    """
    def seed_runs(seed: int) -> dict:
        found, first = {}, None
        for t in threads:
            workspace = run_one(seed, t, workdir, first, log) if run else workdir / f"seed{seed}-threads{t}"
            first = first or workspace
            found[f"{seed}/{t}"] = read_workspace(workspace, seed, t)
        return found

    measured: dict = {}
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for found in pool.map(seed_runs, seeds):
            measured.update(found)
    return {"seeds": seeds, "threads": threads, "measured": measured, "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d")}


def _spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.fmean(values), min(values), max(values)


def blocks(summary: dict) -> dict[str, str]:
    """The docs' blocks, rendered from a measurement: ``{name: markdown}``."""
    seeds, threads, measured = summary["seeds"], summary["threads"], summary["measured"]
    span = f"{min(seeds)}-{max(seeds)}" if len(seeds) > 1 else str(seeds[0])
    head = ["run"] + [f"{t} thread{'s' if t > 1 else ''}: mean [min, max]" for t in threads]
    if len(threads) > 1:
        head.append(f"largest change, {threads[0]} → {threads[-1]} threads")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, _, _ in RUNS:
        row = [label]
        for t in threads:
            mean, low, high = _spread([measured[f"{s}/{t}"]["runs"][label]["test"] for s in seeds])
            row.append(f"{mean:.2f} [{low:.2f}, {high:.2f}]")
        if len(threads) > 1:
            change = max(abs(measured[f"{s}/{threads[-1]}"]["runs"][label]["test"]
                             - measured[f"{s}/{threads[0]}"]["runs"][label]["test"]) for s in seeds)
            row.append(f"{change:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    learn = "\n".join(lines) + f"\n\nTest balanced accuracy, seeds {span} (chance: 0.14).\n"

    t = threads[-1]                       # the forest does not depend on torch's threads
    rows = ["| seed | accuracy, lesion-grouped → image-level | inflation [95% interval] | balanced accuracy | "
            "inflation [95% interval] |", "|---|---|---|---|---|"]
    for s in seeds:
        row = [str(s)]
        for metric in ("accuracy", "balanced_accuracy"):
            c = measured[f"{s}/{t}"]["split_cost"][metric]
            row += [f"{c['lesion-grouped']:.3f} → {c['image-level']:.3f}",
                    f"{c['inflation']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"]
        rows.append("| " + " | ".join(row) + " |")
    return {"learn": learn, "split-cost": "\n".join(rows) + "\n"}


def compare(quoted: str, measured: str, tolerance: float) -> list[str]:
    """The differences between a quoted block and the measured one: numbers further apart than `tolerance`, or a
    block of another shape."""
    if NUMBER.sub("#", quoted) != NUMBER.sub("#", measured):
        return ["the quoted block differs from the measured one in more than its numbers (other seeds or thread "
                "counts? measure with the --seeds and --threads the page names)"]
    a, b = [float(x) for x in NUMBER.findall(quoted)], [float(x) for x in NUMBER.findall(measured)]
    return [f"quoted {x:g}, measured {y:g}" for x, y in zip(a, b) if abs(x - y) > tolerance + 1e-9]


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)


def check_docs(rendered: dict[str, str], tolerance: float, write: bool, pages=DOCS) -> list[str]:
    """Compare (or, with `write`, replace) every marked block of the docs with the measurement; return the
    problems found."""
    problems, seen = [], set()
    for page in pages:
        text = page.read_text()

        def replace(match: re.Match) -> str:
            name = match["name"]
            seen.add(name)
            if name not in rendered:
                problems.append(f"{_shown(page)}: unknown block {name!r}; known: {', '.join(rendered)}")
                return match[0]
            for problem in compare(match["body"], rendered[name], tolerance):
                problems.append(f"{_shown(page)}, block {name!r}: {problem}")
            return match[1] + rendered[name] + match[4]

        new = BLOCK.sub(replace, text)
        if write and new != text:
            page.write_text(new)
    if not seen:
        problems.append("no block <!-- default_numbers: NAME --> found in " + ", ".join(p.name for p in pages))
    return problems


def report(summary: dict, out=sys.stdout) -> None:
    for name, text in blocks(summary).items():
        print(f"\n{name}:\n{text}", file=out)
    seconds: dict[str, list[float]] = {}
    for found in summary["measured"].values():
        for run, s in found["seconds"].items():
            seconds.setdefault(run, []).append(s)
    print("seconds per notebook (mean [min, max] over the runs):", file=out)
    for run, values in sorted(seconds.items()):
        mean, low, high = _spread(values)
        print(f"  {run}: {mean:.0f} [{low:.0f}, {high:.0f}]", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to compare")
    parser.add_argument("--workdir", type=Path, help="where the workspaces go (default <workspace>/default_numbers)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="seeds measured side by side (default 1: the seconds are then the default run's)")
    parser.add_argument("--summary", type=Path, help="check or write from this measurement, run nothing")
    parser.add_argument("--reread", action="store_true",
                        help="read the workspaces an earlier measurement left in --workdir again, run nothing")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure quoted in the docs is off")
    parser.add_argument("--write", action="store_true", help="rewrite the figures quoted in the docs")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="largest difference between a quoted and a measured figure (default 0.05)")
    args = parser.parse_args(argv)
    if args.summary:
        summary = json.loads(args.summary.read_text())
    else:
        workdir = args.workdir or paths.workspace() / "default_numbers"
        workdir.mkdir(parents=True, exist_ok=True)
        summary = measure(args.seeds, args.threads, workdir, args.parallel, run=not args.reread)
        paths.write_atomic(workdir / "summary.json", json.dumps(summary, indent=1))
        print(f"measurement kept in {workdir / 'summary.json'}")
    report(summary)
    if args.check or args.write:
        problems = check_docs(blocks(summary), args.tolerance, args.write)
        for problem in problems:
            print(f"{'rewritten' if args.write else 'OFF'}: {problem}")
        if args.check and problems and not args.write:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
