"""Kernels that start in a second, **opt-in** (``SKINLIB_FORK_KERNELS=1``): forked from a process that has already
imported the heavy libraries. Off by default: ``run_all.py``, nbval and the tests start plain jupyter_client kernels
unless the variable is set (``make test`` and CI set it; docs/design.md says why it is not the default).

Every run of ``run_all.py`` executes its notebook in a new kernel, and the first cells of a model notebook import
torch, timm, scikit-learn and pandas: about 8 s of CPU per kernel on a laptop core, before any work. The full
profile's smoke run starts 38 kernels, ``make test`` a few dozen. So the kernels that papermill (``run_all.py``),
nbval and nbclient start here come from a *zygote*: a process started once per launching process, which imports
:data:`PRELOAD` and then waits. Each kernel is a fork of it, given what jupyter_client would have given a new
process (command line, environment, working directory, a session of its own), that then runs ipykernel as
``python -m ipykernel_launcher`` does. After the fork nothing is shared: the kernel is a process of its own, its
memory copied on write.

What makes a forked kernel the same as a new one:

* The zygote imports only libraries that read no setting a run changes at import (not matplotlib, whose backend
  comes from the kernel, not skinlib, whose source a user edits, not ipykernel). A kernel whose environment
  differs from the zygote's in any other variable than :data:`PER_KERNEL` (thread counts, skinlib's own, the ones
  jupyter_client adds) is started the usual way, as is one whose kernelspec is another Python.
* Random state as in a new process: Python's, NumPy's and torch's global generators are seeded afresh from the
  operating system (the notebooks seed what their results depend on).
* Thread pools sized from the kernel's ``OMP_NUM_THREADS`` & co when they are set (torch and threadpoolctl), else
  left to the libraries' defaults, which are not chosen before the first computation.
* ``tqdm.auto`` is imported again in the kernel, where it can see the notebook.

Only on Linux (fork with threads of numeric libraries is not safe on macOS), and only with ``SKINLIB_FORK_KERNELS=1``.
It rests on jupyter_client internals (``_async_launch_kernel``, the provisioner's fields), so it stays off the
default path, which uses jupyter_client's own managers. If the zygote cannot start or dies, kernels start the usual way and a line says why.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from jupyter_client.manager import AsyncKernelManager, KernelManager

ENABLE_ENV = "SKINLIB_FORK_KERNELS"

#: imported once by the zygote (what the notebooks import first, and what takes longest)
PRELOAD = ("numpy", "pandas", "scipy.stats", "sklearn.metrics", "torch", "torchvision", "timm", "open_clip")

#: environment variables a kernel may set differently from the zygote (nothing in PRELOAD reads them at import).
#: Building a CLIP model sets the last two in the process that builds it (torch's inductor its cache folder, read when
#: it compiles; open_clip's tokenizer TOKENIZERS_PARALLELISM, read when it tokenises): a launcher that built one
#: before its zygote started no longer matched it, and its kernels started the usual way
PER_KERNEL = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED", "MPLBACKEND",
              "PYTEST_CURRENT_TEST", "TORCHINDUCTOR_CACHE_DIR", "TOKENIZERS_PARALLELISM")
PER_KERNEL_PREFIXES = ("SKINLIB_", "JPY_", "PYDEVD_")

#: imported again in each kernel (they choose their flavour from where they run)
REIMPORT = ("tqdm.auto", "tqdm.autonotebook")


def enabled() -> bool:
    """Whether kernels are forked here: Linux, and turned on with ``SKINLIB_FORK_KERNELS=1`` (off by default)."""
    return sys.platform.startswith("linux") and os.environ.get(ENABLE_ENV, "").strip().lower() in ("1", "true", "yes")


def manager_class(asynchronous: bool = True) -> type:
    """The kernel manager to start kernels with: the forking one when :func:`enabled`, else jupyter_client's own.

    Args:
        asynchronous: papermill and nbclient take the async manager; nbval the blocking one.
    """
    if enabled():
        return AsyncForkedKernelManager if asynchronous else ForkedKernelManager
    return AsyncKernelManager if asynchronous else KernelManager


def _per_kernel(key: str) -> bool:
    return key in PER_KERNEL or key.startswith(PER_KERNEL_PREFIXES)


# ---- the zygote (its own process) -------------------------------------------------------------------------------

def serve(requests: int, replies: int) -> None:
    """The zygote's main loop: import :data:`PRELOAD`, then fork one kernel per request line (JSON: argv, env,
    cwd) and answer its pid. Ends on an exit request, or when the launching process closes the request pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # Ctrl-C is for the launcher; it closes the pipe
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:                                # not installed here: the kernel imports it, or not
            pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)         # the kernels are reaped by the system
    inbox, outbox = os.fdopen(requests, "r"), os.fdopen(replies, "w")
    try:
        outbox.write(json.dumps({"ready": os.getpid()}) + "\n")
        outbox.flush()
        for line in inbox:
            request = json.loads(line)
            if request.get("exit"):
                break
            pid = os.fork()
            if pid == 0:
                inbox.close()
                outbox.close()
                _become_kernel(request["argv"], request["env"], request["cwd"])
            outbox.write(json.dumps({"pid": pid}) + "\n")
            outbox.flush()
    except (BrokenPipeError, ConnectionResetError, ValueError):
        pass                    # the launcher is gone (Ctrl-C, a kill) mid-request: end quietly, as on a closed pipe
    os._exit(0)                                            # nothing to tear down: no interpreter finalisation


