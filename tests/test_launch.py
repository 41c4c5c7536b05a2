"""Launching: every notebook carries its Colab badge and setup cell; the setup cell's Colab path
installs the course without touching torch (installation stubbed, no network); README badges."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_notebooks  # noqa: E402

NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for folder in ("notebooks", "solutions", "exercises")
                   for p in (ROOT / folder).glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_has_badge_and_setup_cell(path):
    nb = nbformat.read(ROOT / path, as_version=4)
    first_md = next(c for c in nb.cells if c.cell_type == "markdown")
    assert build_notebooks.colab_badge(path) in first_md.source, "missing or wrong Colab badge"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code.source == build_notebooks.SETUP_CELL, "first code cell is not the setup cell"


def _run_setup(monkeypatch, on_colab: bool, installed: bool) -> list[list[str]]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if installed else None)
                        if name == "cvae_lib" else real(name, *a))
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(build_notebooks.SETUP_CELL, {})
    return calls


def test_setup_cell_on_colab_installs_course_but_not_torch(monkeypatch):
    calls = _run_setup(monkeypatch, on_colab=True, installed=False)
    assert calls[0][:2] == ["git", "clone"] and build_notebooks.REPO_URL in calls[0]
    pip = calls[1]
    assert pip[1:4] == ["-m", "pip", "install"] and pip[-1] == "/content/cvae-course"
    assert not any("torch" in part for part in pip), "must keep Colab's own torch"
    assert len(calls) == 2


def test_setup_cell_does_nothing_elsewhere(monkeypatch):
    assert _run_setup(monkeypatch, on_colab=False, installed=True) == []
    assert _run_setup(monkeypatch, on_colab=True, installed=True) == []  # second run on Colab


def test_pyproject_keeps_colab_torch():
    """pip install on Colab must not replace its torch: only lower bounds, no pins or caps."""
    import tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torchish = [d for d in deps if d.startswith(("torch", "torchvision"))]
    assert torchish and all(">=" in d and "==" not in d and "<" not in d for d in torchish)


def test_readme_links_every_notebook_and_binder():
    readme = (ROOT / "README.md").read_text()
    missing = [p for p in NOTEBOOKS if not p.startswith("solutions/") and build_notebooks.colab_badge(p) not in readme]
    assert not missing, f"README lacks Colab badges for {missing}"
    assert f"mybinder.org/v2/gh/{build_notebooks.REPO}/HEAD" in readme
