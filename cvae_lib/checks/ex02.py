"""Checks for exercise 02 (VAE): reparameterisation, the Gaussian KL, bits/dim and the ELBO."""
from __future__ import annotations

import math

import torch

from ..models.likelihoods import kl_normal as reference_kl
from . import expect, expect_close, expect_shape, run_checks


def check_reparameterize(reparameterize) -> list:
    """`reparameterize(mu, logvar, eps)` -> z = mu + exp(logvar / 2) * eps, same shape."""
    g = torch.Generator().manual_seed(0)
    mu, logvar, eps = (torch.randn(4, 8, generator=g) for _ in range(3))

    def shape():
        expect_shape(reparameterize(mu, logvar, eps), (4, 8))

    def value():
        expect_close(reparameterize(mu, logvar, eps), mu + torch.exp(0.5 * logvar) * eps,
                     what="z for given mu, logvar, eps")

    def uses_log_variance():
        z = reparameterize(torch.zeros(1), torch.tensor([math.log(4.0)]), torch.ones(1))
        expect_close(z, [2.0], what="z for mu=0, logvar=log 4, eps=1 (sigma = exp(logvar / 2) = 2, "
                                    "not the variance 4 and not exp(logvar))")

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
    g = torch.Generator().manual_seed(1)
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


def check_bits_per_dim(bits_per_dim) -> list:
    """`bits_per_dim(nll, n_dims)`: nats per image (B,) -> bits per dimension (B,)."""
    def uniform():
        nll = torch.full((3,), 3072 * math.log(256))
        expect_close(bits_per_dim(nll, 3072), torch.full((3,), 8.0),
                     what="bits/dim of a uniform model over 256 levels (should be 8)")

    def shape():
        expect_shape(bits_per_dim(torch.rand(7) * 1000, 3072), (7,))

    def per_dimension():
        expect_close(bits_per_dim(torch.tensor([100 * math.log(2)]), 100), [1.0],
                     what="100 dimensions and 100 ln 2 nats (should be 1 bit each)")

    return run_checks("bits_per_dim", [
        ("a uniform model over 256 levels gives 8", uniform),
        ("one value per image", shape),
        ("converts nats to bits and divides by the dimensions", per_dimension),
    ])


def check_negative_elbo_bpd(negative_elbo_bpd) -> list:
    """`negative_elbo_bpd(nll, mu, logvar)` -> -ELBO per image in bits/dim: (nll + sum KL) / (D ln 2)."""
    g = torch.Generator().manual_seed(2)
    nll = 3000 + 100 * torch.rand(4, generator=g)
    mu, logvar = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    expected = (nll + reference_kl(mu, logvar).sum(1)) / (3072 * math.log(2))

    def shape():
        expect_shape(negative_elbo_bpd(nll, mu, logvar), (4,))

    def kl_counts():
        got = negative_elbo_bpd(nll, torch.zeros(4, 16), torch.zeros(4, 16))
        expect_close(got, nll / (3072 * math.log(2)), what="-ELBO with q = prior (KL 0)")

    def value():
        expect_close(negative_elbo_bpd(nll, mu, logvar), expected,
                     what="-ELBO in bits/dim (sum the KL over latent dimensions, per image)")

    return run_checks("negative_elbo_bpd", [
        ("one value per image", shape),
        ("with q equal to the prior it is the reconstruction term alone", kl_counts),
        ("adds the KL summed over the latent dimensions", value),
    ])
