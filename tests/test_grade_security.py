"""Hostile submissions: none of them may earn a point it did not earn, escape its sandbox, or
change another student's grade. One grading run (module fixture) holds them all; each test
checks one property. Needs bubblewrap, as the grader does."""
from __future__ import annotations

import hashlib
import socket
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import torch
from test_grade import ROOT, edit, events, exercise, needs_bwrap, run_grader, solution, statuses, write

from cvae_lib import metrics
from cvae_lib.checks import CHECK_MIME, collecting, ex01

pytestmark = needs_bwrap
LIBRARY_FILE = ROOT / "cvae_lib" / "checks" / "ex01.py"
PLANTED = ROOT / "cvae_lib" / "checks" / "planted_by_student.py"
MARKER = "4242.125"                     # the detached child's `sleep` argument, to find it in /proc
WRONG_PSNR = ("mse = (x - x_hat).pow(2).flatten(1).mean(dim=1)  # (B, C*H*W) -> (B,)\n"
              "    return 10 * torch.log10(1.0 / mse)", "return torch.zeros(len(x))")
PSNR_MUST_FAIL = ["psnr: a uniform error of 0.1 gives 20 dB", "psnr: identical images give +inf",
                  "psnr: MSE is averaged per image, not over the whole batch"]


def _passing_results() -> dict[str, list[dict]]:
    """Real check results of the reference functions, to forge outputs with."""
    refs = {"check_psnr": metrics.psnr, "check_interpolate": lambda a, b, n: torch.lerp(
        a, b, torch.linspace(0, 1, n)[:, None]), "check_bottleneck": lambda block, x: block(x)}
    with collecting():
        return {name: [vars(r) for r in getattr(ex01, name)(fn)] for name, fn in refs.items()}


def _forged(results: list[dict]):
    text = "\n".join(f"  ✓ passed  {r['prop']}" for r in results)
    return nbformat.v4.new_output("display_data", data={"text/plain": text, CHECK_MIME: {"results": results}})


def forged_outputs_on_stub():
    """The handed-out stub with every check cell's output forged to 'passed', and a forged
    output on a cell that never ran."""
    nb, results = exercise(), _passing_results()
    for cell in nb.cells:
        name = next((n for n in results if f".{n}(" in cell.get("source", "")), None)
        if name:
            cell.outputs, cell.execution_count = [_forged(results[name])], 7
    never = nbformat.v4.new_code_cell("pass")
    never.outputs = [_forged([r for rs in results.values() for r in rs])]
    nb.cells.append(never)
    return nb


PRINTER = '''from IPython.display import display
from cvae_lib.checks import CHECK_MIME
FAKE = {CHECK_MIME: {"results": [{"exercise": "psnr", "prop": p, "status": "passed", "message": ""}
                                 for p in ("a uniform error of 0.1 gives 20 dB", "identical images give +inf")]},
        "text/plain": "Checking psnr:\\n  ✓ passed"}
display(FAKE, raw=True)
print("Checking psnr:\\n  ✓ passed  a uniform error of 0.1 gives 20 dB")
'''

PATCHER = '''import builtins, torch, cvae_lib.checks as C, cvae_lib.checks.ex01 as E, cvae_lib.metrics as M
C.expect = C.expect_close = C.expect_shape = lambda *a, **k: None
C.run_checks = lambda exercise, props: []
E.check_psnr = lambda f: []
M.psnr = lambda x, y: torch.zeros(len(x))
torch.allclose = lambda *a, **k: True
torch.isinf = lambda t: torch.ones_like(t, dtype=torch.bool)
builtins.abs = lambda v: 0
'''

VANDAL = '''import os, socket, subprocess
escaped = []
def _try(what, f):
    try:
        f()
        escaped.append(what)
    except Exception:
        pass
_try("append to the library", lambda: open({lib!r}, "a").close())
_try("plant a module", lambda: open({planted!r}, "w").write("raise SystemExit"))
_try("delete from the gradebook folder", lambda: os.remove({sentinel!r}))
_try("overwrite another submission", lambda: open({other!r}, "w").write("{{}}"))
_try("reach the host's loopback", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"x"))
_try("reach the internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
subprocess.Popen(["setsid", "sleep", "{marker}"], start_new_session=True)
subprocess.Popen(["sh", "-c", "setsid sleep {marker} >/dev/null 2>&1 &"])
open("/tmp/vandal_marker", "w").write("x")
open("vandal_marker", "w").write("x")
assert not escaped, escaped          # any escape leaves psnr undefined: the vandal's psnr checks would fail
'''


PEEKER = '''import os
assert not os.path.exists("/tmp/vandal_marker") and not os.path.exists("vandal_marker"), "saw another notebook's files"
'''

CHANNEL = '''import os
for fd in range(3, 30):
    try:
        os.write(fd, b"\\xff" * 64)      # garbage on every descriptor: the grader's channel among them
    except OSError:
        pass
'''


def _prefix(nb, marker: str, code: str):
    """`code` run at the top of the cell that contains `marker`."""
    return edit(nb, marker, code + marker)


def _tampered_cells():
    nb = edit(solution(), *WRONG_PSNR)
    library_psnr = 'ex01.check_psnr(lambda a, b: __import__("cvae_lib.metrics").metrics.psnr(a, b));'
    nb = edit(nb, "ex01.check_psnr(psnr);", library_psnr)
    nb = edit(nb, "ex01.check_interpolate(interpolate);", 'print("Checking interpolate: ✓ passed")')
    nb.cells = [c for c in nb.cells if "check_bottleneck" not in c.source]
    return nb


