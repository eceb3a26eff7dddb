"""``make lab``'s and ``make student``'s JupyterLab (skinlib.run.lab): a stored notebook opened and its kernel started
is unchanged, so JupyterLab does not mark it modified, and saving it writes the same bytes, a student's copy also after
running it (``git status`` stays clean)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import start_new_kernel  # noqa: E402

from skinlib.run.lab import StoredFormContentsManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_splits.ipynb"


def kernel_metadata(name: str) -> dict:
    """What JupyterLab writes into a notebook's metadata once its kernel is up: the kernel spec, and the
    ``language_info`` the started kernel reports."""
    manager, client = start_new_kernel(kernel_name=name)
    try:
        reply = client.kernel_info(reply=True, timeout=60)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    spec = KernelSpecManager().get_kernel_spec(name)
    return {"kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": name},
            "language_info": reply["content"]["language_info"]}


def test_a_notebook_is_unchanged_when_its_kernel_starts_and_saved_as_it_was(tmp_path):
    for folder in ("notebooks", "teaching/student"):
        (tmp_path / folder).mkdir(parents=True)
        shutil.copy(ROOT / folder / NOTEBOOK, tmp_path / folder / NOTEBOOK)
    contents = StoredFormContentsManager(root_dir=str(tmp_path))
    opened = asyncio.run(contents.get(f"notebooks/{NOTEBOOK}"))
    metadata = opened["content"]["metadata"]
    kernel = kernel_metadata(metadata["kernelspec"]["name"])
    assert {k: metadata[k] for k in kernel} == kernel, "JupyterLab would mark the notebook modified as its kernel starts"
    for folder in ("notebooks", "teaching/student"):
        stored = (tmp_path / folder / NOTEBOOK).read_text()
        model = asyncio.run(contents.get(f"{folder}/{NOTEBOOK}"))
        model["content"]["metadata"].update(json.loads(json.dumps(kernel)))
        if folder == "teaching/student":             # a student ran every cell: no output reaches the saved copy
            for cell in model["content"]["cells"]:
                if cell["cell_type"] == "code":
                    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "ran\n"}]
                    cell["execution_count"] = 1
        asyncio.run(contents.save({"type": "notebook", "format": "json", "content": model["content"]},
                                  f"{folder}/{NOTEBOOK}"))
        assert (tmp_path / folder / NOTEBOOK).read_text() == stored, f"{folder}: saving changed the stored form"
