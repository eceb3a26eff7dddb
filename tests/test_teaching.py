"""Course copies (issue: teaching labs): the exercises are marked the nbgrader way, the committed students' copies and
nbgrader course are what `make teaching` writes, and a student's copy runs from teaching/student/ up to its first
exercise. The autograder tests themselves are ordinary cells of the solution notebooks: nbval runs them (`make test`).
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
pytest.importorskip("nbgrader", reason="the teaching extra: pip install -e '.[teaching]'")

import make_teaching  # noqa: E402

from skinlib.run import forked_kernels  # noqa: E402
from skinlib.run.notebook_format import strip  # noqa: E402
from skinlib.run.plan import find_notebooks  # noqa: E402

NOTEBOOKS = find_notebooks(ROOT / "notebooks")
STUDENT = ROOT / "teaching" / "student"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def grading(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def first_exercise(nb) -> int:
    return next(i for i, c in enumerate(nb.cells) if grading(c).get("solution") or grading(c).get("grade"))


def stub_message(number: int) -> str:
    """What the stub of exercise `number`'s code answer raises."""
    return f"Exercise {number}: write your answer here, in place of this line, then run the test cell below"


def test_committed_copies_are_what_make_teaching_writes(tmp_path):
    """The students' copies and the nbgrader configuration are committed; the instructor's copies (source/, a copy of
    notebooks/) are made by `make teaching` and not compared (nor needed here)."""
    written = make_teaching.write(tmp_path)
    assert {f.parts[0] for f in written} == {"nbgrader_config.py", "student", "source"}
    assert all(filecmp.cmp(tmp_path / "source" / p.stem / p.name, p, shallow=False) for p in NOTEBOOKS)
    problems = make_teaching.differences(ROOT / "teaching", tmp_path, written)
    assert not problems, "run `make teaching` and commit teaching/student/:\n" + "\n".join(problems)
    assert not any(p.startswith("source/") for p in problems)


