"""Grade a folder of submitted exercise notebooks in one command.

    python -m cvae_lib.grade submissions/ --out gradebook/

`submissions/` holds either one folder per student (`alice/ex01_autoencoder.ipynb`, the layout
nbgrader's `submitted/` uses too) or flat files named `<student>__ex01_autoencoder.ipynb`.
Each notebook runs in its own fresh kernel, in a temporary working folder, with a time limit
for the whole notebook; every property check of `cvae_lib.checks` reports passed / failed /
not implemented / error, and a check whose cell never ran is reported as missing. A notebook
that is not JSON, crashes its kernel, loops forever or has a syntax error gives that student
error rows and the grader goes on. Writes `gradebook.csv` (one row per student, exercise and
check) and `gradebook.md` (a readable summary).

Student code is untrusted: it never runs in the grader's process, and its working folder is a
temporary copy. It still runs with your user's rights, so grade untrusted classes inside a
container or a throwaway account.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .checks import CHECK_MIME

__all__ = ["Row", "run_notebook", "grade", "main"]

_EXERCISE = re.compile(r"(ex\d\d[a-z0-9_]*)")


@dataclass
class Row:
    student: str
    exercise: str
    check: str
    status: str     # passed | failed | not implemented | error | missing
    message: str = ""


def run_notebook(path: Path, timeout: float = 300) -> tuple[list[dict], str | None]:
    """Execute a notebook in a fresh kernel inside a temporary folder.

    Returns (check results found in its outputs, error message or None). The error is the
    notebook's fatal problem (unreadable, time limit, dead kernel) or else the first exception
    a cell raised outside the checks. `timeout` bounds the whole notebook in seconds: each cell
    gets what is left of it.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as e:  # not JSON, not a notebook
        return [], f"not a readable notebook: {type(e).__name__}: {str(e)[:200]}"
    error = None
    with tempfile.TemporaryDirectory(prefix="cvae-grade-") as work:
        deadline = time.monotonic() + timeout
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                resources={"metadata": {"path": work}})

        def shrink_timeout(cell, cell_index, **_):
            client.timeout = max(1, int(deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise CellTimeoutError(f"notebook time limit of {timeout:.0f} s reached")

        client.on_cell_start = shrink_timeout
        try:
            client.execute(env={**os.environ, "HOME": work, "MPLBACKEND": "Agg"})
        except CellTimeoutError:
            error = f"time limit: the notebook did not finish within {timeout:.0f} s (an endless loop?)"
        except DeadKernelError as e:
            error = f"the kernel died (crash or exit in student code): {str(e)[:200]}"
        except Exception as e:
            error = f"could not run the notebook: {type(e).__name__}: {str(e)[:200]}"
    outputs = [out for cell in nb.cells if cell.get("cell_type") == "code"
               for out in cell.get("outputs", []) if isinstance(out, dict)]
    results = [r for out in outputs for r in out.get("data", {}).get(CHECK_MIME, {}).get("results", [])]
    if error is None:
        raised = [f"a cell raised {o.get('ename')}: {str(o.get('evalue'))[:200]}" for o in outputs
                  if o.get("output_type") == "error" and o.get("ename") != "CheckFailed"]
        error = raised[0] if raised else None
    return results, error


def _submissions(folder: Path) -> list[tuple[str, str, Path]]:
    """(student, exercise, path) for every notebook under `folder`."""
    found = []
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        rel = path.relative_to(folder)
        match = _EXERCISE.search(path.stem)
        if len(rel.parts) > 1:
            student = rel.parts[0]
        else:
            student = path.stem.split("__")[0] if "__" in path.stem else path.stem
        found.append((student, match.group(1) if match else path.stem, path))
    return found


def _expected_checks(solutions: Path, exercise: str, timeout: float, cache: dict) -> list[tuple[str, str]]:
    """(exercise, property) pairs the reference solution reports, in order."""
    if exercise not in cache:
        sols = sorted(solutions.glob(f"{exercise}*.ipynb"))
        cache[exercise] = []
        if sols:
            results, _ = run_notebook(sols[0], timeout)
            cache[exercise] = [(r["exercise"], r["prop"]) for r in results]
    return cache[exercise]


def grade(submissions: Path, solutions: Path, timeout: float = 300, log=print) -> list[Row]:
    """Grade every notebook under `submissions` against the checks the solutions report."""
    rows: list[Row] = []
    expected_cache: dict[str, list] = {}
    for student, exercise, path in _submissions(submissions):
        log(f"grading {student} / {path.name} ...")
        expected = _expected_checks(solutions, exercise, timeout, expected_cache)
        results, error = run_notebook(path, timeout)
        seen = {}
        for r in results:
            seen[(r["exercise"], r["prop"])] = r
        for key in expected or list(seen):
            r = seen.get(key)
            if r is not None:
                rows.append(Row(student, exercise, f"{key[0]}: {key[1]}", r["status"], r.get("message", "")))
            else:
                msg = error or "this check did not run: its cell is missing or an earlier cell stopped the notebook"
                rows.append(Row(student, exercise, f"{key[0]}: {key[1]}", "error" if error else "missing", msg))
        if not expected and not seen:
            rows.append(Row(student, exercise, "(notebook)", "error", error or "no checks ran"))
        elif error and all(r.status == "passed" for r in rows if r.student == student and r.exercise == exercise):
            rows.append(Row(student, exercise, "(notebook)", "error", error))
    return rows


def write_gradebook(rows: list[Row], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "gradebook.csv", out / "gradebook.md"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "exercise", "check", "status", "message"])
        w.writerows([[r.student, r.exercise, r.check, r.status, r.message] for r in rows])
    lines = ["# Gradebook", "", "| student | exercise | passed | of | not passing |", "|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r.student, r.exercise) for r in rows))
    for student, exercise in keys:
        mine = [r for r in rows if r.student == student and r.exercise == exercise and r.check != "(notebook)"]
        extra = [r for r in rows if r.student == student and r.exercise == exercise and r.check == "(notebook)"]
        bad = ([f"{r.check} ({r.status})" for r in mine if r.status != "passed"]
               + [f"notebook: {r.message}" for r in extra])
        lines.append(f"| {student} | {exercise} | {sum(r.status == 'passed' for r in mine)} | {len(mine)} | "
                     f"{'; '.join(bad).replace('|', '/') or '-'} |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvae_lib.grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    parser.add_argument("--solutions", type=Path, default=None,
                        help="reference solutions (default: solutions/ of the course clone; they are "
                             "not in the installed package, so students' pip installs never hold them)")
    parser.add_argument("--out", type=Path, default=Path("gradebook"), help="where to write the gradebook")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per notebook")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of submitted notebooks")
    if args.solutions is None:
        from .files import course_root
        try:
            args.solutions = course_root(need="solutions") / "solutions"
        except FileNotFoundError as e:
            parser.error(str(e))
    rows = grade(args.submissions, args.solutions, args.timeout)
    csv_path, md_path = write_gradebook(rows, args.out)
    print(f"{len(rows)} rows -> {csv_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
