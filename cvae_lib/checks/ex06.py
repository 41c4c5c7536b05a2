"""Checks for exercise 06 (latent diffusion): scaling the latents, one guided step in latent
space, decoding, and the whole sampling loop in latent space. Each compares the student's
function with closed forms and with `cvae_lib`, and names the property that does not hold. No
data or shipped weights are needed: the first stage is a small random one, the prior a formula."""
from __future__ import annotations

import torch

from ..diffusion import Diffusion, DiffusionConfig
from ..models.first_stage import FirstStage, FirstStageConfig
from . import expect, expect_close, expect_shape, input_generator, run_checks, seeded

__all__ = ["check_latent_scale", "check_guided_latent_step", "check_decode_samples", "check_sample_latent",
           "REFERENCES"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "latent_scale": ["cvae_lib.models.first_stage.FirstStage.set_scale"],
    "guided_latent_step": ["cvae_lib.diffusion.Diffusion.ddim_step", "cvae_lib.diffusion.Diffusion.guided_eps"],
    "decode_samples": ["cvae_lib.models.first_stage.FirstStage.decode_latent"],
    "sample_latent": ["cvae_lib.diffusion.Diffusion.ddim_sample", "cvae_lib.latent.LatentDiffusion.sample",
                      "cvae_lib.diffusion.Diffusion.guided_eps", "cvae_lib.diffusion.Diffusion.ddim_step"],
}


def _latents(name: str, n: int = 64) -> torch.Tensor:
    g = input_generator(name)
    std, mean = 0.2 + float(torch.rand((), generator=g)), float(torch.randn((), generator=g))
    return torch.randn(n, 4, 8, 8, generator=g) * std + mean      # (N, C, h, w), not unit variance


def check_latent_scale(latent_scale):
    """latent_scale(mu) -> the float s = 1 / std(mu) over every entry, so that mu * s has unit std."""
    mu = _latents("ex06.latent_scale")

    def a_positive_number():
        s = latent_scale(mu)
        expect(isinstance(s, (float, int)) or (isinstance(s, torch.Tensor) and s.numel() == 1),
               f"expected one number, got {type(s).__name__} {getattr(s, 'shape', '')}")
        expect(float(s) > 0, f"the scale must be positive, got {float(s):.4g}")

    def unit_variance():
        s = float(latent_scale(mu))
        expect_close((mu * s).std(), 1.0, atol=1e-4, what="std of mu * scale")

    def one_scale_for_all_channels():
        mixed = mu.clone()
        mixed[:, 0] *= 5                                            # one channel far wider
        s = float(latent_scale(mixed))
        expect_close(s, 1 / float(mixed.std()), atol=1e-5,
                     what="the scale of latents whose channel 0 is 5x wider (one global std, "
                          "not per channel or per image: the decoder expects the same ratios)")

    def scale_equivariant():
        expect_close(float(latent_scale(3 * mu)), float(latent_scale(mu)) / 3, atol=1e-5,
                     what="latent_scale(3 mu) (should be latent_scale(mu) / 3)")

    return run_checks("ex06.latent_scale", [
        ("returns one positive number", a_positive_number),
        ("makes the latents unit-variance", unit_variance),
        ("uses one standard deviation over all channels", one_scale_for_all_channels),
        ("scales inversely with the latents", scale_equivariant),
    ])


def _spy_model():
    """eps_theta(z, t, y) that depends on all three, with null class 10."""
    def model(z, t, y):
        return 0.3 * z + 1e-4 * t.float().view(-1, 1, 1, 1) + 0.05 * (y.float().view(-1, 1, 1, 1) - 4)
    return model


