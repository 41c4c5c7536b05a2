"""A pass needs the student's own computation (issue #34, item 3).

* A graded function that calls the library's own implementation of its task (the checks'
  `REFERENCES`) earns no points for that task, and the gradebook says why; so does one that
  works only when the grader is on the call stack, which then has to take its answer from
  somewhere: the library (this test) or memorised inputs (the next case).
* The grader draws the checks' inputs from a fresh secret seed per notebook
  (`cvae_lib.checks.set_input_seed`, where the checks have it) and resets them to the public seeds
  afterwards, so a lookup table of the public inputs passes the student's self-check and fails
  grading.

REFERENCES entries for the tasks used here are merged into whatever the checks modules define,
so this test holds before and after the exercises' own lists. One grading run holds every
submission; each test checks one property. Needs bubblewrap, as the grader does.
"""
from __future__ import annotations

import pytest
import torch
from test_grade import edit, events, is_answer, needs_bwrap, run_grader, solution, write

import cvae_lib.checks as checks
from cvae_lib.checks import collecting, ex02, ex04, ex06
from cvae_lib.grade.grader import LIBRARY

pytestmark = needs_bwrap

MINE = {
    ex02: {"reparameterize": ["cvae_lib.models.likelihoods.reparameterize"]},
    ex04: {"add_noise": ["cvae_lib.diffusion.Diffusion.add_noise"],
           "reverse_step": ["cvae_lib.diffusion.Diffusion.step"]},
    ex06: {"decode_samples": ["cvae_lib.models.first_stage.FirstStage.decode_latent"]},
}

LIBRARY_DIFFUSION = "from cvae_lib.diffusion import Diffusion, DiffusionConfig\n" \
                    "_D = Diffusion(DiffusionConfig(T=1000, clip_x0=False))\n"

# Works only when called by the grader's worker (it raises in the student's own notebook), and
# then answers with the library's implementation.
ON_THE_STACK = LIBRARY_DIFFUSION + '''import sys
def _graded():
    f = sys._getframe(2)
    while f is not None and "cvae_lib/grade/worker" not in f.f_code.co_filename:
        f = f.f_back
    return f is not None
'''


def _prefix(nb, marker: str, code: str):
    return edit(nb, marker, code + marker)


def lookup_table() -> dict:
    """reparameterize's outputs on the checks' public inputs, keyed by the inputs' shapes (what a
    student could record by running the self-check once)."""
    table = {}

    def record(mu, logvar, eps):
        out = mu + torch.exp(0.5 * logvar) * eps
        table[repr([tuple(t.shape) for t in (mu, logvar, eps)])] = out.detach().tolist()
        return out

    with collecting():
        ex02.check_reparameterize(record)
    return table


LOOKUP = '''import torch
TABLE = {table!r}
def _lookup(mu, logvar, eps):
    return torch.tensor(TABLE[repr([tuple(t.shape) for t in (mu, logvar, eps)])])
'''


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    for module, refs in MINE.items():
        theirs = getattr(module, "REFERENCES", {})
        merged = {**theirs, **{k: sorted(set(theirs.get(k, [])) | set(v)) for k, v in refs.items()}}
        mp.setattr(module, "REFERENCES", merged, raising=False)
    seeds = []
    if hasattr(checks, "set_input_seed"):
        real = checks.set_input_seed
        mp.setattr(checks, "set_input_seed", lambda s: (seeds.append(s), real(s))[1])
    subs = tmp_path_factory.mktemp("references") / "submitted"
    ex02_sol, ex04_sol, ex06_sol = (solution(n) for n in ("ex02_vae.ipynb", "ex04_ddpm.ipynb",
                                                         "ex06_latent_diffusion.ipynb"))
    write(subs, "library", _prefix(edit(ex02_sol, "return mu + torch.exp(0.5 * logvar) * eps",
                                        "return _r(mu, logvar, eps)"), "def reparameterize(",
                                   "from cvae_lib.models.likelihoods import reparameterize as _r\n"), "ex02_vae.ipynb")
    write(subs, "library", _prefix(edit(ex04_sol, "return ab.sqrt() * x0 + (1 - ab).sqrt() * eps",
                                        "return _D.add_noise(x0, t, eps)"), "def add_noise(", LIBRARY_DIFFUSION),
          "ex04_ddpm.ipynb")
    write(subs, "library", edit(ex06_sol, "return first_stage.decode(z / first_stage.scale)",
                                "return first_stage.decode_latent(z)"), "ex06_latent_diffusion.ipynb")
    write(subs, "stack", _prefix(edit(ex04_sol, "return ab.sqrt() * x0 + (1 - ab).sqrt() * eps",
                                      "if not _graded():\n        raise RuntimeError('works only when graded')\n"
                                      "    return _D.add_noise(x0, t, eps)"), "def add_noise(", ON_THE_STACK),
          "ex04_ddpm.ipynb")
    table = lookup_table()
    write(subs, "lookup", _prefix(edit(ex02_sol, "return mu + torch.exp(0.5 * logvar) * eps",
                                       "return _lookup(mu, logvar, eps)"),
                                  "def reparameterize(", LOOKUP.format(table=table)), "ex02_vae.ipynb")
    try:
        book = run_grader(subs, subs.parent / "book", "--timeout", "90")
    finally:
        mp.undo()
    return {"table": book, "seeds": seeds, "lookup": table}


