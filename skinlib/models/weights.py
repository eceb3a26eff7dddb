"""Where pretrained weights come from: a local folder, the Hugging Face hub, or a clear error within seconds.

Every model factory (timm backbones, CLIP, BLIP) asks :func:`hub_reachable` once before it lets a library
download anything. Without a network the libraries retry for about a minute before failing; here the answer
comes from one short connection attempt (or from ``HF_HUB_OFFLINE``), and the load then runs in the hub
client's offline mode, so weights already in the local hub cache still load and missing ones fail at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Iterator

WEIGHTS_ENV = "SKINLIB_WEIGHTS"
HUB_TIMEOUT_S = 3.0

_probe: dict[str, bool] = {}


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be found; the message says where to put them."""


def weights_folder(weights_dir: str | os.PathLike | None) -> Path | None:
    """`weights_dir`, else ``$SKINLIB_WEIGHTS``, as a path; None when neither is set."""
    folder = weights_dir or os.environ.get(WEIGHTS_ENV)
    return Path(folder).expanduser() if folder else None


def _offline_flag() -> bool:
    import huggingface_hub.constants as hf

    env = any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(hf.HF_HUB_OFFLINE) or env


def _hub_address() -> tuple[str, int]:
    """The host and port a hub download connects to first: the HTTPS proxy when one is set, else the endpoint."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urllib.parse.urlparse(proxy or os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)


def _connects(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def attempt() -> None:                    # name resolution has no timeout of its own: run it in a thread
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub can be reached: False at once under ``HF_HUB_OFFLINE``, else one short
    connection attempt, remembered for the rest of the process.

    Args:
        timeout: seconds to wait for the connection (name resolution included).
    """
    if _offline_flag():
        return False
    address = _hub_address()
    key = f"{address[0]}:{address[1]}"
    if key not in _probe:
        _probe[key] = _connects(*address, timeout)
    return _probe[key]


@contextlib.contextmanager
def hub_mode() -> Iterator[bool]:
    """Within the block, hub clients (huggingface_hub, timm, open_clip, transformers) read only the local cache
    when the hub is unreachable; yields whether it is reachable."""
    import huggingface_hub.constants as hf

    online = hub_reachable()
    saved = hf.HF_HUB_OFFLINE
    if not online:
        hf.HF_HUB_OFFLINE = True
    try:
        yield online
    finally:
        hf.HF_HUB_OFFLINE = saved


def brief(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line, for a WeightsError message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:limit]}"


def offline_hint(online: bool) -> str:
    """A few words on why a hub load failed, for a WeightsError message."""
    return "" if online else "the Hugging Face hub is unreachable from this machine (offline) and the weights are not in its local cache; "
