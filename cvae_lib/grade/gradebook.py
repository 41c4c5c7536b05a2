"""The gradebook: one row per student, exercise and check, and a total per student.

    gradebook.csv   student, exercise, check, status, message; then a "(total)" row per
                    student whose status is "passed / possible" over all exercises and whose
                    message says how many written answers wait to be read
    gradebook.md    per notebook: passed, of, what did not pass and what happened; the totals;
                    then the written answers, to read

A check row's status is passed / failed / not implemented / error / missing / library's
implementation (the student's function called the library's own version of the task). Rows
whose check is "(notebook)" say what happened to the notebook (time limit, CPU time limit,
memory limit, crashed, cell error, tampering, check cell edited or removed, solution cell
missing, nothing implemented, unreadable, refused, identical submission, not submitted) and
count no points. Rows whose check starts with "written answer" hold a student's written answer
(answers.py): status "to read" with the text as the message, or "not answered"; a person grades
them, so they are outside the total.

Everything in a row that came from a submission (student names from folder names, messages
quoting the student's errors) is escaped on the way out: in gradebook.md a `|`, a newline or
HTML cannot make a row or a column, and in gradebook.csv a cell that a spreadsheet would read as
a formula (starting with =, +, -, @, a tab or a carriage return) gets a leading apostrophe.
Both files are written atomically (a temporary file beside them, then a rename), after every
notebook, so a run that is killed or interrupted keeps every finished notebook's rows.
"""
from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Row", "NOTEBOOK", "ANSWER_CHECK", "is_answer", "totals", "to_read", "write_gradebook", "GradebookLock",
           "GradebookBusy", "md_cell", "csv_cell"]

NOTEBOOK = "(notebook)"
ANSWER_CHECK = "written answer"     # the check of a written answer's row: "written answer: prediction (1 point)"
LOCK = ".grading.lock"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Row:
    student: str
    exercise: str
    check: str
    status: str     # a check: passed | failed | not implemented | error | missing; "(notebook)": what happened;
    #                 a written answer: to read | not answered
    message: str = ""


def is_answer(row: Row) -> bool:
    """A written answer's row (read by a person, outside the total)."""
    return row.check.startswith(ANSWER_CHECK + ":")


def totals(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """student -> (checks passed, checks possible) over every exercise graded (written answers
    are not checks: they count in neither)."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r.check != NOTEBOOK and not is_answer(r):
            passed, possible = out.get(r.student, (0, 0))
            out[r.student] = (passed + (r.status == "passed"), possible + 1)
        else:
            out.setdefault(r.student, (0, 0))
    return out


def to_read(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """student -> (written answers to read, written answers in all)."""
    out: dict[str, tuple[int, int]] = {}
    for r in (r for r in rows if is_answer(r)):
        waiting, of = out.get(r.student, (0, 0))
        out[r.student] = (waiting + (r.status == "to read"), of + 1)
    return out


def md_cell(text: str) -> str:
    """`text` as one Markdown table cell: no line breaks or control characters, `|` and `\\`
    escaped, and no HTML (so a student's name or message cannot make rows, columns or markup)."""
    text = _CONTROL.sub(" ", str(text)).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").strip() or "-"


def csv_cell(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text: a leading =, +, -, @, tab or CR (which
    Excel, LibreOffice and Google Sheets would run as a formula) gets an apostrophe in front."""
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _summary_lines(rows: list[Row]) -> list[str]:
    lines = ["| student | exercise | passed | of | not passing | what happened |", "|---|---|---|---|---|---|"]
    for student, exercise in dict.fromkeys((r.student, r.exercise) for r in rows):
        mine = [r for r in rows if (r.student, r.exercise) == (student, exercise)]
        checks = [r for r in mine if r.check != NOTEBOOK and not is_answer(r)]
        bad = "; ".join(f"{r.check} ({r.status})" for r in checks if r.status != "passed") or "-"
        events = "; ".join(f"{r.status}: {r.message}" for r in mine if r.check == NOTEBOOK) or "-"
        passed = sum(r.status == "passed" for r in checks)
        lines.append(f"| {md_cell(student)} | {md_cell(exercise)} | {passed} | {len(checks)} | {md_cell(bad)} | "
                     f"{md_cell(events)} |")
    return lines


def _answer_lines(rows: list[Row]) -> list[str]:
    answers = [r for r in rows if is_answer(r)]
    if not answers:
        return []
    lines = ["", "## Written answers (read by hand, not in the totals)", "",
             "| student | exercise | answer | status | text |", "|---|---|---|---|---|"]
    return lines + [f"| {md_cell(r.student)} | {md_cell(r.exercise)} | {md_cell(r.check.split(': ', 1)[-1])} | "
                    f"{md_cell(r.status)} | {md_cell(r.message)} |" for r in answers]


def _total_message(waiting: int, of: int) -> str:
    if not of:
        return "checks passed / possible"
    return f"checks passed / possible; written answers to read: {waiting} of {of} (graded by hand, not in this total)"


def _atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:     # a read-only folder: the error that is being raised says more
            pass


def write_gradebook(rows: list[Row], out: Path, status: str = "") -> tuple[Path, Path]:
    """Write gradebook.csv and gradebook.md into `out` (each atomically); their paths. `status`:
    a line for the top of gradebook.md (e.g. that grading is still running or was interrupted)."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "gradebook.csv", out / "gradebook.md"
    sums, answers = totals(rows), to_read(rows)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "exercise", "check", "status", "message"])
    w.writerows([[csv_cell(v) for v in (r.student, r.exercise, r.check, r.status, r.message)] for r in rows])
    w.writerows([[csv_cell(s), "(all)", "(total)", f"{p} / {n}", _total_message(*answers.get(s, (0, 0)))]
                 for s, (p, n) in sums.items()])
    lines = ["# Gradebook", "", *([status, ""] if status else []), *_summary_lines(rows), "",
             "## Totals (all exercises)", "", "| student | passed | possible | share | answers to read |",
             "|---|---|---|---|---|"]
    lines += [f"| {md_cell(s)} | {p} | {n} | {f'{100 * p / n:.0f}%' if n else '-'} | "
              f"{answers.get(s, (0, 0))[0]} of {answers.get(s, (0, 0))[1]} |" for s, (p, n) in sums.items()]
    lines += _answer_lines(rows)
    _atomic_write(csv_path, buf.getvalue())
    _atomic_write(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


class GradebookBusy(RuntimeError):
    """Another grader holds the output folder."""


class GradebookLock:
    """An exclusive lock on an output folder (`.grading.lock` in it, flock), held while grading,
    so that a second grader on the same folder stops at once instead of overwriting the first."""

    def __init__(self, out: Path):
        self.out, self.fd = out, None

    def __enter__(self) -> GradebookLock:
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.out / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise GradebookBusy(f"another grader (pid {holder}) is writing its gradebook to {self.out}: wait for it "
                                "to finish, or pass another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)       # releases the flock; the file stays (removing it would race a new grader)
            self.fd = None