def _become_kernel(argv: list[str], env: dict[str, str], cwd: str) -> None:
    """In a fresh fork: take the kernel's environment, then run ipykernel; never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()                                        # as jupyter_client's start_new_session
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        for name in [m for m in sys.modules if m in REIMPORT or m.split(".")[0] == "skinlib"]:
            del sys.modules[name]                          # imported afresh in the kernel
        _fresh_state(env)
        if sys.path and sys.path[0] in ("", os.getcwd()):  # as ipykernel_launcher does
            del sys.path[0]
        sys.argv = ["ipykernel_launcher", *argv[3:]]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _fresh_state(env: dict[str, str]) -> None:
    """Random generators and thread pools as a new process would have them."""
    import random

    import numpy as np
    import torch

    random.seed()
    np.random.seed()
    torch.seed()
    threads = env.get("OMP_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(int(threads))
        threadpool_limits(int(threads))


# ---- the launching side -----------------------------------------------------------------------------------------

class _Zygote:
    """The zygote of this process, started on first use and ended with it (or when it closes the pipe)."""

    def __init__(self) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        code = f"from skinlib.run.forked_kernels import serve; serve({requests_r}, {replies_w})"
        self.env = dict(os.environ)
        self.process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(requests_r, replies_w),
                                        stdin=subprocess.DEVNULL)
        os.close(requests_r)
        os.close(replies_w)
        self.requests, self.replies = os.fdopen(requests_w, "w"), os.fdopen(replies_r, "r")
        self.lock = threading.Lock()
        self._ask(None)

    def _ask(self, request: dict | None) -> dict:
        if request is not None:
            self.requests.write(json.dumps(request) + "\n")
            self.requests.flush()
        line = self.replies.readline()
        if not line:
            raise RuntimeError(f"the kernel zygote (pid {self.process.pid}) ended (exit status {self.process.poll()})")
        return json.loads(line)

    def fork(self, argv: list[str], env: dict[str, str], cwd: str) -> int:
        with self.lock:
            return int(self._ask({"argv": argv, "env": env, "cwd": cwd})["pid"])

    def differs(self, env: dict[str, str]) -> list[str]:
        """Variables of `env` the zygote saw otherwise (other than :data:`PER_KERNEL`)."""
        keys = set(env) | set(self.env)
        return sorted(k for k in keys if env.get(k) != self.env.get(k) and not _per_kernel(k))

    def close(self) -> None:
        """Ask the zygote to end, and wait until it has: it is reaped when this returns (killed after 10 s)."""
        locked = self.lock.acquire(timeout=5)             # not in the middle of another thread's request
        try:
            self.requests.write(json.dumps({"exit": True}) + "\n")
            self.requests.flush()
        except (OSError, ValueError):                     # it ended already, or the pipe is closed
            pass
        finally:
            if locked:
                self.lock.release()
        try:
            self.requests.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_zygote: _Zygote | None = None
_zygote_failed: str = ""                                 # why the zygote could not start: not tried again
_zygote_lock = threading.Lock()


def _shared_zygote() -> _Zygote:
    global _zygote, _zygote_failed
    with _zygote_lock:
        if _zygote_failed:
            raise RuntimeError(_zygote_failed)
        if _zygote is None or _zygote.process.poll() is not None:
            try:
                _zygote = _Zygote()
            except Exception as exc:
                _zygote_failed = f"the kernel zygote did not start ({exc})"
                raise RuntimeError(_zygote_failed) from exc
            atexit.register(_zygote.close)
        return _zygote


def close_zygote() -> None:
    """End this process's zygote now (it also ends with the process)."""
    global _zygote
    with _zygote_lock:
        if _zygote is not None:
            _zygote.close()
            _zygote = None


