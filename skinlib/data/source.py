"""Which dataset a run reads: the one named, ``$SKINLIB_DATA``, or the built-in synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .. import paths
from .layouts import load_catalog
from .synthetic import DEFAULT_N, DEFAULT_SIZE, GENERATOR_VERSION, SYNTHETIC_MARKER, generate

SYNTHETIC_LAYOUTS = ("ham10000", "isic2018", "isic_archive")


def synthetic_root(n: int = DEFAULT_N, seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """The built-in synthetic dataset (all layouts) in the workspace, generated on first use."""
    root = paths.synthetic_dir() / f"n{n}-seed{seed}-{size[0]}x{size[1]}-v{GENERATOR_VERSION}"
    if not (root / SYNTHETIC_MARKER).is_file():
        try:
            generate(root, n=n, seed=seed, layouts=SYNTHETIC_LAYOUTS, size=size)
        except OSError:
            if not (root / SYNTHETIC_MARKER).is_file():   # not a concurrent generator finishing first
                raise
    return root


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """`data_dir`, else ``$SKINLIB_DATA``, else None (meaning: the built-in synthetic data)."""
    if data_dir not in (None, ""):
        return Path(data_dir).expanduser()
    env = os.environ.get(paths.DATA_ENV)
    return Path(env).expanduser() if env else None


def open_catalog(
    data_dir: str | os.PathLike | None = None,
    layout: str | None = None,
    *,
    synthetic_n: int = DEFAULT_N,
    seed: int = 0,
    **options,
) -> pd.DataFrame:
    """The catalog a notebook works on: real data when given, else the built-in synthetic dataset.

    Args:
        data_dir: dataset root; None or "" falls back to ``$SKINLIB_DATA``, then to synthetic data.
        layout: force a layout; with synthetic data it picks which generated layout (default ``ham10000``).
        synthetic_n: size of the synthetic dataset when one is used.
        seed: seed of the synthetic dataset when one is used.
        **options: passed to :func:`skinlib.data.load_catalog` (``on_unknown``, ``allow_missing``).
    """
    root = resolve_data_dir(data_dir)
    if root is None:
        return _quietly(load_catalog, synthetic_root(synthetic_n, seed), layout or "ham10000", **options)
    return load_catalog(root, layout, **options)


def _quietly(load, *args, **kwargs) -> pd.DataFrame:
    """`load` on data we generated ourselves: what the loader warns about (the rows a real download would have
    wrong, which the generator writes on purpose) is said in one plain line each, not as a warning."""
    import warnings

    from .catalog import CatalogWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CatalogWarning)
        table = load(*args, **kwargs)
    for warning in caught:
        if issubclass(warning.category, CatalogWarning):
            print(f"synthetic data, as real exports have them: {warning.message}")
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return table
