"""The headless course runner's `ensure_runs`: run only missing chapters, and say what failed."""
from __future__ import annotations

import pytest

from cvae_lib.course import ensure_runs


def test_runs_only_the_chapters_whose_checkpoints_are_missing(tmp_path):
    (tmp_path / "ae.pt").write_bytes(b"x")
    ran = []

    def runner(ch):
        ran.append(ch)
        for name in {"03": ["a.pt", "b.pt"], "04": ["ddpm.pt"]}[ch]:
            (tmp_path / name).write_bytes(b"x")
        return 0

    needed = {"ae.pt": "01", "a.pt": "03", "b.pt": "03", "ddpm.pt": "04"}
    assert ensure_runs(needed, tmp_path, runner=runner) == ["03", "04"]
    assert ran == ["03", "04"]                                 # each chapter once, in order
    assert ensure_runs(needed, tmp_path, runner=runner) == []  # nothing left to do


def test_a_failing_chapter_is_named(tmp_path):
    with pytest.raises(RuntimeError, match="chapter 03 failed"):
        ensure_runs({"a.pt": "03"}, tmp_path, runner=lambda ch: 1)


def test_a_chapter_that_writes_nothing_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="a.pt still missing"):
        ensure_runs({"a.pt": "03"}, tmp_path, runner=lambda ch: 0)
