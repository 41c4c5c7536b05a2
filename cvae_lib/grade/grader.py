"""Grading a folder of submissions: each notebook in its own sandbox, verdicts in this process."""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

from ..checks import CheckResult, collecting
from .gradebook import NOTEBOOK, Row, write_gradebook
from .plan import Step, check_cell_notes, load_plan, read_submission, solution_sources
from .remote import Remote, RemoteFunction
from .sandbox import Limits, SandboxUnavailable, Stopped, require_bwrap

__all__ = ["grade", "grade_notebook", "main"]

_EXERCISE = re.compile(r"(ex\d\d[a-z0-9_]*)")
_OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "bad_alloc", "out of memory")


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


def _cell_error(err: dict, step: Step, limits: Limits) -> tuple[str, str]:
    """(kind, message) for a cell that raised, in instructor words."""
    where = (f"the cell defining {', '.join(step.defines)}" if step.defines else
             "the student's cell" if step.kind == "solution" else "a cell of the grader's copy (after the student's)")
    what = f"{err.get('type')}: {str(err.get('message'))[:300]}".rstrip(": ")
    if any(s in what for s in _OUT_OF_MEMORY):
        return "memory limit", f"{where} ran out of the {limits.memory_bytes / 2**30:.1f} GiB memory limit ({what})"
    return "cell error", f"{where} raised {what}"


def _run_check(step: Step, remote: Remote, missing: dict) -> list[CheckResult]:
    """The grader's own checks of one check cell, with proxies for the student's functions."""
    results = []
    for module, func, arg in step.checks:
        check = getattr(importlib.import_module(f"cvae_lib.checks.{module}"), func)
        proxy = RemoteFunction(remote, arg, missing.get(arg, ("missing", f"`{arg}` is not defined in the notebook")))
        with collecting():
            results += check(proxy)
    return results


def _run_steps(plan: list[Step], sources: dict, remote: Remote, limits: Limits):
    """Run the grader's copy with the student's solution cells; (check results, events)."""
    results, events, missing = [], [], {}
    for step in plan:
        if step.kind == "check":
            results += _run_check(step, remote, missing)
            continue
        source = step.source if step.kind == "code" else sources.get(step.cell_id)
        if source is None:
            names = ", ".join(step.defines) or step.cell_id
            events.append(("solution cell missing", f"no cell of the submission defines {names}"))
            missing.update({n: ("missing", f"no cell of the submission defines {n}") for n in step.defines})
            continue
        try:
            err = remote.exec(source)
        except Stopped:
            continue
        if err:
            events.append(_cell_error(err, step, limits))
            missing.update({n: ("error", events[-1][1]) for n in step.defines})
    if remote.stopped is not None:
        events.append((remote.stopped.kind, remote.stopped.message))
    return results, events


def _result_events(results: list[CheckResult], events: list[tuple[str, str]], limits: Limits) -> list:
    """What the check results say about the notebook beyond the rows (not already in `events`)."""
    known, events = {kind for kind, _ in events}, []
    if results and all(r.status == "not implemented" for r in results):
        events.append(("nothing implemented", "every function still raises NotImplementedError (as handed out)"))
    oom = [r for r in results if r.status == "error" and any(s in r.message for s in _OUT_OF_MEMORY)]
    if oom and "memory limit" not in known:
        events.append(("memory limit", f"'{oom[0].prop}' ran out of the {limits.memory_bytes / 2**30:.1f} GiB "
                                       f"memory limit ({oom[0].message[:200]})"))
    return events


def grade_notebook(student: str, exercise: str, path: Path | None, plan: list[Step], limits: Limits,
                   bwrap: str | None = None) -> list[Row]:
    """Rows for one submitted notebook (`path` None: not submitted)."""
    notes, sources = [], {}
    if path is None:
        remote = Remote(stopped=Stopped("not submitted", "no notebook submitted for this exercise", "missing"))
    else:
        try:
            cells = read_submission(path)
            sources, notes = solution_sources(plan, cells), check_cell_notes(plan, cells)
            remote = Remote(limits, bwrap=bwrap)
        except (ValueError, OSError) as e:
            remote = Remote(stopped=Stopped("unreadable", f"not a readable notebook: {e}"))
    try:
        results, events = _run_steps(plan, sources, remote, limits)
    finally:
        remote.close()
    events = notes + events
    events += _result_events(results, events, limits)
    return ([Row(student, exercise, f"{r.exercise}: {r.prop}", r.status, r.message) for r in results]
            + [Row(student, exercise, NOTEBOOK, kind, message) for kind, message in events])


def _plan(solutions: Path, exercise: str) -> list[Step] | None:
    found = sorted(solutions.glob(f"{exercise}*.ipynb"))
    return load_plan(found[0]) if found else None


def grade(submissions: Path, solutions: Path, limits: Limits | None = None, log=print) -> list[Row]:
    """Grade every notebook under `submissions` with the checks of the grader's copies in `solutions`."""
    limits = limits or Limits()
    bwrap = require_bwrap()
    found = _submissions(submissions)
    plans = {ex: _plan(solutions, ex) for ex in dict.fromkeys(ex for _, ex, _ in found)}
    rows: list[Row] = []
    for student in dict.fromkeys(s for s, _, _ in found):
        for exercise, plan in plans.items():
            paths = [p for s, ex, p in found if (s, ex) == (student, exercise)] or [None]
            for path in paths:
                log(f"grading {student} / {path.name if path else exercise + ' (not submitted)'} ...")
                if plan is None:
                    rows.append(Row(student, exercise, NOTEBOOK, "unknown exercise",
                                    f"no grader's copy {solutions}/{exercise}*.ipynb to grade it against"))
                    continue
                rows += grade_notebook(student, exercise, path, plan, limits, bwrap)
    return rows


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as doc
    parser = argparse.ArgumentParser(prog="python -m cvae_lib.grade", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    parser.add_argument("--solutions", type=Path, default=None,
                        help="the grader's copies (default: solutions/ of the course clone; they are "
                             "not in the installed package, so students' pip installs never hold them)")
    parser.add_argument("--out", type=Path, default=Path("gradebook"), help="where to write the gradebook")
    parser.add_argument("--timeout", type=float, default=300, help="wall-clock seconds allowed per notebook")
    parser.add_argument("--cpu-time", type=float, default=None,
                        help="processor seconds allowed per notebook (default: the --timeout)")
    parser.add_argument("--memory", type=float, default=8, help="GiB of address space per notebook (torch maps ~3.3)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of submitted notebooks")
    if args.solutions is None:
        from ..files import course_root
        try:
            args.solutions = course_root(need="solutions") / "solutions"
        except FileNotFoundError as e:
            parser.error(str(e))
    limits = Limits(wall_s=args.timeout, cpu_s=args.cpu_time or args.timeout, memory_bytes=int(args.memory * 2**30))
    try:
        rows = grade(args.submissions, args.solutions, limits)
    except SandboxUnavailable as e:
        parser.exit(2, f"error: {e}\n")
    csv_path, md_path = write_gradebook(rows, args.out)
    print(f"{len(rows)} rows -> {csv_path}, {md_path}")
    return 0
