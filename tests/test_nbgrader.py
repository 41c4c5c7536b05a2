"""The README's nbgrader recipe, run by nbgrader itself: the solution scores full points, the release 0.

One exercise (ex01: its checks take seconds; its training run, seconds in the smoke profile)
goes through a throwaway course directory: `nbgrader generate_assignment` on
solutions/ex01_autoencoder.ipynb as the source, three students' submissions (the release with
the solutions and answers typed in, the release untouched, and the release with its check cells
replaced by `pass`), `nbgrader autograde`, and the scores as nbgrader's gradebook holds them: every
automatic point for the solver, none for the others, and the written answers ("predict, then
run" and "going further") waiting for a human. Nothing touches the network; the course's own
tests stay in test_exercises.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

NAME = "ex01_autoencoder"
CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "cvae-course"
c.Execute.timeout = 300          # seconds per cell
"""


def nbgrader(course: Path, *args: str) -> None:
    """Run nbgrader in `course` with this Python; the venv's bin/ first on PATH, as an activated
    venv has it (nbgrader runs its `alembic` from there)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"


def solved(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with every solution cell written as in the source: a student who solved it."""
    answers = {c.metadata.nbgrader["grade_id"]: c.source for c in source.cells if c.metadata.nbgrader["solution"]}
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return nb


def cheated(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release with every check cell replaced by `pass`: full points, were it run as submitted."""
    nb = nbformat.from_dict(release)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "pass"
    return nb


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(CONFIG)
    (course / "source" / NAME).mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / f"{NAME}.ipynb", course / "source" / NAME)
    nbgrader(course, "generate_assignment", NAME)

    release = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "solutions" / f"{NAME}.ipynb", as_version=4)
    for student, nb in (("solver", solved(release, source)), ("idle", release), ("cheat", cheated(release))):
        folder = course / "submitted" / student / NAME
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{NAME}.ipynb")
    nbgrader(course, "autograde", NAME)
    return course


@pytest.mark.parametrize("solution", sorted((ROOT / "solutions").glob("ex*.ipynb")), ids=lambda p: p.stem)
def test_every_exercise_carries_valid_nbgrader_metadata(solution):
    """Without running nbgrader: its validator accepts every exercise notebook, each check cell is
    a 1-point test and each solution cell a solution, the same in exercises/ as in solutions/."""
    from nbgrader.nbgraderformat import MetadataValidator

    sol = nbformat.read(solution, as_version=4)
    ex = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    for nb in (sol, ex):
        MetadataValidator().validate_nb(nb)
    meta = [c.metadata.nbgrader for c in sol.cells]
    assert meta == [c.metadata.nbgrader for c in ex.cells]
    for cell, m in zip(sol.cells, meta):
        answer = build_notebooks.answer_tag(cell)
        assert m["solution"] == ("### BEGIN SOLUTION" in cell.source or bool(answer))
        assert m["grade"] == (bool(build_notebooks.check_calls(cell.source)) or bool(answer))
        assert m.get("points", 1) == (build_notebooks.ANSWER_POINTS[answer] if answer else 1)
        assert m["locked"] == (not m["solution"])
    answers = [build_notebooks.answer_tag(c) for c in sol.cells]
    assert "prediction" in answers and "going-further" in answers, "a prediction and the going-further answers"


def test_the_release_has_stubs_and_locked_checks(gradebook):
    release = nbformat.read(gradebook / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    meta = [c.metadata.get("nbgrader", {}) for c in release.cells]
    tests = [m["grade_id"] for m in meta if m.get("grade") and not m.get("solution")]
    assert tests == ["check_psnr", "check_interpolate", "check_bottleneck"]
    code = [c for c, m in zip(release.cells, meta) if m.get("solution") and c.cell_type == "code"]
    assert len(code) == 4 and all("raise NotImplementedError()" in c.source for c in code)
    answers = [c for c, m in zip(release.cells, meta) if m.get("solution") and c.cell_type == "markdown"]
    assert [c.source for c in answers] == ["YOUR ANSWER HERE"] * 2
    answers_given = ("10 * torch.log10", "cross-fades", "I + \\partial h")
    leaked = [s for s in answers_given if any(s in c.source for c in release.cells)]
    assert not leaked, f"the release leaks a solution: {leaked}"


def test_autograde_gives_the_solution_full_points_and_the_release_zero(gradebook):
    with Gradebook(f"sqlite:///{gradebook / 'gradebook.db'}") as gb:
        # one point per check cell, and the prediction's point (the going-further answers: 0 points)
        assert gb.find_assignment(NAME).max_score == 3 + 1
        scores = {s: (gb.find_submission(NAME, s).code_score, gb.find_submission(NAME, s).max_code_score)
                  for s in ("solver", "idle", "cheat")}
        manual = {s: gb.find_submission(NAME, s).needs_manual_grade for s in ("solver", "idle", "cheat")}
        written = {(g.name, g.max_score) for nb in gb.find_submission(NAME, "solver").notebooks for g in nb.grades
                   if g.cell.cell_type == "markdown"}
    # the check cells are locked: autograde runs the source's version, not the cheat's `pass`
    assert scores == {"solver": (3.0, 3.0), "idle": (0.0, 3.0), "cheat": (0.0, 3.0)}
    # the written answers are left to a human: nbgrader flags them for manual grading (an answer left
    # as handed out, "YOUR ANSWER HERE", it scores 0 itself)
    assert manual["solver"] and not manual["idle"]
    assert {points for _, points in written} == {0.0, 1.0} and len(written) == 2


def test_autograded_check_cells_report_every_property(gradebook):
    """Full points come from checks that ran and passed, property by property (not from silence)."""
    from cvae_lib.checks import CHECK_MIME

    nb = nbformat.read(gradebook / "autograded" / "solver" / NAME / f"{NAME}.ipynb", as_version=4)
    results = [r for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
               for o in c.outputs
               for r in o.get("data", {}).get(CHECK_MIME, {}).get("results", [])]
    assert results and {r["status"] for r in results} == {"passed"}
    assert len({r["exercise"] for r in results}) == 3                 # psnr, interpolate, bottleneck_forward
