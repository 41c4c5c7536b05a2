"""Write the measured numbers into the docs: every marked region from its results files.

    python tools/write_results.py                 # rewrite every region that is out of date (`make results`)
    python tools/write_results.py --check         # list the regions that disagree with their files; exit 1 if any
    python tools/write_results.py --take build/run-times.json --as cpu-1   # a course run's times become the record
    python tools/write_results.py --take build/tables --as ch05-cpu        # its chapter 05 tables likewise

A region is the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md,
docs/*.md, benchmarks/README.md or checkpoints/README.md. Its text is rendered, never typed:

- most regions from a template, docs/results/templates/NAME.md, whose placeholders
  `{source/path/to/value:format}` are filled from machine-written files (`SOURCES` below: the
  shipped files' metadata, benchmarks/results/*.json, chapter 05's tables of a course run,
  docs/results/history.json for measurements whose run is gone); `*1000` after the path scales a
  number, `@key` in a path stands for that key's value in an enclosing object, and the formats
  `words` and `threads` write 1 to 10 as words ("two", "two threads");
- `run-times` from docs/results/run-times/ (the files `make course` writes as build/run-times.json);
- `gpu-estimates` from cvae_lib.compute (an estimate from the recipes, not a measurement).

tests/test_results.py fails when a region and its files disagree, naming the region and this command.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
PAGES = ("README.md", "docs/*.md", "benchmarks/README.md", "checkpoints/README.md")
REGION = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)
PLACEHOLDER = re.compile(r"\{(?P<source>[\w.-]+)/(?P<path>[^{}:*]+?)(?:\*(?P<scale>[\de.+-]+))?(?::(?P<fmt>[^{}]+))?\}")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _json(relative: str) -> dict:
    return json.loads((ROOT / relative).read_text())


def _rows(relative: str, key: str) -> dict:
    """A chapter's saved table (plotting.save_table's .json) as {first column's value: row}."""
    return {row[key]: row for row in _json(relative)["rows"]}


@cache
def _shipped(name: str) -> dict:
    """A shipped file's metadata, and what follows from it: its size, parameters (a discriminator
    apart), training and judging minutes, all optimizer steps (its recipe's, where the file does
    not record them), and the GAN epochs of a first stage."""
    from cvae_lib.recipes import shipped_recipe
    from cvae_lib.weights import load_weights, read_metadata, shipped

    path, meta, run = shipped(name), read_metadata(shipped(name)), shipped_recipe(name)
    model = load_weights(path, type(run.build()), type(run.model))
    params = {n: p.numel() for n, p in model.named_parameters()}
    disc = sum(v for n, v in params.items() if n.startswith("disc."))
    m = meta["metrics"]
    phases = [run.train] + ([run.then] if run.then else [])
    gan = sorted(k for k in m.get("val_judge_accuracy", {}) if k.startswith("gan"))
    return {**meta, "size_mb": path.stat().st_size / 1e6, "params_m": (sum(params.values()) - disc) / 1e6,
            "disc_params_m": disc / 1e6, "minutes": m["train_seconds"] / 60,
            "judge_minutes": m.get("judge_seconds", 0) / 60,
            "steps": m.get("steps") or sum(t.total_steps(run.data.n_train()) for t in phases),
            "gan_epochs": len(gan),
            "chosen_epoch": int(m["chosen"][3:]) if m.get("chosen", "").startswith("gan") else 0}


# name -> how to load it; templates address them as {name/path/in/it}
SOURCES = {
    "ch05": lambda: _rows("docs/results/ch05-cpu/05_evaluation.json", "model"),
    "calibration": lambda: _rows("docs/results/ch05-cpu/05_calibration.json", "images"),
    "history": lambda: _json("docs/results/history.json"),
    "bench": lambda: _json("benchmarks/results/cpu.json"),
    "layout": lambda: _json("benchmarks/results/sampling-layout-cpu.json"),
    "fid": lambda: _json("benchmarks/results/fid-real-vs-real-2000.json"),
    "ttq-vae": lambda: _json("benchmarks/results/ttq-vae-cpu.json"),
    "ttq-ddpm": lambda: _json("benchmarks/results/ttq-ddpm-cpu.json"),
    "ceiling": lambda: _json("benchmarks/results/first-stage-ceiling.json"),
    "ten-class": lambda: _json("benchmarks/results/ten-class-protocol.json"),
    "em-ldm": lambda: _json("benchmarks/results/equal-minutes-ten-class/ttq-ldm-cpu.json"),
    "em-lfm": lambda: _json("benchmarks/results/equal-minutes-ten-class/ttq-lfm-cpu.json"),
    "peers-15min": lambda: {"table": _first_table((ROOT / "benchmarks/results/peers-15min/summary.md").read_text())},
}


def _first_table(markdown: str) -> str:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def _lookup(source: str, path: str):
    if source.startswith("shipped."):
        value = _shipped(source.split(".", 1)[1])
    else:
        value = _source(source)
    seen = []
    for key in path.split("/"):
        if key.startswith("@"):                     # indirection: a key's value in an enclosing object
            key = str(float(next(v[key[1:]] for v in reversed(seen) if isinstance(v, dict) and key[1:] in v)))
        seen.append(value)
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


@cache
def _source(name: str):
    return SOURCES[name]()


def _format(value, fmt: str | None, scale: str | None) -> str:
    if scale:
        value = value * float(scale)
    if fmt in ("words", "threads"):
        n = int(value)
        word = WORDS[n] if 0 <= n < len(WORDS) else f"{n:,}"
        return word if fmt == "words" else f"{word} thread{'s' if n != 1 else ''}"
    text = format(value, fmt) if fmt else str(value)
    return re.sub(r"e([+-])0(\d)", r"e\1\2", text) if fmt and fmt.endswith("e") else text   # 1.6e-5, not 1.6e-05


def render_template(text: str) -> str:
    """The template with every placeholder replaced by its value (KeyError names a missing one)."""
    def fill(m: re.Match) -> str:
        try:
            return _format(_lookup(m["source"], m["path"]), m["fmt"], m["scale"])
        except (KeyError, IndexError) as e:
            raise KeyError(f"{m[0]}: no {e} in the results files") from None
    return PLACEHOLDER.sub(fill, text)


def render_run_times() -> str:
    """The chapters' run times: smoke, then each committed cpu run, with the notes column. A run
    of only some chapters (`python -m cvae_lib.course 07`, its file marked "partial": true) gets
    its own column and no total; a chapter a run did not have (it came later) is "-"."""
    folder = RESULTS / "run-times"
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem != "notes"}
    notes = json.loads((folder / "notes.json").read_text())["chapters"]
    complete = lambda r: not r.get("partial")                                    # noqa: E731
    smoke = [r for r in runs.values() if r["profile"] == "smoke"]
    cpu_full = [r for r in runs.values() if r["profile"] == "cpu" and complete(r)]
    cpu_part = [r for r in runs.values() if r["profile"] == "cpu" and not complete(r)]
    heads = ["smoke" if complete(r) else f"smoke, {', '.join(sorted(r['chapters']))} alone" for r in smoke]
    heads += [f"cpu, run {i + 1}" if len(cpu_full) > 1 else "cpu" for i in range(len(cpu_full))]
    heads += [f"cpu, {', '.join(sorted(r['chapters']))} alone" for r in cpu_part]
    head = ["chapter", *heads, "what the cpu profile trains and does"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ch, note in notes.items():
        cells = [note["name"]]
        for r in smoke + cpu_full + cpu_part:
            c = r["chapters"].get(ch)
            remark = f" ({note['smoke']})" if r in smoke and c and note.get("smoke") else ""
            cells.append(f"{c['seconds']:.0f} s{remark}" if c else "-")
        lines.append("| " + " | ".join(cells + [note["does"]]) + " |")
    totals = [f"{r['total_seconds'] / 60:.1f} min" if complete(r) else "-" for r in smoke + cpu_full + cpu_part]
    lines.append("| all | " + " | ".join(totals) + " | |")
    return "\n".join(lines)


def render_gpu_estimates() -> str:
    from cvae_lib.compute import CHAPTERS, chapter_work, estimate_minutes
    from cvae_lib.profiles import get_profile

    gpu = get_profile("gpu")
    return ("| chapter | " + " | ".join(CHAPTERS) + " |\n|---|" + "---|" * len(CHAPTERS) + "\n"
            "| gpu profile on a T4, estimated minutes | "
            + " | ".join(f"{estimate_minutes(chapter_work(c, gpu)):.1f}" for c in CHAPTERS) + " |")


RENDERERS = {"run-times": render_run_times, "gpu-estimates": render_gpu_estimates}


def render(name: str) -> str:
    """Region `name`'s text (without its markers), from its results files."""
    if name in RENDERERS:
        return RENDERERS[name]() + "\n"
    template = RESULTS / "templates" / f"{name}.md"
    if not template.exists():
        raise FileNotFoundError(f"region {name!r} has no renderer and no template {template.relative_to(ROOT)}")
    return render_template(template.read_text())


def pages(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in PAGES for p in root.glob(pattern)})


