"""A package's public names loaded on first use (PEP 562): ``__getattr__, __dir__ = lazy(__name__, EXPORTS)``."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names are imported from its modules when first used.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the module of the package that defines it.
    """
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{exports[name]}", package), name)
        setattr(sys.modules[package], name, value)          # found directly the next time
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
