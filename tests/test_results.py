"""Numbers generated, not typed: every marked results region of the README and the docs is what
tools/write_results.py renders from the results files, and a region edited by hand (or left
behind by a new measurement) fails here with its name and the command that fixes it."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import write_results  # noqa: E402


def test_every_marked_region_says_what_its_results_files_say():
    stale = write_results.stale()
    assert not stale, ("these regions disagree with their results files: " + "; ".join(stale)
                       + ". Run `python tools/write_results.py` (make results) and commit the pages.")


def test_every_region_has_one_source_and_every_template_a_region():
    names = [name for _, name, _ in write_results.regions()]
    assert len(names) == len(set(names)), "a region name is used twice"
    templates = {p.stem for p in (write_results.RESULTS / "templates").glob("*.md")}
    assert templates | set(write_results.RENDERERS) == set(names)


def test_a_digit_changed_by_hand_is_caught(tmp_path):
    for page in ("README.md", "docs/results.md"):
        (tmp_path / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, tmp_path / page)
    assert write_results.stale(tmp_path) == []
    page = tmp_path / "docs" / "results.md"
    page.write_text(page.read_text().replace("| FID | 122.92 |", "| FID | 122.93 |"))
    assert write_results.stale(tmp_path) == ["docs/results.md: fid-real-vs-real"]
    assert write_results.write(tmp_path) == ["docs/results.md: fid-real-vs-real"]
    assert write_results.stale(tmp_path) == [] and "| FID | 122.92 |" in page.read_text()


def test_placeholders_read_nested_values_and_say_which_is_missing():
    assert write_results.render_template("{fid/train_vs_test/2000:.1f} at N = 2,000") == "24.9 at N = 2,000"
    assert write_results.render_template("{shipped.ldm_prior/metrics/judge/@guidance/acc:.0%}") == "81%"
    assert write_results.render_template("{bench/machine/peak_tflops*1000:.0f}") == "157"
    with pytest.raises(KeyError, match="fid/train_vs_test/7"):
        write_results.render_template("{fid/train_vs_test/7}")


def test_a_course_run_becomes_the_committed_measurement_with_one_command(tmp_path, monkeypatch):
    """`--take build/run-times.json --as NAME` copies the file make course wrote into
    docs/results/run-times/, where the run-times region and course.run_minutes read it."""
    monkeypatch.setattr(write_results, "RESULTS", tmp_path)
    (tmp_path / "run-times").mkdir()
    run = {"profile": "cpu", "total_seconds": 60.0, "chapters": {"01": {"notebook": "01_x.ipynb", "seconds": 60.0}}}
    (tmp_path / "build.json").write_text(json.dumps(run))
    assert write_results.take(tmp_path / "build.json", "cpu-3") == tmp_path / "run-times" / "cpu-3.json"
    assert json.loads((tmp_path / "run-times" / "cpu-3.json").read_text()) == run


def test_save_table_writes_the_rows_as_data_beside_the_markdown(tmp_path):
    from cvae_lib.plotting import save_table

    save_table([{"model": "a", "FD (judge)": 1.25}], "t", "a note", folder=str(tmp_path))
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["rows"] == [{"model": "a", "FD (judge)": 1.25}] and data["note"] == "a note"
    assert (tmp_path / "t.md").read_text().startswith("| model | FD (judge) |")
