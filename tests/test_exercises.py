"""Exercises: generated from solutions and up to date; every check fails on the stub, passes on the solution."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cvae_lib.checks import CHECK_MIME

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("ex*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402


def run(path: Path, experiments: bool = True) -> list[dict]:
    """Execute a notebook in a fresh kernel (errors allowed) and return every check result;
    without its `experiment` cells if asked (no check depends on them)."""
    nb = nbformat.read(path, as_version=4)
    if not experiments:
        nb.cells = [c for c in nb.cells if "experiment" not in c.metadata.get("tags", [])]
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return [r for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            for r in out.get("data", {}).get(CHECK_MIME, {}).get("results", [])]


def test_there_are_exercises():
    assert SOLUTIONS, "no solutions/ex*.ipynb found"


def test_exercises_are_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_notebooks.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stub_replaces_solution_regions():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\n"
    out = build_notebooks.strip_solutions(src)
    assert "return x + y" not in out and "    raise NotImplementedError()" in out and "y = 1" in out
    with pytest.raises(ValueError, match="without"):
        build_notebooks.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_checks_pass_on_solution_and_fail_on_stub(solution):
    solved = run(solution)
    assert solved, f"{solution.name} reported no checks"
    failing = [r for r in solved if r["status"] != "passed"]
    assert not failing, f"checks fail on the solution: {failing}"

    stub = run(ROOT / "exercises" / solution.name, experiments=False)   # they would only fail, slowly
    assert {(r["exercise"], r["prop"]) for r in stub} == {(r["exercise"], r["prop"]) for r in solved}
    passing = [r for r in stub if r["status"] == "passed"]
    assert not passing, f"checks pass on the unsolved stub (they cannot fail): {passing}"
    assert all(r["status"] == "not implemented" for r in stub), stub


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_has_a_run_to_look_at_a_prediction_and_answers(solution):
    """An experiment the student looks at, a "predict, then run" answered with its reason in the
    solution and blank in the exercise, and the "Going further" questions answered."""
    sol = nbformat.read(solution, as_version=4)
    ex = nbformat.read(ROOT / "exercises" / solution.name, as_version=4)
    tags = [build_notebooks.answer_tag(c) for c in sol.cells]
    assert "prediction" in tags and "going-further" in tags
    assert any("experiment" in c.metadata.get("tags", []) for c in sol.cells)
    for tag, s, e in zip(tags, sol.cells, ex.cells):
        if tag:
            assert s.source.startswith("**Answer") and e.source == build_notebooks.ANSWER, s.source[:80]
    predict = [i for i, t in enumerate(tags) if t == "prediction"]
    assert all("predict" in sol.cells[i - 1].source.lower() for i in predict), "a prediction follows its question"
    assert all(sol.cells[i + 1].cell_type == "code" for i in predict), "and the experiment follows the prediction"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_student_notebooks_carry_no_maintainer_notes(solution):
    text = (ROOT / "exercises" / solution.name).read_text().lower()
    for note in ("generated from", "edit the solution", "build_notebooks", "contributing", "make notebooks",
                 "begin solution", "tests/"):
        assert note not in text, f"exercises/{solution.name} mentions {note!r}"


def test_the_up_to_date_check_ignores_jupyterlab_rewrites_but_not_edits():
    """Opening a notebook in JupyterLab (or `jupytext --sync`) rewrites ids, language_info and the
    trailing newline: not stale. Changing a cell's source is."""
    import json

    path = ROOT / "notebooks" / "01_autoencoder.ipynb"
    built = path.read_text()
    nb = json.loads(built)
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.9"}
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"x{i}"
    rewritten = json.dumps(nb, indent=2)
    assert build_notebooks.same_content(path, rewritten, built)
    nb["cells"][1]["source"] = ["print('edited')"]
    assert not build_notebooks.same_content(path, json.dumps(nb), built)
    assert not build_notebooks.same_content(path, "not json", built)
