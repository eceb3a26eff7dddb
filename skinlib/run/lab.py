"""The contents manager of ``make lab``'s JupyterLab: notebooks open in the form the kernel will give them and are
saved in the stored form, so opening, running and closing a notebook changes nothing.

The stored form (:mod:`skinlib.run.notebook_format`) leaves out ``language_info.version``: the Python version
differs between machines. A kernel that starts tells JupyterLab its ``language_info``, version included, and
JupyterLab marks a notebook whose metadata that changes as modified (closing it asks to save). So this manager adds
the version of the Python it runs in (the kernel's, ``.venv``'s) to a notebook as it reads it, and its pre-save
hook, :func:`~skinlib.run.notebook_format.strip_on_save`, takes it out again as it writes.

    jupyter lab --ServerApp.contents_manager_class=skinlib.run.lab.StoredFormContentsManager
"""

from __future__ import annotations

import platform

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from .notebook_format import LANGUAGE_INFO, strip_on_save


def as_kernel_gives(content: dict) -> dict:
    """A notebook's content (a contents model's ``content``) with the ``language_info`` a python3 kernel of this
    Python reports (the stored one plus the version), where the stored one is ours; any other is left alone."""
    info = content.get("metadata", {}).get("language_info")
    if info is not None and {k: v for k, v in info.items() if k != "version"} == LANGUAGE_INFO:
        content["metadata"]["language_info"] = {**LANGUAGE_INFO, "version": platform.python_version()}
    return content


class StoredFormContentsManager(AsyncLargeFileManager):
    """Jupyter server's file contents manager that opens notebooks as the kernel will see them (:func:`as_kernel_gives`)
    and saves them in the stored form (:func:`~skinlib.run.notebook_format.strip_on_save`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.pre_save_hook is None:
            self.pre_save_hook = strip_on_save

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
            as_kernel_gives(model["content"])
        return model