class ForkedKernel:
    """The handle jupyter_client keeps of a kernel process (a :class:`subprocess.Popen`'s methods), for a kernel
    that is the zygote's child, not ours: alive while its pid exists (the zygote reaps it at once)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0                       # its status went to the zygote
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _is_this_python(argv: list[str]) -> bool:
    return (len(argv) >= 3 and argv[1:3] == ["-m", "ipykernel_launcher"]
            and os.path.abspath(argv[0]) == os.path.abspath(sys.executable))   # this environment's, not a twin's


async def _launch(manager, kernel_cmd: list[str], **kw) -> bool:
    """Fork the kernel from the zygote when it can be the same as a new process; False: launch it the usual way."""
    env = dict(kw.get("env") or os.environ)
    if not (enabled() and _is_this_python(kernel_cmd)):
        return False
    try:
        zygote = _shared_zygote()
    except RuntimeError as exc:                            # said once per kernel: the usual way, and why
        print(f"this kernel starts the usual way: {exc}", file=sys.stderr)
        return False
    differs = zygote.differs(env)
    if differs:
        print(f"this kernel starts the usual way: {', '.join(differs[:3])} differ from the kernel zygote's "
              "environment (libraries it imported read them)", file=sys.stderr)
        return False
    env["JPY_PARENT_PID"] = str(zygote.process.pid)       # its parent: the kernel ends when the zygote does
    try:
        pid = zygote.fork(kernel_cmd, env, str(kw.get("cwd") or os.getcwd()))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"this kernel starts the usual way: {exc}", file=sys.stderr)
        return False
    provisioner = manager.provisioner
    provisioner.process = ForkedKernel(pid)
    provisioner.pid, provisioner.pgid = pid, pid
    provisioner.cwd = kw.get("cwd", os.getcwd())
    manager._reconcile_connection_info(provisioner.connection_info)
    return True


_ipc_dir: str | None = None


def _ipc_prefix() -> str:
    """A path prefix of this kernel's own for its sockets (``<prefix>-<n>``), in a folder of this process removed
    when it ends; short, as a socket path may hold about 100 characters."""
    global _ipc_dir
    with _zygote_lock:
        if _ipc_dir is None or not os.path.isdir(_ipc_dir):
            import shutil
            import tempfile

            _ipc_dir = tempfile.mkdtemp(prefix="skl-")
            atexit.register(shutil.rmtree, _ipc_dir, True)
    return os.path.join(_ipc_dir, uuid.uuid4().hex[:12])


class _FromZygote:
    """A kernel manager's launch, from the zygote when it can be the same as a new process; on POSIX its kernel
    talks over Unix sockets of its own (ZeroMQ's ``ipc`` transport) instead of TCP ports. TCP ports are chosen free
    by jupyter_client and bound by the kernel a moment later, so with many kernels starting at once (make test's
    workers beside a smoke run) another process could take one in between: "Address already in use", and the kernel
    dies before it answers. A socket path of the kernel's own cannot be taken."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        if os.name == "posix":
            self.transport = "ipc"  # type: ignore[attr-defined]
            self.ip = _ipc_prefix()  # type: ignore[attr-defined]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if not await _launch(self, kernel_cmd, **kw):
            await super()._async_launch_kernel(kernel_cmd, **kw)  # type: ignore[misc]


class ForkedKernelManager(_FromZygote, KernelManager):
    """jupyter_client's kernel manager, starting its kernel from the zygote (for nbval)."""


class AsyncForkedKernelManager(_FromZygote, AsyncKernelManager):
    """jupyter_client's async kernel manager, starting its kernel from the zygote (for papermill and nbclient)."""

    _launch_kernel = _FromZygote._async_launch_kernel      # AsyncKernelManager binds KernelManager's otherwise
