"""Build every .ipynb from its jupytext source, and the student exercises from the solutions.

Sources (the only files anyone edits):
    notebooks/NN_name.py      chapters, jupytext "percent" format
    solutions/exNN_name.py    exercises with their solutions, between nbgrader's markers

Built (committed, without outputs, so Colab/Binder can open them):
    notebooks/NN_name.ipynb, solutions/exNN_name.ipynb
    exercises/exNN_name.py + .ipynb: the solution with every region between
    `### BEGIN SOLUTION` and `### END SOLUTION` replaced by a stub that raises NotImplementedError,
    and every written answer (a Markdown cell tagged "prediction" or "going-further") replaced
    by "YOUR ANSWER HERE"

A solution source marks its cells with jupytext cell tags (`# %% [markdown] tags=["prediction"]`):
    prediction       Markdown: the model answer of a "predict, then run" question (1 point, read by hand)
    going-further    Markdown: the answers to the "Going further" questions (0 points, read by hand)
    experiment       code: a run the student looks at (data, shipped weights, seconds to minutes);
                     no check depends on it, so a grader may skip it

The exercise notebooks (solutions/ and exercises/ .ipynb, not the .py files) carry nbgrader's
cell metadata, so solutions/exNN_name.ipynb is an nbgrader source notebook as it is:
    solution cells (a BEGIN SOLUTION region)   solution, not graded, editable
    check cells (only `exNN.check_*(f);` lines) autograded tests, locked, 1 point per check call
    answer cells (tagged Markdown, above)      manually graded answers, editable, 1 or 0 points
    every other cell                           read-only (locked), restored by `nbgrader autograde`
nbgrader scores a test cell all or nothing (an error in its output means 0), so a check cell is
worth one point per task; the property-by-property credit is `python -m cvae_lib.grade`'s.

    python tools/build_notebooks.py           # write everything
    python tools/build_notebooks.py --check   # exit 1 and list what is out of date (used by tests)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat
import tomllib

from cvae_lib.grade.plan import check_calls, defined_names

ROOT = Path(__file__).resolve().parents[1]
# The GitHub repository the badges point at: change it in pyproject.toml ([project.urls]) in a fork.
REPO_URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
REPO = REPO_URL.removeprefix("https://github.com/")
COLAB_BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
               "(https://colab.research.google.com/github/{repo}/blob/main/{path})")
SETUP_MARK = "# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens."
SETUP_CELL = f"""{SETUP_MARK}
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "{REPO_URL}", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart"""
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ANSWER = "YOUR ANSWER HERE"
ANSWER_POINTS = {"prediction": 1, "going-further": 0}   # Markdown answer cells, by tag
EXPERIMENT = "experiment"


def answer_tag(cell: nbformat.NotebookNode) -> str | None:
    """"prediction" or "going-further" for a written-answer cell, else None."""
    tags = [t for t in cell.get("metadata", {}).get("tags", []) if t in ANSWER_POINTS]
    if tags and cell.cell_type != "markdown":
        raise ValueError(f"the tag {tags[0]!r} marks a written answer: put it on a Markdown cell:\n{cell.source}")
    return tags[0] if tags else None


def strip_solutions(source: str, markdown: bool = False) -> str:
    """Replace each BEGIN/END SOLUTION region (markers included) by a stub at the same indent."""
    out, inside = [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if inside:
                raise ValueError(f"nested '{BEGIN}' in:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [ANSWER] if markdown else [indent + s for s in STUB.splitlines()]
        elif stripped.startswith(END):
            if not inside:
                raise ValueError(f"'{END}' without '{BEGIN}' in:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"'{BEGIN}' without '{END}' in:\n{source}")
    return "\n".join(out)


def colab_badge(path: str) -> str:
    """The "Open in Colab" badge for the notebook at `path` (relative to the repository root)."""
    return COLAB_BADGE.format(repo=REPO, path=path)


def with_launchers(nb: nbformat.NotebookNode, path: str) -> nbformat.NotebookNode:
    """`nb` with its Colab badge under the title and the setup cell as the first code cell.

    Both are written from the templates above, so every notebook carries the same, tested
    setup cell and a badge pointing at its own path.
    """
    nb = nbformat.from_dict(nb)
    md = next(c for c in nb.cells if c.cell_type == "markdown")
    lines = [line for line in md.source.splitlines() if "colab-badge.svg" not in line]
    title = lines[:1] if lines and lines[0].startswith("#") else []
    rest = lines[len(title):]
    while rest and not rest[0].strip():
        rest = rest[1:]
    md.source = "\n".join(title + ([""] if title else []) + [colab_badge(path), ""] + rest).rstrip()
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and code[0].source.startswith(SETUP_MARK):
        code[0].source = SETUP_CELL
    else:
        nb.cells.insert(nb.cells.index(md) + 1, nbformat.v4.new_code_cell(SETUP_CELL))
    return nb


def exercise_from_solution(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student notebook: solutions stubbed, written answers blanked (nothing else changes:
    how it is generated is the maintainers' business, in CONTRIBUTING.md)."""
    ex = nbformat.v4.new_notebook(metadata=nb.metadata)
    n_regions = 0
    for cell in nb.cells:
        new = nbformat.from_dict(dict(cell))
        if BEGIN in cell.source:
            n_regions += cell.source.count(BEGIN)
            new.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown")
        elif answer_tag(cell):
            new.source = ANSWER
        ex.cells.append(new)
    if n_regions == 0:
        raise ValueError(f"solutions/{name}.py has no '{BEGIN}' region: nothing for the student to do")
    return ex


