"""Written answers: the student's text goes into the gradebook for a person to read, never run.

The exercises' Markdown cells tagged `prediction` (1 point in nbgrader) and `going-further`
(0 points) hold written answers, which only a person can grade. The grader gives each one a row:

    check     "written answer: prediction (1 point)" (numbered when a notebook has several)
    status    "to read"        the student wrote something: the message is their text
              "not answered"   the cell still holds "YOUR ANSWER HERE", is empty, or is missing
    message   the text on one line, cut to `SHOWN_CHARS` characters

These rows are outside the automatic total (gradebook.totals counts checks only); the total row
says how many answers wait to be read. The text is data: at most `READ_CHARS` characters of the
cell are looked at (a cell of megabytes costs nothing more), whitespace and control characters
become single spaces, and the gradebook escapes it as it escapes everything a student wrote.
"""
from __future__ import annotations

import re

from .gradebook import ANSWER_CHECK, Row
from .plan import Step

__all__ = ["STUB", "SHOWN_CHARS", "READ_CHARS", "TO_READ", "NOT_ANSWERED", "answer_rows", "answer_text"]

STUB = "YOUR ANSWER HERE"        # what tools/build_notebooks.py leaves in the student's copy
SHOWN_CHARS = 2000               # the longest model answer in solutions/ is about 1,900 characters
READ_CHARS = 4 * SHOWN_CHARS     # of a cell's source, before anything else is done with it
TO_READ, NOT_ANSWERED = "to read", "not answered"
_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]+")   # and direction marks


def answer_text(source: str) -> tuple[str, int]:
    """(the answer on one line, at most SHOWN_CHARS characters plus a note when cut; the cell's
    length in characters). "" when the cell holds nothing but the stub."""
    head = source[:READ_CHARS]
    text = _SPACE.sub(" ", head).strip()
    if text.startswith(STUB):                    # an answer typed under the stub still counts
        text = text[len(STUB):].strip()
    if len(text) > SHOWN_CHARS or len(source) > READ_CHARS:
        text = f"{text[:SHOWN_CHARS].rstrip()} [... cut: the cell holds {len(source):,} characters; read it in " \
               "the notebook]"
    return text, len(source)


def _check_name(step: Step, number: int | None) -> str:
    which = step.tag.replace("-", " ") + (f" {number}" if number else "")
    return f"{ANSWER_CHECK}: {which} ({step.points} point{'' if step.points == 1 else 's'})"


def answer_rows(student: str, exercise: str, plan: list[Step], cells: dict | None, why: str = "") -> list[Row]:
    """A row per answer cell of the grader's copy. `cells`: plan.answer_cells of the submission,
    or None when the notebook was not read (`why` says so)."""
    steps = [s for s in plan if s.kind == "answer"]
    count = {tag: sum(s.tag == tag for s in steps) for tag in {s.tag for s in steps}}
    seen: dict[str, int] = {}
    rows = []
    for step in steps:
        seen[step.tag] = seen.get(step.tag, 0) + 1
        check = _check_name(step, seen[step.tag] if count[step.tag] > 1 else None)
        cell = None if cells is None else cells.get(step.cell_id)
        if cells is None:
            status, message = NOT_ANSWERED, why or "the notebook was not read"
        elif cell is None:
            status, message = NOT_ANSWERED, (f"the submission has no answer cell for it (no Markdown cell with id "
                                             f"{step.cell_id} or tagged {step.tag}); if the student answered "
                                             "elsewhere, read the notebook")
        elif cell.source is None:
            status, message = NOT_ANSWERED, "the answer cell's source is not text; not read"
        else:
            text, _ = answer_text(cell.source)
            if text:
                status, message = TO_READ, text
            else:
                status, message = NOT_ANSWERED, (f"the answer cell still holds {STUB!r} or is empty; if the student "
                                                 "answered in another cell, read the notebook")
        rows.append(Row(student, exercise, check, status, message))
    return rows
