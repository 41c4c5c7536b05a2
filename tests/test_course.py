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


def test_the_runner_prints_clean_progress_lines_and_leaves_no_kernel(tmp_path, capfd, monkeypatch):
    """Kernels run on Unix sockets, not TCP: no "running over TCP" warning in the middle of the
    progress line, no port opened, and the kernel is shut down after its notebook."""
    import os
    import subprocess

    import nbformat

    from cvae_lib.course import main

    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; print('kernel', os.getpid())")])
    nbformat.write(nb, tmp_path / "notebooks" / "00_tiny.ipynb")
    monkeypatch.setenv("CVAE_PROFILE", "smoke")
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "build"), "--no-report"]) == 0
    out, err = capfd.readouterr()
    assert "00_tiny.ipynb ... " in out and "TCP" not in out + err and "Parent appears to have exited" not in err
    done = nbformat.read(tmp_path / "build" / "notebooks" / "00_tiny.ipynb", as_version=4)
    pid = int(done.cells[0].outputs[0]["text"].split()[1])
    ps = subprocess.run(["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True).stdout.strip()
    assert ps in ("", "Z"), f"the kernel {pid} is still running ({ps})"
    assert os.name == "nt" or not list(tmp_path.glob("kernel*"))     # its sockets went with their folder


def test_the_runner_reports_each_chapter_and_keeps_a_failed_one_to_read(tmp_path, capfd, monkeypatch):
    import nbformat

    from cvae_lib.course import main

    (tmp_path / "notebooks").mkdir()
    cell = nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[cell("print('fine')")]), tmp_path / "notebooks" / "00_ok.ipynb")
    monkeypatch.setenv("CVAE_PROFILE", "smoke")
    out = tmp_path / "build"
    assert main(["--root", str(tmp_path), "--out", str(out)]) == 0
    capfd.readouterr()
    report = (out / "course.md").read_text()
    assert "profile `smoke`" in report and "| [00_ok.ipynb](notebooks/00_ok.ipynb) |" in report

    nbformat.write(nbformat.v4.new_notebook(cells=[cell("x = 1"), cell("1 / 0"), cell("print('never')")]),
                   tmp_path / "notebooks" / "01_broken.ipynb")
    assert main(["--root", str(tmp_path), "--out", str(out), "01"]) == 1
    printed = capfd.readouterr().out
    assert "01_broken.ipynb ... FAILED" in printed and "ZeroDivisionError" in printed
    broken = nbformat.read(out / "notebooks" / "01_broken.ipynb", as_version=4)   # kept, partly run
    assert broken.cells[1].outputs[0]["ename"] == "ZeroDivisionError" and not broken.cells[2].outputs


@pytest.mark.slow
def test_a_chapter_run_by_another_chapters_ensure_runs_is_not_run_twice(tmp_path, capfd, monkeypatch):
    """Chapter 05 needs chapter 06's prior: in a course run, 06 runs once (inside 05, into the same
    --out folder of the same clone), and the report says where its time went."""
    import os

    import nbformat

    from cvae_lib.course import main

    (tmp_path / "notebooks").mkdir()
    runs, log = tmp_path / "runs", tmp_path / "ran.txt"
    cell = nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[cell(
        f"from cvae_lib.course import ensure_runs\nensure_runs({{'prior.pt': '01'}}, {str(runs)!r})")]),
        tmp_path / "notebooks" / "00_needs.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell(
        f"from pathlib import Path\nPath({str(runs)!r}).mkdir(exist_ok=True)\n"
        f"(Path({str(runs)!r}) / 'prior.pt').write_bytes(b'x')\n"
        f"with open({str(log)!r}, 'a') as f: f.write('01\\n')")]),
        tmp_path / "notebooks" / "01_makes.ipynb")
    monkeypatch.setenv("CVAE_PROFILE", "smoke")
    monkeypatch.delenv("CVAE_COURSE_DIR", raising=False)
    out = tmp_path / "build"
    assert main(["--root", str(tmp_path), "--out", str(out)]) == 0
    printed = capfd.readouterr().out
    assert log.read_text() == "01\n"                                       # once, not twice
    assert (out / "notebooks" / "01_makes.ipynb").exists()                  # the nested copy, in --out
    assert "01_makes.ipynb ... already run by an earlier chapter" in printed
    assert "| [01_makes.ipynb](notebooks/01_makes.ipynb) | run by an earlier chapter's ensure_runs" in (
        out / "course.md").read_text()
    assert "CVAE_COURSE_OUT" not in os.environ and "CVAE_COURSE_DIR" not in os.environ   # nothing leaks
    assert main(["--root", str(tmp_path), "--out", str(out), "01"]) == 0    # a later run runs it again
    assert log.read_text() == "01\n01\n"


def test_own_runs_trains_nothing_unless_asked_and_says_how(tmp_path, capsys, monkeypatch):
    """Chapter 05 opened on its own: the runs that exist are used, the missing ones are named
    with the chapter, the flag and the command that make them, and what that would cost."""
    from cvae_lib.course import RETRAIN_ENV, own_runs, run_minutes

    monkeypatch.delenv(RETRAIN_ENV, raising=False)
    minutes = run_minutes("cpu")
    (tmp_path / "ae.pt").write_bytes(b"x")
    needed = {"ae.pt": "01", "a.pt": "03", "b.pt": "03", "ddpm.pt": "04"}
    never = lambda ch: pytest.fail(f"chapter {ch} was run")                      # noqa: E731
    assert own_runs(needed, tmp_path, profile="cpu", runner=never) == {"ae.pt"}
    out = capsys.readouterr().out
    assert "chapter 03's run not found" in out and "a.pt, b.pt" in out and "chapter 04's run not found" in out
    assert "RETRAIN_OWN_RUNS = True" in out and "python -m cvae_lib.course 03 04" in out
    assert f"about {minutes['03'] + minutes['04']:.0f} min in the cpu profile" in out


