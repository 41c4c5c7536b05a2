"""What the grader runs for one notebook: its own copy's cells, with the student's solution cells.

The grader's copy is the release notebook `solutions/exNN_*.ipynb`. Its code cells are of three
kinds:

    solution  holds a `### BEGIN SOLUTION` region: the student's version of this cell is used
    check     only lines like `ex01.check_psnr(psnr);`: the grader calls that check itself
    code      anything else (setup, imports, demos): run as the grader's copy has it

and its Markdown cells tagged `prediction` or `going-further` are a fourth:

    answer    a written answer, read by a person (nbgrader's manually graded cells): the
              student's text goes into the gradebook as "to read" (answers.py), never run

A cell tagged `experiment` (a run on data or shipped weights that the student looks at, which
no check depends on: tools/build_notebooks.py) is not run at all: it would need the data set and
minutes of processor time in the sandbox, and cannot change a grade.

A student's solution cell is found by the cell id `tools/build_notebooks.py` gives it (the same
in solutions/ and exercises/), or else as the cell that defines the same functions. Every other
cell of the submission (its check cells, outputs, added cells) is ignored; check cells that were
edited or removed are only reported. A student's answer cell is found the same way: by cell id,
or else as the answer cell with the same tag and position among that tag's cells.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .intake import MAX_NOTEBOOK_BYTES
from .intake import read_notebook as read_submission

__all__ = ["Step", "load_plan", "read_submission", "solution_sources", "answer_cells", "check_cell_notes",
           "check_calls", "defined_names", "MAX_NOTEBOOK_BYTES", "ANSWER_POINTS"]

BEGIN = "### BEGIN SOLUTION"
EXPERIMENT = "experiment"        # the tag of cells no check depends on (tools/build_notebooks.py)
ANSWER_POINTS = {"prediction": 1, "going-further": 0}   # written answers, by tag (tools/build_notebooks.py)
_CHECK = re.compile(r"^\s*(ex\d\d)\.(check_\w+)\(\s*([A-Za-z_]\w*)\s*\)\s*;?\s*$")
_DEF = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)


@dataclass
class Step:
    kind: str                        # "solution" | "check" | "code" | "answer"
    cell_id: str
    source: str                      # the grader's copy
    defines: tuple[str, ...] = ()    # top-level functions and classes the cell defines
    checks: tuple[tuple[str, str, str], ...] = ()   # (checks module, check function, argument)
    tag: str = ""                    # an answer's tag: "prediction" | "going-further"
    points: int = 0                  # an answer's points in nbgrader (given by hand; not in the grader's total)


def defined_names(source: str) -> tuple[str, ...]:
    """The top-level functions and classes a cell defines, in order."""
    return tuple(_DEF.findall(source))


def check_calls(source: str) -> tuple[tuple[str, str, str], ...] | None:
    """The check calls of a cell made only of check calls (`ex01.check_psnr(psnr);` ->
    (("ex01", "check_psnr", "psnr"),)), else None. tools/build_notebooks.py marks the same cells
    as nbgrader's autograded tests."""
    lines = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    matches = [_CHECK.match(line) for line in lines]
    return tuple(m.groups() for m in matches) if lines and all(matches) else None


def load_plan(path: Path) -> list[Step]:
    """The grader's copy of an exercise as steps, in order."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    steps = []
    for i, cell in enumerate(nb.cells):
        cell_id, source = str(cell.get("id", f"cell-{i:03d}")), cell.source
        if cell.cell_type == "markdown":
            tag = _answer_tag(cell.get("metadata", {}).get("tags") or ())
            if tag:
                points = cell.get("metadata", {}).get("nbgrader", {}).get("points", ANSWER_POINTS[tag])
                steps.append(Step("answer", cell_id, source, tag=tag, points=int(points)))
            continue
        if cell.cell_type != "code":
            continue
        checks = check_calls(source)
        if BEGIN in source:
            steps.append(Step("solution", cell_id, source, defined_names(source)))
        elif EXPERIMENT in (cell.get("metadata", {}).get("tags") or ()):
            continue
        elif checks:
            steps.append(Step("check", cell_id, source, checks=checks))
        else:
            steps.append(Step("code", cell_id, source))
    return steps


def _answer_tag(tags) -> str:
    return next((t for t in tags if t in ANSWER_POINTS), "")


def answer_cells(plan: list[Step], cells: list) -> dict[str, object | None]:
    """For each answer step's cell id, the submission's answer cell (an intake.Cell), or None.

    The cell with the same id wins if it is a Markdown cell with the step's tag; otherwise the
    Markdown cell with that tag at the same position among the tag's cells (a notebook whose ids
    were rewritten); otherwise the same-id cell if it is Markdown (tags lost); otherwise None.
    """
    markdown = [c for c in cells if c.kind == "markdown"]
    by_id: dict[str, object] = {}
    for c in markdown:
        by_id.setdefault(c.id, c)
    tagged = {tag: [c for c in markdown if _answer_tag(c.tags) == tag] for tag in ANSWER_POINTS}
    seen = dict.fromkeys(ANSWER_POINTS, 0)
    out = {}
    for step in (s for s in plan if s.kind == "answer"):
        k, seen[step.tag] = seen[step.tag], seen[step.tag] + 1
        same = by_id.get(step.cell_id)
        if same is not None and _answer_tag(same.tags) == step.tag:
            out[step.cell_id] = same
        elif k < len(tagged[step.tag]):
            out[step.cell_id] = tagged[step.tag][k]
        else:
            out[step.cell_id] = same
    return out


def _defines_all(source: str, names: tuple[str, ...]) -> bool:
    found = set(defined_names(source))
    return all(n in found for n in names)


def solution_sources(plan: list[Step], cells: list[tuple[str, str]]) -> dict[str, str | None]:
    """For each solution step's cell id, the student's source, or None if no cell matches.

    The cell with the same id wins if it defines the step's functions; otherwise the first
    cell that does (a notebook whose ids were rewritten); otherwise the same-id cell as it is.
    """
    by_id = dict(cells)
    out = {}
    for step in (s for s in plan if s.kind == "solution"):
        source = by_id.get(step.cell_id)
        if step.defines and (source is None or not _defines_all(source, step.defines)):
            source = next((src for _, src in cells if _defines_all(src, step.defines)), source)
        out[step.cell_id] = source
    return out


def check_cell_notes(plan: list[Step], cells: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(kind, message) for each check cell of the grader's copy the submission edited or removed."""
    by_id, sources = dict(cells), {src.strip() for _, src in cells}
    notes = []
    for step in (s for s in plan if s.kind == "check"):
        if step.source.strip() in sources:
            continue
        kind = "check cell edited" if step.cell_id in by_id else "check cell removed"
        notes.append((kind, f"`{step.source.strip()}` was {kind.split()[-1]} in the submission; the grader "
                            "ran its own copy of this check, so this changes no points"))
    return notes
