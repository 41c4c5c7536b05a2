"""Self-checks for the exercises: each check names the property that failed, not just "wrong".

An exercise module (`checks/ex01.py`, ...) defines one function per task that builds a list
of (property, test) pairs and hands it to `run_checks`:

    def check_psnr(psnr):
        x = torch.rand(4, 3, 8, 8)
        return run_checks("psnr", [
            ("returns one value per image, shape (B,)", lambda: expect_shape(psnr(x, x * 0.9), (4,))),
            ...
        ])

In a notebook the student sees one line per property (passed / FAILED with the reason /
not implemented yet); if any failed, `CheckFailed` is raised so the cell turns red. The same
results travel as JSON (mimetype `CHECK_MIME`) in the cell output, for tools that read notebooks.

The grader (`cvae_lib.grade`) never trusts those outputs: it calls these same check functions
in its own process, inside `collecting()` (results returned, nothing shown or raised), with a
proxy in place of the student's function; a proxy that cannot reach the student's code raises
`CheckNotRun`, which is reported with the grader's reason.

Inputs. Every random input of a check comes from `input_generator(name)` (tensors) or
`seeded(name)` (a module's initial weights), never from a seed written in the check. By default
those are fixed, public seeds, so a student's self-check gives the same inputs every time. The
grader calls `set_input_seed(secret)` in its own process first: every check then draws its
inputs from a generator derived from the secret and the check's name, so a function that
memorised the public inputs (a lookup table) does not pass; a function that computes does.

Each exercise module also lists, in `REFERENCES`, the library functions that implement what a
graded student function does ({"reparameterize": ["cvae_lib.models.vae.reparameterize"]}), so
the grader can tell a submission that only calls the library's answer.

Adding an exercise: a module `checks/exNN.py` with one `check_<task>(fn)` per task (each a list
of named properties handed to `run_checks`, inputs from `input_generator`), `REFERENCES`, and a
solution notebook `solutions/exNN_name.py` whose check cells call them (see CONTRIBUTING.md).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass

import torch

__all__ = ["CheckFailed", "CheckNotRun", "CheckResult", "run_checks", "collecting", "expect", "expect_shape",
           "expect_close", "CHECK_MIME", "set_input_seed", "input_seed", "input_generator", "seeded"]

CHECK_MIME = "application/vnd.cvae-check+json"
_COLLECTING: ContextVar[bool] = ContextVar("cvae_checks_collecting", default=False)
_INPUT_SEED: int | None = None          # None: the public seeds; the grader sets a secret one


def set_input_seed(seed: int | None) -> None:
    """Where every check draws its random inputs from: None (the default) the fixed public seeds
    of the students' self-checks; an int (the grader's secret) a generator derived from it and
    each check's name, so the inputs cannot be known in advance."""
    global _INPUT_SEED
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"the input seed must be an int or None, got {type(seed).__name__}")
    _INPUT_SEED = seed


def input_seed(name: str) -> int:
    """The 63-bit seed of the inputs named `name` (e.g. "ex01.psnr"): a hash of the name, and of
    the secret seed when one is set, so every check and every secret gets its own inputs."""
    key = f"public/{name}" if _INPUT_SEED is None else f"secret/{_INPUT_SEED}/{name}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def input_generator(name: str) -> torch.Generator:
    """A CPU generator for the random inputs named `name`; see `set_input_seed`."""
    return torch.Generator().manual_seed(input_seed(name))


@contextmanager
def seeded(name: str) -> Iterator[None]:
    """Inside this block torch's global generator is seeded from `input_seed(name)`, for what
    draws from it (a module's initial weights); the caller's random state is restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(input_seed(name))
        yield


class CheckFailed(AssertionError):
    """At least one property of an exercise does not hold; the message names which."""


class CheckNotRun(Exception):
    """The function under test could not be called at all (the grader's sandbox stopped, the
    function is not defined); reported with this status and message, not as the code's error."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@contextmanager
def collecting() -> Iterator[None]:
    """Inside this block `run_checks` only returns its results: no report, no CheckFailed."""
    token = _COLLECTING.set(True)
    try:
        yield
    finally:
        _COLLECTING.reset(token)


@dataclass
class CheckResult:
    exercise: str
    prop: str
    status: str        # "passed" | "failed" | "not implemented" | "error"
    message: str = ""


def expect(condition: bool, message: str) -> None:
    """Fail the current property with `message` (what was expected and what was seen)."""
    if not condition:
        raise AssertionError(message)


def expect_shape(t, shape: Sequence[int]) -> None:
    expect(isinstance(t, torch.Tensor), f"expected a tensor, got {type(t).__name__}")
    expect(tuple(t.shape) == tuple(shape), f"expected shape {tuple(shape)}, got {tuple(t.shape)}")


def expect_close(actual, expected, atol: float = 1e-4, what: str = "value") -> None:
    a = torch.as_tensor(actual, dtype=torch.float64)
    e = torch.as_tensor(expected, dtype=torch.float64)
    expect(a.shape == e.shape, f"{what}: expected shape {tuple(e.shape)}, got {tuple(a.shape)}")
    ok = torch.allclose(a, e, atol=atol, rtol=1e-4, equal_nan=False) or (
        a.numel() == 1 and math.isinf(float(e)) and float(a) == float(e))
    if not ok:
        show = (lambda t: f"{float(t):.5g}") if a.numel() == 1 else (lambda t: str(t.flatten()[:4].tolist()))
        raise AssertionError(f"{what}: expected {show(e)}, got {show(a)}")


def run_checks(exercise: str, props: Sequence[tuple[str, Callable[[], None]]]) -> list[CheckResult]:
    """Run every property test, report each, and raise CheckFailed if any did not pass."""
    results = []
    for prop, test in props:
        try:
            test()
            results.append(CheckResult(exercise, prop, "passed"))
        except CheckNotRun as e:
            results.append(CheckResult(exercise, prop, e.status, str(e)))
        except NotImplementedError:
            results.append(CheckResult(exercise, prop, "not implemented",
                                       "replace `raise NotImplementedError` with your code"))
        except AssertionError as e:
            results.append(CheckResult(exercise, prop, "failed", str(e)))
        except Exception as e:  # the student's code crashed: say where, not just that
            results.append(CheckResult(exercise, prop, "error", f"{type(e).__name__}: {e}"))
    if _COLLECTING.get():
        return results
    _report(exercise, results)
    bad = [r for r in results if r.status != "passed"]
    if bad:
        raise CheckFailed(f"{exercise}: {len(bad)} of {len(results)} properties do not hold; first: "
                          f"'{bad[0].prop}' ({bad[0].status}{': ' + bad[0].message if bad[0].message else ''})")
    return results


_ICON = {"passed": "✓ passed", "failed": "✗ FAILED", "not implemented": "… not implemented yet",
         "error": "✗ ERROR", "missing": "✗ MISSING"}


def _report(exercise: str, results: list[CheckResult]) -> None:
    lines = [f"Checking {exercise}:"]
    for r in results:
        why = f"\n{'':26}{r.message}" if r.message and r.status != "passed" else ""
        lines.append(f"  {_ICON[r.status]:<22} {r.prop}" + why)
    text = "\n".join(lines)
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display({"text/plain": text, CHECK_MIME: {"results": [asdict(r) for r in results]}}, raw=True)
            return
    except ImportError:
        pass
    print(text)
