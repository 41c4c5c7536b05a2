"""Checks for exercise 05: the Frechet distance between Gaussians and between feature sets, and
KID, the unbiased kernel distance.

Each check compares the student's function with closed forms (1-D, diagonal and commuting
covariances), with invariances the distance must have, with `cvae_lib.metrics` and, for KID,
with torchmetrics' independent implementation, and names the property that does not hold.
"""
from __future__ import annotations

import torch

from ..metrics import frechet_distance, gaussian_frechet
from . import expect, expect_close, input_generator, run_checks

__all__ = ["check_gaussian_frechet", "check_frechet_distance", "check_kid", "REFERENCES", "reference_kid"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "gaussian_frechet": ["cvae_lib.metrics.gaussian_frechet"],
    "frechet_distance": ["cvae_lib.metrics.frechet_distance", "cvae_lib.metrics.fid"],
    "kid": ["cvae_lib.metrics.kid"],
}


def _random_cov(d: int, g: torch.Generator) -> torch.Tensor:
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
    g = input_generator("ex05.gaussian_frechet")
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = _random_cov(d, g), _random_cov(d, g)
    m1, m2 = (float(v) for v in torch.randn(2, generator=g))
    sd1, sd2 = (0.5 + 2.5 * float(v) for v in torch.rand(2, generator=g))

    def zero_for_same():
        expect_close(_value(fd(mu1, s1, mu1, s1)), 0.0, atol=1e-6, what="d^2 of a Gaussian with itself")

    def one_dimensional():
        t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
        got = _value(fd(t(m1), t([sd1**2]), t(m2), t([sd2**2])))
        expect_close(got, (m1 - m2) ** 2 + (sd1 - sd2) ** 2, atol=1e-6,
                     what=f"N({m1:.3f}, {sd1:.3f}^2) vs N({m2:.3f}, {sd2:.3f}^2): (m1 - m2)^2 + (s1 - s2)^2 with "
                          f"standard deviations s")

    def mean_term():
        shift = torch.tensor([3.0, 4.0, 0, 0, 0], dtype=torch.float64)[torch.randperm(5, generator=g)]
        expect_close(_value(fd(mu1, s1, mu1 + shift, s1)), 25.0, atol=1e-5,
                     what="same covariance, means 5 apart: d^2 = |mu1 - mu2|^2 (squared, not the norm)")

    v1 = 0.2 + 9 * torch.rand(3, generator=g, dtype=torch.float64)
    v2 = 0.2 + 9 * torch.rand(3, generator=g, dtype=torch.float64)

    def diagonal():
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
    g = input_generator("ex05.frechet_distance")
    a = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64) * 2 + 1

    def zero_for_same_set():
        expect_close(_value(fd_features(a, a)), 0.0, atol=1e-6, what="the distance of a set with itself")

    def matches_library():
        expect_close(_value(fd_features(a, b)), frechet_distance(a, b), atol=1e-4,
                     what="the distance vs cvae_lib.metrics.frechet_distance (mean over rows, "
                          "unbiased covariance with N - 1, as torch.cov)")

    def translation():
        v = torch.randn(6, generator=g, dtype=torch.float64)
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


def reference_kid(a: torch.Tensor, b: torch.Tensor) -> float:
    """The unbiased MMD^2 of two feature sets (N, D), (M, D) with k(x, y) = (x.y / D + 1)^3, written
    independently of the library as the average over pairs of distinct points (a U-statistic)."""
    a, b = a.double(), b.double()
    d = a.shape[1]
    k = lambda u, v: (u @ v.T / d + 1) ** 3  # noqa: E731
    n, m = len(a), len(b)
    within_a = (k(a, a).sum() - sum(float(k(a[i:i + 1], a[i:i + 1])) for i in range(n))) / (n * (n - 1))
    within_b = (k(b, b).sum() - sum(float(k(b[j:j + 1], b[j:j + 1])) for j in range(m))) / (m * (m - 1))
    return float(within_a + within_b - 2 * k(a, b).mean())


def _torchmetrics_kid(a: torch.Tensor, b: torch.Tensor) -> tuple[float, str]:
    """torchmetrics' estimator on two sets of the same size, or the reference if it is not installed."""
    try:
        from torchmetrics.image.kid import poly_mmd
    except ImportError:
        return reference_kid(a, b), "an independent U-statistic (torchmetrics is not installed)"
    return float(poly_mmd(a.double(), b.double(), degree=3, gamma=None, coef=1.0)), "torchmetrics' poly_mmd"


def check_kid(kid):
    """kid(a (N, D), b (M, D)) -> the unbiased MMD^2 estimate with the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, one number."""
    g = input_generator("ex05.kid")
    d = 8
    a = torch.randn(60, d, generator=g, dtype=torch.float64)
    b = 0.7 * torch.randn(60, d, generator=g, dtype=torch.float64) + 0.4
    c = torch.randn(35, d, generator=g, dtype=torch.float64) * 1.3

    def a_number():
        _value(kid(a, b))

    def matches_torchmetrics():
        got = _value(kid(a, b))
        want, source = _torchmetrics_kid(a, b)          # imported only now: torchmetrics takes seconds to load
        expect_close(got, want, atol=1e-6,
                     what=f"KID of two sets of 60 features vs {source} (kernel (x.y / D + 1)^3, pairs i != j "
                          f"within each set, all pairs across)")

    def kernel():
        x = torch.tensor([[1.0, 2.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        y = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        # pairs: k(x0, x1) = k(y0, y1) = 1 (orthogonal to 0); k(x0, y0) = (2 / 4 + 1)^3, k with a zero = 1
        want = 1 + 1 - 2 * ((2 / 4 + 1) ** 3 + 3) / 4
        expect_close(_value(kid(x, y)), want, atol=1e-9,
                     what="KID of two sets of 2 points in D = 4 (k(x, y) = (x.y / D + 1)^3: divide the dot "
                          "product by D, add 1, cube)")

    def unbiased():
        vals = []
        gen = input_generator("ex05.kid.unbiased")
        for _ in range(40):
            p = torch.randn(20, d, generator=gen, dtype=torch.float64)
            q = torch.randn(20, d, generator=gen, dtype=torch.float64)
            vals.append(_value(kid(p, q)))
        mean = sum(vals) / len(vals)
        expect(abs(mean) < 0.15, f"the average of 40 KIDs between two samples of the same Gaussian is {mean:.3f}, "
                                 f"not about 0: an unbiased estimate leaves out the pairs k(x_i, x_i) and "
                                 f"divides by n (n - 1)")

    def sizes_may_differ():
        expect_close(_value(kid(a, c)), reference_kid(a, c), atol=1e-6,
                     what="KID of sets of 60 and 35 features (each within-set average over its own n (n - 1) pairs)")

    def symmetric():
        expect_close(_value(kid(a, c)), _value(kid(c, a)), atol=1e-9, what="kid(a, b) vs kid(b, a)")

    return run_checks("ex05.kid", [
        ("returns one number", a_number),
        ("matches torchmetrics' KID estimator", matches_torchmetrics),
        ("uses the cubic kernel (x.y / D + 1)^3", kernel),
        ("is unbiased: about 0 for two samples of one distribution", unbiased),
        ("works for sets of different sizes", sizes_may_differ),
        ("is symmetric", symmetric),
    ])
