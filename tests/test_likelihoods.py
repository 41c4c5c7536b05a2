"""The probability pieces of the VAEs: KL, reparameterisation, discretised likelihoods, bits/dim."""
import math

import pytest
import torch

from cvae_lib.metrics import bits_per_dim
from cvae_lib.models.likelihoods import (
    LIKELIHOODS,
    discretized_gaussian_logp,
    discretized_logistic_logp,
    kl_normal,
    make_likelihood,
    negative_elbo,
    reparameterize,
    soft_clamp,
)

LEVELS = torch.arange(256, dtype=torch.float64) * 2 / 255 - 1   # the 256 pixel levels in [-1, 1]


def test_kl_of_standard_normal_against_itself_is_zero():
    mu, logvar = torch.zeros(4, 16), torch.zeros(4, 16)
    assert torch.equal(kl_normal(mu, logvar), torch.zeros(4, 16))


def test_analytic_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(64, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(kl_normal(mu, logvar), torch.distributions.kl_divergence(q, p))
    assert (kl_normal(mu, logvar) >= 0).all()


def test_reparameterize_is_mu_plus_sigma_eps_and_passes_gradients():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    eps = torch.tensor([0.5, 1.0])
    z = reparameterize(mu, logvar, eps)
    torch.testing.assert_close(z, torch.tensor([1.5, 0.0]))
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones(2))             # dz/dmu = 1
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_reparameterized_samples_have_the_posterior_moments():
    torch.manual_seed(0)
    mu, logvar = torch.full((200_000,), 3.0), torch.full((200_000,), math.log(0.25))
    z = reparameterize(mu, logvar)
    assert abs(z.mean().item() - 3.0) < 0.01 and abs(z.std().item() - 0.5) < 0.01


def test_bits_per_dim_of_a_uniform_model_over_256_levels_is_exactly_8():
    n_dims = 3 * 32 * 32
    nll = torch.full((5,), n_dims * math.log(256))                  # -log(1/256) per sub-pixel, in nats
    torch.testing.assert_close(bits_per_dim(nll, n_dims), torch.full((5,), 8.0))


@pytest.mark.parametrize("logp", [discretized_logistic_logp, discretized_gaussian_logp])
@pytest.mark.parametrize("mean,log_scale", [(0.0, -2.0), (0.93, -4.0), (-1.2, 0.5), (0.3, -6.0)])
def test_discretized_probabilities_sum_to_one_over_the_256_levels(logp, mean, log_scale):
    p = logp(LEVELS, torch.tensor(mean, dtype=torch.float64), torch.tensor(log_scale, dtype=torch.float64)).exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0)
    assert p.argmax().item() == (LEVELS - max(-1.0, min(1.0, mean))).abs().argmin().item()


def test_discretized_logistic_in_float32_stays_finite_in_the_tails():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    logp = discretized_logistic_logp(x, torch.tensor(0.999), torch.tensor(-7.0))  # far from most x
    assert torch.isfinite(logp).all() and (logp <= 0).all()


def _one_pixel_params(name: str, lik) -> torch.Tensor:
    """Decoder output for one pixel (1, out_channels, 1, 1): means near 0, scales about one level."""
    torch.manual_seed(0)
    params = 0.01 * torch.randn(1, lik.out_channels, 1, 1)
    if name in ("gaussian_learned", "logistic"):
        params[:, 3:] = -5.2                      # raw log-scale, soft-clamped to about -5
    if name == "logistic_mixture":
        K = lik.n_mix
        params[0, :K, 0, 0] = torch.randn(K)      # mixture logits
        params[:, 4 * K:7 * K] = -5.2             # log-scales of every channel and component
        params[0, 7 * K:, 0, 0] = torch.randn(3 * K)  # RGB coupling coefficients, tanh'd in (-1, 1)
    return params


@pytest.mark.parametrize("name", ["gaussian", "gaussian_learned", "logistic", "logistic_mixture"])
def test_likelihood_of_one_pixel_sums_to_one_over_all_colours(name):
    """Sum P(r, g, b) from `lik.nll` over a 61^3 cube of colours around the means, which holds
    all but ~1e-7 of the mass: the total is 1 (neither unnormalised nor counted twice)."""
    lik = make_likelihood(name, sigma=0.01, n_mix=2)
    assert lik.discrete
    levels = torch.arange(98, 159) / 255                                      # 61 levels around 0.5
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    x = torch.stack([r, g, b]).reshape(3, -1).T[:, :, None, None]             # (61^3, 3, 1, 1)
    params = _one_pixel_params(name, lik).expand(len(x), -1, -1, -1)
    total = (-lik.nll(params, x).double()).exp().sum()
    assert 1 - 1e-4 < total.item() < 1 + 1e-5, total.item()


def test_bernoulli_is_not_a_discrete_likelihood_and_equals_bce():
    lik = make_likelihood("bernoulli")
    assert not lik.discrete
    logits, x = torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    expected = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum") / 2
    torch.testing.assert_close(lik.nll(logits, x).mean(), expected, rtol=1e-4, atol=1e-3)


def test_fixed_gaussian_nll_grows_like_squared_error_over_two_sigma_squared():
    lik = make_likelihood("gaussian", sigma=0.2)
    x = torch.full((1, 3, 4, 4), 128 / 255)
    mean = x * 2 - 1
    d = 0.1                                                     # shift on the [-1, 1] scale
    gap = lik.nll(mean + d, x) - lik.nll(mean, x)
    torch.testing.assert_close(gap, torch.tensor([48 * d**2 / (2 * 0.2**2)]), rtol=1e-2, atol=0)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_likelihood_mean_and_sample_are_images_in_unit_range(name):
    torch.manual_seed(0)
    lik = make_likelihood(name, n_mix=2)
    params = 3 * torch.randn(2, lik.out_channels, 8, 8)
    for img in (lik.mean(params), lik.sample(params)):
        assert img.shape == (2, 3, 8, 8) and img.min() >= 0 and img.max() <= 1
    if lik.discrete:   # samples sit on the 256 levels
        s = lik.sample(params) * 255
        torch.testing.assert_close(s, s.round())


def test_soft_clamp_is_bounded_smooth_and_keeps_gradients():
    x = torch.tensor([-1e4, -3.0, 0.0, 3.0, 1e4], requires_grad=True)
    y = soft_clamp(x, -10.0, 5.0)
    assert (y >= -10).all() and (y <= 5).all()
    y.sum().backward()
    assert (x.grad[1:4] > 0.5).all()


def test_free_bits_stop_rewarding_a_kl_below_the_threshold():
    nll = torch.zeros(4)
    kl = torch.full((4, 8), 0.1, requires_grad=True)            # 0.1 nats per element < 0.5 free
    loss, terms = negative_elbo(nll, kl, free_bits=0.5, n_dims=1)
    loss.backward()
    assert torch.equal(kl.grad, torch.zeros_like(kl))           # no pressure to shrink it further
    torch.testing.assert_close(terms["kl"], torch.tensor(0.8))   # the reported KL is the true one
    loss_plain, _ = negative_elbo(nll, kl.detach(), n_dims=1)
    torch.testing.assert_close(loss_plain, torch.tensor(0.8))
