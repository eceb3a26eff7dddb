"""Plan the runs of a profile: find the notebooks, read their ``parameters`` cells and the parameter files, check every
value, resolve each run's parameters. Nothing is executed here (:mod:`skinlib.run.execute`, :mod:`skinlib.run.schedule`).

Validation checks names, types, and values against :mod:`skinlib.parameters` before anything runs. Execution
first clears what killed runs left behind (:mod:`skinlib.leftovers`), holds a lock per run, and echoes the
lines a notebook prints with :func:`skinlib.notebook.notice` to the terminal.

Parameter files live in ``params/<profile>/<notebook stem>.yaml``. A file is a mapping of parameter
names to values; it may add ``runs:``, a list of mappings each with a ``name`` and its own overrides,
to execute the notebook several times (e.g. once per backbone); a run's ``name`` also becomes the
notebook's ``run_name`` parameter, when it has one and the run does not set it::

    image_size: 224
    runs:
      - name: resnet50-rgb
        backbone: resnet50
      - name: resnet50-gray
        backbone: resnet50
        grayscale: true
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .. import parameters
from ..models import factories

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_[a-z0-9_]+\.ipynb$")
#: keys of a parameter file that are not parameters: the runs, a run's name, its cluster resources, and the paper
#: row a run reproduces (``reproduces: A/ResNet-50``, or ``extension: ...``; see :mod:`skinlib.paper_settings`)
RESERVED = {"runs", "name", "resources", "reproduces"}


class ParameterError(ValueError):
    """A parameter file that does not fit its notebook; the message names file, key and fix."""


@dataclass
class Parameter:
    """One entry of a notebook's ``parameters`` cell."""

    name: str
    default: Any
    source: str          # the default as written
    help: str


@dataclass
class Run:
    """One execution of one notebook with fully resolved parameters."""

    notebook: Path
    name: str                                   # e.g. "05_transfer_learning--resnet50-rgb"
    params: dict[str, Any] = field(default_factory=dict)   # overrides given to papermill
    gpu: str = "none"
    data: dict[str, Any] = field(default_factory=dict)     # what it reads (:func:`run_data`); empty: no dataset
    #: what its job asks for on a cluster, from its parameter file (``resources:``; :mod:`skinlib.run.cluster`)
    resources: dict[str, int] = field(default_factory=dict)
    reproduces: str | list[str] | None = None   # the paper row(s) it reproduces, or "extension: ..."


#: resource names a parameter file may set per run (``resources: {gpus: 2, time_min: 2880}``)
RESOURCE_KEYS = ("gpus", "cpus", "mem_gb", "time_min")


def check_resources(value: Any, where: str) -> list[str]:
    """Problems of a ``resources:`` mapping from a parameter file (empty: none)."""
    if not isinstance(value, dict):
        return [f"{where}: 'resources' must be a mapping of {', '.join(RESOURCE_KEYS)} to whole numbers"]
    problems = [f"{where}: resources.{k}: unknown; use {', '.join(RESOURCE_KEYS)}" for k in value if k not in RESOURCE_KEYS]
    problems += [f"{where}: resources.{k} = {v!r}: must be a whole number >= {0 if k == 'gpus' else 1}"
                 for k, v in value.items() if k in RESOURCE_KEYS
                 and (not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "gpus" else 1))]
    return problems


def find_notebooks(folder: Path) -> list[Path]:
    """Numbered notebooks (``NN_topic.ipynb``) in order."""
    return sorted(p for p in Path(folder).iterdir() if NOTEBOOK_PATTERN.match(p.name))


