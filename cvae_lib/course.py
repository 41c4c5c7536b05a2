"""Run the course headless: execute every chapter notebook in order and keep what it shows.

    python -m cvae_lib.course                  # all notebooks, profile from CVAE_PROFILE (or auto)
    python -m cvae_lib.course 01 02            # only chapters whose file name starts with these
    (tools/run_course.py is the same command; `make course` calls it)

Writes, under build/ (or --out):
    notebooks/NN_name.ipynb    executed copies, outputs included (open them in JupyterLab)
    figures/*.png              every figure the notebooks save with plotting.save_figure
    tables/*.md                every table the notebooks save with plotting.save_table
    course.md                  a run report: profile, device, run time per notebook
Stops at the first notebook that fails and says which cell.

A chapter that evaluates other chapters' models (chapter 05) calls `own_runs`: opened on its
own it uses what is there and says what is missing, what would make it and what that costs;
with its flag set (or `CVAE_RETRAIN_OWN_RUNS=1`, which this runner sets for the chapters it runs)
it calls `ensure_runs`, which runs the missing chapters first (in a separate process, same
profile, same clone and output folder). A chapter that ran that way during a course run
(chapter 05 needs chapter 06's prior) is not run a second time: its time is in the chapter
that asked.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from .files import course_root

__all__ = ["RETRAIN_ENV", "RUN_MINUTES", "chapter_minutes", "ensure_runs", "own_runs", "main"]

RETRAIN_ENV = "CVAE_RETRAIN_OWN_RUNS"   # "1": own_runs trains what is missing, as a course run does

# About how many minutes a chapter takes, said before `own_runs` retrains it: the slower of two
# clean course runs on a 2-core laptop-class CPU (docs/results.md, run times), rounded up to half a
# minute. Other profiles (and chapters not listed) use cvae_lib.compute's estimate for a T4.
RUN_MINUTES = {"smoke": {"01": 0.5, "03": 0.5, "04": 2.0, "06": 0.5},
               "cpu": {"01": 3.5, "03": 7.5, "04": 5.5, "06": 8.0}}


def _run_chapter(prefix: str) -> int:
    """`python -m cvae_lib.course <prefix> --no-report` in a new process, its output shown here."""
    proc = subprocess.Popen([sys.executable, "-m", "cvae_lib.course", prefix, "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:                     # relay, so a notebook cell shows the progress
        if "Kernel is running over TCP" not in line:
            print(line, end="", flush=True)
    return proc.wait()


def ensure_runs(needed: dict[str, str], runs_dir: str | os.PathLike, *, runner=None) -> list[str]:
    """Make sure the checkpoints in `needed` (file name -> chapter prefix) exist in `runs_dir`.

    Runs each chapter with a missing checkpoint once, in order, with `python -m cvae_lib.course
    <prefix>` in a new process (same profile and folders); returns the chapters it ran. Raises
    RuntimeError naming the chapter if a run fails or does not write what was expected.
    """
    runs_dir = Path(runs_dir)
    missing = {name: ch for name, ch in needed.items() if not (runs_dir / name).exists()}
    chapters = sorted(set(missing.values()))
    run = runner or _run_chapter
    for ch in chapters:
        files = ", ".join(n for n, c in missing.items() if c == ch)
        print(f"{files} not found in {runs_dir}: running chapter {ch} first to train it "
              f"(its executed copy goes to {os.environ.get('CVAE_COURSE_OUT', 'build')}/notebooks)", flush=True)
        if run(ch) != 0:
            raise RuntimeError(f"chapter {ch} failed, so its models ({files}) are missing; open "
                               f"notebooks/{ch}_*.ipynb and run it to see why")
    still = [n for n in missing if not (runs_dir / n).exists()]
    if still:
        raise RuntimeError(f"{', '.join(still)} still missing in {runs_dir} after running chapters "
                           f"{', '.join(chapters)}; is CVAE_RUNS_DIR the same for both?")
    return chapters


def chapter_minutes(chapters, profile) -> float:
    """About how many minutes running `chapters` (prefixes such as "03") takes in `profile`
    (a Profile or its name): RUN_MINUTES where it has them, else cvae_lib.compute's estimate."""
    from .profiles import get_profile

    P = get_profile(profile) if isinstance(profile, str) else profile
    known = RUN_MINUTES.get(P.name, {})
    minutes = 0.0
    for ch in chapters:
        if ch in known:
            minutes += known[ch]
        else:
            from .compute import chapter_work, estimate_minutes
            minutes += estimate_minutes(chapter_work(ch, P))
    return minutes


def _about(minutes: float) -> str:
    return "under a minute" if minutes < 1 else f"about {minutes:.0f} min"


def own_runs(needed: dict[str, str], runs_dir: str | os.PathLike, *, retrain: bool = False, profile=None,
             flag: str = "RETRAIN_OWN_RUNS", runner=None) -> set[str]:
    """The checkpoints of `needed` (file name -> chapter prefix) found in `runs_dir`, as a set of names.

    Nothing is trained unless `retrain` is true or `$CVAE_RETRAIN_OWN_RUNS` is "1" (the course
    runner sets it): then the missing chapters run first (`ensure_runs`), after one line that says
    which and about how long they take in `profile` (default: the current profile). Otherwise it
    prints what is missing, and the two ways to make it: run those chapters, or set `flag`.
    """
    from .profiles import get_profile

    runs_dir = Path(runs_dir)
    missing = {name: ch for name, ch in needed.items() if not (runs_dir / name).exists()}
    chapters = sorted(set(missing.values()))
    if not missing:
        print(f"all {len(needed)} runs of chapters {', '.join(sorted(set(needed.values())))} found in {runs_dir}")
        return set(needed)
    P = profile if profile is not None and not isinstance(profile, str) else get_profile(profile)
    cost = f"{_about(chapter_minutes(chapters, P))} in the {P.name} profile"
    if retrain or os.environ.get(RETRAIN_ENV, "").strip() == "1":
        print(f"training the missing runs first: chapter(s) {', '.join(chapters)}, {cost}", flush=True)
        ensure_runs(needed, runs_dir, runner=runner)
        return set(needed)
    for ch in chapters:
        print(f"chapter {ch}'s run not found in {runs_dir} "
              f"({', '.join(n for n, c in missing.items() if c == ch)}): its rows are marked 'not run'")
    print(f"to add them, run those chapters' notebooks first, or set {flag} = True here ({cost}), "
          f"or run `python -m cvae_lib.course {' '.join(chapters)}`")
    return set(needed) - set(missing)


