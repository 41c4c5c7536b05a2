"""Checks for exercise 02 (VAE): reparameterisation, the Gaussian KL, the Bernoulli likelihood,
the KL warm-up, the whole objective, and a short training run built from them."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..models.likelihoods import kl_normal as reference_kl
from . import expect, expect_close, expect_shape, input_generator, run_checks

__all__ = ["check_reparameterize", "check_kl_normal", "check_bernoulli_nll", "check_kl_weight",
           "check_vae_objective", "check_train_vae", "REFERENCES"]

# The library's own versions of the graded functions (the grader flags a submission that calls them).
REFERENCES: dict[str, list[str]] = {
    "reparameterize": ["cvae_lib.models.likelihoods.reparameterize"],
    "kl_normal": ["cvae_lib.models.likelihoods.kl_normal", "cvae_lib.models.first_stage._kl"],
    "bernoulli_nll": ["cvae_lib.models.likelihoods.Bernoulli.nll"],
    "kl_weight": ["cvae_lib.models.elbo.kl_weight", "cvae_lib.models.elbo.GaussianLatentVAE.kl_weight"],
    "vae_objective": ["cvae_lib.models.likelihoods.negative_elbo", "cvae_lib.models.elbo.elbo_objective",
                      "cvae_lib.models.vae.vae_loss"],
    "train_vae": ["cvae_lib.train.fit", "cvae_lib.train.load_or_train"],
}


def check_reparameterize(reparameterize) -> list:
    """`reparameterize(mu, logvar, eps)` -> z = mu + exp(logvar / 2) * eps, same shape."""
    g = input_generator("ex02.reparameterize")
    mu, logvar, eps = (torch.randn(4, 8, generator=g) for _ in range(3))
    var = 1.5 + 3 * float(torch.rand((), generator=g))             # sigma^2, not 1

    def shape():
        expect_shape(reparameterize(mu, logvar, eps), (4, 8))

    def value():
        expect_close(reparameterize(mu, logvar, eps), mu + torch.exp(0.5 * logvar) * eps,
                     what="z for given mu, logvar, eps")

    def uses_log_variance():
        z = reparameterize(torch.zeros(1), torch.tensor([math.log(var)]), torch.ones(1))
        expect_close(z, [math.sqrt(var)], what=f"z for mu=0, logvar=log {var:.3f}, eps=1 (sigma = exp(logvar / 2) "
                                               f"= {math.sqrt(var):.3f}, not the variance and not exp(logvar))")

    def gradients():
        m, lv = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
        reparameterize(m, lv, eps).sum().backward()
        expect(m.grad is not None and lv.grad is not None,
               "no gradient reached mu or logvar: build z from them with differentiable operations")
        expect_close(m.grad, torch.ones_like(mu), what="dz/dmu")
        expect_close(lv.grad, 0.5 * torch.exp(0.5 * logvar) * eps, what="dz/dlogvar")

    return run_checks("reparameterize", [
        ("returns z with the shape of mu", shape),
        ("z = mu + sigma * eps", value),
        ("sigma is exp(logvar / 2)", uses_log_variance),
        ("gradients flow to mu and logvar", gradients),
    ])


def check_kl_normal(kl_normal) -> list:
    """`kl_normal(mu, logvar)` -> KL(N(mu, exp(logvar)) || N(0, 1)) per element, in nats."""
    g = input_generator("ex02.kl_normal")
    mu = torch.randn(5, 6, generator=g, dtype=torch.float64)
    logvar = torch.randn(5, 6, generator=g, dtype=torch.float64)

    def shape():
        expect_shape(kl_normal(mu, logvar), (5, 6))

    def zero_at_prior():
        expect_close(kl_normal(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3, 4),
                     what="KL of N(0, 1) from itself")

    def matches_torch():
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        expect_close(kl_normal(mu, logvar), torch.distributions.kl_divergence(q, p), atol=1e-6,
                     what="KL against torch.distributions.kl_divergence")

    def non_negative():
        v = kl_normal(3 * mu, 3 * logvar)
        expect(bool((v >= -1e-9).all()), f"a KL divergence is never negative; got min {float(v.min()):.3g}")

    return run_checks("kl_normal", [
        ("one value per element, same shape as mu", shape),
        ("is 0 when q is the prior N(0, 1)", zero_at_prior),
        ("matches torch.distributions", matches_torch),
        ("is never negative", non_negative),
    ])


def _bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)   # (B,)


def check_bernoulli_nll(bernoulli_nll) -> list:
    """`bernoulli_nll(logits, x)` -> binary cross-entropy with logits, summed over the pixels of
    each image: nats per image, (B,)."""
    g = input_generator("ex02.bernoulli_nll")
    logits = 2 * torch.randn(4, 3, 8, 8, generator=g)
    x = torch.rand(4, 3, 8, 8, generator=g)
    binary = (torch.rand(4, 3, 8, 8, generator=g) > 0.5).float()

    def shape():
        expect_shape(bernoulli_nll(logits, x), (4,))

    def matches_bce():
        expect_close(bernoulli_nll(logits, x), _bce(logits, x), atol=1e-3,
                     what="-log p(x|z) per image (binary cross-entropy with logits, summed over the "
                          "C*H*W pixels of each image, not averaged)")

    def half_at_zero_logits():
        expect_close(bernoulli_nll(torch.zeros_like(x), x), torch.full((4,), 3 * 8 * 8 * math.log(2)), atol=1e-3,
                     what="logits 0 (p = 1/2 for every pixel): ln 2 nats per pixel")

    def stable():
        confident = 100.0 * (2 * binary - 1)                          # sure, and right
        wrong = -confident                                            # sure, and wrong
        got_right, got_wrong = bernoulli_nll(confident, binary), bernoulli_nll(wrong, binary)
        expect(bool(torch.isfinite(got_right).all() and torch.isfinite(got_wrong).all()),
               f"logits of +-100 gave {got_wrong.tolist()}: log(sigmoid(l)) underflows to -inf; use "
               f"F.binary_cross_entropy_with_logits or F.logsigmoid")
        expect_close(got_wrong, torch.full((4,), 100.0 * 3 * 8 * 8), atol=1e-2,
                     what="every pixel wrong with logit 100: 100 nats per pixel")
        expect_close(got_right, torch.zeros(4), atol=1e-2, what="every pixel right with logit 100")

    def non_negative():
        v = bernoulli_nll(logits, x)
        expect(bool((v >= 0).all()), f"a negative log-likelihood of pixels in [0, 1] is never negative; got "
                                     f"{v.tolist()} (check the sign)")

    return run_checks("bernoulli_nll", [
        ("one value per image, shape (B,)", shape),
        ("is the binary cross-entropy summed over the pixels", matches_bce),
        ("logits of 0 cost ln 2 per pixel", half_at_zero_logits),
        ("stays finite and exact for confident logits", stable),
        ("is never negative", non_negative),
    ])


def check_kl_weight(kl_weight) -> list:
    """`kl_weight(step, warmup_steps, beta)` -> beta * min(1, step / warmup_steps), beta if no warm-up."""
    g = input_generator("ex02.kl_weight")
    warmup = 8 * int(torch.randint(2, 30, (), generator=g))        # a multiple of 8
    beta = 0.5 + 3 * float(torch.rand((), generator=g))

    def starts_at_zero():
        expect_close(float(kl_weight(0, warmup, beta)), 0.0, what=f"the weight at step 0 (warm-up {warmup} steps)")

    def linear():
        got = [float(kl_weight(s, warmup, beta)) for s in (warmup // 8, warmup // 4, warmup // 2)]
        expect_close(got, [beta / 8, beta / 4, beta / 2], atol=1e-6,
                     what=f"the weight at steps {warmup // 8}, {warmup // 4}, {warmup // 2} of a {warmup}-step "
                          f"warm-up to beta = {beta:.3f} (beta * step / warmup_steps)")

    def reaches_beta():
        got = [float(kl_weight(s, warmup, beta)) for s in (warmup, warmup + 1, 10 * warmup)]
        expect_close(got, [beta] * 3, atol=1e-6, what="the weight at and after the end of the warm-up (beta, "
                                                       "never more)")

    def no_warmup():
        expect_close(float(kl_weight(0, 0, beta)), beta, what="the weight at step 0 with warmup_steps = 0 (no "
                                                              "warm-up: beta at once)")

    return run_checks("kl_weight", [
        ("is 0 at the first step", starts_at_zero),
        ("grows linearly during the warm-up", linear),
        ("reaches beta at the end of the warm-up and stays there", reaches_beta),
        ("is beta at once without a warm-up", no_warmup),
    ])


def _objective(x, logits, mu, logvar, beta):
    rec, kl = _bce(logits, x), reference_kl(mu, logvar).flatten(1).sum(1)    # (B,) each
    return (rec + beta * kl).mean(), rec.mean(), kl.mean()


def check_vae_objective(vae_objective) -> list:
    """`vae_objective(x, logits, mu, logvar, beta)` -> (loss, rec, kl): rec and kl in nats per image,
    averaged over the batch, and loss = rec + beta * kl, all scalars."""
    g = input_generator("ex02.vae_objective")
    x = torch.rand(6, 3, 8, 8, generator=g)
    logits = torch.randn(6, 3, 8, 8, generator=g)
    mu, logvar = torch.randn(6, 5, generator=g), 0.5 * torch.randn(6, 5, generator=g)
    beta = 0.2 + 2 * float(torch.rand((), generator=g))
    loss_ref, rec_ref, kl_ref = _objective(x, logits, mu, logvar, beta)

    def three(out):
        expect(isinstance(out, (tuple, list)) and len(out) == 3, f"expected (loss, rec, kl), got {type(out).__name__}")
        for name, v in zip(("loss", "rec", "kl"), out):
            shape = tuple(getattr(v, "shape", ()))
            expect(isinstance(v, torch.Tensor) and v.dim() == 0,
                   f"{name} should be a scalar tensor, got {type(v).__name__} {shape}")
        return out

    def scalars():
        three(vae_objective(x, logits, mu, logvar, beta))

    def reconstruction():
        expect_close(three(vae_objective(x, logits, mu, logvar, beta))[1], rec_ref, atol=1e-2,
                     what="rec: the Bernoulli -log p(x|z) summed over each image's pixels, averaged over the batch")

    def kl_per_image():
        expect_close(three(vae_objective(x, logits, mu, logvar, beta))[2], kl_ref, atol=1e-4,
                     what="kl: summed over the latent dimensions, averaged over the batch (a KL summed over "
                          "the batch grows with the batch size; the reconstruction term does not)")

    def weighted_sum():
        expect_close(three(vae_objective(x, logits, mu, logvar, beta))[0], loss_ref, atol=1e-2,
                     what=f"loss = rec + beta * kl with beta = {beta:.3f}")

    def beta_on_kl_only():
        loss, rec, _ = three(vae_objective(x, logits, mu, logvar, 0.0))
        expect_close(loss, rec, atol=1e-3, what="loss with beta = 0 (only the reconstruction term; beta weights "
                                                "the KL, not the reconstruction)")

    def gradients():
        leaves = [t.clone().requires_grad_(True) for t in (logits, mu, logvar)]
        three(vae_objective(x, *leaves, beta))[0].backward()
        want = [t.clone().requires_grad_(True) for t in (logits, mu, logvar)]
        _objective(x, *want, beta)[0].backward()
        for name, got, ref in zip(("logits", "mu", "logvar"), leaves, want):
            expect(got.grad is not None, f"no gradient reached {name}: compute the loss from it with torch operations")
            expect_close(got.grad, ref.grad, atol=1e-4, what=f"d loss / d {name}")

    return run_checks("vae_objective", [
        ("returns three scalars (loss, rec, kl)", scalars),
        ("rec is the reconstruction term in nats per image", reconstruction),
        ("kl is summed over z and averaged over the batch", kl_per_image),
        ("loss = rec + beta * kl", weighted_sum),
        ("beta weights the KL term only", beta_on_kl_only),
        ("gradients reach the logits, mu and logvar", gradients),
    ])


def smooth_images(n: int, generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """n smooth random colour images (n, 3, size, size) in (0, 1), mostly dark: a 4x4 field,
    upsampled; the stand-in for CIFAR-10 that the training checks learn from in a second (far from
    grey, so that a few steps of a working loop already reconstruct them measurably better)."""
    field = 4 * torch.randn(n, 3, 4, 4, generator=generator) - 3
    return torch.sigmoid(F.interpolate(field, size=size, mode="bilinear", align_corners=False))


def check_train_vae(train_vae) -> list:
    """`train_vae(images, steps, warmup_steps, batch_size, lr, latent_dim, width, seed)` -> {"rec", "kl",
    "beta": (steps,) per step, "samples": (16, 3, 32, 32) in [0, 1]}: a short training run."""
    g = input_generator("ex02.train_vae")
    images = smooth_images(64, g)
    steps, warmup = 25, int(torch.randint(6, 16, (), generator=g))
    seed = int(torch.randint(0, 2**31, (), generator=g))
    runs = []

    def run() -> dict:
        if not runs:
            out = train_vae(images, steps, warmup, batch_size=8, lr=3e-3, latent_dim=8, width=8, seed=seed)
            expect(isinstance(out, dict), f"expected a dict, got {type(out).__name__}")
            runs.append(out)
        return runs[0]

    def series(key: str) -> torch.Tensor:
        out = run()
        expect(key in out, f"the result has no {key!r}; it should hold 'rec', 'kl', 'beta' and 'samples'")
        v = torch.as_tensor(out[key], dtype=torch.float64)
        expect_shape(v, (steps,))
        return v

    def shapes():
        for key in ("rec", "kl", "beta"):
            series(key)
        samples = run().get("samples")
        expect_shape(samples, (16, 3, 32, 32))
        expect(bool(samples.min() >= 0 and samples.max() <= 1),
               f"samples must be images in [0, 1] (the sigmoid of the decoder's logits); got "
               f"[{float(samples.min()):.3g}, {float(samples.max()):.3g}]")

    def warm_up():
        want = [min(1.0, s / warmup) for s in range(steps)]
        expect_close(series("beta"), want, atol=1e-6,
                     what=f"beta of steps 0..{steps - 1} with a {warmup}-step warm-up (kl_weight(step, ...) "
                          f"with the step counted from 0)")

    def nats_per_image():
        rec = series("rec")
        expect(bool(rec[0] > 0.25 * 3 * 32 * 32 * math.log(2)),
               f"the first reconstruction term is {float(rec[0]):.4g}: it should be in nats per image (summed "
               f"over the 3072 pixels, about ln 2 each at the start), not per pixel")
        kl = series("kl")
        expect(bool((kl >= 0).all()), f"the KL term went negative ({float(kl.min()):.3g})")

    def learns():
        rec = series("rec")
        first, last = float(rec[:3].mean()), float(rec[-5:].mean())
        expect(last < first - 0.05 * 3 * 32 * 32 * math.log(2),
               f"the reconstruction term did not fall: {first:.1f} in the first 3 steps, {last:.1f} in the last "
               f"5 (does each step clear the gradients, call loss.backward() and optimizer.step(), and "
               f"minimise the objective rather than maximise it?)")

    return run_checks("train_vae", [
        ("returns rec, kl and beta per step and 16 samples in [0, 1]", shapes),
        ("beta follows the warm-up step by step", warm_up),
        ("records the terms in nats per image", nats_per_image),
        ("the reconstruction term falls during training", learns),
    ])
