"""Run the course headless: execute every chapter notebook in order and keep what it shows.

    python -m cvae_lib.course                  # all notebooks, profile from CVAE_PROFILE (or auto)
    python -m cvae_lib.course 01 02            # only chapters whose file name starts with these
    (tools/run_course.py is the same command; `make course` calls it)

Writes, under build/ (or --out):
    notebooks/NN_name.ipynb    executed copies, outputs included (open them in JupyterLab)
    figures/*.png              every figure the notebooks save with plotting.save_figure
    tables/*.md, *.json        every table the notebooks save with plotting.save_table
    course.md                  a run report: profile, device, run time per notebook
    run-times.json             the same run times as data; `python tools/write_results.py --take
                               build/run-times.json --as cpu-1` makes it the committed measurement
Stops at the first notebook that fails and says which cell.

A chapter that evaluates other chapters' models (chapter 05) calls `own_runs`: opened on its
own it uses what is there and says what is missing, what would make it and what that costs;
with its flag set (or `CVAE_RETRAIN_OWN_RUNS=1`, which this runner sets for the chapters it runs)
it calls `ensure_runs`, which runs the missing chapters first (in a separate process, same
profile, same clone and output folder). A chapter that ran that way during a course run
(chapter 05 needs chapter 06's prior) is not run a second time: its time is taken out of the
chapter that asked and reported as its own.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import settings
from .files import course_root

__all__ = ["RETRAIN_ENV", "RUN_TIMES", "run_minutes", "chapter_minutes", "ensure_runs", "own_runs", "main"]

RETRAIN_ENV = "CVAE_RETRAIN_OWN_RUNS"   # "1": own_runs trains what is missing, as a course run does
# The committed measurements: one run-times file per clean course run (<profile>[-N].json, the
# format main() writes to build/run-times.json), rendered into docs/results.md by tools/write_results.py.
RUN_TIMES = Path("docs") / "results" / "run-times"


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
              f"(its executed copy goes to {settings.current().course_out or 'build'}/notebooks)", flush=True)
        if run(ch) != 0:
            raise RuntimeError(f"chapter {ch} failed, so its models ({files}) are missing; open "
                               f"notebooks/{ch}_*.ipynb and run it to see why")
    still = [n for n in missing if not (runs_dir / n).exists()]
    if still:
        raise RuntimeError(f"{', '.join(still)} still missing in {runs_dir} after running chapters "
                           f"{', '.join(chapters)}; is CVAE_RUNS_DIR the same for both?")
    return chapters


def run_minutes(profile_name: str, root: str | os.PathLike | None = None) -> dict[str, float]:
    """{chapter prefix: minutes} measured in clean course runs of `profile_name`: the slowest of the
    committed runs (RUN_TIMES in the clone `root`, default: course_root()), rounded up to half a
    minute, so that the time said before a retrain does not promise too little. {} without a clone
    or a measurement of that profile."""
    try:
        folder = course_root(root) / RUN_TIMES
    except FileNotFoundError:
        return {}
    slowest: dict[str, float] = {}
    for path in sorted(folder.glob(f"{profile_name}*.json")):
        run = json.loads(path.read_text())
        if run.get("profile") != profile_name:
            continue
        for ch, row in run["chapters"].items():
            slowest[ch] = max(slowest.get(ch, 0.0), row["seconds"])
    return {ch: math.ceil(s / 30) / 2 for ch, s in slowest.items()}


def chapter_minutes(chapters, profile) -> float:
    """About how many minutes running `chapters` (prefixes such as "03") takes in `profile`
    (a Profile or its name): measured ones (run_minutes) where there are, else cvae_lib.compute's
    estimate for a T4."""
    from .profiles import get_profile

    P = get_profile(profile) if isinstance(profile, str) else profile
    known = run_minutes(P.name)
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
    if retrain or settings.current().retrain_own_runs == "1":
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


def write_report(out: Path, profile, info: dict, rows: list[dict]) -> Path:
    """out/course.md: the device, one row per notebook with its run time, the figures and tables."""
    report = [f"# Course run, profile `{profile.name}`", "",
              f"Device: {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else "")
              + f", torch {info['torch']}, {info['cpu_threads']} CPU threads.", "",
              "| notebook | run time |", "|---|---|"]
    for r in rows:
        time_ = f"{r['seconds'] / 60:.1f} min"
        if "run_by" in r:
            time_ = f"run by an earlier chapter's ensure_runs (chapter {r['run_by']}): {time_}, taken out of its time"
        report.append(f"| [{r['notebook']}](notebooks/{r['notebook']}) | {time_} |")
    figures = sorted((out / "figures").glob("*.png"))
    tables = sorted((out / "tables").glob("*.md"))
    report += ["", f"{len(figures)} figures in [figures/](figures/)."]
    report += [f"Table: [{t.stem}](tables/{t.name})" for t in tables]
    (out / "course.md").write_text("\n".join(report) + "\n")
    return out / "course.md"


def write_run_times(out: Path, profile, info: dict, rows: list[dict]) -> Path:
    """out/run-times.json: the run's profile, machine and seconds per chapter (a chapter's own
    time: a chapter another one ran through ensure_runs is taken out of that one's, and says
    "run_by"). The committed measurements in docs/results/run-times/ have this format."""
    chapters = {r["notebook"][:2]: {k: (round(v, 1) if k == "seconds" else v) for k, v in r.items()} for r in rows}
    data = {"profile": profile.name, "machine": info, "date": time.strftime("%Y-%m-%d"),
            "total_seconds": round(sum(r["seconds"] for r in rows), 1), "chapters": chapters}
    (out / "run-times.json").write_text(json.dumps(data, indent=1) + "\n")
    return out / "run-times.json"


def _record(out: Path, path: Path, seconds: float) -> None:
    """Every runner, also one that ensure_runs started, records each notebook's seconds in out/times/."""
    (out / "times").mkdir(exist_ok=True)
    (out / "times" / f"{path.stem}.json").write_text(json.dumps({"seconds": seconds}))


