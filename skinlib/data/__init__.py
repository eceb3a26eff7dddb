"""Datasets: catalog loaders for every layout, the synthetic generator, splits and the image cache.

The names below are imported on first use, so that ``python -m skinlib.data.synthetic`` runs the generator
as a script without importing it twice (which makes Python warn).
"""

from __future__ import annotations

from ..lazy import lazy

_EXPORTS = {
    "COLUMNS": "catalog", "CatalogError": "catalog", "CatalogWarning": "catalog", "fingerprint": "catalog",
    "CLASSES": "labels", "LONG_NAMES": "labels", "label_of": "labels", "to_code": "labels",
    "LAYOUTS": "layouts", "detect_layouts": "layouts", "load_catalog": "layouts",
    "open_catalog": "source", "resolve_data_dir": "source", "synthetic_root": "source",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy(__name__, _EXPORTS)