def _nbgrader_role(cell: nbformat.NotebookNode) -> tuple[dict, str]:
    """nbgrader's flags for a cell of a solution notebook, and a name for its grade_id."""
    tag = answer_tag(cell)
    if tag:                         # a manually graded answer: nbgrader wants it solution AND grade
        return dict(solution=True, grade=True, locked=False, points=ANSWER_POINTS[tag]), ""
    if BEGIN in cell.source:
        if cell.cell_type != "code":
            raise ValueError(f"a '{BEGIN}' region in a {cell.cell_type} cell: nbgrader would need it "
                             f"graded by hand; put solutions in code cells:\n{cell.source}")
        defines = defined_names(cell.source)
        return dict(solution=True, grade=False, locked=False), defines[0] if defines else ""
    checks = check_calls(cell.source) if cell.cell_type == "code" else None
    if checks:                      # the cells the grader calls checks from (cvae_lib.grade.plan)
        return dict(solution=False, grade=True, locked=True, points=len(checks)), checks[0][1]
    return dict(solution=False, grade=False, locked=True), ""


def with_nbgrader(nb: nbformat.NotebookNode, solution: nbformat.NotebookNode | None = None
                  ) -> nbformat.NotebookNode:
    """`nb` with nbgrader's cell metadata (schema 3) on every cell, see the module docstring.

    Cells are classified in `solution` (default: `nb` itself), the notebook with the BEGIN
    SOLUTION regions, so an exercise's stubbed cells get the same metadata as the solution's.
    grade_ids name what a cell is about: the function a solution cell defines ("psnr"), the
    check a test cell calls ("check_psnr"), else the cell's position ("cell-004").
    """
    nb, ids, solution = nbformat.from_dict(nb), set(), solution or nb
    if [c.cell_type for c in nb.cells] != [c.cell_type for c in solution.cells]:
        raise ValueError("the exercise's cells do not match the solution's one for one")
    for i, (out, cell) in enumerate(zip(nb.cells, solution.cells)):
        flags, name = _nbgrader_role(cell)
        tag = answer_tag(cell)
        grade_id = f"{tag}-{i:03d}" if tag else name if name and name not in ids else f"cell-{i:03d}"
        ids.add(grade_id)
        out.metadata["nbgrader"] = {"grade_id": grade_id, **flags, "schema_version": 3}
    return nb


def _ipynb_text(nb: nbformat.NotebookNode) -> str:
    """Notebook JSON with stable cell ids, so rebuilding an unchanged source changes nothing."""
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
    return jupytext.writes(nb, fmt="ipynb")


def outputs() -> dict[Path, str]:
    """Every built file and the text it should contain."""
    files: dict[Path, str] = {}
    for folder in ("notebooks", "solutions"):
        for src in sorted((ROOT / folder).glob("*.py")):
            nb = with_launchers(jupytext.read(src), f"{folder}/{src.stem}.ipynb")
            files[src] = jupytext.writes(nb, fmt="py:percent")  # sources carry the launchers too
            if folder == "solutions":
                ex = with_launchers(exercise_from_solution(nb, src.stem), f"exercises/{src.stem}.ipynb")
                target = ROOT / "exercises" / src.name
                files[target] = jupytext.writes(ex, fmt="py:percent")
                files[target.with_suffix(".ipynb")] = _ipynb_text(with_nbgrader(ex, solution=nb))
                nb = with_nbgrader(nb)           # only the .ipynb: the .py sources stay plain
            files[src.with_suffix(".ipynb")] = _ipynb_text(nb)
    return files


def same_content(path: Path, current: str | None, text: str) -> bool:
    """Whether a built file is up to date. A .ipynb is compared by content, cell types, sources
    and nbgrader metadata in order, so the rewrites JupyterLab or `jupytext --sync` make without
    changing the notebook (cell ids, language_info, outputs, a trailing newline) are not stale."""
    if current is None:
        return False
    if path.suffix != ".ipynb":
        return current == text
    try:
        a, b = nbformat.reads(current, as_version=4), nbformat.reads(text, as_version=4)
    except Exception:      # not JSON any more: stale
        return False
    cells = lambda nb: [(c.cell_type, c.source.rstrip(), c.metadata.get("nbgrader")) for c in nb.cells]  # noqa: E731
    return cells(a) == cells(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if not (same_content(path, current, text) if args.check else current == text):
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if args.check and stale:
        print("out of date (run `python tools/build_notebooks.py`):\n  " + "\n  ".join(map(str, stale)))
        return 1
    print(f"{'checked' if args.check else 'wrote'} {len(stale) if not args.check else 'all'} file(s)"
          if stale or args.check else "everything up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
