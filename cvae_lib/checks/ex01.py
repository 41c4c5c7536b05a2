"""Checks for exercise 01 (autoencoder): PSNR, latent interpolation, the VDVAE bottleneck."""
from __future__ import annotations

import torch

from ..metrics import psnr as reference_psnr
from ..models.blocks import Bottleneck
from . import expect, expect_close, expect_shape, input_generator, run_checks, seeded

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "psnr": ["cvae_lib.metrics.psnr", "cvae_lib.metrics.mse_per_image"],
    "interpolate": ["cvae_lib.models.ae.interpolate"],
    "bottleneck_forward": ["cvae_lib.models.blocks.Bottleneck.forward"],
}


def check_psnr(psnr) -> list:
    """`psnr(x, x_hat)` -> (B,) PSNR in dB for images in [0, 1]."""
    g = input_generator("ex01.psnr")
    x = torch.rand(4, 3, 8, 8, generator=g)
    noisy = (x + 0.05 * torch.randn(4, 3, 8, 8, generator=g)).clamp(0, 1)
    scale = 0.4 + 0.5 * torch.rand(2, generator=g)
    mixed = torch.stack([x[0], x[1] * scale[0], x[2], x[3] * scale[1]])  # errors differ per image
    base = 0.9 * torch.rand(2, 3, 4, 4, generator=g)                      # + 0.1 stays in [0, 1]

    def per_image():
        expect_shape(psnr(x, noisy), (4,))

    def uniform_error():
        expect_close(psnr(base, base + 0.1), [20.0, 20.0],
                     atol=1e-3, what="PSNR of a uniform error of 0.1 (should be 10*log10(1/0.01) = 20 dB)")

    def identical():
        v = psnr(x, x.clone())
        expect(bool(torch.isinf(v).all() and (v > 0).all()),
               f"identical images have zero error, so PSNR should be +inf; got {v.tolist()}")

    def not_batch_mean():
        expect_close(psnr(x, mixed), reference_psnr(x, mixed), atol=1e-3,
                     what="per-image PSNR when images have different errors "
                          "(average the MSE per image, not over the batch)")

    def symmetric():
        expect_close(psnr(noisy, x), psnr(x, noisy), what="psnr(a, b) vs psnr(b, a)")

    return run_checks("psnr", [
        ("returns one value per image, shape (B,)", per_image),
        ("a uniform error of 0.1 gives 20 dB", uniform_error),
        ("identical images give +inf", identical),
        ("MSE is averaged per image, not over the whole batch", not_batch_mean),
        ("is symmetric in its two arguments", symmetric),
    ])


def check_interpolate(interpolate) -> list:
    """`interpolate(z0, z1, n)` -> (n, Z) points evenly spaced on the segment from z0 to z1."""
    g = input_generator("ex01.interpolate")
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def shape():
        expect_shape(interpolate(z0, z1, 5), (5, 16))

    def endpoints():
        path = interpolate(z0, z1, 5)
        expect_close(path[0], z0, what="first point (should be z0)")
        expect_close(path[-1], z1, what="last point (should be z1)")

    def even():
        path = interpolate(z0, z1, 5)
        steps = (path[1:] - path[:-1]).norm(dim=1)
        expect_close(steps, torch.full((4,), float((z1 - z0).norm()) / 4), atol=1e-4,
                     what="distances between consecutive points (should all be |z1 - z0| / (n - 1))")

    def midpoint():
        expect_close(interpolate(z0, z1, 3)[1], (z0 + z1) / 2, what="middle of 3 points")

    return run_checks("interpolate", [
        ("returns n points of size Z, shape (n, Z)", shape),
        ("starts at z0 and ends at z1", endpoints),
        ("points are evenly spaced", even),
        ("the midpoint is the mean of z0 and z1", midpoint),
    ])


def check_bottleneck(bottleneck_forward) -> list:
    """`bottleneck_forward(block, x)` recomputes `Bottleneck.forward` from the block's four convs."""
    x = torch.randn(2, 16, 8, 8, generator=input_generator("ex01.bottleneck"))
    with seeded("ex01.bottleneck"):
        plain, resid = Bottleneck(16, 16, residual=False), Bottleneck(16, 16, residual=True)
    resid.load_state_dict(plain.state_dict())  # same weights: only the skip differs

    def shape():
        expect_shape(bottleneck_forward(plain, x), (2, 16, 8, 8))

    def matches_plain():
        with torch.no_grad():
            expect_close(bottleneck_forward(plain, x), plain(x), atol=1e-5,
                         what="output without residual (GELU before each of c1..c4)")

    def residual():
        with torch.no_grad():
            expect_close(bottleneck_forward(resid, x), resid(x), atol=1e-5,
                         what="output with residual=True (x + block(x))")

    return run_checks("bottleneck_forward", [
        ("keeps the shape (B, C, H, W)", shape),
        ("matches the four-convolution block without residual", matches_plain),
        ("adds the input back when block.residual is True", residual),
    ])