def regions(root: Path = ROOT) -> list[tuple[Path, str, str]]:
    """(page, region name, its text now) for every marked region."""
    return [(page, m["name"], m["body"]) for page in pages(root) for m in REGION.finditer(page.read_text())]


def stale(root: Path = ROOT) -> list[str]:
    """'page: region' for every region whose text is not what its results files give."""
    return [f"{page.relative_to(root)}: {name}" for page, name, body in regions(root) if body != render(name)]


def write(root: Path = ROOT) -> list[str]:
    """Rewrite every stale region in place; return 'page: region' for each one rewritten."""
    changed = stale(root)
    for page in pages(root):
        text = page.read_text()
        new = REGION.sub(lambda m: m[1] + render(m["name"]) + m[4], text)
        if new != text:
            page.write_text(new)
    return changed


def take(source: Path, name: str) -> Path:
    """Make a course run's measurement the committed one: build/run-times.json -> run-times/<name>.json,
    or build/tables/ (chapter 05's saved tables) -> docs/results/<name>/."""
    if source.is_dir():
        target = RESULTS / name
        target.mkdir(exist_ok=True)
        for table in ("05_evaluation.json", "05_calibration.json"):
            shutil.copy(source / table, target / table)
        return target
    target = RESULTS / "run-times" / f"{name}.json"
    shutil.copy(source, target)
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is out of date")
    p.add_argument("--take", type=Path, help="a course run's build/run-times.json or build/tables/ folder")
    p.add_argument("--as", dest="as_", help="its name under docs/results/ (e.g. cpu-1, smoke, ch05-cpu)")
    args = p.parse_args(argv)
    if args.take:
        if not args.as_:
            p.error("--take needs --as NAME")
        print(f"{args.take} -> {take(args.take, args.as_)}")
    if args.check:
        out = stale()
        for region in out:
            print(f"out of date: {region} (python tools/write_results.py rewrites it)")
        return 1 if out else 0
    for region in write():
        print(f"rewrote {region}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