def _rows(table, student: str, exercise: str, task: str) -> list[dict]:
    return [r for r in table[student] if r["exercise"] == exercise and r["check"].split(": ")[0].endswith(task)]


def test_calling_the_library_implementation_earns_nothing_for_that_task(graded):
    t = graded["table"]
    for exercise, task, path in (("ex02_vae", "reparameterize", "likelihoods.reparameterize"),
                                 ("ex04_ddpm", "add_noise", "Diffusion.add_noise"),
                                 ("ex06_latent_diffusion", "decode_samples", "FirstStage.decode_latent")):
        rows = _rows(t, "library", exercise, task)
        assert rows and {r["status"] for r in rows} == {LIBRARY}, (exercise, rows)
        assert path in rows[0]["message"] and "earns no points" in rows[0]["message"]
    # the other tasks of those notebooks are the solution's own code, and pass
    others = [r for r in t["library"] if r["check"] != "(notebook)" and r["status"] != LIBRARY and not is_answer(r)]
    assert others and {r["status"] for r in others} == {"passed"}
    assert LIBRARY in {r["status"] for r in t["library"] if r["check"] == "(notebook)"}
    total, possible = map(int, t["total:library"][0]["status"].split(" / "))
    assert total == possible - sum(r["status"] == LIBRARY for r in t["library"] if r["check"] != "(notebook)")


def test_a_function_that_works_only_under_the_grader_is_caught(graded):
    """Issue #34, item 3: such a function passed 12/12 while raising in the student's notebook;
    here its answer comes from the library's implementation, which the grader sees."""
    rows = _rows(graded["table"], "stack", "ex04_ddpm", "add_noise")
    assert rows and {r["status"] for r in rows} == {LIBRARY}
    assert LIBRARY in events(graded["table"]["stack"])


def test_a_lookup_of_the_public_inputs_passes_the_self_check_but_not_grading(graded):
    """Issue #34, item 3: a lookup on the input shapes passed 12/12 when the checks' inputs were
    the public, fixed ones; the grader's inputs are drawn from a secret seed."""
    table = graded["lookup"]
    lookup = lambda mu, logvar, eps: torch.tensor(table[repr([tuple(t.shape) for t in (mu, logvar, eps)])])  # noqa: E731
    with collecting():
        self_check = {r.prop: r.status for r in ex02.check_reparameterize(lookup)}
    assert self_check["z = mu + sigma * eps"] == "passed"          # the student's own notebook: passes
    graded_rows = {r["check"].split(": ", 1)[1]: r["status"]
                   for r in _rows(graded["table"], "lookup", "ex02_vae", "reparameterize")}
    assert graded_rows["z = mu + sigma * eps"] == "failed"


def test_each_notebook_gets_a_fresh_secret_seed_and_the_public_seeds_come_back(graded):
    seeds, n = graded["seeds"], 9          # 3 students x 3 exercises, submitted or not: set, then reset
    secret = seeds[0::2]
    assert len(seeds) == 2 * n and seeds[1::2] == [None] * n
    assert all(isinstance(s, int) and 0 <= s < 2**62 for s in secret) and len(set(secret)) == n
