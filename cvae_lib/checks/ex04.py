"""Checks for exercise 04 (DDPM): the forward process, the loss and one reverse step.

Each check compares the student's function with closed forms and with `cvae_lib.diffusion`,
and names the property that does not hold.
"""
from __future__ import annotations

import torch

from ..diffusion import Diffusion, DiffusionConfig
from . import expect, expect_close, expect_shape, run_checks

__all__ = ["check_add_noise", "check_ddpm_loss", "check_reverse_step"]


def _schedule(T: int = 1000) -> Diffusion:
    return Diffusion(DiffusionConfig(T=T, clip_x0=False))


def _inputs(seed: int = 0, b: int = 4):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(b, 3, 8, 8, generator=g) * 2 - 1               # images in [-1, 1]
    eps = torch.randn(b, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999][:b])
    return x0, eps, t


def check_add_noise(add_noise):
    """add_noise(x0, t, eps, alpha_bar) -> xt = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps."""
    d = _schedule()
    x0, eps, t = _inputs()

    def same_shape():
        expect_shape(add_noise(x0, t, eps, d.alpha_bar), x0.shape)

    def closed_form():
        expect_close(add_noise(x0, t, eps, d.alpha_bar), d.add_noise(x0, t, eps), atol=1e-5,
                     what="xt for t = [0, 10, 500, 999]")

    def per_image_t():
        whole = add_noise(x0, t, eps, d.alpha_bar)
        for i in range(len(t)):
            one = add_noise(x0[i:i + 1], t[i:i + 1], eps[i:i + 1], d.alpha_bar)
            expect_close(whole[i:i + 1], one, atol=1e-6,
                         what=f"image {i} in a batch vs alone (each image has its own t; reshape "
                              f"alpha_bar[t] to (B, 1, 1, 1))")

    def ends():
        expect_close(add_noise(x0, t, eps, torch.ones(1000)), x0, atol=1e-6,
                     what="with alpha_bar = 1 (no noise yet) xt must equal x0")
        expect_close(add_noise(x0, t, eps, torch.zeros(1000)), eps, atol=1e-6,
                     what="with alpha_bar = 0 (all noise) xt must equal eps")

    def variance_preserving():
        g = torch.Generator().manual_seed(1)
        big = torch.randn(4000, 1, 2, 2, generator=g)
        xt = add_noise(big, torch.full((4000,), 300), torch.randn(4000, 1, 2, 2, generator=g), d.alpha_bar)
        expect(abs(xt.var().item() - 1) < 0.05,
               f"unit-variance x0 and eps must give unit-variance xt, got variance {xt.var().item():.3f} "
               f"(are the square roots in place?)")

    return run_checks("ex04.add_noise", [
        ("keeps the shape (B, C, H, W)", same_shape),
        ("matches Eq. 4: sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps", closed_form),
        ("uses each image's own timestep", per_image_t),
        ("alpha_bar = 1 gives x0, alpha_bar = 0 gives eps", ends),
        ("preserves unit variance", variance_preserving),
    ])


def check_ddpm_loss(ddpm_loss):
    """ddpm_loss(model, x0, t, eps, alpha_bar) -> mean over pixels of (model(xt, t) - eps)^2."""
    d = _schedule()
    x0, eps, t = _inputs()
    xt_true = d.add_noise(x0, t, eps)
    seen = {}

    def spy(xt, tt):
        seen["xt"], seen["t"] = xt, tt
        return torch.zeros_like(xt)

    def scalar():
        out = ddpm_loss(spy, x0, t, eps, d.alpha_bar)
        expect(isinstance(out, torch.Tensor) and out.dim() == 0,
               f"expected a scalar tensor, got {type(out).__name__} {getattr(out, 'shape', '')}")

    def model_sees_xt():
        ddpm_loss(spy, x0, t, eps, d.alpha_bar)
        expect("xt" in seen, "the model was never called")
        expect_close(seen["xt"], xt_true, atol=1e-5,
                     what="the model's input (it must be the noisy xt from Eq. 4, not x0)")
        expect(torch.equal(seen["t"], t), "the model must get the timesteps t as its second argument")

    def oracle_zero():
        oracle = lambda xt, tt: eps.clone()  # noqa: E731 - a model that knows the noise
        expect_close(ddpm_loss(oracle, x0, t, eps, d.alpha_bar), 0.0, atol=1e-7,
                     what="the loss of a model that predicts the true noise")

    def mean_squared_error():
        half = lambda xt, tt: 0.5 * eps  # noqa: E731
        expect_close(ddpm_loss(half, x0, t, eps, d.alpha_bar), (0.25 * eps**2).mean(), atol=1e-6,
                     what="the loss of a model predicting eps / 2 (the mean, not the sum, of squares)")

    return run_checks("ex04.ddpm_loss", [
        ("returns a scalar", scalar),
        ("feeds the model xt (Eq. 4) and t", model_sees_xt),
        ("is 0 when the model predicts the true noise", oracle_zero),
        ("is the mean squared error over all pixels", mean_squared_error),
    ])


def check_reverse_step(reverse_step):
    """reverse_step(eps_hat, xt, t, z, beta, alpha_bar) -> x_{t-1} by Eq. 11, sigma^2 = beta_tilde."""
    d = _schedule()
    g = torch.Generator().manual_seed(2)
    xt, eps_hat, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))

    def same_shape():
        expect_shape(reverse_step(eps_hat, xt, 500, z, d.beta, d.alpha_bar), xt.shape)

    def mean_eq_11():
        t = 500
        b, a, ab = d.beta[t], 1 - d.beta[t], d.alpha_bar[t]
        mu = (xt - b / (1 - ab).sqrt() * eps_hat) / a.sqrt()
        expect_close(reverse_step(eps_hat, xt, t, torch.zeros_like(z), d.beta, d.alpha_bar), mu,
                     atol=1e-5, what="x_{t-1} with z = 0 (the mean of Eq. 11)")

    def noise_scale():
        t = 500
        zero = reverse_step(eps_hat, xt, t, torch.zeros_like(z), d.beta, d.alpha_bar)
        with_z = reverse_step(eps_hat, xt, t, z, d.beta, d.alpha_bar)
        expect_close(with_z - zero, d.beta_tilde[t].sqrt() * z, atol=1e-5,
                     what="the noise added, sigma_t z with sigma_t^2 = beta_tilde_t = "
                          "(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t")

    def last_step():
        expect_close(reverse_step(eps_hat, xt, 0, z, d.beta, d.alpha_bar),
                     reverse_step(eps_hat, xt, 0, torch.zeros_like(z), d.beta, d.alpha_bar), atol=1e-7,
                     what="the last step (t = 0) must add no noise")

    def library():
        for t in (999, 100, 1, 0):
            expect_close(reverse_step(eps_hat, xt, t, z, d.beta, d.alpha_bar),
                         d.step(eps_hat, t, xt, noise=z), atol=1e-4, what=f"x_(t-1) at t = {t} vs cvae_lib")

    return run_checks("ex04.reverse_step", [
        ("keeps the shape", same_shape),
        ("the mean is Eq. 11", mean_eq_11),
        ("adds sqrt(beta_tilde_t) z", noise_scale),
        ("adds no noise at the last step", last_step),
        ("agrees with cvae_lib.diffusion.Diffusion.step", library),
    ])
