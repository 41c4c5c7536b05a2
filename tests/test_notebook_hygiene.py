"""Notebooks are committed clean, state their measured run times, and read the profile once."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted(p for folder in ("notebooks", "solutions", "exercises") for p in (ROOT / folder).glob("*.ipynb"))
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"cells {dirty} carry outputs: clear them (make notebooks rebuilds clean copies)"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_header_and_profile(path):
    nb = nbformat.read(path, as_version=4)
    header = nb.cells[0].source
    assert "smoke" in header and "cpu" in header and re.search(r"\d+\s*(s|min)\b", header), \
        "the first cell should state the measured smoke and cpu run times"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count("get_profile()") == 1, "read the profile exactly once, in the first cells"
