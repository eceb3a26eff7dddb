"""The shipped example scripts run as their docstrings say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from skinlib.data import load_catalog
from skinlib.data.splits import make_split, save_split

ROOT = Path(__file__).resolve().parents[1]


def test_ddp_fit_under_torchrun_records_one_run(synthetic_small, workspace):
    """examples/ddp_fit.py under torchrun, 2 gloo processes: one run recorded, by process 0, on 05's path."""
    catalog = load_catalog(synthetic_small, layout="ham10000")
    save_split(catalog, make_split(catalog, seed=0), "s", seed=0, ratios=(0.75, 0.10, 0.15), group_by="auto")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "examples" / "ddp_fit.py"), "--data-dir", str(synthetic_small), "--split-name", "s",
               "--image-size", "24", "--max-epochs", "1", "--batch-size", "16", "--augment", "none",
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("recorded: ") == 1 and done.stdout.count("epoch   1/1") == 1, done.stdout
    runs = list((workspace / "results" / "transfer").glob("*-ddp"))
    assert len(runs) == 1
    assert json.loads((runs[0] / "params.json").read_text())["processes"] == 2