def check_guided_latent_step(guided_latent_step):
    """guided_latent_step(model, zt, t, t_prev, y, w, null, alpha_bar) -> z_{t_prev}: guided
    noise, then the deterministic DDIM step (eta = 0), without clipping (latents are unbounded)."""
    d = Diffusion(DiffusionConfig(T=1000, null_label=10, data="latent"))
    model = _spy_model()
    g = input_generator("ex06.guided_latent_step")
    zt = torch.randn(3, 4, 8, 8, generator=g) * 2                    # |z| > 1 is common
    a, b = torch.randperm(10, generator=g)[:2].tolist()
    y = torch.tensor([a, b, b])
    null = 10
    w3 = 2.5 + float(torch.rand((), generator=g))

    def library(t, t_prev, w):
        tt = torch.full((3,), t)
        return d.ddim_step(d.guided_eps(model, zt, tt, y, w), t, t_prev, zt)

    def same_shape():
        expect_shape(guided_latent_step(model, zt, 500, 480, y, 2.0, null, d.alpha_bar), zt.shape)

    def conditional_at_w1():
        tt = torch.full((3,), 500)
        eps = model(zt, tt, y)
        ab, ab_prev = d.alpha_bar[500], d.alpha_bar[480]
        x0 = (zt - (1 - ab).sqrt() * eps) / ab.sqrt()
        expect_close(guided_latent_step(model, zt, 500, 480, y, 1.0, null, d.alpha_bar),
                     ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps, atol=1e-4,
                     what="the step with w = 1 (the plain conditional prediction, DDIM Eq. 12)")

    def unconditional_at_w0():
        expect_close(guided_latent_step(model, zt, 500, 480, y, 0.0, null, d.alpha_bar),
                     library(500, 480, 0.0), atol=1e-4,
                     what="the step with w = 0 (only the null-class prediction counts)")

    def guidance_formula():
        expect_close(guided_latent_step(model, zt, 500, 480, y, w3, null, d.alpha_bar),
                     library(500, 480, w3), atol=1e-4,
                     what=f"the step with w = {w3:.3f}: eps = eps_null + w (eps_y - eps_null)")

    def no_clipping():
        out = guided_latent_step(model, zt, 20, 0, y, 2.0, null, d.alpha_bar)
        expect(out.abs().max() > 1.0, "the result never leaves [-1, 1]: latents must not be clipped "
                                      "(clip the predicted x0 only for images)")

    def last_step_gives_x0():
        tt = torch.full((3,), 30)
        eps = d.guided_eps(model, zt, tt, y, 2.0)
        expect_close(guided_latent_step(model, zt, 30, -1, y, 2.0, null, d.alpha_bar),
                     d.predict_x0(zt, tt, eps), atol=1e-4,
                     what="t_prev = -1 (the last step: alpha_bar_prev = 1, the predicted z0 itself)")

    return run_checks("ex06.guided_latent_step", [
        ("keeps the shape (B, C, h, w)", same_shape),
        ("w = 1 is the conditional DDIM step", conditional_at_w1),
        ("w = 0 is the unconditional step", unconditional_at_w0),
        ("w > 1 follows the guidance formula", guidance_formula),
        ("does not clip latents", no_clipping),
        ("t_prev = -1 returns the predicted z0", last_step_gives_x0),
    ])


def check_decode_samples(decode_samples):
    """decode_samples(first_stage, z) -> images (B, 3, 32, 32) in [0, 1]: undo the scale, decode."""
    with seeded("ex06.decode_samples"):
        first = FirstStage(FirstStageConfig(width=8, latent_channels=4, disc_width=8)).eval()
    g = input_generator("ex06.decode_samples")
    scale = 1.5 + 2 * float(torch.rand((), generator=g))
    first.scale.fill_(scale)
    z = torch.randn(2, 4, 8, 8, generator=g)

    def images():
        x = decode_samples(first, z)
        expect_shape(x, (2, 3, 32, 32))
        expect(x.min() >= 0 and x.max() <= 1, f"images must be in [0, 1], got [{x.min():.3f}, {x.max():.3f}]")

    def undoes_the_scale():
        with torch.no_grad():
            expected = first.decode(z / scale)
        expect_close(decode_samples(first, z), expected, atol=1e-5,
                     what="decoded images (the prior's latents are scaled: divide by first_stage.scale "
                          "before the decoder)")

    def matches_library():
        expect_close(decode_samples(first, z), first.decode_latent(z), atol=1e-5,
                     what="decode_samples vs FirstStage.decode_latent")

    return run_checks("ex06.decode_samples", [
        ("returns images (B, 3, 32, 32) in [0, 1]", images),
        ("divides by the latent scale before decoding", undoes_the_scale),
        ("agrees with FirstStage.decode_latent", matches_library),
    ])


def check_sample_latent(sample_latent):
    """sample_latent(prior, y, w, steps, generator, alpha_bar, null, shape) -> the final latents
    (n, *shape): z_T drawn with `generator`, then deterministic guided DDIM steps (eta = 0) over
    `ddim_timesteps(T, steps)`, as `Diffusion.ddim_sample(..., eta=0)` with data="latent"."""
    d = Diffusion(DiffusionConfig(T=1000, null_label=10, data="latent"))
    prior = _spy_model()
    g = input_generator("ex06.sample_latent")
    y = torch.randint(0, 10, (3,), generator=g)
    seed = int(torch.randint(0, 2**31, (), generator=g))
    shape, steps = (4, 8, 8), 6
    w3 = 2.5 + float(torch.rand((), generator=g))

    def mine(w: float) -> torch.Tensor:
        return sample_latent(prior, y, w, steps, torch.Generator().manual_seed(seed), d.alpha_bar, 10, shape)

    def library(w: float) -> torch.Tensor:
        return d.ddim_sample(prior, len(y), y, steps=steps, eta=0.0, guidance=w, shape=shape,
                             generator=torch.Generator().manual_seed(seed), progress=False)

    def latents():
        expect_shape(mine(1.0), (3, *shape))

    def conditional():
        expect_close(mine(1.0), library(1.0), atol=1e-4,
                     what=f"the latents for labels {y.tolist()} with w = 1, {steps} steps, vs Diffusion.ddim_sample "
                          f"(z_T = torch.randn((n, *shape), generator=generator), then one guided_latent_step per "
                          f"listed timestep to the next, -1 after the last)")

    def guided():
        expect_close(mine(w3), library(w3), atol=1e-4,
                     what=f"the latents with w = {w3:.3f} vs Diffusion.ddim_sample with the same guidance")

    return run_checks("ex06.sample_latent", [
        ("returns latents (n, C, h, w)", latents),
        ("w = 1 matches the library's latent sampler", conditional),
        ("w > 1 matches the library's latent sampler", guided),
    ])