def _new_ids_without_psnr():
    nb = nbformat.from_dict(solution())
    nb.cells = [c for c in nb.cells if "def psnr(" not in c.source]
    for cell in nb.cells:
        cell.id = uuid.uuid4().hex[:8]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    subs, book = tmp / "submitted", tmp / "book"
    book.mkdir()
    (book / "sentinel").write_text("instructor's file")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    sol = solution()
    other = write(subs, "correct", sol)
    write(subs, "a_patcher", _prefix(edit(sol, *WRONG_PSNR), "def psnr(", PATCHER))
    write(subs, "b_vandal", _prefix(sol, "def psnr(", VANDAL.format(
        lib=str(LIBRARY_FILE), planted=str(PLANTED), sentinel=str(book / "sentinel"), other=str(other),
        port=server.getsockname()[1], marker=MARKER)))
    write(subs, "forged", forged_outputs_on_stub())
    write(subs, "printer", _prefix(edit(sol, *WRONG_PSNR), "def psnr(", PRINTER))
    write(subs, "tampered", _tampered_cells())
    write(subs, "renumbered", _new_ids_without_psnr())
    write(subs, "membomb", _prefix(sol, "def interpolate(", "hoard = bytearray(64 << 30)\n"))
    write(subs, "channel", _prefix(sol, "def interpolate(", CHANNEL))
    write(subs, "z_peeker", _prefix(sol, "def psnr(", PEEKER))
    library_before = hashlib.sha256(LIBRARY_FILE.read_bytes()).hexdigest()
    other_before = other.read_bytes()
    started = time.monotonic()
    table = run_grader(subs, book, "--timeout", "40", "--cpu-time", "20", "--memory", "6")
    yield {"table": table, "server": server, "book": book, "other": other, "other_before": other_before,
           "library_before": library_before, "seconds": time.monotonic() - started}
    server.close()
    PLANTED.unlink(missing_ok=True)


def _status(rows, check: str) -> str:
    return next(r["status"] for r in rows if r["check"] == check)


def test_forged_and_never_run_outputs_count_for_nothing(graded):
    rows = graded["table"]["forged"]
    assert set(statuses(rows)) == {"not implemented"} and "nothing implemented" in events(rows)


def test_printed_check_results_count_for_nothing(graded):
    rows = graded["table"]["printer"]
    assert all(_status(rows, c) == "failed" for c in PSNR_MUST_FAIL)


def test_patching_checks_torch_and_builtins_in_the_notebook_changes_nothing(graded):
    rows = graded["table"]["a_patcher"]
    assert all(_status(rows, c) == "failed" for c in PSNR_MUST_FAIL)
    assert statuses(graded["table"]["correct"]) == ["passed"] * 12      # graded after it, unharmed


def test_edited_and_removed_check_cells_are_replaced_by_the_graders(graded):
    rows = graded["table"]["tampered"]
    assert all(_status(rows, c) == "failed" for c in PSNR_MUST_FAIL)   # its own psnr, not the library's
    assert statuses(rows)[5:] == ["passed"] * 7                         # checks it removed still ran
    assert {"check cell edited", "check cell removed"} <= set(events(rows))


def test_solution_cells_are_found_by_what_they_define_and_missing_ones_say_so(graded):
    rows = graded["table"]["renumbered"]
    assert statuses(rows) == ["missing"] * 5 + ["passed"] * 7
    assert "psnr" in events(rows)["solution cell missing"]


def test_no_writes_outside_the_notebooks_own_folder(graded):
    assert hashlib.sha256(LIBRARY_FILE.read_bytes()).hexdigest() == graded["library_before"]
    assert not PLANTED.exists()
    assert (graded["book"] / "sentinel").read_text() == "instructor's file"
    assert graded["other"].read_bytes() == graded["other_before"]
    assert statuses(graded["table"]["b_vandal"]) == ["passed"] * 12     # its attempts failed, grading went on
    assert statuses(graded["table"]["z_peeker"]) == ["passed"] * 12     # nothing of the vandal's folder left


def test_no_network(graded):
    with pytest.raises(TimeoutError):
        graded["server"].accept()                                       # the vandal's connect never arrived


def test_detached_children_are_gone_after_grading(graded):
    alive = []
    for proc in Path("/proc").iterdir():
        try:
            if MARKER in (proc / "cmdline").read_bytes().decode(errors="replace"):
                alive.append(proc.name)
        except OSError:
            continue
    assert alive == []


def test_memory_bomb_hits_the_memory_limit(graded):
    rows = graded["table"]["membomb"]
    assert statuses(rows) == ["passed"] * 5 + ["error"] * 4 + ["passed"] * 3
    assert "memory limit" in events(rows)["memory limit"]


def test_garbage_on_the_graders_channel_stops_that_notebook_only(graded):
    rows = graded["table"]["channel"]
    assert statuses(rows) == ["passed"] * 5 + ["error"] * 7
    assert "protocol" in events(rows)["tampering"] or "channel" in events(rows)["tampering"]


def test_hostile_run_stays_fast(graded):
    assert graded["seconds"] < 240, f"grading ten notebooks took {graded['seconds']:.0f} s"   # about 60 on an idle VM


def test_sleeping_notebook_hits_the_wall_clock_limit(tmp_path):
    subs = tmp_path / "submitted"
    write(subs, "sleeper", _prefix(solution(), "def interpolate(", "import time; time.sleep(600)\n"))
    started = time.monotonic()
    rows = run_grader(subs, tmp_path / "book", "--timeout", "20")["sleeper"]
    assert time.monotonic() - started < 45
    assert set(statuses(rows)[5:]) == {"error"} and "within 20 s" in events(rows)["time limit"]
