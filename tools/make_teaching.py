#!/usr/bin/env python
"""Make the course copies of the notebooks with nbgrader: students' copies and the instructor's nbgrader course.

    python tools/make_teaching.py            # (re)write teaching/ from notebooks/ (`make teaching`)
    python tools/make_teaching.py --check    # exit 1 when the committed students' copies differ from what this writes (CI)

Writes, for every notebook ``notebooks/NN_topic.ipynb`` (the solution notebooks, the ones ``run_all.py`` and
nbval run):

* ``teaching/source/NN_topic/NN_topic.ipynb``: the instructor's copy, the notebook as it is, in the layout of an
  nbgrader course (``source/<assignment>/``, one assignment per notebook) with ``teaching/nbgrader_config.py``,
  so that ``nbgrader generate_assignment NN_topic`` and ``nbgrader autograde NN_topic`` run there; a byte copy of
  ``notebooks/``, so it is not committed (``.gitignore``): ``make teaching`` makes it where a course is run;
* ``teaching/student/NN_topic.ipynb``: what ``nbgrader generate_assignment`` releases to students, made here with
  nbgrader's own preprocessors in the order its ``GenerateAssignment`` converter applies them (solutions replaced
  by stubs, hidden tests and outputs removed, graded cells locked and checksummed), without its gradebook
  database, then stored as the git filter of ``make lab`` stores notebooks; committed, with
  ``teaching/nbgrader_config.py``. Nothing depends on time or machine: a rerun writes byte-identical files.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.run.notebook_format import CHECK_TAG, strip  # noqa: E402
from skinlib.run.plan import find_notebooks  # noqa: E402

try:
    from skinlib.run import exercise_stubs  # noqa: E402 (needs nbgrader: the teaching extra)
except ImportError as exc:
    raise SystemExit(f"make_teaching.py needs nbgrader ({exc}): pip install -e '.[teaching]'") from exc

TEACHING = ROOT / "teaching"
#: a student's code answer before they write it (nbgrader's stub, with a message naming its exercise, `{number}`)
CODE_STUB = exercise_stubs.CODE_STUB
CONFIG = f'''\
"""nbgrader configuration of the skinlib course: one assignment per notebook (source/NN_topic/NN_topic.ipynb).

Run nbgrader from this folder (the course root), in the environment where skinlib is installed, activated so that
nbgrader finds its helper commands: `nbgrader generate_assignment 02_splits` and, once submissions are collected,
`nbgrader autograde 02_splits`. A student checks a copy from the repository root with
`make validate NB=teaching/student/02_splits.ipynb`. Written by tools/make_teaching.py.
"""

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.course_id = "skinlib"
# what a student's code answer starts as: Run All stops there with a message naming the exercise ({{number}}) and
# saying what to do; skinlib's ClearSolutions puts the number in (nbgrader's has one text for every exercise)
from skinlib.run.exercise_stubs import generate_assignment_steps  # noqa: E402
c.GenerateAssignment.preprocessors = generate_assignment_steps()
c.ClearSolutions.code_stub = {{"python": {CODE_STUB!r}}}
# kernels over Unix sockets: no warning about unencrypted TCP, no port to collide on
c.KernelManager.transport = "ipc"
'''


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A solution notebook as nbgrader releases it to students.

    Args:
        nb: a notebook with nbgrader cell metadata (solution cells, autograder tests, manually graded answers).

    Raises:
        nbgrader.preprocessors.NbGraderPreprocessor errors: cell metadata nbgrader refuses (e.g. a graded cell
            without points), naming the cell.
    """
    # GenerateAssignment's list (with the numbered stubs), less IncludeHeaderFooter (no header), InstantiateTests (no
    # AUTOTEST cells) and SaveCells (its gradebook database; `nbgrader generate_assignment` in teaching/ fills it)
    left_out = {"IncludeHeaderFooter", "InstantiateTests", "SaveCells"}
    steps = [s for s in exercise_stubs.generate_assignment_steps() if s.__name__ not in left_out]
    nb = nbformat.from_dict(nb)
    resources: dict = {}
    for step in steps:
        clears = issubclass(step, exercise_stubs.NumberedClearSolutions)
        nb, resources = (step(code_stub={"python": CODE_STUB}) if clears else step()).preprocess(nb, resources)
    for cell in nb.cells:          # nbval's reference outputs are the solutions' affair: a student's saved copy keeps none
        cell.metadata.pop("keep_output", None)
        tags = [t for t in cell.metadata.get("tags", []) if t != CHECK_TAG]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    return strip(nb)


