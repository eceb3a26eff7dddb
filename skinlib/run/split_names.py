"""The split a run reads, when a split setting comes from the command line.

``02_splits`` names the split it saves after its settings (``lesion-75-10-15-seed0``:
:func:`skinlib.data.splits.default_name`), and 03-06, 08 and 09 read a split by that name (their ``split_name``).
``--set ratios=[0.6,0.2,0.2]`` (or ``seed``, ``group_by``) changes what 02 saves and so its name: every run that
reads a split is given the new name here, before anything runs, or, when its split's name is not one 02 makes,
refused with a message saying how to name the split.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .plan import Parameter, Run

#: the settings 02_splits names its split after; a command-line value of one of them renames the split
SPLIT_KNOBS = ("ratios", "group_by", "seed")

_NAME = re.compile(r"^(?P<kind>[a-z]+(?:\+[a-z]+)?)-(?P<ratios>\d+(?:-\d+)+)-seed(?P<seed>\d+)$")


def _saver(runs: list["Run"], params_of: Callable[["Run"], dict[str, "Parameter"]]) -> dict[str, Any] | None:
    """The split settings of the run that saves the split (02_splits: it has ``ratios`` and ``group_by``, and
    reads no split), with its defaults; None when no run of the profile saves one."""
    for run in runs:
        params = params_of(run)
        if {"ratios", "group_by", "seed"} <= set(params) and "split_name" not in params:
            return {key: run.params.get(key, params[key].default) for key in SPLIT_KNOBS}
    return None


def follow_split(runs: list["Run"], sets: dict[str, Any], params_of: Callable[["Run"], dict[str, "Parameter"]]) -> list[str]:
    """Give every run that reads a split (has ``split_name``) the name of the split the command line's split
    settings make; returns the problems (a run reading a split whose name 02 does not make), one line each.

    Nothing changes when no split setting is in `sets`, or when ``split_name`` itself is (the user named it).
    A run reading the image-level split (``image-...``) keeps reading the image-level one, with the new ratios
    and seed.

    Args:
        runs: the planned runs (their ``params`` are updated).
        sets: the ``--set`` values.
        params_of: a run's notebook parameters (:func:`skinlib.run.plan.notebook_parameters`).
    """
    given = [key for key in SPLIT_KNOBS if key in sets]
    if not given or "split_name" in sets:
        return []
    from ..data.splits import DEFAULTS, default_name       # here: plain planning never imports pandas

    made = _saver(runs, params_of) or {**{key: DEFAULTS[key] for key in SPLIT_KNOBS}, **{k: sets[k] for k in given}}
    shown = " ".join(f"--set {key}={sets[key]}" for key in given)
    problems = []
    for run in runs:
        params = params_of(run)
        if "split_name" not in params:
            continue
        current = run.params.get("split_name", params["split_name"].default)
        match = _NAME.match(str(current))
        kind = "image" if match and match["kind"] == "image" else made["group_by"]
        name = default_name(kind, tuple(made["ratios"]), made["seed"])
        if match is None:
            problems.append(f"{run.name} reads the split {current!r}, which {shown} does not rename: name the split "
                            f"it should read with --set split_name=... (02_splits will save {name!r})")
            continue
        run.params["split_name"] = name
    return problems
