"""Exercise 05's checks name the property a typical mistake breaks, and only that one."""
from __future__ import annotations

import pytest
import torch

from cvae_lib.checks import CheckFailed, ex05
from cvae_lib.metrics import gaussian_frechet


def _statuses(results) -> dict[str, str]:
    return {r.prop: r.status for r in results}


def _run(check, fn):
    try:
        return _statuses(check(fn))
    except CheckFailed as e:        # raised after reporting; the results travel with the report
        raise AssertionError("expected the results, not only the exception") from e


def test_the_library_passes_every_property():
    assert set(_run(ex05.check_gaussian_frechet, gaussian_frechet).values()) == {"passed"}


def test_elementwise_square_root_fails_only_the_full_covariance_property(capsys):
    def elementwise(mu1, s1, mu2, s2):   # sqrt of each entry of s1 s2: right only when they commute
        return float((mu1 - mu2).pow(2).sum() + torch.trace(s1 + s2 - 2 * (s1 * s2).clamp_min(0).sqrt()))
    with pytest.raises(CheckFailed):
        ex05.check_gaussian_frechet(elementwise)
    out = capsys.readouterr().out
    assert "matches cvae_lib for full covariances" in out and "FAILED" in out
    failed_lines = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed_lines) == 1, out


def test_biased_covariance_fails_only_the_library_property(capsys):
    def biased(a, b):                    # divides by N instead of N - 1
        a, b = a.double(), b.double()
        cov = lambda f: (f - f.mean(0)).T @ (f - f.mean(0)) / len(f)  # noqa: E731
        return gaussian_frechet(a.mean(0), cov(a), b.mean(0), cov(b))
    with pytest.raises(CheckFailed):
        ex05.check_frechet_distance(biased)
    out = capsys.readouterr().out
    failed_lines = [line for line in out.splitlines() if "FAILED" in line]
    assert len(failed_lines) == 1 and "matches cvae_lib.metrics.frechet_distance" in failed_lines[0], out
