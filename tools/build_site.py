"""Build the course's website from one `make course` run (`make site`; docs/site.md says more).

    python tools/build_site.py                  # build/ (make course's output) -> build/site/html
    python tools/build_site.py --course DIR     # the output folder of another course run
    python tools/build_site.py --check          # only check the run: nothing stale, nothing half-run
    python tools/build_site.py --linkcheck      # check the external links too (make site-linkcheck)

1. Check the run (`check_run`): its record (run-times.json) lists every chapter in notebooks/;
   each executed copy has its source's cells, every code cell ran, and none shows an error, a
   traceback or a live widget (which needs a kernel that a static page does not have).
2. Write the site's pages to build/site/src (`write_pages`), laid out like the repository: the
   README as the landing page, the executed chapters (each stamped with the run's profile and
   date, with Colab and Binder buttons; each explorer's static view marked as such), the
   exercises as students get them (not executed), the docs/ pages and the pages they link to.
   A link to a repository file the site does not publish goes to the repository instead.
3. Sphinx (MyST-NB, the book theme; docs/conf.py) writes build/site/html. Warnings are errors,
   so a link to a page or heading that does not exist, or a missing figure, fails the build.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cvae_lib import widgets  # its EXPLORERS draw a static figure where a kernel shows a widget

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"
CHAPTERS = "notebooks/[0-9][0-9]_*.ipynb"
EXERCISES = "exercises/ex[0-9][0-9]_*.ipynb"
IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}
WIDGET = "application/vnd.jupyter.widget-view+json"
TRACEBACK = "Traceback (most recent call last)"
PROGRESS = re.compile(r".*(\d+%\|.*\|.*|\d+it) \[.*(it/s|s/it)\]")   # tqdm's bar, as text


class SiteError(Exception):
    """The run cannot be published as it is; the message says what to run."""


def repo_url() -> str:
    """The GitHub repository, from pyproject.toml's [project.urls]."""
    return re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]


def colab_url(path: str) -> str:
    return f"https://colab.research.google.com/github/{repo_url().removeprefix('https://github.com/')}/blob/{BRANCH}/{path}"


def binder_url(path: str) -> str:
    slug = repo_url().removeprefix("https://github.com/")
    return f"https://mybinder.org/v2/gh/{slug}/HEAD?labpath={quote(path, safe='')}"


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else source


# ----------------------------------------------------------------------------- 1. the run

def _stamps(nb: dict) -> list[datetime]:
    """When each cell of an executed notebook finished (nbclient's timing metadata), UTC."""
    stamps = [c.get("metadata", {}).get("execution", {}).get("shell.execute_reply") for c in nb["cells"]]
    return [datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps if s]


def executed_at(nb: dict) -> datetime | None:
    """When the last cell of an executed notebook finished, UTC (None without timing metadata)."""
    return max(_stamps(nb), default=None)


def is_progress_bar(out: dict) -> bool:
    """A progress bar (tqdm in a kernel draws it as a widget): a static page shows none."""
    data = out.get("data", {})
    return WIDGET in data and bool(PROGRESS.fullmatch(_text(data.get("text/plain", "")).strip()))


def check_chapter(source: Path, copy: Path, run_date: date, course: Path) -> list[str]:
    """What stops the executed copy of chapter `source` from being published (empty: nothing)."""
    name = source.name
    if not copy.exists():
        return [f"{name}: no executed copy in {copy.parent}"]
    nb, src = _read(copy), _read(source)
    cells = lambda n: [(c["cell_type"], _text(c["source"])) for c in n["cells"]]  # noqa: E731
    if cells(nb) != cells(src):
        return [f"{name} has changed since the course run of {run_date}: run `make course` again"]
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not _text(cell["source"]).strip():
            continue
        where = f"{name}, cell {i}"
        if cell.get("execution_count") is None:
            problems.append(f"{where} did not run: the run stopped before it (half a page)")
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                problems.append(f"{where} shows an error: {out.get('ename')}: {out.get('evalue')}")
            elif TRACEBACK in _text(out.get("text", "")):
                problems.append(f"{where} prints a traceback")
            elif WIDGET in out.get("data", {}) and not is_progress_bar(out):
                problems.append(f"{where} shows a live widget, which needs a kernel: run it with "
                                "`make course`, which draws the explorers' static views")
    for day in sorted({s.date() for s in _stamps(nb) if abs(s.date() - run_date) > timedelta(days=1)}):
        problems.append(f"{name} was executed on {day}, not in the course run of {run_date}")
    figures = list((course / "figures").glob(f"{name[:2]}_*.png"))
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    if figures and not images:
        problems.append(f"{name} saved {len(figures)} figures but shows none: was it run with "
                        "MPLBACKEND=Agg? `make course` draws them inline")
    return problems