def _local_kernel(sockets: Path):
    """A python3 kernel on Unix sockets in `sockets` (IPC) rather than TCP ports: nothing listens on
    the network, and the kernel does not print its "running over TCP without encryption" warning
    into the middle of the progress lines. Windows has no IPC transport, so it keeps TCP."""
    from jupyter_client.manager import KernelManager

    if os.name == "nt":
        return KernelManager(kernel_name="python3")
    return KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel"))


def run_notebook(path: Path, out: Path, timeout: int) -> float:
    """Execute the notebook at `path` top to bottom in a fresh local kernel (on Unix sockets)
    and write the executed copy to out/notebooks/; returns its seconds. A failing cell raises
    nbclient's CellExecutionError after the partly executed copy is written."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="cvae-kernel-") as sockets:
            km = _local_kernel(Path(sockets))
            try:
                NotebookClient(nb, timeout=timeout, km=km,
                               resources={"metadata": {"path": str(path.parent)}}).execute()
            finally:                    # a kernel manager we pass in is ours to stop
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
    finally:
        nbformat.write(nb, out / "notebooks" / path.name)
    return time.perf_counter() - t0


def write_report(out: Path, profile, info: dict, rows: list[tuple[str, float]]) -> Path:
    """out/course.md: the device, one row per notebook with its run time, the figures and tables."""
    report = [f"# Course run, profile `{profile.name}`", "",
              f"Device: {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else "")
              + f", torch {info['torch']}, {info['cpu_threads']} CPU threads.", "",
              "| notebook | run time |", "|---|---|"]
    report += [f"| [{name}](notebooks/{name}) | " + (f"{s / 60:.1f} min |" if s is not None else
               "run by an earlier chapter's ensure_runs; its time is in that chapter's |") for name, s in rows]
    figures = sorted((out / "figures").glob("*.png"))
    tables = sorted((out / "tables").glob("*.md"))
    report += ["", f"{len(figures)} figures in [figures/](figures/)."]
    report += [f"Table: [{t.stem}](tables/{t.name})" for t in tables]
    (out / "course.md").write_text("\n".join(report) + "\n")
    return out / "course.md"


def main(argv: list[str] | None = None) -> int:
    from nbclient.exceptions import CellExecutionError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="chapter prefixes to run, e.g. 00 01")
    parser.add_argument("--out", default=os.environ.get("CVAE_COURSE_OUT"),
                        help="output folder (default: $CVAE_COURSE_OUT, else build/ in the course folder)")
    parser.add_argument("--root", default=None, help="the course clone (default: see course_root)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--no-report", action="store_true", help="do not write course.md (nested runs)")
    args = parser.parse_args(argv)
    root = course_root(args.root)
    out = Path(args.out) if args.out else root / "build"
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CVAE_FIGURES_DIR", str(out / "figures"))
    os.environ.setdefault("CVAE_TABLES_DIR", str(out / "tables"))
    # figures inline in the executed copies (the course's website shows them), not only in figures/
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    from .profiles import get_profile
    from .runtime import describe

    profile = get_profile()
    os.environ["CVAE_PROFILE"] = profile.name  # every notebook uses the same profile
    notebooks = sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")
                       if not args.only or any(p.name.startswith(o) for o in args.only))
    info = describe()
    print(f"profile {profile.name} ({profile.summary}); device {info['device']}; "
          f"{len(notebooks)} notebooks -> {out}", flush=True)
    rows = []
    started = time.time()
    # chapters that ensure_runs starts from inside a notebook use this clone and output folder
    # and train what they evaluate (own_runs), unless CVAE_RETRAIN_OWN_RUNS=0 says otherwise
    nested = {"CVAE_COURSE_DIR": str(root), "CVAE_COURSE_OUT": str(out),
              RETRAIN_ENV: os.environ.get(RETRAIN_ENV, "1"),
              "CVAE_STATIC_WIDGETS": "1"}   # no kernel behind an executed copy: the explorers' static views
    with mock.patch.dict(os.environ, nested):           # restored afterwards, also on failure
        for path in notebooks:
            print(f"  {path.name} ...", end=" ", flush=True)
            copy = out / "notebooks" / path.name
            if copy.exists() and copy.stat().st_mtime >= started:   # a nested run wrote it just now
                print("already run by an earlier chapter (its time is in that chapter's)", flush=True)
                rows.append((path.name, None))
                continue
            try:
                seconds = run_notebook(path, out, args.timeout)
            except CellExecutionError as e:
                print(f"FAILED\n{e}\nThe partly executed notebook is in {copy}")
                return 1
            rows.append((path.name, seconds))
            print(f"{seconds:.0f} s", flush=True)
    if not args.no_report:
        report = write_report(out, profile, info, rows)
        print(f"done: {sum(s for _, s in rows if s is not None) / 60:.1f} min in all; report in {report}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
