"""The checks' inputs: public and fixed for a student's self-check, drawn from a secret seed under
the grader (issue 34, item 3). Every check passes the reference solution under any seed; a
submission that memorised what the checks ask on the public inputs (a lookup table) passes on
them and fails under a secret seed; every graded function names the library code that does
the same thing (REFERENCES), so the grader can tell a submission that only calls it.

The reference solutions are the solution notebooks' own cells (`solution_namespace`), run
without the check cells and without the experiments; other test_checks_* files import them.
"""
from __future__ import annotations

import hashlib
import importlib
from functools import cache
from pathlib import Path

import jupytext
import pytest
import torch

from cvae_lib import checks
from cvae_lib.checks import collecting, input_generator, input_seed, set_input_seed
from cvae_lib.grade.plan import check_calls

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = sorted(p.stem for p in (ROOT / "solutions").glob("ex*.py"))
SECRETS = (12345, 2**62 + 7)
SLOW = {"check_train_vae", "check_train_cvae", "check_sample"}     # a training run or a U-Net sampler


def _code_cells(name: str) -> list:
    nb = jupytext.read(ROOT / "solutions" / f"{name}.py")
    return [c for c in nb.cells if c.cell_type == "code" and "experiment" not in c.metadata.get("tags", [])]


@cache
def solution_namespace(name: str) -> dict:
    """The namespace of solutions/<name>.py after its setup and solution cells (no checks, no
    experiments): the reference solution of every task, e.g. solution_namespace("ex02_vae")["kl_weight"]."""
    ns: dict = {"__name__": "__main__"}
    for cell in _code_cells(name):
        if not check_calls(cell.source):
            exec(compile(cell.source, f"solutions/{name}.py", "exec"), ns)
    return ns


def graded(name: str) -> list[tuple[str, str, str]]:
    """(checks module, check function, argument) of every check cell of solutions/<name>.py."""
    return [call for cell in _code_cells(name) for call in check_calls(cell.source) or ()]


def run(module: str, check: str, fn) -> dict[str, checks.CheckResult]:
    """The check's results by property, as the grader collects them."""
    with collecting():
        return {r.prop: r for r in getattr(importlib.import_module(f"cvae_lib.checks.{module}"), check)(fn)}


def failed(module: str, check: str, fn) -> dict[str, str]:
    """{property: message} of every property that did not pass."""
    return {p: f"{r.status}: {r.message}" for p, r in run(module, check, fn).items() if r.status != "passed"}


@pytest.fixture
def secret():
    """Set a secret input seed for the test, and the public seeds again after it."""
    yield set_input_seed
    set_input_seed(None)


def test_seeds_are_public_by_default_and_secret_when_set(secret):
    public = input_seed("ex01.psnr")
    assert input_seed("ex01.psnr") == public != input_seed("ex01.interpolate")
    a = torch.rand(3, generator=input_generator("ex01.psnr"))
    secret(99)
    assert input_seed("ex01.psnr") != public
    assert not torch.equal(torch.rand(3, generator=input_generator("ex01.psnr")), a)
    first = input_seed("ex01.psnr")
    secret(100)
    assert input_seed("ex01.psnr") != first                     # every secret gives other inputs
    secret(None)
    assert torch.equal(torch.rand(3, generator=input_generator("ex01.psnr")), a)
    with pytest.raises(TypeError):
        set_input_seed("42")
    with pytest.raises(TypeError):
        set_input_seed(True)


def test_seeded_restores_the_global_generator():
    torch.manual_seed(0)
    before = torch.rand(2)
    torch.manual_seed(0)
    with checks.seeded("ex01.bottleneck"):
        torch.rand(5)
    assert torch.equal(torch.rand(2), before)


CASES = [(name, call) for name in EXERCISES for call in graded(name)]


@pytest.mark.parametrize("name,call", CASES, ids=[f"{n[:4]}.{c[1]}" for n, c in CASES])
def test_the_solution_passes_under_any_seed(name, call, secret):
    module, check, arg = call
    fn = solution_namespace(name)[arg]
    for seed in (None, *SECRETS[: 1 if check in SLOW else 2]):
        secret(seed)
        assert not failed(module, check, fn), f"{check} fails the solution with input seed {seed}"


def _key(value) -> str:
    """What a lookup table would remember of a call's arguments."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, torch.Tensor):
            h.update(f"T{tuple(v.shape)}{v.dtype}".encode() + v.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(v, torch.nn.Module):
            for k, t in sorted(v.state_dict().items()):
                h.update(k.encode())
                feed(t)
        elif isinstance(v, torch.Generator):
            feed(v.get_state())
        elif isinstance(v, dict):
            for k in sorted(v, key=str):
                h.update(str(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            for x in v:
                feed(x)
        elif callable(v):
            h.update(b"callable")
        else:
            h.update(repr(v).encode())
    feed(value)
    return h.hexdigest()


def _copy(out):
    if isinstance(out, torch.Tensor):
        return out.detach().clone()
    if isinstance(out, dict):
        return {k: _copy(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_copy(v) for v in out)
    return out


class LookupTable:
    """A "solution" that replays what the real one answered on the inputs it has seen, and knows
    nothing else: the submission that memorised the public inputs of the checks."""

    def __init__(self, fn):
        self.fn, self.table, self.recording = fn, {}, True

    def __call__(self, *args, **kwargs):
        key = _key((args, kwargs))
        if self.recording:
            self.table[key] = _copy(self.fn(*args, **kwargs))
        if key not in self.table:
            raise KeyError("an input the table has never seen")
        return _copy(self.table[key])


@pytest.mark.parametrize("name,call", CASES, ids=[f"{n[:4]}.{c[1]}" for n, c in CASES])
def test_a_lookup_table_of_the_public_inputs_fails_under_a_secret_seed(name, call, secret):
    module, check, arg = call
    table = LookupTable(solution_namespace(name)[arg])
    run(module, check, table)                                   # the student runs the public self-check ...
    table.recording = False
    public = run(module, check, table)                          # ... and the table passes it (gradients aside)
    assert sum(r.status == "passed" for r in public.values()) >= len(public) / 2, public
    secret(SECRETS[0])
    graded_run = run(module, check, table)
    passed = [p for p, r in graded_run.items() if r.status == "passed"]
    assert len(passed) < len(graded_run), f"{check}: a lookup table passes every property under a secret seed"
    assert len(passed) <= len(graded_run) / 2, f"{check}: a lookup table still passes {passed}"


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("name", EXERCISES)
def test_every_graded_function_names_its_library_counterparts(name):
    module = importlib.import_module(f"cvae_lib.checks.{name[:4]}")
    refs = module.REFERENCES
    assert isinstance(refs, dict) and all(isinstance(v, list) for v in refs.values())
    missing = {arg for _, _, arg in graded(name)} - set(refs)
    assert not missing, f"cvae_lib/checks/{name[:4]}.py's REFERENCES lacks {missing}"
    for paths in refs.values():
        for path in paths:
            assert path.startswith("cvae_lib.") and callable(_resolve(path)), path
