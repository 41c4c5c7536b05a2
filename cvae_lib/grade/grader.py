"""Grading a folder of submissions: each notebook in its own sandbox, verdicts in this process."""
from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import resource
import secrets
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..checks import CheckResult, collecting
from .answers import answer_rows
from .gradebook import NOTEBOOK, GradebookBusy, GradebookLock, Row, write_gradebook
from .intake import EXERCISE, Refusal, Submission, code_cells, find_submissions, read_cells
from .limits import CONFINEMENTS, Confinement, GiB, Limits, MiB, check_limits, choose_confinement
from .plan import Step, answer_cells, check_cell_notes, load_plan, solution_sources
from .remote import Remote, RemoteFunction
from .sandbox import SandboxUnavailable, Stopped, default_confinement, require_bwrap

__all__ = ["grade", "prepare", "run", "grade_notebook", "main", "LIBRARY", "GraderSetupError"]

LIBRARY = "library's implementation"       # the status of a task whose function called the library's version
GRADER_HEADROOM = 2 * GiB                  # address space the grader's own process may add while it checks
_OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "bad_alloc", "out of memory")


class GraderSetupError(ValueError):
    """The grader's own set-up (limits, grader's copies, checks) cannot grade correctly; nothing was graded."""


# ----------------------------------------------------------------------------- the grader's own process

@contextmanager
def _bounded_grader(headroom: int = GRADER_HEADROOM):
    """While checks run on values the student's code produced, this process may grow by at most
    `headroom` bytes of address space (soft RLIMIT_AS; an allocation past it is an error in that
    check, not the grader killed), and torch uses one thread."""
    import torch
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    threads = torch.get_num_threads()
    try:
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration, ValueError):
        size = None
    cap = soft
    if size is not None:
        cap = size + headroom
        for bound in (soft, hard):
            if bound != resource.RLIM_INFINITY:
                cap = min(cap, bound)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        torch.set_num_threads(1)
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        torch.set_num_threads(threads)


@contextmanager
def _secret_inputs():
    """The checks draw their inputs from a fresh secret seed (the students' self-checks use fixed,
    public ones), where `cvae_lib.checks` supports it; public seeds again afterwards."""
    from .. import checks
    setter = getattr(checks, "set_input_seed", None)
    if setter is not None:
        setter(secrets.randbits(62))
    try:
        yield
    finally:
        if setter is not None:
            setter(None)


# ----------------------------------------------------------------------------- one notebook

def _check_module(module: str):
    return importlib.import_module(f"cvae_lib.checks.{module}")


def _references(module: str, arg: str) -> tuple[str, ...]:
    """The library paths that implement the task `arg` of checks module `module` (its REFERENCES)."""
    refs = getattr(_check_module(module), "REFERENCES", None)
    found = refs.get(arg, ()) if isinstance(refs, dict) else ()
    return tuple(p for p in found if isinstance(p, str))


def _watched(plan: list[Step]) -> list[str]:
    """Every library implementation of a task the plan grades: the worker watches these."""
    return sorted({p for step in plan for module, _, arg in step.checks for p in _references(module, arg)})