def _recorded_since(out: Path, since: float) -> dict[str, float]:
    """{notebook prefix: seconds} that runners recorded in out/times/ after `since` (a time.time())."""
    return {f.stem[:2]: json.loads(f.read_text())["seconds"] for f in (out / "times").glob("*.json")
            if f.stat().st_mtime >= since}


def _run_all(notebooks: list[Path], out: Path, timeout: int) -> list[dict] | None:
    """Run the notebooks in order; one row per notebook ({"notebook", "seconds", and "ran" or
    "run_by" for chapters run through ensure_runs}), or None when one fails."""
    from nbclient.exceptions import CellExecutionError

    rows: list[dict] = []
    started = time.time()
    for path in notebooks:
        print(f"  {path.name} ...", end=" ", flush=True)
        copy = out / "notebooks" / path.name
        if copy.exists() and copy.stat().st_mtime >= started:   # a nested run wrote it just now
            by = next(r["notebook"][:2] for r in rows if path.name[:2] in r.get("ran", []))
            seconds = _recorded_since(out, started)[path.name[:2]]
            print(f"already run by an earlier chapter ({seconds:.0f} s, taken out of chapter {by}'s)", flush=True)
            rows.append({"notebook": path.name, "seconds": seconds, "run_by": by})
            continue
        t0 = time.time()
        try:
            seconds = run_notebook(path, out, timeout)
        except CellExecutionError as e:
            print(f"FAILED\n{e}\nThe partly executed notebook is in {copy}")
            return None
        nested = {ch: s for ch, s in _recorded_since(out, t0).items() if ch != path.name[:2]}
        seconds -= sum(nested.values())
        _record(out, path, seconds)
        rows.append({"notebook": path.name, "seconds": seconds, **({"ran": sorted(nested)} if nested else {})})
        print(f"{seconds:.0f} s" + (f" (besides chapter(s) {', '.join(sorted(nested))})" if nested else ""),
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="chapter prefixes to run, e.g. 00 01")
    parser.add_argument("--out", default=settings.current().course_out,
                        help="output folder (default: $CVAE_COURSE_OUT, else build/ in the course folder)")
    parser.add_argument("--root", default=None, help="the course clone (default: see course_root)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--no-report", action="store_true", help="do not write course.md (nested runs)")
    args = parser.parse_args(argv)
    root = course_root(args.root)
    out = Path(args.out) if args.out else root / "build"
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    # figures inline in the executed copies (the course's website shows them), not only in figures/
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    from .profiles import get_profile
    from .runtime import describe

    profile, s = get_profile(), settings.current()
    notebooks = sorted(p for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")
                       if not args.only or any(p.name.startswith(o) for o in args.only))
    info = describe()
    print(f"profile {profile.name} ({profile.summary}); device {info['device']}; "
          f"{len(notebooks)} notebooks -> {out}", flush=True)
    # every notebook uses this profile and output folder; chapters that ensure_runs starts from inside a
    # notebook use this clone too, and train what they evaluate (own_runs) unless CVAE_RETRAIN_OWN_RUNS=0
    with settings.environment(CVAE_PROFILE=profile.name, CVAE_COURSE_DIR=str(root), CVAE_COURSE_OUT=str(out),
                              CVAE_FIGURES_DIR=str(s.figures_dir or out / "figures"),
                              CVAE_TABLES_DIR=str(s.tables_dir or out / "tables"),
                              CVAE_RETRAIN_OWN_RUNS=s.retrain_own_runs or "1",
                              CVAE_STATIC_WIDGETS="1"):   # no kernel behind an executed copy: static views
        rows = _run_all(notebooks, out, args.timeout)
    if rows is None:
        return 1
    if not args.no_report:
        report = write_report(out, profile, info, rows)
        write_run_times(out, profile, info, rows)
        print(f"done: {sum(r['seconds'] for r in rows) / 60:.1f} min in all; report in {report}, "
              f"times in {out / 'run-times.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