def check_run(course: Path, root: Path = ROOT) -> dict:
    """The run's record (run-times.json) if every chapter in `root`/notebooks can be published
    from the course run in `course`; else SiteError listing what cannot."""
    record_path = course / "run-times.json"
    if not record_path.exists():
        raise SiteError(f"no course run in {course} (no run-times.json): run `make course` first "
                        "(any profile; `CVAE_PROFILE=smoke make course` takes minutes)")
    record = _read(record_path)
    run_date = date.fromisoformat(record["date"])
    problems = []
    for source in sorted(root.glob(CHAPTERS)):
        if source.name[:2] not in record["chapters"]:
            problems.append(f"{source.name} is not in the course run of {run_date}: run the whole "
                            "course with `make course`")
            continue
        problems += check_chapter(source, course / "notebooks" / source.name, run_date, course)
    if problems:
        raise SiteError("the course run cannot be published:\n  " + "\n  ".join(problems))
    return record


# ----------------------------------------------------------------------------- 2. the pages

LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*([^)\s]+)(\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"(^```.*?^```|^~~~.*?^~~~)", re.M | re.S)


class Pages:
    """The site's source folder, laid out like the repository (README.md becomes index.md)."""

    def __init__(self, src: Path, root: Path = ROOT):
        self.src, self.root = src, root
        self.pages: dict[str, str] = {}       # repository path -> site path, of every page
        self.queue: list[str] = []            # linked Markdown pages still to write

    def site_path(self, repo_path: str) -> str:
        return self.pages.get(repo_path, repo_path)

    def add(self, repo_path: str, site_path: str | None = None) -> None:
        if repo_path not in self.pages:
            self.pages[repo_path] = site_path or repo_path
            if repo_path.endswith(".md"):
                self.queue.append(repo_path)

    def link(self, page: str, target: str) -> str:
        """`target` as written on `page` (both repository paths), for the site."""
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return target
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
        file = self.root / resolved
        if resolved.startswith("..") or not file.exists():
            return target                                  # Sphinx reports it: the build fails
        if resolved.endswith(".md"):
            self.add(resolved)
        if resolved in self.pages:
            rel = os.path.relpath(self.site_path(resolved), os.path.dirname(self.site_path(page)) or ".")
            return rel + (f"#{anchor}" if anchor else "")
        if file.suffix.lower() in IMAGES:
            (self.src / resolved).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, self.src / resolved)
            return target
        kind = "tree" if file.is_dir() else "blob"
        return f"{repo_url()}/{kind}/{BRANCH}/{resolved}" + (f"#{anchor}" if anchor else "")

    def markdown(self, page: str, text: str) -> str:
        """Rewrite the links of Markdown `text` on `page`, outside code blocks."""
        def one(m: re.Match) -> str:
            bang, label, target, title = m.groups()
            label = LINK.sub(one, label)                   # an image inside a link
            return f"{bang}[{label}]({self.link(page, target)}{title or ''})"
        parts = FENCE.split(text)
        return "".join(p if i % 2 else LINK.sub(one, p) for i, p in enumerate(parts))


_ids = itertools.count()


def _md_cell(text: str) -> dict:
    return {"cell_type": "markdown", "id": f"site-{next(_ids)}", "metadata": {}, "source": text}