def test_own_runs_prints_the_cost_before_it_trains(tmp_path, capsys, monkeypatch):
    from cvae_lib.course import RETRAIN_ENV, own_runs, run_minutes

    monkeypatch.delenv(RETRAIN_ENV, raising=False)
    seen = []

    def runner(ch):
        seen.append(capsys.readouterr().out)                                     # printed so far
        (tmp_path / f"{ch}.pt").write_bytes(b"x")
        return 0

    assert own_runs({"01.pt": "01", "06.pt": "06"}, tmp_path, retrain=True, profile="cpu", runner=runner) == {
        "01.pt", "06.pt"}
    cost = run_minutes("cpu")["01"] + run_minutes("cpu")["06"]
    assert f"chapter(s) 01, 06, about {cost:.0f} min in the cpu profile" in seen[0]
    assert own_runs({"01.pt": "01"}, tmp_path, retrain=True, runner=never_called) == {"01.pt"}
    assert "found in" in capsys.readouterr().out


def never_called(ch):
    raise AssertionError(f"chapter {ch} was run although its checkpoint exists")


def test_the_course_runner_asks_own_runs_to_train(tmp_path, monkeypatch):
    """In a course run (or with CVAE_RETRAIN_OWN_RUNS=1) own_runs trains what is missing, so chapter
    05's table has the rows of every chapter; an explicit CVAE_RETRAIN_OWN_RUNS=0 is kept."""
    import nbformat

    from cvae_lib.course import RETRAIN_ENV, main, own_runs

    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import os; print('retrain', os.environ.get({RETRAIN_ENV!r}))")]), tmp_path / "notebooks" / "00_env.ipynb")
    monkeypatch.setenv("CVAE_PROFILE", "smoke")
    for given, seen in ((None, "1"), ("0", "0")):
        if given is None:
            monkeypatch.delenv(RETRAIN_ENV, raising=False)
        else:
            monkeypatch.setenv(RETRAIN_ENV, given)
        assert main(["--root", str(tmp_path), "--out", str(tmp_path / "build"), "--no-report"]) == 0
        done = nbformat.read(tmp_path / "build" / "notebooks" / "00_env.ipynb", as_version=4)
        assert done.cells[0].outputs[0]["text"].split() == ["retrain", seen]

    ran = []

    def runner(ch):
        ran.append(ch)
        (tmp_path / "a.pt").write_bytes(b"x")
        return 0

    monkeypatch.setenv(RETRAIN_ENV, "1")                                   # what the nested chapters see
    assert own_runs({"a.pt": "03"}, tmp_path, runner=runner) == {"a.pt"} and ran == ["03"]


def test_chapter_minutes_adds_the_measured_times():
    """The slowest committed run of each chapter, rounded up to half a minute; a profile never
    measured falls back to the estimate."""
    from cvae_lib.compute import chapter_work, estimate_minutes
    from cvae_lib.course import chapter_minutes, run_minutes
    from cvae_lib.profiles import get_profile

    cpu = run_minutes("cpu")
    assert set(cpu) >= {"01", "03", "04", "06"} and all(m == int(2 * m) / 2 for m in cpu.values())
    assert chapter_minutes(["01", "03", "04", "06"], "cpu") == sum(cpu[c] for c in ("01", "03", "04", "06"))
    assert chapter_minutes([], "smoke") == 0
    assert run_minutes("gpu") == {}
    assert chapter_minutes(["04"], "gpu") == estimate_minutes(chapter_work("04", get_profile("gpu")))


@pytest.mark.slow
def test_a_course_run_writes_its_times_and_takes_a_nested_chapter_out_of_the_one_that_ran_it(tmp_path, monkeypatch):
    """build/run-times.json has the format of the committed measurements (docs/results/run-times/),
    and run_minutes reads it."""
    import json

    import nbformat

    from cvae_lib.course import main, run_minutes

    (tmp_path / "notebooks").mkdir()
    runs, cell = tmp_path / "runs", nbformat.v4.new_code_cell
    nbformat.write(nbformat.v4.new_notebook(cells=[cell(
        f"from cvae_lib.course import ensure_runs\nensure_runs({{'prior.pt': '01'}}, {str(runs)!r})")]),
        tmp_path / "notebooks" / "00_needs.ipynb")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell(
        f"import time\nfrom pathlib import Path\ntime.sleep(1)\nPath({str(runs)!r}).mkdir(exist_ok=True)\n"
        f"(Path({str(runs)!r}) / 'prior.pt').write_bytes(b'x')")]), tmp_path / "notebooks" / "01_makes.ipynb")
    monkeypatch.setenv("CVAE_PROFILE", "smoke")
    monkeypatch.delenv("CVAE_COURSE_DIR", raising=False)
    assert main(["--root", str(tmp_path), "--out", str(tmp_path / "build")]) == 0
    times = json.loads((tmp_path / "build" / "run-times.json").read_text())
    assert times["profile"] == "smoke" and set(times["chapters"]) == {"00", "01"}
    needs, makes = times["chapters"]["00"], times["chapters"]["01"]
    assert needs["ran"] == ["01"] and makes["run_by"] == "00" and makes["seconds"] >= 1
    assert times["total_seconds"] == pytest.approx(needs["seconds"] + makes["seconds"], abs=0.2)
    committed = tmp_path / "docs" / "results" / "run-times"
    committed.mkdir(parents=True)
    (committed / "smoke-1.json").write_text(json.dumps(times))
    assert run_minutes("smoke", tmp_path)["01"] == 0.5
