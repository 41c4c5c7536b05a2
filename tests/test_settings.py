"""cvae_lib.settings: the one place that reads the course's CVAE_* environment variables."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cvae_lib import settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_variable_the_library_names_is_read_in_settings_and_documented():
    named = set()
    for path in (ROOT / "cvae_lib").rglob("*.py"):
        if "grade" not in path.parts:                  # the grader's instructor secret is its own
            named |= set(re.findall(r"CVAE_[A-Z_]+[A-Z]", path.read_text()))
    assert named <= set(settings.VARIABLES), sorted(named - set(settings.VARIABLES))
    install = (ROOT / "docs" / "install.md").read_text()
    assert [v for v in settings.VARIABLES if f"`{v}`" not in install] == []
    readers = [p.relative_to(ROOT) for p in (ROOT / "cvae_lib").rglob("*.py")
               if re.search(r"environ(\.get)?\(?\[?[\"']CVAE_", p.read_text()) and p.name != "settings.py"]
    assert readers == [], f"read CVAE_* through cvae_lib.settings, not os.environ: {readers}"


def test_current_reads_the_environment_each_time(monkeypatch, tmp_path):
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CVAE_RUNS_DIR", raising=False)
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "0")
    s = settings.current()
    assert s.cache_dir == tmp_path and settings.runs_dir("cpu") == tmp_path / "runs" / "cpu"
    assert not s.static_widgets and s.amp in ("auto", os.environ.get("CVAE_AMP"))
    monkeypatch.setenv("CVAE_RUNS_DIR", str(tmp_path / "r"))
    assert settings.runs_dir("smoke") == tmp_path / "r" / "smoke"


def test_environment_sets_for_a_nested_run_and_restores_also_on_error(monkeypatch):
    monkeypatch.setenv("CVAE_PROFILE", "cpu")
    monkeypatch.delenv("CVAE_COURSE_OUT", raising=False)
    with pytest.raises(RuntimeError):
        with settings.environment(CVAE_PROFILE="smoke", CVAE_COURSE_OUT="/tmp/out") as s:
            assert s.profile == "smoke" and os.environ["CVAE_COURSE_OUT"] == "/tmp/out"
            raise RuntimeError("a failing notebook")
    assert os.environ["CVAE_PROFILE"] == "cpu" and "CVAE_COURSE_OUT" not in os.environ
    with pytest.raises(KeyError, match="not a course setting"):
        with settings.environment(CVAE_PROFLE="smoke"):
            pass