def notebook_parameters(path: Path) -> dict[str, Parameter]:
    """The ``parameters`` cell of a notebook, as papermill reads it (:func:`papermill.inspect_notebook`): one
    ``name = value  # help`` per line, each value a Python literal.

    Raises:
        ParameterError: no or several cells tagged ``parameters``, or a default that is not a literal.
    """
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path.name} must have exactly one cell tagged 'parameters' (found {len(cells)})")
    params = {}
    for name, found in pm.inspect_notebook(str(path)).items():
        source = found["default"]
        try:
            default = ast.literal_eval(source)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(f"{path.name}, parameter {name!r}: default {source!r} is not a literal") from exc
        params[name] = Parameter(name, default, source, found.get("help") or "")
    return params


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_values(values: dict[str, Any], params: dict[str, Parameter], where: str, notebook: str | None = None) -> None:
    """Every key must be a parameter of the notebook, with a value of the default's type that its knob allows.

    Args:
        values: parameter name -> value, as given (a parameter file, a run of it, the command line).
        params: the notebook's parameters (:func:`notebook_parameters`).
        where: how to name the origin of `values` in messages (file and run, or the option).
        notebook: the notebook's name, for its own rules (:data:`skinlib.parameters.NOTEBOOK_KNOBS`).

    Raises:
        ParameterError: listing every unknown name, wrongly typed value and value outside its knob's range.
    """
    errors = []
    for key, value in values.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"valid names: {', '.join(params)}"
            errors.append(f"{where}: unknown parameter {key!r}; {hint}")
        elif not _type_ok(params[key].default, value):
            p = params[key]
            hint = (" (a number in quotes is text: write it without quotes)"
                    if isinstance(value, str) and isinstance(p.default, (int, float)) and _looks_numeric(value) else "")
            errors.append(f"{where}: parameter {key!r} should be like its default {p.source} "
                          f"({type(p.default).__name__}), got {value!r} ({type(value).__name__}){hint}")
        else:
            problem = parameters.problem(key, value, notebook, knob_rules(notebook))
            if problem:
                errors.append(f"{where}: parameter {problem}")
    if errors:
        raise ParameterError("\n".join(errors))


