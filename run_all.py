#!/usr/bin/env python
"""Run the skinlib notebooks in order, headlessly, through papermill.

    python run_all.py                       # every notebook, built-in synthetic data, quick defaults
    python run_all.py --data ~/HAM10000     # the same on real data (any supported layout); runs needing other
                                            # data (07's ISIC archive task) are skipped, saying how to give it
    python run_all.py --profile full --data ham10000=~/HAM10000 --data isic_archive=~/isic-export
                                            # each dataset a profile's runs name, given once
    python run_all.py --profile full        # real-data settings from params/full/ (GPU box)
    python run_all.py --list                # what would run, with resolved parameters and status
    python run_all.py --only 02 --force     # one notebook, even if already done
    python run_all.py --profile full --smoke --set pretrained=false
                                            # every run of a profile, tiny data, one epoch, own workspace

Every parameter file is checked against its notebook's parameters cell before anything runs.
Executed notebooks go to <workspace>/outputs/<profile>/, never over the sources. Runs already done
are skipped: same notebook, parameters, data and skinlib code, and nothing they read (registry runs, the split,
the dataset) changed since; --list says why a run is pending. A failure names the notebook and cell
and exits 1; the results of earlier runs stay.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from skinlib import estimate, paths  # noqa: E402
from skinlib.inputs import SMOKE_ENV  # noqa: E402
from skinlib.run.plan import (ParameterError, Run, SMOKE_LIMITS, outputs_name, parse_sets, plan, select, smoke,  # noqa: E402
                              train_again)
from skinlib.run.cluster import submitted  # noqa: E402
from skinlib.run.data import DataError, check_data, parse_data  # noqa: E402
from skinlib.run.execute import estimate_file, record_path, why_pending  # noqa: E402
from skinlib.run.schedule import in_progress, run_all  # noqa: E402
from skinlib.run.stopping import STOPPED_STATUS  # noqa: E402

SMOKE_PER_CLASS = 2     # images per class and split in a smoke run
REPORT_NOTEBOOK = "10_report"   # exported as a standalone HTML page at the end of a run
#: one GPU of --gpus, as CUDA_VISIBLE_DEVICES takes it: an index, or a GPU or MIG UUID
GPU_ID = r"\d+|(GPU|MIG)-[0-9A-Za-z/-]+"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--profile", default="default", help="parameter profile: default (notebook defaults), a folder of params/, or the path of a "
                             "folder of parameter files (executed notebooks go to <workspace>/outputs/<its name>)")
    parser.add_argument("--data", action="append", metavar="[NAME=]PATH",
                        help="a dataset the runs name (NAME: ham10000, isic2018, isic_archive; else "
                             "$SKINLIB_DATA_<NAME>), repeatable; a bare PATH (else $SKINLIB_DATA) serves every run "
                             "whose dataset its layout fits. Nothing given: the built-in synthetic data")
    parser.add_argument("--allow-missing", action="store_true", help="leave out catalog rows whose image file is missing, empty or truncated "
                        "(listed in a warning)")
    parser.add_argument("--only", nargs="+", metavar="NB", help="only these notebooks or runs (e.g. 01 02_splits)")
    parser.add_argument("--from", dest="start", metavar="NB", help="start at this notebook or run")
    parser.add_argument("--list", action="store_true", help="list the runs with their parameters and status, run nothing")
    parser.add_argument("--force", action="store_true", help="run again even when already done with the same "
                        "parameters, training from the start (resume=False) rather than from a checkpoint")
    parser.add_argument("--keep-going", action="store_true", help="after a failure, go on with the next notebooks")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                        help="override a parameter for every run that has it, checked like parameter files (repeatable)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"check that every run gets through: {SMOKE_PER_CLASS} images per class and split, "
                             f"{', '.join(f'{k} <= {v}' for k, v in SMOKE_LIMITS.items())}, the profile's settings "
                             "otherwise, in a workspace of its own (<workspace>/smoke)")
    parser.add_argument("--wait", action="store_true",
                        help="when another process is executing a run, wait for it (default: that run fails)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="execute up to N runs of one notebook side by side, each with cores/N threads; a notebook "
                             "starts when the previous ones are done (default 1; per-cell progress bars only for "
                             "runs executed alone)")
    parser.add_argument("--gpus", metavar="IDS",
                        help="GPUs the runs may use, e.g. 0,2 (as CUDA_VISIBLE_DEVICES takes them): runs executed side "
                             "by side (--jobs) get one each; default: every GPU visible")
    parser.add_argument("--estimate", type=int, nargs="?", const=5, metavar="STEPS",
                        help="what each run will cost on this machine: every run executes with STEPS training steps "
                             "timed per fit and STEPS batches per prediction pass (default 5, after one warm-up), "
                             "in a workspace of its own; prints each run's projected time and peak memory and the "
                             "total. Runs estimated before are not estimated again (--force: they are)")
    parser.add_argument("--executor", default="local", choices=("local", "slurm", "submitit-local"),
                        help="local: execute here (default); slurm: submit each run as a Slurm job through submitit "
                             "(pip install -e '.[cluster]'); submitit-local: the same jobs as local processes")
    parser.add_argument("--no-wait", action="store_true",
                        help="with --executor slurm: submit every run's job now (later notebooks' jobs depend on the "
                             "earlier ones' through Slurm) and return; --list shows their state")
    parser.add_argument("--cluster-option", dest="cluster_options", action="append", default=[], metavar="KEY=VALUE",
                        help="a submitit parameter for every job, e.g. slurm_partition=gpu, slurm_account=abc "
                             "(repeatable; per-run resources come from the parameter files' 'resources:')")
    args = parser.parse_args(argv)
    if args.no_wait and args.executor != "slurm":
        print("error: --no-wait needs --executor slurm (Slurm keeps the jobs and their order after run_all.py returns)",
              file=sys.stderr)
        return 2
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: must be 1 or more")
    if args.estimate is not None and args.estimate < 1:
        parser.error(f"--estimate {args.estimate}: time 1 step or more")
    gpus = None
    if args.gpus is not None:
        gpus = [g.strip() for g in args.gpus.split(",")]
        if len(set(gpus)) != len(gpus) or not all(re.fullmatch(GPU_ID, g) for g in gpus):
            parser.error(f"--gpus {args.gpus}: give distinct GPU ids separated by commas, as CUDA_VISIBLE_DEVICES takes "
                         f"them: indices (--gpus 0,2) or UUIDs (GPU-..., MIG-...)")
    if args.executor == "local" and args.cluster_options:
        parser.error(f"--cluster-option {args.cluster_options[0]}: applies to --executor slurm or submitit-local")
    if args.executor != "local" and (args.jobs > 1 or gpus is not None):
        parser.error(f"--executor {args.executor}: each run is a job of its own, with its own GPUs and cores (the "
                     f"parameter files' resources:); --jobs and --gpus share out this machine (--executor local)")
    bad = [item for item in args.cluster_options if not item.partition("=")[0].strip() or "=" not in item]
    if bad:
        parser.error(f"--cluster-option {bad[0]!r}: expected KEY=VALUE with one of submitit's parameters, "
                     f"e.g. --cluster-option slurm_partition=gpu")

    overrides = {}
    if args.allow_missing:
        overrides["allow_missing"] = True
    try:
        sets = parse_sets(args.sets)
        runs = select(plan(ROOT / "notebooks", ROOT / "params", args.profile, overrides, sets), args.only, args.start)
        if args.force:
            runs = train_again(runs, sets)              # --force means train again, not resume from a checkpoint
        data = check_data(runs, parse_data(args.data))
    except (ParameterError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # the kernels read each dataset from its own variable; the bare one is resolved into them
    os.environ.pop(paths.DATA_ENV, None)
    os.environ.update(data.environment())
    skipped = data.skipped()
    if data.missing and not args.keep_going and not args.list:
        print(f"error: {data.missing_message(keep_going=False)}", file=sys.stderr)
        return 2
    if args.smoke:
        # its own workspace: smoke outputs, checkpoints and registry never mix with (or resume) real ones
        os.environ[paths.WORKSPACE_ENV] = str(paths.workspace() / "smoke")
        os.environ[SMOKE_ENV] = str(SMOKE_PER_CLASS)
        runs = smoke(runs)
    if args.estimate:
        # its own workspace too: the runs execute with a few training steps per fit and record nothing real
        os.environ[paths.WORKSPACE_ENV] = str(paths.workspace() / "estimate")
        os.environ[estimate.STEPS_ENV] = str(args.estimate)
    out_dir = paths.outputs_dir() / outputs_name(args.profile)     # never the profile's own folder
    if args.estimate:
        # one folder per step count: a run estimated before (same code, parameters and data) is not estimated again
        # (an interrupted estimate resumes; --force measures again), but a count that differs is another measurement
        out_dir = out_dir.with_name(f"{out_dir.name}-{args.estimate}steps")
    if args.list:
        for run in runs:
            if run.name in skipped:
                print(f"{run.name}  [skipped: dataset {run.data['dataset']} not given]  {run.params or '(notebook defaults)'}")
                continue
            why = why_pending(out_dir, run)
            status = in_progress(run) or ("done" if why is None else f"pending: {why}")
            job = submitted(run) if why is not None else None           # a Slurm job of --no-wait, read once
            if job:
                status += f"; {job}"
            gpu = "" if run.gpu == "none" else f", gpu {run.gpu}"
            print(f"{run.name}  [{status}{gpu}]  {run.params or '(notebook defaults)'}")
        return 0
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    kind = "SMOKE run of profile" if args.smoke else "profile"
    print(f"{kind} {args.profile}: {len(runs)} run(s); executed notebooks in {out_dir}", flush=True)
    for line in data.not_applicable_lines():
        print(line, flush=True)
    if data.missing:
        print(f"keep going without them: {data.missing_message(keep_going=True)}", flush=True)
    runs = [run for run in runs if run.name not in skipped]
    if args.executor == "local":
        status = run_all(runs, out_dir, ROOT / "notebooks", force=args.force, keep_going=args.keep_going,
                         progress=not args.no_progress, wait=args.wait,
                         after_run=drop_checkpoints if args.smoke else None, jobs=args.jobs, gpus=gpus)
    else:
        from skinlib.run.cluster import run_on_cluster

        try:
            options = parse_sets(args.cluster_options)
            status = run_on_cluster(runs, out_dir, ROOT / "notebooks", executor=args.executor, options=options,
                                    force=args.force, keep_going=args.keep_going, wait=not args.no_wait,
                                    after_run=drop_checkpoints if args.smoke else None)
        except (RuntimeError, ValueError, ParameterError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.no_wait:
            return status
    if args.estimate is not None:
        print_estimate(runs, out_dir)
        return status
    report = next((run for run in runs if run.notebook.stem == REPORT_NOTEBOOK), None)
    if report is not None and status != STOPPED_STATUS:
        why = why_pending(out_dir, report)     # never export a report older than what it reads
        if why is None:
            from skinlib.report import export_html

            html = export_html(out_dir / f"{report.name}.ipynb", out_dir / "report.html")
            print(f"report (HTML, open it in a browser): {html}", flush=True)
        else:
            print(f"no report exported: {report.name} is not up to date ({why})", flush=True)
    if data.missing:
        print(f"\nskipped, their dataset not given:\n{data.missing_message(keep_going=True)}", flush=True)
        return status or 1
    return status


def print_estimate(runs: list[Run], out_dir: Path) -> None:
    """The table of ``--estimate``: each run's projected time (its measured time less the few steps it trained,
    plus its fits' projections) and peak memory, from the runs' records and estimate files."""
    import json

    rows, failed = [], []
    for run in runs:
        try:
            info = json.loads(record_path(out_dir, run).read_text())
        except (OSError, ValueError):
            failed.append(run.name)                                  # not executed (a failure before it)
            continue
        if info.get("status") != "ok":
            failed.append(run.name)
            continue
        rows.append((run.name, estimate.projection(estimate_file(out_dir, run), float(info.get("seconds", 0.0)))))
    print(f"\nestimate on this machine (training: every epoch, no early stop; prediction passes projected from "
          f"their first batches; the rest as measured), from {out_dir}:", flush=True)
    print(estimate.table(rows), flush=True)
    if failed:
        print(f"not in the table, their estimating run failed or did not run: {', '.join(failed)}", flush=True)


def drop_checkpoints(run: Run) -> None:
    """After each smoke run: delete the smoke workspace's checkpoints, except those of runs still training beside
    it (``--jobs``). A smoke run is never resumed, and a full profile's checkpoints (VGG19, BLIP, ...) would
    otherwise pile up to tens of GB over one smoke run."""
    from skinlib.checkpoints import idle_checkpoints          # here: torch is imported only by smoke runs

    for path in idle_checkpoints(paths.checkpoints_dir()):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
