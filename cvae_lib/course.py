"""Run the course headless: execute every chapter notebook in order and keep what it shows.

    python tools/run_course.py                 # all notebooks, profile from CVAE_PROFILE (or auto)
    python tools/run_course.py 01 02           # only chapters whose file name starts with these

Writes, under build/ (or --out):
    notebooks/NN_name.ipynb    executed copies, outputs included (open them in JupyterLab)
    figures/*.png              every figure the notebooks save with plotting.save_figure
    course.md                  a run report: profile, device, run time per notebook
Stops at the first notebook that fails and says which cell.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="chapter prefixes to run, e.g. 00 01")
    parser.add_argument("--out", default=str(ROOT / "build"), help="output folder (default build/)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)

    out = Path(args.out)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CVAE_FIGURES_DIR", str(out / "figures"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    from cvae_lib.profiles import get_profile
    from cvae_lib.runtime import describe

    profile = get_profile()
    os.environ["CVAE_PROFILE"] = profile.name  # every notebook uses the same profile
    notebooks = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
                       if not args.only or any(p.name.startswith(o) for o in args.only))
    info = describe()
    print(f"profile {profile.name} ({profile.summary}); device {info['device']}; "
          f"{len(notebooks)} notebooks -> {out}", flush=True)
    rows = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        print(f"  {path.name} ...", end=" ", flush=True)
        try:
            NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(path.parent)}}).execute()
        except CellExecutionError as e:
            nbformat.write(nb, out / "notebooks" / path.name)
            print(f"FAILED\n{e}\nThe partly executed notebook is in {out / 'notebooks' / path.name}")
            return 1
        seconds = time.perf_counter() - t0
        nbformat.write(nb, out / "notebooks" / path.name)
        rows.append((path.name, seconds))
        print(f"{seconds:.0f} s", flush=True)

    report = [f"# Course run, profile `{profile.name}`", "",
              f"Device: {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else "")
              + f", torch {info['torch']}, {info['cpu_threads']} CPU threads.", "",
              "| notebook | run time |", "|---|---|"]
    report += [f"| [{name}](notebooks/{name}) | {s / 60:.1f} min |" for name, s in rows]
    figures = sorted((out / "figures").glob("*.png"))
    report += ["", f"{len(figures)} figures in [figures/](figures/)."]
    (out / "course.md").write_text("\n".join(report) + "\n")
    print(f"done: {sum(s for _, s in rows) / 60:.1f} min in all; report in {out / 'course.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