def _resolves(path: str) -> bool:
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for name in parts[i:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return callable(obj) or isinstance(obj, property)
    return False


def _cell_error(err: dict, step: Step, limits: Limits) -> tuple[str, str]:
    """(kind, message) for a cell that raised, in instructor words."""
    where = (f"the cell defining {', '.join(step.defines)}" if step.defines else
             "the student's cell" if step.kind == "solution" else "a cell of the grader's copy (after the student's)")
    what = f"{err.get('type')}: {str(err.get('message'))[:300]}".rstrip(": ")
    if any(s in what for s in _OUT_OF_MEMORY):
        return "memory limit", f"{where} ran out of the {limits.memory_bytes / 2**30:.1f} GiB memory limit ({what})"
    return "cell error", f"{where} raised {what}"


def _run_check(step: Step, remote: Remote, missing: dict) -> list[CheckResult]:
    """The grader's own checks of one check cell, with proxies for the student's functions. A task
    whose function called the library's own implementation (`REFERENCES`) scores no points."""
    results = []
    for module, func, arg in step.checks:
        check = getattr(_check_module(module), func)
        proxy = RemoteFunction(remote, arg, missing.get(arg, ("missing", f"`{arg}` is not defined in the notebook")),
                               _references(module, arg))
        with collecting():
            got = check(proxy)
        if proxy.used:
            why = (f"`{arg}` called {', '.join(sorted(proxy.used))}, the library's own implementation of this task, "
                   "while the grader checked it: the task earns no points (the notebook must compute it itself)")
            got = [CheckResult(r.exercise, r.prop, LIBRARY, why) for r in got]
        results += got
    return results


def _run_steps(plan: list[Step], sources: dict, remote: Remote, limits: Limits):
    """Run the grader's copy with the student's solution cells; (check results, events)."""
    results, events, missing = [], [], {}
    for step in plan:
        if step.kind == "answer":               # read by a person (answers.py), never run
            continue
        if step.kind == "check":
            results += _run_check(step, remote, missing)
            continue
        source = step.source if step.kind == "code" else sources.get(step.cell_id)
        if source is None:
            names = ", ".join(step.defines) or step.cell_id
            if remote.stopped is None:          # else the notebook was never run: its reason says why
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


def _result_events(results: list[CheckResult], events: list[tuple[str, str]], limits: Limits, oom: bool) -> list:
    """What the check results say about the notebook beyond the rows (not already in `events`)."""
    known, events = {kind for kind, _ in events}, []
    if results and all(r.status == "not implemented" for r in results):
        events.append(("nothing implemented", "every function still raises NotImplementedError (as handed out)"))
    oom_rows = [r for r in results if r.status == "error" and any(s in r.message for s in _OUT_OF_MEMORY)]
    if oom_rows and "memory limit" not in known:
        events.append(("memory limit", f"'{oom_rows[0].prop}' ran out of the {limits.memory_bytes / 2**30:.1f} GiB "
                                       f"memory limit ({oom_rows[0].message[:200]})"))
    elif oom and "memory limit" not in known:
        events.append(("memory limit", f"a process of the notebook was killed when its processes together passed "
                                       f"the {limits.memory_bytes / 2**30:.1f} GiB memory limit"))
    if any(r.status == LIBRARY for r in results):
        events.append((LIBRARY, "a graded function called the library's own implementation of its task; those "
                                "tasks earn no points"))
    return events


def _fingerprint(plan: list[Step], sources: dict) -> str:
    """A hash of the student's solution cells, blank lines and trailing spaces ignored."""
    h = hashlib.sha256()
    for step in (s for s in plan if s.kind == "solution"):
        text = sources.get(step.cell_id) or ""
        h.update("\n".join(line.rstrip() for line in text.splitlines() if line.strip()).encode() + b"\0")
    return h.hexdigest()


def _grade_one(student: str, exercise: str, path: Path | None, plan: list[Step], limits: Limits,
               bwrap: str | None = None, confinement: Confinement | None = None,
               refusal: str | None = None) -> tuple[list[Row], str | None]:
    """Rows for one submitted notebook, and the fingerprint of its solution cells if it earned a point."""
    notes, sources, answers = [], {}, None
    if refusal is not None:
        remote = Remote(stopped=Stopped("refused", f"not graded: {refusal}", "missing"))
    elif path is None:
        remote = Remote(stopped=Stopped("not submitted", "no notebook submitted for this exercise", "missing"))
    else:
        try:
            cells = read_cells(path)
            code = code_cells(cells)
            sources, notes = solution_sources(plan, code), check_cell_notes(plan, code)
            answers = answer_cells(plan, cells)
            remote = Remote(limits, bwrap=bwrap, confinement=confinement)
        except (ValueError, OSError) as e:
            remote = Remote(stopped=Stopped("unreadable", f"not a readable notebook: {e}"))
    why = f"the notebook was not read ({remote.stopped.kind})" if answers is None and remote.stopped else ""
    try:
        remote.trace(_watched(plan))
        with _secret_inputs(), _bounded_grader():
            results, events = _run_steps(plan, sources, remote, limits)
    finally:
        remote.close()
    oom = remote.box is not None and bool(remote.box.oom)
    events = notes + events
    events += _result_events(results, events, limits, oom)
    rows = ([Row(student, exercise, f"{r.exercise}: {r.prop}", r.status, r.message) for r in results]
            + answer_rows(student, exercise, plan, answers, why)
            + [Row(student, exercise, NOTEBOOK, kind, message) for kind, message in events])
    earned = any(r.status == "passed" for r in results)
    return rows, (_fingerprint(plan, sources) if earned and sources else None)


def grade_notebook(student: str, exercise: str, path: Path | None, plan: list[Step], limits: Limits,
                   bwrap: str | None = None, confinement: Confinement | None = None) -> list[Row]:
    """Rows for one submitted notebook (`path` None: not submitted)."""
    return _grade_one(student, exercise, path, plan, limits, bwrap, confinement)[0]


def _identical_rows(prints: dict[tuple[str, str], str]) -> list[Row]:
    """A row for every notebook whose solution cells are the same as another student's (both
    earned points: identical untouched stubs are not flagged)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for (student, exercise), fp in prints.items():
        groups.setdefault((exercise, fp), []).append(student)
    rows = []
    for (exercise, _), students in groups.items():
        for student in students if len(set(students)) > 1 else ():
            others = ", ".join(sorted(set(students) - {student}))
            rows.append(Row(student, exercise, NOTEBOOK, "identical submission",
                            f"its solution cells are identical to those of {others} (the points stand; "
                            "compare the notebooks for copying)"))
    return rows


# ----------------------------------------------------------------------------- a folder

def _plan(solutions: Path, exercise: str) -> list[Step] | None:
    if not EXERCISE.fullmatch(exercise):           # a name from a file the student chose: never a glob pattern
        return None
    found = sorted(solutions.glob(f"{exercise}*.ipynb"))
    return load_plan(found[0]) if found else None


def _setup_problems(plans: dict[str, list[Step] | None], solutions: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the grader's copies and the checks they call."""
    errors, warnings = [], []
    for exercise, plan in plans.items():
        for step in plan or ():
            for module, func, arg in step.checks:
                try:
                    mod = _check_module(module)
                except ImportError as e:
                    errors.append(f"{solutions}/{exercise}*.ipynb calls {module}.{func}, but cvae_lib.checks.{module} "
                                  f"cannot be imported ({e})")
                    continue
                if not callable(getattr(mod, func, None)):
                    errors.append(f"{solutions}/{exercise}*.ipynb calls {module}.{func}, which cvae_lib.checks."
                                  f"{module} does not define: are the solutions and the installed cvae_lib from "
                                  "the same version of the course?")
                for path in _references(module, arg):
                    if not _resolves(path):
                        warnings.append(f"cvae_lib.checks.{module}.REFERENCES names {path} for `{arg}`, which does "
                                        "not exist: calls to the library's own version of that task go unnoticed")
    return errors, sorted(set(warnings))


@dataclass
class _Run:
    """Everything checked before the first notebook: what to grade, against what, how."""
    solutions: Path
    limits: Limits
    bwrap: str
    confinement: Confinement
    plans: dict
    jobs: list


def prepare(submissions: Path, solutions: Path, limits: Limits | None = None, log=print,
            confinement: Confinement | None = None) -> _Run:
    """Check everything that does not depend on a student before grading anyone: bubblewrap
    (SandboxUnavailable), the limits against the machine and the course's minimums, the grader's
    copies against the checks (GraderSetupError); then list the notebooks to grade."""
    limits = limits or Limits()
    bwrap = require_bwrap()
    confinement = confinement or default_confinement()
    problems = check_limits(limits, confinement)
    found, refused = find_submissions(submissions)
    plans = {ex: _plan(solutions, ex) for ex in dict.fromkeys(x.exercise for x in found)}
    for r in refused:
        if r.exercise not in plans and _plan(solutions, r.exercise) is not None:
            plans[r.exercise] = _plan(solutions, r.exercise)
    errors, warnings = _setup_problems(plans, solutions)
    if problems or errors:
        raise GraderSetupError("\n".join(problems + errors))
    for w in warnings:
        log(f"warning: {w}")
    jobs: list[tuple[str, str, Submission | Refusal | None]] = []
    for student in dict.fromkeys(x.student for x in sorted(found + refused, key=lambda x: x.student)):
        for r in (r for r in refused if r.student == student and r.exercise not in plans):
            jobs.append((student, r.exercise, r))
        for exercise in plans:
            mine = [x for x in found + refused if (x.student, x.exercise) == (student, exercise)]
            jobs += [(student, exercise, x) for x in mine] or [(student, exercise, None)]
    return _Run(solutions, limits, bwrap, confinement, plans, jobs)


def run(prepared: _Run, log=print, out: Path | None = None) -> list[Row]:
    """Grade the prepared notebooks one by one. With `out`, the gradebook there is rewritten
    (atomically) after every notebook, so an interrupted or killed run keeps every finished
    notebook's rows; Ctrl-C (KeyboardInterrupt) is raised again once that is written."""
    r = prepared
    rows: list[Row] = []
    prints: dict[tuple[str, str], str] = {}
    done = 0

    def save(status: str) -> None:
        if out is not None:
            write_gradebook(rows + _identical_rows(prints), out, status)

    try:
        for student, exercise, item in r.jobs:
            if isinstance(item, Refusal) and exercise not in r.plans:
                rows.append(Row(student, exercise, NOTEBOOK, "refused", f"not graded: {item.message}"))
            elif r.plans.get(exercise) is None:
                rows.append(Row(student, exercise, NOTEBOOK, "unknown exercise",
                                f"no grader's copy {r.solutions}/{exercise}*.ipynb to grade it against"))
            else:
                name = item.path.name if isinstance(item, Submission) else f"{exercise} (not submitted)"
                log(f"grading {student!r} / {name} ...")
                new, fp = _grade_one(student, exercise, item.path if isinstance(item, Submission) else None,
                                     r.plans[exercise], r.limits, r.bwrap, r.confinement,
                                     item.message if isinstance(item, Refusal) else None)
                rows += new
                if fp is not None:
                    prints[(student, exercise)] = fp
            done += 1
            save(f"*Grading in progress: {done} of {len(r.jobs)} notebooks graded.*")
    except KeyboardInterrupt:
        save(f"**Grading was interrupted: {done} of {len(r.jobs)} notebooks graded; the rows below are complete "
             "for those, and the others are missing.**")
        raise
    save("")
    return rows + _identical_rows(prints)


def grade(submissions: Path, solutions: Path, limits: Limits | None = None, log=print, out: Path | None = None,
          confinement: Confinement | None = None) -> list[Row]:
    """Grade every notebook under `submissions` with the checks of the grader's copies in
    `solutions` (`prepare`, then `run`)."""
    return run(prepare(submissions, solutions, limits, log, confinement), log, out)


# ----------------------------------------------------------------------------- command line

def _limits_from(args, parser) -> Limits:
    for name in ("timeout", "cpu_time", "memory", "disk"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            parser.error(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    return Limits(wall_s=args.timeout, cpu_s=args.cpu_time or args.timeout, memory_bytes=int(args.memory * GiB),
                  disk_bytes=int(args.disk * MiB), processes=args.processes)


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
                        help="processor seconds allowed per process of a notebook (default: the --timeout)")
    parser.add_argument("--memory", type=float, default=8,
                        help="GiB per notebook: each process's address space (Python with torch maps about 3.0), "
                             "and with cgroups the memory of all its processes together")
    parser.add_argument("--disk", type=float, default=256, help="MiB a notebook may write (its folder and /tmp)")
    parser.add_argument("--processes", type=int, default=64,
                        help="processes and threads per notebook, all together (0: no limit)")
    parser.add_argument("--limits-by", choices=CONFINEMENTS, default="auto",
                        help="how whole-notebook limits are held: cgroups where the machine allows (auto), "
                             "cgroups or stop (cgroup), or rlimits only (rlimit)")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of submitted notebooks")
    if args.solutions is None:
        from ..files import course_root
        try:
            args.solutions = course_root(need="solutions") / "solutions"
        except FileNotFoundError as e:
            parser.error(str(e))
    limits = _limits_from(args, parser)
    try:
        confinement = choose_confinement(args.limits_by)
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    print(f"limits per notebook: {limits.wall_s:g} s on the clock, {limits.cpu_s:g} s of processor time, "
          f"{limits.memory_bytes / GiB:g} GiB, {limits.disk_bytes / MiB:g} MiB of files, "
          f"{limits.processes or 'any number of'} processes; {confinement.describe()}")
    try:
        prepared = prepare(args.submissions, args.solutions, limits, confinement=confinement)
    except SandboxUnavailable as e:
        parser.exit(2, f"error: {e}\n")
    except GraderSetupError as e:
        parser.exit(2, "error: nothing was graded:\n" + "".join(f"  - {line}\n" for line in str(e).splitlines()))
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)    # `kill` ends like Ctrl-C
    try:
        with GradebookLock(args.out):
            rows = run(prepared, out=args.out)
    except GradebookBusy as e:
        parser.exit(2, f"error: {e}\n")
    except KeyboardInterrupt:
        print(f"interrupted: the gradebook in {args.out} holds every notebook graded so far", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{len(rows)} rows -> {args.out / 'gradebook.csv'}, {args.out / 'gradebook.md'}")
    return 0
