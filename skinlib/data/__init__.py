"""Datasets: catalog loaders for every layout, the synthetic generator, splits and the image cache."""

from .catalog import COLUMNS, CatalogError, CatalogWarning, fingerprint
from .labels import CLASSES, LONG_NAMES, label_of, to_code
from .layouts import LAYOUTS, detect_layouts, load_catalog
from .source import open_catalog, resolve_data_dir, synthetic_root

__all__ = ["CLASSES", "COLUMNS", "LAYOUTS", "LONG_NAMES", "CatalogError", "CatalogWarning", "detect_layouts",
           "fingerprint", "label_of", "load_catalog", "open_catalog", "resolve_data_dir", "synthetic_root", "to_code"]
