"""Ctrl-C stops run_all with one line saying where each run will resume; a kernel's end after a run interrupts
nothing (no "KeyboardInterrupt caught in kernel" under a run that succeeded)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from skinlib.run.execute import execute
from skinlib.run.plan import plan
from test_runner import write_notebook

pytestmark = pytest.mark.usefixtures("plain_kernels")   # tiny notebooks: no kernel zygote

ROOT = Path(__file__).resolve().parents[1]

SLOW = """from skinlib.notebook import resume_point
resume_point('from epoch 3')
import time
open('ready', 'w').write('x')
time.sleep(120)"""

RUNNER = """
import signal, sys
from pathlib import Path
from skinlib.run.plan import plan
from skinlib.run.schedule import run_all
signal.signal(signal.SIGINT, signal.default_int_handler)     # as in a terminal (a test's child may inherit SIG_IGN)
root = Path(sys.argv[1])
if __name__ == "__main__":
    sys.exit(run_all(plan(root / "notebooks", None, "default"), root / "outputs", root / "notebooks", progress=False))
"""


def test_ctrl_c_prints_one_line_saying_where_the_run_will_resume(tmp_path):
    write_notebook(tmp_path / "notebooks" / "04_slow.ipynb", SLOW)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    ready = tmp_path / "notebooks" / "ready"
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline and runner.poll() is None:
        time.sleep(0.2)
    assert ready.exists(), runner.communicate()
    time.sleep(0.5)                                             # the resume point has reached the runner
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, out + err
    assert out.strip().splitlines()[-1] == "stopped: 04_slow will resume from epoch 3; nothing else was lost"
    for noise in ("Traceback", "KeyboardInterrupt", "ZMQError", "resume-point"):
        assert noise not in out + err, out + err


def test_a_kernel_is_not_interrupted_when_it_is_shut_down_after_its_run(tmp_path, monkeypatch):
    interrupts = []

    async def interrupt(self):
        interrupts.append(self)

    monkeypatch.setattr(KernelManager, "_async_interrupt_kernel", interrupt)
    write_notebook(tmp_path / "notebooks" / "01_a.ipynb", "print(n)")
    (run,) = plan(tmp_path / "notebooks", None, "default")
    assert execute(run, tmp_path / "outputs", tmp_path / "notebooks", progress=False, log=io.StringIO()) is None
    assert interrupts == []
