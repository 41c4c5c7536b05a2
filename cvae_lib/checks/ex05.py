"""Checks for exercise 05: the Frechet distance between Gaussians and between feature sets.

Each check compares the student's function with closed forms (1-D, diagonal and commuting
covariances), with invariances the distance must have, and with `cvae_lib.metrics`, and
names the property that does not hold.
"""
from __future__ import annotations

import torch

from ..metrics import frechet_distance, gaussian_frechet
from . import expect, expect_close, run_checks

__all__ = ["check_gaussian_frechet", "check_frechet_distance"]


def _random_cov(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)    # symmetric positive definite


def _value(out) -> float:
    expect(isinstance(out, (float, int, torch.Tensor)), f"expected a number, got {type(out).__name__}")
    if isinstance(out, torch.Tensor):
        expect(out.numel() == 1, f"expected a single number, got a tensor of shape {tuple(out.shape)}")
        expect(not out.is_complex(), "got a complex number: take the real part of the matrix square "
                                     "root, or use the eigen-decomposition of a symmetric matrix")
    return float(out)


def check_gaussian_frechet(fd):
    """fd(mu1 (D,), sigma1 (D, D), mu2, sigma2) -> the squared Frechet distance, a number."""
    d = 5
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _random_cov(d, 1), _random_cov(d, 2)

    def zero_for_same():
        expect_close(_value(fd(mu1, s1, mu1, s1)), 0.0, atol=1e-6, what="d^2 of a Gaussian with itself")

    def one_dimensional():
        got = _value(fd(torch.tensor([1.0], dtype=torch.float64), torch.tensor([[4.0]], dtype=torch.float64),
                        torch.tensor([3.0], dtype=torch.float64), torch.tensor([[9.0]], dtype=torch.float64)))
        expect_close(got, (1 - 3) ** 2 + (2 - 3) ** 2, atol=1e-6,
                     what="N(1, 4) vs N(3, 9): (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s")

    def mean_term():
        shift = torch.tensor([3.0, 4.0, 0, 0, 0], dtype=torch.float64)
        expect_close(_value(fd(mu1, s1, mu1 + shift, s1)), 25.0, atol=1e-5,
                     what="same covariance, means 5 apart: d^2 = |mu1 - mu2|^2 (squared, not the norm)")

    def diagonal():
        v1 = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)
        v2 = torch.tensor([4.0, 1.0, 16.0], dtype=torch.float64)
        z = torch.zeros(3, dtype=torch.float64)
        expect_close(_value(fd(z, torch.diag(v1), z, torch.diag(v2))), float(((v1.sqrt() - v2.sqrt()) ** 2).sum()),
                     atol=1e-5, what="diagonal covariances: sum of (sqrt(v1) - sqrt(v2))^2")

    def symmetric():
        expect_close(_value(fd(mu1, s1, mu2, s2)), _value(fd(mu2, s2, mu1, s1)), atol=1e-6,
                     what="d^2(P, Q) vs d^2(Q, P)")

    def full_covariance():
        expect_close(_value(fd(mu1, s1, mu2, s2)), gaussian_frechet(mu1, s1, mu2, s2), atol=1e-5,
                     what="d^2 for two full (non-diagonal) covariances vs cvae_lib.metrics.gaussian_frechet "
                          "(the trace term needs the square root of a matrix product, not of each entry)")

    return run_checks("ex05.gaussian_frechet", [
        ("is 0 for two identical Gaussians", zero_for_same),
        ("matches the 1-D closed form", one_dimensional),
        ("adds the squared distance of the means", mean_term),
        ("matches the closed form for diagonal covariances", diagonal),
        ("is symmetric", symmetric),
        ("matches cvae_lib for full covariances", full_covariance),
    ])


def check_frechet_distance(fd_features):
    """fd_features(a (N, D), b (M, D)) -> Frechet distance of Gaussians fitted to the two sets."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) * 2 + 1

    def zero_for_same_set():
        expect_close(_value(fd_features(a, a)), 0.0, atol=1e-6, what="the distance of a set with itself")

    def matches_library():
        expect_close(_value(fd_features(a, b)), frechet_distance(a, b), atol=1e-4,
                     what="the distance vs cvae_lib.metrics.frechet_distance (mean over rows, "
                          "unbiased covariance with N - 1, as torch.cov)")

    def translation():
        v = torch.tensor([1.0, -2.0, 0, 0, 2.0, 0], dtype=torch.float64)
        expect_close(_value(fd_features(a + v, a)), float(v.pow(2).sum()), atol=1e-5,
                     what="a set vs itself moved by v: |v|^2")

    def sizes_may_differ():
        _value(fd_features(a[:50], b))     # N != M must work: only means and covariances meet

    def float32_input():
        expect_close(_value(fd_features(a.float(), b.float())), _value(fd_features(a, b)), atol=1e-2,
                     what="your distance for float32 features vs for the same features in float64 "
                          "(convert to float64 before the covariances)")

    return run_checks("ex05.frechet_distance", [
        ("is 0 for a set with itself", zero_for_same_set),
        ("matches cvae_lib.metrics.frechet_distance", matches_library),
        ("moving a set by v adds |v|^2", translation),
        ("works for sets of different sizes", sizes_may_differ),
        ("gives the same answer for float32 features", float32_input),
    ])
