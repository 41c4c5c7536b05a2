"""Checks for exercise 04 (DDPM): the forward process, the loss, one reverse step, the general
DDIM update, and the whole guided sampling loop on the shipped ten-class DDPM.

Each check compares the student's function with closed forms and with `cvae_lib.diffusion`,
and names the property that does not hold.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..diffusion import Diffusion, DiffusionConfig
from . import expect, expect_close, expect_shape, input_generator, run_checks

__all__ = ["check_add_noise", "check_ddpm_loss", "check_reverse_step", "check_ddim_step", "check_sample",
           "REFERENCES", "ten_class_ddpm"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "add_noise": ["cvae_lib.diffusion.Diffusion.add_noise"],
    "ddpm_loss": ["cvae_lib.diffusion.Diffusion.loss", "cvae_lib.diffusion.Diffusion.train_loss"],
    "reverse_step": ["cvae_lib.diffusion.Diffusion.step"],
    "ddim_step": ["cvae_lib.diffusion.Diffusion.ddim_step"],
    "sample": ["cvae_lib.diffusion.Diffusion.ddim_sample", "cvae_lib.diffusion.Diffusion.ddpm_sample",
               "cvae_lib.diffusion.Diffusion.guided_eps", "cvae_lib.diffusion.Diffusion.ddim_step"],
}


def _schedule(T: int = 1000) -> Diffusion:
    return Diffusion(DiffusionConfig(T=T, clip_x0=False))


def _inputs(name: str, b: int = 4):
    g = input_generator(name)
    x0 = torch.rand(b, 3, 8, 8, generator=g) * 2 - 1               # images in [-1, 1]
    eps = torch.randn(b, 3, 8, 8, generator=g)
    t = torch.cat([torch.tensor([0, 999]), torch.randint(1, 999, (b - 2,), generator=g)])  # both ends, and random
    t = t[torch.randperm(b, generator=g)]
    return x0, eps, t


def check_add_noise(add_noise):
    """add_noise(x0, t, eps, alpha_bar) -> xt = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps."""
    d = _schedule()
    x0, eps, t = _inputs("ex04.add_noise")

    def same_shape():
        expect_shape(add_noise(x0, t, eps, d.alpha_bar), x0.shape)

    def closed_form():
        expect_close(add_noise(x0, t, eps, d.alpha_bar), d.add_noise(x0, t, eps), atol=1e-5,
                     what=f"xt for t = {t.tolist()}")

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
        g = input_generator("ex04.add_noise.variance")
        big = torch.randn(4000, 1, 2, 2, generator=g)
        t_mid = int(torch.randint(100, 900, (), generator=g))
        xt = add_noise(big, torch.full((4000,), t_mid), torch.randn(4000, 1, 2, 2, generator=g), d.alpha_bar)
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
    x0, eps, t = _inputs("ex04.ddpm_loss")
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
    g = input_generator("ex04.reverse_step")
    xt, eps_hat, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    t_mid = int(torch.randint(200, 800, (), generator=g))

    def same_shape():
        expect_shape(reverse_step(eps_hat, xt, t_mid, z, d.beta, d.alpha_bar), xt.shape)

    def mean_eq_11():
        t = t_mid
        b, a, ab = d.beta[t], 1 - d.beta[t], d.alpha_bar[t]
        mu = (xt - b / (1 - ab).sqrt() * eps_hat) / a.sqrt()
        expect_close(reverse_step(eps_hat, xt, t, torch.zeros_like(z), d.beta, d.alpha_bar), mu,
                     atol=1e-5, what="x_{t-1} with z = 0 (the mean of Eq. 11)")

    def noise_scale():
        t = t_mid
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
        for t in (999, t_mid, 1, 0):
            expect_close(reverse_step(eps_hat, xt, t, z, d.beta, d.alpha_bar),
                         d.step(eps_hat, t, xt, noise=z), atol=1e-4, what=f"x_(t-1) at t = {t} vs cvae_lib")

    return run_checks("ex04.reverse_step", [
        ("keeps the shape", same_shape),
        ("the mean is Eq. 11", mean_eq_11),
        ("adds sqrt(beta_tilde_t) z", noise_scale),
        ("adds no noise at the last step", last_step),
        ("agrees with cvae_lib.diffusion.Diffusion.step", library),
    ])


def check_ddim_step(ddim_step):
    """ddim_step(eps_hat, xt, t, t_prev, eta, z, alpha_bar, clip) -> x_{t_prev}: DDIM's Eq. 12 with
    sigma from Eq. 16, t_prev = -1 meaning x0; clip clamps the predicted x0 to [-1, 1] first."""
    d, clipped = _schedule(), Diffusion(DiffusionConfig(T=1000, clip_x0=True))
    g = input_generator("ex04.ddim_step")
    xt, eps_hat, z = (torch.randn(3, 3, 8, 8, generator=g) for _ in range(3))
    t = int(torch.randint(300, 900, (), generator=g))
    t_prev = t - int(torch.randint(20, 200, (), generator=g))
    eta = 0.2 + 0.6 * float(torch.rand((), generator=g))

    def step(e, tt, tp, zz, clip=False):
        return ddim_step(eps_hat, xt, tt, tp, e, zz, d.alpha_bar, clip)

    def same_shape():
        expect_shape(step(0.0, t, t_prev, z), xt.shape)

    def deterministic():
        expect_close(step(0.0, t, t_prev, z), d.ddim_step(eps_hat, t, t_prev, xt, eta=0.0), atol=1e-5,
                     what=f"x_(t_prev) with eta = 0 (t = {t}, t_prev = {t_prev}): sqrt(ab_prev) x0_hat + "
                          f"sqrt(1 - ab_prev) eps_hat, whatever z is")

    def noise_term():
        ab, ab_prev = d.alpha_bar[t], d.alpha_bar[t_prev]
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        expect_close(step(eta, t, t_prev, z) - step(eta, t, t_prev, torch.zeros_like(z)), sigma * z, atol=1e-5,
                     what=f"the noise added with eta = {eta:.3f}: sigma z with sigma = eta sqrt((1 - ab_prev) / "
                          f"(1 - ab)) sqrt(1 - ab / ab_prev) (Eq. 16)")

    def general_eta():
        expect_close(step(eta, t, t_prev, z), d.ddim_step(eps_hat, t, t_prev, xt, eta=eta, noise=z), atol=1e-5,
                     what=f"x_(t_prev) with eta = {eta:.3f} (the direction to xt shrinks to sqrt(1 - ab_prev - "
                          f"sigma^2) eps_hat)")

    def ddpm_at_eta_1():
        expect_close(step(1.0, t, t - 1, z), d.step(eps_hat, t, xt, noise=z), atol=1e-4,
                     what=f"eta = 1, one step back (t = {t} -> {t - 1}) vs the DDPM step with beta_tilde")

    def last_step():
        tt = torch.full((3,), t)
        expect_close(step(eta, t, -1, z), d.predict_x0(xt, tt, eps_hat), atol=1e-4,
                     what="t_prev = -1 (alpha_bar_prev = 1, no noise): the predicted x0 itself")

    def clipping():
        big = 4 * xt                                                   # far outside [-1, 1]
        got = ddim_step(eps_hat, big, t, t_prev, eta, z, d.alpha_bar, True)
        expect_close(got, clipped.ddim_step(eps_hat, t, t_prev, big, eta=eta, noise=z), atol=1e-4,
                     what="clip=True: x0_hat clamped to [-1, 1], and eps_hat recomputed from the clamped x0_hat")

    return run_checks("ex04.ddim_step", [
        ("keeps the shape", same_shape),
        ("eta = 0 is the deterministic DDIM step", deterministic),
        ("eta scales the noise by sigma of Eq. 16", noise_term),
        ("any eta matches Eq. 12", general_eta),
        ("eta = 1 one step back is the DDPM step", ddpm_at_eta_1),
        ("t_prev = -1 gives the predicted x0", last_step),
        ("clip=True clamps the predicted x0", clipping),
    ])


@lru_cache(maxsize=1)
def ten_class_ddpm():
    """The shipped ten-class DDPM (checkpoints/ddpm_ten_class.safetensors) and its diffusion: the
    model `check_sample` samples with, a U-Net eps_theta(x, t, y) with the null class 10."""
    from ..models.unet import UNet, UNetConfig
    from ..weights import load_weights, read_metadata, shipped
    path = shipped("ddpm_ten_class")
    model = load_weights(path, UNet, UNetConfig).eval()
    cfg = DiffusionConfig(**read_metadata(path)["metrics"]["diffusion"])
    return model, Diffusion(cfg)


def check_sample(sample):
    """sample(model, y, w, eta, steps, generator, alpha_bar, null) -> images (n, 3, 32, 32) in [0, 1]:
    DDIM with classifier-free guidance from x_T drawn with `generator`, the same draws in the same
    order as `Diffusion.ddim_sample`, on the shipped ten-class DDPM."""
    model, d = ten_class_ddpm()
    g = input_generator("ex04.sample")
    y = torch.randint(0, 10, (2,), generator=g)
    seed = int(torch.randint(0, 2**31, (), generator=g))
    steps = 4

    def mine(w: float, eta: float) -> torch.Tensor:
        with torch.no_grad():
            return sample(model, y, w, eta, steps, torch.Generator().manual_seed(seed), d.alpha_bar, d.cfg.null_label)

    def library(w: float, eta: float) -> torch.Tensor:
        return d.ddim_sample(model, len(y), y, steps=steps, eta=eta, guidance=w,
                             generator=torch.Generator().manual_seed(seed), progress=False)

    def images():
        x = mine(2.0, 0.0)
        expect_shape(x, (2, 3, 32, 32))
        expect(bool(x.min() >= 0 and x.max() <= 1), f"images must be in [0, 1] (map x0 from [-1, 1]); got "
                                                     f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")

    def same_as_library(w: float, eta: float, hint: str):
        def test():
            expect_close(mine(w, eta), library(w, eta), atol=2e-3,
                         what=f"images for labels {y.tolist()} with w = {w:g}, eta = {eta:g}, {steps} steps, vs "
                              f"Diffusion.ddim_sample on the same generator ({hint})")
        return test

    return run_checks("ex04.sample", [
        ("returns images (n, 3, 32, 32) in [0, 1]", images),
        ("w = 0, eta = 0 matches the library's sampler", same_as_library(0.0, 0.0, "w = 0: only the null-class "
                                                                          "prediction; clip x0_hat")),
        ("w = 2, eta = 0 matches the library's sampler", same_as_library(2.0, 0.0, "eps = eps_null + w (eps_y - "
                                                                          "eps_null)")),
        ("w = 0, eta = 1 matches the library's sampler", same_as_library(0.0, 1.0, "draw x_T first, then one z per "
                                                                          "step except the last")),
        ("w = 2, eta = 1 matches the library's sampler", same_as_library(2.0, 1.0, "guidance and noise together")),
    ])
