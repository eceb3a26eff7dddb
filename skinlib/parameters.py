"""Allowed values of the knobs the notebooks share, in one place.

``run_all.py`` checks every parameter file against this table before anything runs, and the library
functions check their own arguments with it (``create_backbone``, ``augmentation``, ``FitConfig``,
``build_cache``, ``make_split``, ``Batches``), so a notebook user gets the same message. A knob is a
notebook parameter name; a new notebook adds its own with one line in :data:`KNOBS`::

    KNOBS["temperature"] = number(low=0, low_open=True)

A notebook whose parameter of the same name means something else gives its own rule in :data:`NOTEBOOK_KNOBS`
under its number, which replaces the shared one for that notebook only::

    NOTEBOOK_KNOBS["03"] = {"width": integer(1, 64)}

The knobs that name models (``backbone``, ``head``) are the models' own: :func:`skinlib.models.factories.rules`,
from the names the factories register; ``run_all.py`` checks both. This module imports nothing of skinlib.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine", "plateau")
AUGMENTATIONS = ("study_a", "study_e", "none", "study_c", "study_b", "study_e_color")
INTERPOLATIONS = ("bilinear", "nearest")
RESAMPLE = ("bilinear", "bicubic")
CROPS = ("squash", "center")
NORMALIZE = ("pretrained", "train")
GROUP_BY = ("auto", "lesion", "patient", "image", "duplicates", "lesion+duplicates")
LAYOUTS = ("ham10000", "isic2018", "folders", "isic_archive")
DATASETS = ("ham10000", "isic2018", "isic_archive")   # what each is: skinlib.data.datasets
TTA = ("none", "flips", "flips+crops")   # test-time augmentation: skinlib.tta.KINDS
RATIOS_TOLERANCE = 1e-3


class KnobError(ValueError):
    """A knob with a value outside what is allowed; the message names the knob, the value and what is allowed."""


@dataclass(frozen=True)
class Rule:
    """What one knob accepts: a test and the same in words (shown in errors)."""

    allowed: str
    test: Callable[[Any], bool]
    options: tuple[str, ...] = ()          # named choices, for a "did you mean" hint

    def accepts(self, value: Any) -> bool:
        """True when `value` is allowed (a test that raises counts as a refusal)."""
        try:
            return bool(self.test(value))
        except Exception:
            return False


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)       # numpy integers too


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None) -> Rule:
    """An integer within [low, high] (either bound optional)."""
    if low is not None and high is not None:
        words = f"an integer from {low} to {high}"
    else:
        words = "an integer" + (f" >= {low}" if low is not None else "") + (f" <= {high}" if high is not None else "")
    return Rule(words, lambda v: _is_int(v) and (low is None or v >= low) and (high is None or v <= high))


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Rule:
    """A finite number within the bounds (``low_open``: the bound itself excluded)."""
    parts = [f"{'>' if low_open else '>='} {low:g}"] if low is not None else []
    parts += [f"{'<' if high_open else '<='} {high:g}"] if high is not None else []

    def test(v: Any) -> bool:
        return (_is_number(v) and (low is None or (v > low if low_open else v >= low))
                and (high is None or (v < high if high_open else v <= high)))
    return Rule("a number " + " and ".join(parts) if parts else "a finite number", test)


def one_of(*options: str, extra: Callable[[Any], bool] | None = None, more: str = "") -> Rule:
    """One of `options` (exactly), or anything `extra` accepts (described by `more`)."""
    words = "one of " + ", ".join(options) + (f", {more}" if more else "")
    return Rule(words, lambda v: isinstance(v, str) and (v in options or (extra is not None and extra(v))), options)


def optional(rule: Rule) -> Rule:
    """None, or what `rule` accepts."""
    return Rule(f"None or {rule.allowed}", lambda v: v is None or rule.accepts(v), rule.options)


def _ratios_ok(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(r) and r >= 0 for r in value)
            and abs(sum(value) - 1) <= RATIOS_TOLERANCE)


def _name_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "/" not in value and "\\" not in value \
        and not value.startswith(".")


def _device_ok(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value) is not None


def _folder(value: Any) -> bool:
    return isinstance(value, str) and Path(value).expanduser().is_dir()


RATIOS = Rule(f"three numbers >= 0 (train, val, test) that sum to 1 (within {RATIOS_TOLERANCE:g})", _ratios_ok)
NAME = Rule("a non-empty name without '/' that does not start with '.'", _name_ok)

#: knob name -> rule. Extend with one line per new knob (see the module docstring).
KNOBS: dict[str, Rule] = {
    "data_dir": optional(Rule("an existing folder", _folder)),
    "weights_dir": optional(Rule("an existing folder", _folder)),
    "layout": optional(one_of(*LAYOUTS)),
    "dataset": one_of(*DATASETS),
    "seed": integer(0),
    "image_size": integer(8, 4096),
    "samples_per_class": integer(0),
    "samples_per_split": integer(0),
    "ratios": RATIOS,
    "group_by": one_of(*GROUP_BY),
    "split_name": NAME,
    "run_name": optional(NAME),
    "color_bins": integer(0),
    "pca_components": integer(1),
    "n_estimators": integer(1),
    "width": integer(1),
    "batch_size": integer(1),
    "devices": integer(1),
    "max_epochs": integer(1),
    "lr": number(0, low_open=True),
    "weight_decay": number(0),
    "optimizer": one_of(*OPTIMIZERS),
    "scheduler": one_of(*SCHEDULERS),
    "step_size": integer(1),
    "gamma": number(0, 1, low_open=True),
    "patience": integer(0),
    "augment": one_of(*AUGMENTATIONS),
    "interpolation": one_of(*INTERPOLATIONS),
    "resample": one_of(*RESAMPLE),
    "crop": one_of(*CROPS),
    "normalize": one_of(*NORMALIZE),
    "head_l2": number(0),
    "device": Rule("auto, cpu, cuda, cuda:N or mps", _device_ok),
    "freeze_fraction": number(0, 1),
    "train_fraction": number(0, 1, low_open=True),
    "tta": one_of(*TTA),
    "drop_rate": number(0, 1, high_open=True),
}


#: notebook number (e.g. ``"06"``) -> rules that replace or add to :data:`KNOBS` for that notebook only.
NOTEBOOK_KNOBS: dict[str, dict[str, Rule]] = {
    # 07: study D's evaluation on a balanced subset, early stopping on validation loss, the multiclass tasks
    "07": {"evaluate_on": one_of("natural", "balanced"), "balanced_subset": optional(integer(2)),
           "monitor": one_of("auc", "loss"), "subtypes": one_of("none", "malignant", "with_benign", "both")},
}


def rules(notebook: str | None = None) -> dict[str, Rule]:
    """The rules that apply to `notebook` (its file name, stem or number; None: the shared ones).

    Args:
        notebook: e.g. ``06_vision_language.ipynb``, ``06_vision_language`` or ``06``.
    """
    merged = dict(KNOBS)
    if notebook:
        merged.update(NOTEBOOK_KNOBS.get(Path(notebook).name[:2], {}))
    return merged


def problem(name: str, value: Any, notebook: str | None = None, rules: dict[str, Rule] | None = None) -> str | None:
    """What is wrong with ``name = value`` in words, or None when it is allowed (or `name` is not a knob).

    Args:
        name: a knob (notebook parameter) name.
        value: its value.
        notebook: the notebook it is given to, for its own rules (:data:`NOTEBOOK_KNOBS`); None: shared rules.
        rules: the rules to use instead of this module's (``run_all.py`` adds the model knobs'
            :func:`skinlib.models.factories.rules`).
    """
    rule = (rules if rules is not None else globals()["rules"](notebook)).get(name)
    if rule is None or rule.accepts(value):
        return None
    close = difflib.get_close_matches(value, rule.options, n=1, cutoff=0.6) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name} = {value!r} is not allowed: use {rule.allowed}{hint}"


def check(name: str, value: Any) -> Any:
    """`value` if it is allowed for knob `name`; else :class:`KnobError` saying what is allowed.

    Args:
        name: a knob (notebook parameter) name; names not in :data:`KNOBS` are not checked.
        value: its value.
    """
    message = problem(name, value)
    if message:
        raise KnobError(message)
    return value


def check_all(values: dict[str, Any], notebook: str | None = None, rules: dict[str, Rule] | None = None) -> None:
    """Check every knob of `values` at once; :class:`KnobError` lists every value not allowed.

    Args:
        values: parameter name -> value (names that are not knobs are ignored).
        notebook: the notebook they are given to, for its own rules (:data:`NOTEBOOK_KNOBS`); None: shared rules.
        rules: as for :func:`problem`.
    """
    problems = [m for m in (problem(k, v, notebook, rules) for k, v in values.items()) if m]
    if problems:
        raise KnobError("; ".join(problems))
