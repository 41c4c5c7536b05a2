"""The gradebook: one row per student, exercise and check, and a total per student.

    gradebook.csv   student, exercise, check, status, message; then a "(total)" row per
                    student whose status is "passed / possible" over all exercises
    gradebook.md    per notebook: passed, of, what did not pass and what happened; then the totals

A check row's status is passed / failed / not implemented / error / missing. Rows whose check is
"(notebook)" say what happened to the notebook (time limit, CPU time limit, memory limit,
crashed, cell error, tampering, check cell edited or removed, solution cell missing, nothing
implemented, unreadable, not submitted) and count no points.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Row", "NOTEBOOK", "totals", "write_gradebook"]

NOTEBOOK = "(notebook)"


@dataclass
class Row:
    student: str
    exercise: str
    check: str
    status: str     # a check: passed | failed | not implemented | error | missing; "(notebook)": what happened
    message: str = ""


def totals(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """student -> (checks passed, checks possible) over every exercise graded."""
    out: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r.check != NOTEBOOK:
            passed, possible = out.get(r.student, (0, 0))
            out[r.student] = (passed + (r.status == "passed"), possible + 1)
        else:
            out.setdefault(r.student, (0, 0))
    return out


def _summary_lines(rows: list[Row]) -> list[str]:
    lines = ["| student | exercise | passed | of | not passing | what happened |", "|---|---|---|---|---|---|"]
    for student, exercise in dict.fromkeys((r.student, r.exercise) for r in rows):
        mine = [r for r in rows if (r.student, r.exercise) == (student, exercise)]
        checks = [r for r in mine if r.check != NOTEBOOK]
        bad = "; ".join(f"{r.check} ({r.status})" for r in checks if r.status != "passed") or "-"
        events = "; ".join(f"{r.status}: {r.message}" for r in mine if r.check == NOTEBOOK) or "-"
        passed = sum(r.status == "passed" for r in checks)
        lines.append(f"| {student} | {exercise} | {passed} | {len(checks)} | {bad.replace('|', '/')} | "
                     f"{events.replace('|', '/')} |")
    return lines


def write_gradebook(rows: list[Row], out: Path) -> tuple[Path, Path]:
    """Write gradebook.csv and gradebook.md into `out`; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "gradebook.csv", out / "gradebook.md"
    sums = totals(rows)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "exercise", "check", "status", "message"])
        w.writerows([[r.student, r.exercise, r.check, r.status, r.message] for r in rows])
        w.writerows([[s, "(all)", "(total)", f"{p} / {n}", "checks passed / possible"] for s, (p, n) in sums.items()])
    lines = ["# Gradebook", "", *_summary_lines(rows), "", "## Totals (all exercises)", "",
             "| student | passed | possible | share |", "|---|---|---|---|"]
    lines += [f"| {s} | {p} | {n} | {100 * p / n:.0f}% |" if n else f"| {s} | 0 | 0 | - |"
              for s, (p, n) in sums.items()]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path
