"""Kernels forked from the preloaded zygote (skinlib.run.forked_kernels, opt-in) behave as kernels started as new
processes; without the opt-in, run_all.py and nbval start jupyter_client's own kernels."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import nbformat
import pytest
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from skinlib.run import forked_kernels

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernels are forked on Linux only")


@pytest.fixture(autouse=True)
def forking(request, monkeypatch):
    """The fork server is opt-in: these tests turn it on (except the test of the default)."""
    if "default" not in request.node.name:
        monkeypatch.setenv(forked_kernels.ENABLE_ENV, "1")

PROBE = """
import json, os, sys
import numpy as np, torch
print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "probe": os.environ.get("SKINLIB_PROBE"),
                  "threads": torch.get_num_threads(), "torch_rand": torch.rand(3).tolist(),
                  "np_rand": float(np.random.rand()), "path": sys.path, "argv": sys.argv[1:2],
                  "tqdm": __import__("tqdm.auto").auto.tqdm.__module__,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "skinlib", "torch"})}))
"""


def _run(cells: list[str], cwd, manager=forked_kernels.AsyncForkedKernelManager, **env) -> list[dict]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                       kernel_manager_class=manager).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return [json.loads(o["text"]) for c in nb.cells for o in c.outputs if o.get("name") == "stdout"]


def test_a_forked_kernel_is_like_a_new_process(tmp_path):
    """Same working directory, environment, thread count, sys.path, tqdm flavour and imported modules (the zygote
    imports neither matplotlib nor skinlib); generators seeded afresh."""
    setting = {"SKINLIB_PROBE": "yes", "OMP_NUM_THREADS": "1"}
    first, = _run([PROBE], tmp_path, **setting)
    second, = _run([PROBE], tmp_path, **setting)
    new, = _run([PROBE], tmp_path, manager=AsyncKernelManager, **setting)
    zygote = forked_kernels._zygote.process.pid
    assert first["ppid"] == second["ppid"] == zygote != new["ppid"] == os.getpid(), "forked from the zygote"
    assert first["pid"] != second["pid"]
    for key in ("cwd", "probe", "threads", "path", "argv", "tqdm", "loaded"):
        assert first[key] == new[key], key
    assert first["probe"] == "yes" and first["threads"] == 1 and first["cwd"] == str(tmp_path)
    for key in ("np_rand", "torch_rand"):
        assert first[key] != second[key], f"{key}: the global generator is seeded afresh, as in a new process"


def test_a_kernel_with_another_setting_starts_the_usual_way(tmp_path):
    _run(["print(1)"], tmp_path)                          # the zygote runs, with this process's environment
    probe, = _run([PROBE], tmp_path, HF_HOME=str(tmp_path / "hf"))   # read by huggingface_hub at import
    assert probe["ppid"] == os.getpid()


def test_a_kernel_that_dies_is_seen_dead(tmp_path):
    with pytest.raises(DeadKernelError):
        _run(["import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], tmp_path)


def test_off_switch_and_the_zygote_ends_with_close(tmp_path, monkeypatch):
    _run(["print(1)"], tmp_path)
    zygote = forked_kernels._zygote.process
    forked_kernels.close_zygote()
    assert zygote.poll() is not None
    monkeypatch.setenv(forked_kernels.ENABLE_ENV, "0")
    probe, = _run([PROBE], tmp_path)
    assert probe["ppid"] == os.getpid() and forked_kernels._zygote is None


def test_by_default_kernels_are_jupyter_clients_own(tmp_path, monkeypatch):
    """Without SKINLIB_FORK_KERNELS, run_all.py executes a notebook with jupyter_client's own manager (no zygote,
    no private internals): the default path, on whichever jupyter_client and papermill releases are installed."""
    import jupyter_client
    import papermill

    from skinlib.run.execute import execute
    from skinlib.run.plan import Run

    monkeypatch.delenv(forked_kernels.ENABLE_ENV, raising=False)
    forked_kernels.close_zygote()
    assert forked_kernels.manager_class() is AsyncKernelManager and not forked_kernels.enabled()
    notebook = tmp_path / "01_probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os; open('ppid.txt', 'w').write(str(os.getppid()))")]), notebook)
    assert execute(Run(notebook, "01_probe"), tmp_path / "out", tmp_path, progress=False) is None, \
        f"jupyter_client {jupyter_client.__version__}, papermill {papermill.__version__}"
    assert int((tmp_path / "ppid.txt").read_text()) == os.getpid() and forked_kernels._zygote is None


def test_close_ends_the_zygote_even_while_another_process_holds_its_pipe(tmp_path):
    """A fork of the launching process keeps the request pipe open, so the zygote never reads end-of-file: close
    asks it to end, and returns only once it has been reaped."""
    _run(["print(1)"], tmp_path)
    zygote = forked_kernels._zygote.process
    holder = os.fork()
    if holder == 0:                                       # holds a copy of every descriptor, the pipe's too
        time.sleep(30)
        os._exit(0)
    try:
        forked_kernels.close_zygote()
        assert zygote.returncode == 0, "it ended by itself, on the exit request (not killed after the timeout)"
    finally:
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)


def test_kernels_talk_over_sockets_of_their_own_not_tcp_ports(tmp_path):
    """No TCP port is chosen and bound later, which another process could take in between (a kernel that died
    with "Address already in use" while make test's kernels and a smoke run's started side by side)."""
    manager = forked_kernels.ForkedKernelManager(kernel_name="python3")
    other = forked_kernels.ForkedKernelManager(kernel_name="python3")
    assert manager.transport == other.transport == "ipc" and manager.ip != other.ip
    manager.start_kernel(cwd=str(tmp_path))
    try:
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive("print(6 * 7)", timeout=60, output_hook=lambda msg: None)
        assert reply["content"]["status"] == "ok"
        assert json.loads(open(manager.connection_file).read())["transport"] == "ipc"
        sockets = sorted(os.path.basename(p) for p in os.listdir(os.path.dirname(manager.ip))
                         if p.startswith(os.path.basename(manager.ip)))
        assert len(sockets) == 5                          # shell, iopub, stdin, control, heartbeat
        client.stop_channels()
    finally:
        manager.shutdown_kernel(now=True)
    assert not [p for p in os.listdir(os.path.dirname(manager.ip)) if p.startswith(os.path.basename(manager.ip))]


def test_the_zygote_ends_quietly_when_the_launcher_is_gone():
    """Ctrl-C ends run_all.py while its zygote answers a request: the zygote's reply meets a closed pipe. It ends
    with status 0 and prints nothing (it printed a BrokenPipeError traceback)."""
    import subprocess

    requests_r, requests_w = os.pipe()
    replies_r, replies_w = os.pipe()
    os.close(replies_r)                                   # nobody will read the answer: the launcher has gone
    code = f"from skinlib.run.forked_kernels import serve; serve({requests_r}, {replies_w})"
    zygote = subprocess.run([sys.executable, "-c", code], pass_fds=(requests_r, replies_w), capture_output=True,
                            text=True, timeout=120)
    os.close(requests_r), os.close(requests_w), os.close(replies_w)
    assert zygote.returncode == 0 and zygote.stderr == "" and zygote.stdout == ""


def test_variables_that_building_a_clip_model_sets_do_not_stop_forking(tmp_path, monkeypatch):
    """Building a CLIP model sets TORCHINDUCTOR_CACHE_DIR and TOKENIZERS_PARALLELISM in the launching process (a test
    of this worker may have built one after the zygote started): kernels are still forked."""
    _run([PROBE], tmp_path)                                        # the zygote is up
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false" if os.environ.get("TOKENIZERS_PARALLELISM") != "false" else "true")
    probe, = _run([PROBE], tmp_path)
    assert probe["ppid"] == forked_kernels._zygote.process.pid, "started the usual way, not forked"
