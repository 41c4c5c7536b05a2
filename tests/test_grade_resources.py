"""The grader's own process never does unbounded work on what a student's code produced (issue
#34, item 2): a callback is refused before it runs when the student's tensors could broadcast
past its bound, a reply that is a broadcast view of a few numbers is refused as it is read, and
while checks run the grader's address space may grow by a bounded amount only. One grading run
(module fixture) holds the hostile notebooks, whose other tasks are graded as usual.
Needs bubblewrap, as the grader does.
"""
from __future__ import annotations

import resource

import pytest
import torch
from test_grade import edit, events, needs_bwrap, run_grader, solution, statuses, write

from cvae_lib.grade.grader import _bounded_grader
from cvae_lib.grade.remote import CALLBACK_BROADCAST, _callback_size_problem

# guided_latent_step hands the check's model (a callback that runs in the grader) tensors that
# broadcast to 60,000 x 60,000 floats (14 GB), the case; it got the grader to 11 GB.
BROADCAST = '''    n = 60_000
    model(torch.zeros(1, 1, 1, n), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))
'''

# The worker's encoder and its size check, rewritten by the student: each tensor leaves as a
# stride-0 view of one number standing for 2**20 of them (a bigger one is over the element
# limit; a view of one number could stand for any size, and is refused whatever its size).
FORGE = '''import torch
import cvae_lib.grade.wire as _wire
import gc
for _g in [o for o in gc.get_objects() if isinstance(o, dict) and "_elements" in o and "Channel" in o]:
    _g["_elements"] = lambda *a, **k: 0                      # the worker's own size check, gone
_encode = _wire.encode
def _forged(value, callbacks=None, depth=0):
    if isinstance(value, torch.Tensor):
        return {"tag": "tensor", "value": torch.zeros(1).expand(1 << 20), "grad": False}
    return _encode(value, callbacks, depth)
_wire.encode = _forged
'''

# An honest but oversized answer: a tensor of 2**25 bytes-sized elements (over the element limit).
OVERSIZED = "    return torch.zeros(1 << 25, dtype=torch.uint8)\n"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("resources") / "submitted"
    ex06 = solution("ex06_latent_diffusion.ipynb")
    write(subs, "broadcaster", edit(ex06, "    tt = torch.full((zt.shape[0],), t, dtype=torch.long)\n",
                                    BROADCAST + "    tt = torch.full((zt.shape[0],), t, dtype=torch.long)\n"),
          "ex06_latent_diffusion.ipynb")
    write(subs, "forger", edit(solution(), "def psnr(", FORGE + "def psnr("))
    write(subs, "oversized", edit(solution(), "def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:",
                                  "def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:\n" + OVERSIZED))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = run_grader(subs, subs.parent / "book", "--timeout", "60")
    return {"table": table, "grew_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}


@needs_bwrap
def test_a_callback_on_broadcasting_tensors_is_refused_before_it_runs(graded):
    rows = [r for r in graded["table"]["broadcaster"] if r["check"].startswith("ex06.guided_latent_step")]
    assert rows and all(r["status"] in ("error", "failed") for r in rows)
    assert any("the grader refuses to call the check's model" in r["message"] for r in rows)
    assert graded["grew_kb"] < 1 << 20, f"the grader's peak memory grew by {graded['grew_kb'] >> 10} MB"


@needs_bwrap
def test_a_reply_that_is_a_broadcast_view_is_refused_as_it_is_read(graded):
    rows = graded["table"]["forger"]
    assert "passed" not in statuses(rows)[:5]
    assert "view of other data" in events(rows)["tampering"]


@needs_bwrap
def test_an_oversized_answer_is_an_error_in_words(graded):
    rows = [r for r in graded["table"]["oversized"] if r["check"].startswith("psnr")]
    assert rows and all(r["status"] == "error" for r in rows)
    assert "too large for the grader to check" in rows[0]["message"]


@needs_bwrap
def test_the_rest_of_the_notebook_is_graded_as_usual(graded):
    rows = [r for r in graded["table"]["oversized"] if r["check"].startswith(("interpolate", "bottleneck"))]
    assert len(rows) == 7 and set(statuses(rows)) == {"passed"}


def test_callback_bounds_are_checked_from_sizes_alone():
    small = (torch.zeros(6, 4, 8, 8), torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    assert _callback_size_problem(small, {}) is None                     # ex06's doubled batch
    n = 5000
    wide = (torch.zeros(1, 1, 1, n), torch.zeros(n), torch.zeros(n))
    assert n ** 3 > CALLBACK_BROADCAST and "broadcast" in _callback_size_problem(wide, {})
    assert "tensor of" in _callback_size_problem((torch.zeros(1 << 21),), {})


def test_the_graders_own_process_is_bounded_while_it_checks():
    """Inside the window where checks run on student data, an allocation past the headroom is an
    error (which the check reports), not the grader's process growing until the machine kills it."""
    with _bounded_grader(headroom=512 << 20):
        with pytest.raises((RuntimeError, MemoryError)):
            torch.empty(2 << 30, dtype=torch.uint8)
    assert torch.empty(2 << 30, dtype=torch.uint8).numel() == 2 << 30     # address space only; fine again