def knob_rules(notebook: str | None = None) -> dict[str, parameters.Rule]:
    """The allowed values of every knob for `notebook`: the shared ones (:mod:`skinlib.parameters`) and the model
    knobs' (:func:`skinlib.models.factories.rules`)."""
    return {**parameters.rules(notebook), **factories.rules(notebook)}


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-4`` and ``5e3`` as the floats they mean (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """A value written as in a parameter file (``0.001``, ``1e-4``, ``[0.7, 0.15, 0.15]``, ``true``, ``null``)."""
    return yaml.load(text, Loader=_Loader)


def load_params_file(path: Path) -> dict[str, Any]:
    """A parameter file as a mapping (empty file: no overrides)."""
    try:
        data = parse_value(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values, got {type(data).__name__}")
    return data


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` arguments as a mapping, each value read as YAML (``0.001``, ``false``, ``[1, 2]``)."""
    sets: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--set {item!r}: expected key=value, e.g. --set max_epochs=2")
        try:
            sets[key.strip()] = parse_value(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ParameterError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return sets


def check_sets(sets: dict[str, Any], notebooks: list[Path]) -> None:
    """``--set`` keys must be a parameter of at least one notebook, with a value of that parameter's type."""
    every = {nb: notebook_parameters(nb) for nb in notebooks}
    names = sorted({name for params in every.values() for name in params})
    errors = []
    for key, value in sets.items():
        owners = [nb for nb, params in every.items() if key in params]
        if not owners:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            errors.append(f"--set: unknown parameter {key!r}; "
                          + (f"did you mean {close[0]!r}?" if close else f"no notebook has it (parameters: {', '.join(names)})"))
            continue
        for nb in owners:
            try:
                check_values({key: value}, every[nb], f"--set (notebook {nb.name})", nb.name)
            except ParameterError as exc:
                errors.append(str(exc))
    if errors:
        raise ParameterError("\n".join(errors))


#: What ``--smoke`` shrinks, for every notebook that has the parameter: one epoch of small batches, and 09's
#: Grad-CAM figures and faithfulness test on a few images (each model is still explained and tested). The image
#: count of the data is shrunk inside skinlib (:func:`skinlib.inputs.smoke_subset`); architectures, image sizes,
#: heads and augmentation stay as the profile sets them.
SMOKE_LIMITS = {"max_epochs": 1, "batch_size": 4, "per_class": 1, "n_faithfulness": 2}


def smoke(runs: list[Run]) -> list[Run]:
    """The same runs with :data:`SMOKE_LIMITS` applied (never raising a value the run set lower)."""
    for run in runs:
        params = notebook_parameters(run.notebook)
        for key, limit in SMOKE_LIMITS.items():
            if key in params:
                value = run.params.get(key, params[key].default)
                run.params[key] = limit if value is None else min(value, limit)
    return runs


def _is_path(profile: str) -> bool:
    return "/" in profile or "\\" in profile or profile.startswith(("~", "."))


def profile_folder(params_dir: Path | None, profile: str) -> Path | None:
    """The folder of a profile's parameter files: ``params/<profile>``, or `profile` itself when it is a path
    (a folder of one's own, e.g. ``--profile ~/my-settings``)."""
    if _is_path(profile):
        return Path(profile).expanduser().resolve()
    return params_dir / profile if params_dir is not None else None


def outputs_name(profile: str) -> str:
    """The folder of a profile's executed notebooks and run records, under the workspace's ``outputs/``: the
    profile's name; for a profile given as a path, that folder's name. Never the profile's folder itself: executed
    notebooks never go among parameter files (nor does cleaning up after a killed run ever look there)."""
    return Path(profile).expanduser().resolve().name if _is_path(profile) else profile


def plan(notebooks_dir: Path, params_dir: Path | None, profile: str,
         overrides: dict[str, Any] | None = None, sets: dict[str, Any] | None = None) -> list[Run]:
    """Every run of every notebook for a profile, with parameters validated; nothing is executed.

    Args:
        overrides: values applied to every notebook that has the parameter (``--data``), checked like the files.
        sets: ``--set`` values: applied like `overrides`, after checking that each key is a parameter of some
            notebook (an unknown key gets the closest name).

    Raises:
        ParameterError: listing every unknown key or wrongly typed value, by file.
    """
    notebooks = find_notebooks(notebooks_dir)
    if sets:
        check_sets(sets, notebooks)
        overrides = {**(overrides or {}), **sets}
    profile_dir = profile_folder(params_dir, profile)
    if profile != "default" and (profile_dir is None or not profile_dir.is_dir()):
        known = sorted(p.name for p in params_dir.iterdir() if p.is_dir()) if params_dir and params_dir.is_dir() else []
        raise ParameterError(f"no profile {profile!r}: {profile_dir} does not exist (profiles: default, {', '.join(known)})")
    if profile_dir is not None and params_dir is not None and _is_path(profile):
        same_name = params_dir / outputs_name(profile)
        if outputs_name(profile) == "default" or (same_name.is_dir() and same_name.resolve() != profile_dir):
            raise ParameterError(f"--profile {profile}: its executed notebooks would go to outputs/"
                                 f"{outputs_name(profile)}/, the folder of the profile {outputs_name(profile)!r}; "
                                 "give your folder of parameter files another name")
    stems = {nb.stem for nb in notebooks}
    errors, runs = [], []
    if profile_dir is not None and profile_dir.is_dir():
        for f in sorted(profile_dir.glob("*.y*ml")):
            if f.stem not in stems:
                close = difflib.get_close_matches(f.stem, sorted(stems), n=1)
                errors.append(f"{f}: no notebook {f.stem}.ipynb" + (f"; did you mean {close[0]}.yaml?" if close else ""))
    for nb_path in notebooks:
        params = notebook_parameters(nb_path)
        gpu = nbformat.read(nb_path, as_version=4).metadata.get("skinlib", {}).get("gpu", "none")
        file = profile_dir / f"{nb_path.stem}.yaml" if profile_dir is not None else None
        data = load_params_file(file) if file is not None and file.is_file() else {}
        where = str(file) if file is not None and file.is_file() else nb_path.name
        shared = {k: v for k, v in data.items() if k not in RESERVED}
        variants = data.get("runs") or [{}]
        if not isinstance(variants, list):
            errors.append(f"{where}: 'runs' must be a list of mappings")
            continue
        try:
            check_values(shared, params, where, nb_path.name)
        except ParameterError as exc:
            errors.append(str(exc))
        for i, variant in enumerate(variants):
            if not isinstance(variant, dict) or (len(variants) > 1 and "name" not in variant):
                errors.append(f"{where}: runs[{i}] must be a mapping with a 'name'")
                continue
            own = {k: v for k, v in variant.items() if k not in RESERVED}
            label = f"{where} runs[{i}]" + (f" ({variant['name']})" if variant.get("name") else "")
            try:
                check_values(own, params, label, nb_path.name)
            except ParameterError as exc:
                errors.append(str(exc))
            resolved = {**shared, **own}
            if variant.get("name") and "run_name" in params and "run_name" not in resolved:
                resolved["run_name"] = variant["name"]          # a run's results are filed under its name
            given = {key: value for key, value in (overrides or {}).items() if key in params}
            try:
                check_values(given, params, f"{nb_path.name}, from the command line", nb_path.name)
            except ParameterError as exc:
                if str(exc) not in errors:
                    errors.append(str(exc))
            resolved.update(given)
            name = nb_path.stem + (f"--{variant['name']}" if variant.get("name") else "")
            wanted = {**(data.get("resources") or {}), **(variant.get("resources") or {})}
            errors += check_resources(wanted, label)
            runs.append(Run(nb_path, name, resolved, gpu,
                            run_data(resolved, {key: p.default for key, p in params.items()}), wanted,
                            variant.get("reproduces", data.get("reproduces"))))
    if errors:
        raise ParameterError("parameter files do not fit their notebooks:\n  " + "\n  ".join(errors))
    from .split_names import follow_split

    errors = follow_split(runs, sets or {}, lambda run: notebook_parameters(run.notebook))
    if errors:
        raise ParameterError("a split setting from the command line does not reach every run:\n  " + "\n  ".join(errors))
    return runs


def train_again(runs: list[Run], sets: dict[str, Any] | None = None) -> list[Run]:
    """``--force``: every run that can resume from a checkpoint trains from the start (``resume=False``), unless
    ``--set resume=...`` says otherwise. ``resume`` is not part of a run's identity (:func:`skinlib.run.execute.identity`):
    a forced run counts as the same run as before."""
    for run in runs:
        if "resume" in notebook_parameters(run.notebook) and "resume" not in (sets or {}):
            run.params["resume"] = False
    return runs


def run_data(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """What a run reads, from its resolved parameters over its notebook's defaults: ``dataset``, ``task``
    (its ``task`` parameter, else ``seven_class``), ``data_dir``, ``layout``, ``seed``, ``allow_missing``; empty for
    a notebook without a ``dataset`` parameter (it reads no dataset)."""
    if "dataset" not in defaults:
        return {}
    value = {**defaults, **params}
    return {"dataset": value["dataset"], "task": value.get("task") or "seven_class",
            "data_dir": value.get("data_dir"), "layout": value.get("layout"), "seed": value.get("seed", 0),
            "allow_missing": bool(value.get("allow_missing"))}


def select(runs: list[Run], only: list[str] | None = None, start: str | None = None) -> list[Run]:
    """Runs picked by ``--only`` (numbers or names, e.g. ``01`` or ``02_splits``) and ``--from``."""
    def matches(run: Run, key: str) -> bool:
        return run.notebook.stem == key or run.notebook.stem.startswith(f"{key}_") or run.name == key

    for key in (only or []) + ([start] if start else []):
        if not any(matches(r, key) for r in runs):
            raise ParameterError(f"no notebook or run matches {key!r}; see --list")
    if only:
        runs = [r for r in runs if any(matches(r, k) for k in only)]
    if start:
        first = next(i for i, r in enumerate(runs) if matches(r, start))
        runs = runs[first:]
    return runs


