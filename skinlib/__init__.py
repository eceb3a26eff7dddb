"""skinlib: dermoscopic skin-lesion classification, from catalog to report."""

__version__ = "0.1.0"
