"""What every notebook does first: show its configuration, seed everything, flag synthetic data."""

from __future__ import annotations

import os
import platform
import random
import sys
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, paths

BANNER = ("SYNTHETIC DATA: every number and figure below comes from skinlib's generated images, not from "
          "HAM10000 or ISIC. Set data_dir (or SKINLIB_DATA, or run_all.py --data) to use real data.")


def notice(message: str, file=None) -> None:
    """Print a line that matters beyond the notebook (e.g. "resumed from the checkpoint after epoch 14"):
    ``run_all.py`` also shows it in its terminal output.

    Args:
        message: one line of text.
        file: where to print it (default: stdout, i.e. the notebook's output).
    """
    print(message, file=file or sys.stdout, flush=True)
    channel = os.environ.get(paths.NOTICES_ENV)               # set by run_all.py for the notebook it executes
    if channel:
        with open(channel, "a") as fh:
            fh.write(message.replace("\n", " ") + "\n")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when installed) PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


def setup(params: dict[str, Any], seed: int | None = None) -> None:
    """Print the resolved parameters and environment, seed everything, and set the plotting style."""
    import matplotlib
    import seaborn as sns

    if seed is not None:
        seed_everything(seed)
    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 90, "savefig.bbox": "tight"})
    pd.set_option("display.width", 140)
    width = max(map(len, params), default=0)
    lines = [f"  {k:<{width}} = {v!r}" for k, v in params.items()]
    print("parameters\n" + "\n".join(lines))
    print(f"skinlib {__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"pandas {pd.__version__}")
    print(f"workspace {paths.describe_workspace()}")


def banner(catalog: pd.DataFrame) -> None:
    """Show a visible banner when the catalog's data is synthetic, and say which data it is otherwise."""
    from IPython.display import display

    layout = catalog.attrs.get("layout", "?")
    if catalog.attrs.get("synthetic"):
        info = catalog.attrs.get("synthetic_info") or {}
        detail = f" (seed {info.get('seed')}, {info.get('n')} HAM10000-layout images, layout shown: {layout})"
        html = (f'<div style="background:#fff3cd;border:2px solid #e0a800;padding:8px 12px;'
                f'font-weight:bold">&#9888; {BANNER}{detail}</div>')
        # one output: the yellow box where HTML is shown (JupyterLab), the same words as text elsewhere
        display({"text/html": html, "text/plain": f"WARNING: {BANNER}{detail}"}, raw=True)
    else:
        print(f"Real data: {len(catalog)} images, layout {layout}, from {paths.display_path(catalog.attrs.get('root', '?'))}")