def _is_figure_path(out: dict) -> bool:
    """An execute_result that is only the path save_figure/save_table returned."""
    text = _text(out.get("data", {}).get("text/plain", "")) if out["output_type"] == "execute_result" else ""
    m = re.fullmatch(r"'(/[^']+)'", text.strip())
    return bool(m and Path(m[1]).parent.name in ("figures", "tables") and list(out["data"]) == ["text/plain"])


def _tidy(text: str, course: Path) -> str:
    """Printed paths without this machine's home and course folders."""
    return text.replace(str(course.resolve()), "build").replace(str(Path.home()), "~")


def chapter_page(pages: Pages, path: str, nb: dict, record: dict, course: Path) -> dict:
    """An executed chapter for the site: the run's stamp and Colab/Binder buttons under the header,
    each explorer's figure marked as its static view, the saved-figure paths left out."""
    colab, binder = colab_url(path), binder_url(path)
    buttons = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
               f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})")
    when = executed_at(nb) or datetime.fromisoformat(record["date"])    # the notebook's own record first
    seconds = record["chapters"][Path(path).name[:2]]["seconds"]
    took = "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"
    stamp = (f"```{{note}}\nThis page is chapter {Path(path).name[:2]} as a course run executed it on "
             f"{when:%-d %B %Y}, in the `{record['profile']}` profile ({took} on {record['machine']['device']}): "
             f"every figure and number below comes from that run. To run it yourself, open it in "
             f"[Colab]({colab}) or on [Binder]({binder}), or run `make lab` on your machine.\n```")
    cells = []
    for i, cell in enumerate(nb["cells"]):
        cell = dict(cell)
        if cell["cell_type"] == "markdown":
            text = _text(cell["source"])
            if i == 0:
                text = re.sub(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)", lambda _: buttons, text, count=1)
            cell["source"] = pages.markdown(path, text)
            cells.append(cell)
            if i == 0:
                cells.append(_md_cell(stamp))
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if _is_figure_path(out) or is_progress_bar(out):
                continue
            out = dict(out)
            if "text" in out:
                out["text"] = _tidy(_text(out["text"]), course)
            if "text/plain" in out.get("data", {}):
                out["data"] = {**out["data"], "text/plain": _tidy(_text(out["data"]["text/plain"]), course)}
            outputs.append(out)
        cell["outputs"] = outputs
        cells.append(cell)
        source = _text(cell["source"])
        if (any(re.search(rf"\b{e}\(", source) for e in widgets.EXPLORERS)
                and any("image/png" in o.get("data", {}) for o in outputs)):
            cells.append(_md_cell(f"*Above: a static view of this explorer, drawn by the same code at a "
                                  f"few settings. The live version redraws as you move its controls: "
                                  f"open this chapter in [Colab]({colab}), on [Binder]({binder}) "
                                  f"or in a local JupyterLab.*"))
    metadata = {k: v for k, v in nb["metadata"].items() if k != "widgets"}   # the bars' saved state
    return {**nb, "metadata": metadata, "cells": cells}


def exercise_page(pages: Pages, path: str, nb: dict) -> dict:
    """An exercise as students get it, not executed: outputs cleared, a line on how to work on it."""
    colab, binder = colab_url(path), binder_url(path)
    cells = []
    for i, cell in enumerate(nb["cells"]):
        cell = dict(cell)
        if cell["cell_type"] == "markdown":
            cell["source"] = pages.markdown(path, _text(cell["source"]))
        else:
            cell.update(outputs=[], execution_count=None)
        cells.append(cell)
        if i == 0:
            cells.append(_md_cell(f"```{{note}}\nThe exercise as you get it, not run here. Work on it in "
                                  f"[Colab]({colab}), on [Binder]({binder}) or in a local JupyterLab: "
                                  f"its check cells say which property of your code holds.\n```"))
    return {**nb, "cells": cells}