def test_check_mode_fails_on_a_stale_copy(tmp_path):
    make_teaching.write(tmp_path)
    stale = tmp_path / "student" / NOTEBOOKS[0].name
    stale.write_text(stale.read_text().replace("raise NotImplementedError(", "print("))
    (tmp_path / "student" / "99_gone.ipynb").write_text("{}")
    (tmp_path / "student" / ".ipynb_checkpoints").mkdir()       # JupyterLab's (make student), ignored by git
    (tmp_path / "student" / ".ipynb_checkpoints" / f"{NOTEBOOKS[0].stem}-checkpoint.ipynb").write_text("{}")
    result = subprocess.run([sys.executable, "tools/make_teaching.py", "--check", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert f"student/{NOTEBOOKS[0].name}: differs" in result.stdout and "99_gone.ipynb: not made" in result.stdout
    assert "checkpoint" not in result.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_are_marked_the_nbgrader_way(path):
    nb = nbformat.read(path, as_version=4)
    start = first_exercise(nb)
    assert nb.cells[start - 2].source.startswith("## Exercises"), "exercises come last, under '## Exercises'"
    ids = [grading(c)["grade_id"] for c in nb.cells if grading(c)]
    assert len(ids) == len(set(ids)), f"grade_id not unique: {ids}"
    graded = [c for c in nb.cells if grading(c).get("grade")]
    exercises = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("### Exercise")]
    assert 2 <= len(exercises) <= 3, "two or three exercises"
    assert sum(grading(c)["points"] for c in graded) == sum(
        int(c.source.split("(")[1].split(" point")[0]) for c in exercises), "points announced = points graded"
    for i, cell in enumerate(nb.cells):
        meta = grading(cell)
        if i < start:
            assert not meta, "every nbgrader cell is in the exercise section"
            continue
        if not meta:
            assert cell.cell_type == "markdown", "exercise instructions are markdown"
            continue
        assert meta["schema_version"] == 3 and {"grade", "solution", "locked", "grade_id"} <= set(meta)
        if meta["grade"]:
            assert meta["points"] > 0
        if meta["solution"] and cell.cell_type == "code":
            assert cell.source.count(BEGIN) == 1 and cell.source.count(END) == 1, meta["grade_id"]
        if meta["solution"] and cell.cell_type == "markdown":     # the whole cell is the answer: no heading markers
            assert "BEGIN SOLUTION" not in cell.source and cell.source.startswith("**Model answer.**"), meta["grade_id"]
        if meta["solution"]:
            assert not meta["locked"]
        if cell.cell_type == "code" and meta["solution"]:
            after = nb.cells[i + 1]
            assert grading(after).get("grade") and not grading(after)["solution"], "an answer is followed by its tests"
        if cell.cell_type == "code" and meta["grade"]:
            assert meta["locked"] and "assert " in cell.source, "autograder tests assert something"
            number = next(c.source.split()[2] for c in reversed(nb.cells[:i]) if c.source.startswith("### Exercise"))
            assert cell.source.rstrip().endswith(f'print("Exercise {number}: all tests passed")'), meta["grade_id"]
        if cell.cell_type == "markdown" and meta:
            assert meta["solution"] and meta["grade"], "written answers are graded by hand"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_student_copy_is_the_notebook_without_its_answers(path):
    """Up to the first exercise a student's copy holds the solution notebook's cells (which nbval runs); after it,
    no model answer or hidden test remains, every answer is nbgrader's stub, graded cells are locked."""
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(STUDENT / path.name, as_version=4)
    start = first_exercise(solution)
    assert [c.source for c in student.cells[:start]] == [c.source for c in solution.cells[:start]]
    assert all(not getattr(c, "outputs", None) for c in student.cells), "outputs cleared"
    text = (STUDENT / path.name).read_text()
    for secret in (BEGIN, END, "BEGIN HIDDEN TESTS"):
        assert secret not in text
    assert nbformat.writes(strip(student)) + "\n" == text, "stored as make lab's git filter keeps it (git status stays clean)"
    number = None
    for cell in student.cells[start - 1:]:
        meta = grading(cell)
        if cell.source.startswith("### Exercise"):
            number = int(cell.source.split()[2])
        if meta.get("solution") and cell.cell_type == "code":     # the stub names its own exercise (Run All stops there)
            assert f'raise NotImplementedError("{stub_message(number)}")' in [line.strip() for line in cell.source.splitlines()], \
                meta["grade_id"]
        if meta.get("solution") and cell.cell_type == "markdown":
            assert "YOUR ANSWER HERE" in cell.source
        if meta.get("grade") and cell.cell_type == "code":
            assert cell.metadata.get("editable") is False and meta.get("checksum")


def _execute_student_copy(path: Path, workspace: Path) -> tuple[int, str, str]:
    """Run a student's copy from teaching/student/ (a smoke-sized run in `workspace`) until a cell fails: that
    cell's index, its error name and message."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in params.source.splitlines() if "=" in line}
    smaller = {k: v for k, v in {"max_epochs": 1, "batch_size": 4, "n_boot": 20}.items() if k in names}
    params.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in smaller.items())
    env = {"SKINLIB_WORKSPACE": str(workspace), "SKINLIB_SMOKE": "2", "MPLBACKEND": "Agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                                kernel_manager_class=forked_kernels.manager_class())
        try:
            client.execute()
        except CellExecutionError as exc:
            failed = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
                o.get("output_type") == "error" for o in c.get("outputs", [])))
            return failed, exc.ename, exc.evalue
        return len(nb.cells), "", ""
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: every copy, in order (08-10 read what the earlier copies recorded), smoke-sized: about 10 s each
EXECUTED = NOTEBOOKS


def test_student_copies_run_up_to_their_first_exercise(workspace):
    """Opened from teaching/student/ (another folder than notebooks/), each copy finds skinlib and the data, runs
    every cell before its first exercise, and stops there on nbgrader's stub (NotImplementedError)."""
    for path in EXECUTED:
        student = STUDENT / path.name
        started = time.perf_counter()
        failed, error, message = _execute_student_copy(student, workspace)
        print(f"{path.name}: {time.perf_counter() - started:.1f} s")
        nb = nbformat.read(student, as_version=4)
        first_answer = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and grading(c).get("solution"))
        assert (failed, error) == (first_answer, "NotImplementedError"), f"{path.name}: cell {failed} raised {error}"
        number = next(int(c.source.split()[2]) for c in reversed(nb.cells[:failed]) if c.source.startswith("### Exercise"))
        assert message == stub_message(number), f"{path.name}: the stub names its exercise and says what to do, not {message!r}"