def exercise_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The cells nbgrader grades or clears (those with ``nbgrader`` metadata marking a solution or a grade)."""
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") or c.metadata.get("nbgrader", {}).get("grade")]


def write(out: Path, notebooks_dir: Path = ROOT / "notebooks") -> list[Path]:
    """Write the course copies of every notebook under `out` (``student/``, ``source/``, ``nbgrader_config.py``).

    Args:
        out: the teaching folder; ``student/`` and ``source/`` are replaced as a whole (a notebook removed from
            ``notebooks/`` disappears from them).
        notebooks_dir: the solution notebooks.

    Returns:
        The files written, relative to `out`.
    """
    out = Path(out)
    for sub in ("student", "source"):
        shutil.rmtree(out / sub, ignore_errors=True)
    written = [Path("nbgrader_config.py")]
    out.mkdir(parents=True, exist_ok=True)
    (out / "nbgrader_config.py").write_text(CONFIG)
    for path in find_notebooks(notebooks_dir):
        nb = nbformat.read(path, as_version=4)
        if not exercise_cells(nb):
            raise SystemExit(f"{path.name}: no nbgrader exercise cells; add an '## Exercises' section (README: Instructors)")
        source = out / "source" / path.stem / path.name
        source.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, source)
        student = out / "student" / path.name
        student.parent.mkdir(parents=True, exist_ok=True)
        student.write_text(nbformat.writes(student_copy(nb)) + "\n")
        written += [source.relative_to(out), student.relative_to(out)]
    return written


#: what of teaching/ is committed (source/ is a copy of notebooks/, made by `make teaching`, ignored by git)
COMMITTED = ("student",)


def committed(files: list[Path]) -> list[Path]:
    """Those of `files` (relative to the teaching folder) that are committed: ``nbgrader_config.py`` and the
    students' copies, not ``source/``."""
    return [f for f in files if len(f.parts) == 1 or f.parts[0] in COMMITTED]


def differences(committed_dir: Path, fresh: Path, files: list[Path]) -> list[str]:
    """Committed files of `fresh` (see :func:`committed`) that are missing from or differ in `committed_dir`, and
    files only `committed_dir`'s committed folders have (not hidden ones: ``.ipynb_checkpoints/`` of ``make student``,
    which git ignores)."""
    files = committed(files)
    problems = [f"{f}: {'differs' if (committed_dir / f).is_file() else 'missing'}"
                for f in files if not (committed_dir / f).is_file()
                or not filecmp.cmp(committed_dir / f, fresh / f, shallow=False)]
    expected = {str(f) for f in files}
    for sub in COMMITTED:
        for extra in sorted((committed_dir / sub).rglob("*")) if (committed_dir / sub).is_dir() else []:
            hidden = any(part.startswith(".") for part in extra.relative_to(committed_dir).parts)  # JupyterLab's
            if extra.is_file() and not hidden and str(extra.relative_to(committed_dir)) not in expected:  # checkpoints
                problems.append(f"{extra.relative_to(committed_dir)}: not made from any notebook (remove it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when teaching/ differs from what this command would write")
    parser.add_argument("--out", type=Path, default=TEACHING, help="the teaching folder (default: teaching/)")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            problems = differences(args.out, Path(tmp), write(Path(tmp)))
        if problems:
            print("teaching copies out of date (run `make teaching` and commit teaching/student/):\n  "
                  + "\n  ".join(problems))
            return 1
        print(f"teaching copies up to date ({args.out})")
        return 0
    files = write(args.out)
    print(f"wrote {len(files)} files under {args.out}: student copies in student/ (committed), the nbgrader course "
          "in source/ (not committed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