def toctree(caption: str, paths: list[str]) -> str:
    entries = "\n".join(str(Path(p).with_suffix("")) for p in paths)
    return f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```\n"


def write_pages(src: Path, course: Path, record: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """The site's pages in `src`; returns the table of contents, {caption: [site paths]}."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    pages = Pages(src, root)
    pages.add("README.md", "index.md")
    chapters = [str(p.relative_to(root)) for p in sorted(root.glob(CHAPTERS))]
    exercises = [str(p.relative_to(root)) for p in sorted(root.glob(EXERCISES))]
    docs = [str(p.relative_to(root)) for p in sorted(root.glob("docs/*.md"))]
    for p in chapters + exercises:
        pages.add(p)
    for path in chapters + exercises:
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        nb = (chapter_page(pages, path, _read(course / "notebooks" / Path(path).name), record, course)
              if path in chapters else exercise_page(pages, path, _read(root / path)))
        (src / path).write_text(json.dumps(nb, indent=1))
    order = []                                             # Markdown pages: the README, docs/ and what they link
    for p in docs:
        pages.add(p)
    while pages.queue:
        path = pages.queue.pop(0)
        order.append(path)
        text = pages.markdown(path, (root / path).read_text())
        (src / pages.site_path(path)).parent.mkdir(parents=True, exist_ok=True)
        (src / pages.site_path(path)).write_text(text)
    listed = [os.path.normpath(os.path.join("docs", m[3].partition("#")[0]))   # docs/index.md's order
              for m in LINK.finditer((root / "docs" / "index.md").read_text())]
    rank = {p: i for i, p in reversed(list(enumerate(["docs/index.md", *listed])))}
    toc = {"Chapters": chapters, "Exercises": exercises,
           "Documentation": sorted((p for p in order if p != "README.md"), key=lambda p: (rank.get(p, len(rank)), p))}
    with (src / "index.md").open("a") as f:
        for caption, paths in toc.items():
            f.write(toctree(caption, paths))
    site = {"repository": repo_url(), "branch": BRANCH, "profile": record["profile"], "date": record["date"],
            "device": record["machine"]["device"], "torch": record["machine"]["torch"].split("+")[0]}
    (src / "_site.json").write_text(json.dumps(site, indent=1) + "\n")
    return toc


# ----------------------------------------------------------------------------- 3. Sphinx

def sphinx(src: Path, out: Path, builder: str = "html") -> int:
    cmd = [sys.executable, "-m", "sphinx", "-b", builder, "-q", "-W", "--keep-going", "-c", str(ROOT / "docs"),
           "-d", str(out.parent / "doctrees"), str(src), str(out)]
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--course", type=Path, default=Path(os.environ.get("CVAE_COURSE_OUT") or ROOT / "build"),
                        help="the course run's output folder (default: $CVAE_COURSE_OUT, else build/)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="default: build/site")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course clone (default: this one)")
    parser.add_argument("--check", action="store_true", help="only check the course run")
    parser.add_argument("--linkcheck", action="store_true", help="check the external links instead of building")
    args = parser.parse_args(argv)
    try:
        record = check_run(args.course, args.root)
    except SiteError as e:
        print(f"make site: {e}", file=sys.stderr)
        return 1
    if args.check:
        print(f"ok: the course run of {record['date']} ({record['profile']} profile) can be published")
        return 0
    toc = write_pages(args.out / "src", args.course, record, args.root)
    if args.linkcheck:
        return sphinx(args.out / "src", args.out / "linkcheck", "linkcheck")
    shutil.rmtree(args.out / "html", ignore_errors=True)
    shutil.rmtree(args.out / "doctrees", ignore_errors=True)
    if sphinx(args.out / "src", args.out / "html") != 0:
        print("make site: Sphinx failed (warnings are errors: a broken link, a missing figure)", file=sys.stderr)
        return 1
    n = sum(len(v) for v in toc.values()) + 1
    size = sum(f.stat().st_size for f in (args.out / "html").rglob("*") if f.is_file())
    print(f"site: {n} pages from the course run of {record['date']} ({record['profile']} profile), "
          f"{size / 2**20:.1f} MB in {args.out / 'html'}; `make site-serve` shows it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