def test_nbgrader_releases_the_same_copy(tmp_path):
    """`nbgrader generate_assignment` in the course folder `make teaching` writes releases what teaching/student/
    holds."""
    course = tmp_path / "course"
    make_teaching.write(course)
    name = NOTEBOOKS[0].stem
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", name, "--no-db"], cwd=course,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    released = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    ours = nbformat.read(STUDENT / f"{name}.ipynb", as_version=4)
    assert [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in released.cells] == \
           [(c.cell_type, c.source, c.metadata.get("nbgrader")) for c in ours.cells]


def test_lab_profile_is_valid_and_pretrained():
    """params/lab/ fits the notebooks (as `run_all.py --profile lab --list` checks it) and turns pretrained weights
    on wherever a notebook has them; it is run for real on class machines (internet for the weights)."""
    from skinlib.run.plan import notebook_parameters, plan

    runs = plan(ROOT / "notebooks", ROOT / "params", "lab")
    assert {r.notebook.stem for r in runs} == {p.stem for p in NOTEBOOKS}
    for run in runs:
        if "pretrained" in notebook_parameters(run.notebook):
            assert run.params.get("pretrained") is True, run.name
    listed = subprocess.run([sys.executable, "run_all.py", "--profile", "lab", "--list"], cwd=ROOT,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr


@pytest.mark.skipif(not os.environ.get("SKINLIB_TEACHING_ALL"), reason="nbgrader's whole workflow: SKINLIB_TEACHING_ALL=1 runs it")
def test_nbgrader_autograde_scores_the_solution_full_and_the_blank_copy_zero(tmp_path):
    """The course folder works as nbgrader's course root: released, submitted, autograded; the autograder tests
    give the solution every autograded point and an unanswered copy none (they can fail)."""
    course = tmp_path / "course"
    make_teaching.write(course)
    name = "02_splits"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", name], cwd=course, env=env, check=True, capture_output=True)
    for student, copy in (("solution", course / "source" / name), ("blank", course / "release" / name)):
        (course / "submitted" / student / name).mkdir(parents=True)
        shutil.copy(copy / f"{name}.ipynb", course / "submitted" / student / name)
    subprocess.run([*nbgrader, "autograde", name], cwd=course, env=env, check=True, capture_output=True)
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        solution, blank = (gb.find_submission(name, s) for s in ("solution", "blank"))
        assert solution.code_score == solution.max_code_score > 0
        assert blank.code_score == 0


def test_make_student_server_finds_the_course_configuration():
    """`make student` serves teaching/student/ from the repository root with JUPYTER_CONFIG_PATH=jupyter/teaching:
    nbgrader's menus there load the course (teaching/ and its nbgrader_config.py: kernels over ipc), and log no
    "No nbgrader_config.py file found" (they did)."""
    code = ("from nbgrader.apps.validateapp import ValidateApp; app = ValidateApp(); app.initialize([]); "
            "print(app.coursedir.root); print(app.config.KernelManager.transport)")
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "jupyter" / "teaching")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(ROOT / "teaching"), "ipc"]
    assert "No nbgrader_config.py" not in done.stderr
