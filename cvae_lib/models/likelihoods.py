"""The probability pieces of a VAE: the Gaussian posterior and the decoder likelihoods.

Posterior (Kingma & Welling, 2013):
    z = mu + sigma * eps,  eps ~ N(0, I),  sigma = exp(logvar / 2)          (reparameterisation)
    KL(N(mu, sigma^2) || N(0, 1)) = 1/2 (mu^2 + sigma^2 - 1 - logvar)      (per latent dimension)

Decoder likelihoods p(x | z), chosen by name with `make_likelihood`; each turns the decoder's
output tensor `params` (B, out_channels, 32, 32) into a negative log-likelihood in **nats per
image** (B,), so that every model reports comparable numbers:

| name | out_channels | what it is | proper discrete? |
|---|---|---|---|
| `bernoulli` | 3 | binary cross-entropy on pixels in [0, 1] (what the study used) | no |
| `gaussian` | 3 | Gaussian of fixed sigma, discretised to the 256 pixel levels | yes |
| `gaussian_learned` | 6 | the same with a per-pixel learned log sigma | yes |
| `logistic` | 6 | discretised logistic per channel (Salimans et al., 2017) | yes |
| `logistic_mixture` | 10 K | mixture of K discretised logistics, RGB coupled (PixelCNN++) | yes |

"Proper discrete" means the probabilities of the 256 levels of each sub-pixel sum to 1, so
-log2 p(x) / (3 * 32 * 32) is a true code length in **bits per dimension** (8 bits/dim is the
uniform model). BCE with continuous targets in [0, 1] is not a distribution over the 256
levels (it is not even normalised for targets strictly between 0 and 1), so its "nats" are not
a code length and cannot be turned into bits/dim.

Discretised likelihoods work on pixels rescaled to [-1, 1], where the 256 levels sit at
-1 + 2k/255 and each owns a bin of half-width 1/255; the two edge bins extend to -inf and +inf.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..pixels import from_unit, to_unit

__all__ = ["reparameterize", "kl_normal", "soft_clamp", "negative_elbo", "Likelihood",
           "Bernoulli", "DiscretizedGaussian", "DiscretizedLogistic", "DiscretizedLogisticMixture",
           "make_likelihood", "LIKELIHOODS", "discretized_logistic_logp", "discretized_gaussian_logp"]

HALF_BIN = 1.0 / 255.0  # half-width of one pixel level on the [-1, 1] scale
LN2 = math.log(2.0)
_LOG_TINY = math.log(1e-10)  # below this a bin's probability comes from the density instead


# ----------------------------------------------------------------------------- the posterior

def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) (Kingma & Welling 2013, eq. 10).

    mu, logvar: any shape (B, ...); eps: same shape, drawn here if not given. Gradients flow
    to mu and logvar because the randomness sits in eps only.
    """
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element, in nats, same shape as mu (>= 0).

    = 1/2 (mu^2 + exp(logvar) - 1 - logvar)   (Kingma & Welling 2013, appendix B)
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def soft_clamp(x: torch.Tensor, lo: float = -10.0, hi: float = 5.0) -> torch.Tensor:
    """Squash x smoothly into (lo, hi): identity-like in the middle, never flat (unlike clamp).

    Used for log-variances and log-scales: exp(10) or exp(-30) would blow up the loss or its
    gradient, but a hard clamp would stop the gradient at the boundary.
    """
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    return mid + half * torch.tanh((x - mid) / half)


def negative_elbo(nll: torch.Tensor, kl: torch.Tensor, *, beta: float = 1.0, free_bits: float = 0.0,
                  n_dims: int = 3 * 32 * 32, discrete: bool = True) -> tuple[torch.Tensor, dict]:
    """The training loss of a VAE and the terms to log.

    nll: (B,) nats per image, -log p(x|z); kl: (B, ...) KL per latent element in nats.
    beta: weight of the KL (Higgins et al. 2017; 0 during a warm-up start, 1 for the true ELBO).
    free_bits: nats each latent element may use for free (Kingma et al. 2016, IAF, eq. 15):
    the batch-mean KL of every element is clamped at `free_bits` before summing, so the
    optimiser gains nothing by pushing it lower: a cure for posterior collapse.

    Returns loss = mean_B(nll + beta * KL_fb) / n_dims (nats per dimension, a scale Adam likes)
    and terms {"rec": nats/image, "kl": nats/image, "bpd": -ELBO in bits/dim (discrete only)}.
    """
    kl_img = kl.flatten(1).sum(1)                               # (B, ...) -> (B,)
    if free_bits > 0:
        kl_fb = kl.flatten(1).mean(0).clamp(min=free_bits).sum()  # per element over the batch
    else:
        kl_fb = kl_img.mean()
    loss = (nll.mean() + beta * kl_fb) / n_dims
    terms = {"rec": nll.mean().detach(), "kl": kl_img.mean().detach()}
    if discrete:
        terms["bpd"] = (terms["rec"] + terms["kl"]) / (n_dims * LN2)
    return loss, terms


# ----------------------------------------------------------------------------- discretised densities

def _log_delta(cdf, a: torch.Tensor, b: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
    """log(cdf(a) - cdf(b)) for a > b, computed in the tail that avoids cancellation."""
    upper = cdf(-b) - cdf(-a)        # same difference, precise when both cdfs are near 1
    lower = cdf(a) - cdf(b)
    return torch.where(mid > 0, upper, lower).clamp(min=1e-12).log()


def discretized_logistic_logp(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) per element for a logistic(mean, s = exp(log_scale)) discretised to 256 levels.

    x: pixels in [-1, 1] on the levels -1 + 2k/255 (any shape); mean, log_scale broadcastable.
    P(x) = sigmoid((x + 1/255 - mean)/s) - sigmoid((x - 1/255 - mean)/s), edge bins open-ended
    (Salimans et al. 2017, PixelCNN++, eq. 2). Returns the same shape as x, values <= 0.
    """
    inv_s = torch.exp(-log_scale)
    centred = x - mean
    plus, minus, mid = inv_s * (centred + HALF_BIN), inv_s * (centred - HALF_BIN), inv_s * centred
    log_cdf_plus = F.logsigmoid(plus)               # log P(X <= x + 1/255): the bottom edge bin
    log_sf_minus = F.logsigmoid(-minus)             # log P(X >  x - 1/255): the top edge bin
    log_delta = _log_delta(torch.sigmoid, plus, minus, mid)
    # far in a tail the difference underflows: use density * bin width (as PixelCNN++ does; the
    # tail-side difference above is precise down to ~1e-10, so the switch comes later than theirs)
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * HALF_BIN)
    inner = torch.where(log_delta > _LOG_TINY, log_delta, log_pdf_mid)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_sf_minus, inner))


def discretized_gaussian_logp(x: torch.Tensor, mean: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log P(x) per element for N(mean, sigma^2) discretised to 256 levels (edge bins open-ended).

    As `discretized_logistic_logp` with Phi, the standard normal CDF, in place of the sigmoid
    (the decoder of Ho et al. 2020, eq. 13, uses the same discretisation).
    """
    inv_s = torch.exp(-log_sigma)
    centred = x - mean
    plus, minus, mid = inv_s * (centred + HALF_BIN), inv_s * (centred - HALF_BIN), inv_s * centred
    log_cdf_plus = torch.special.log_ndtr(plus)
    log_sf_minus = torch.special.log_ndtr(-minus)
    log_delta = _log_delta(torch.special.ndtr, plus, minus, mid)
    log_pdf_mid = -0.5 * mid.pow(2) - log_sigma - 0.5 * math.log(2 * math.pi) + math.log(2 * HALF_BIN)
    inner = torch.where(log_delta > _LOG_TINY, log_delta, log_pdf_mid)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_sf_minus, inner))


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the nearest of the 256 levels, returned in [0, 1]."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0


# ----------------------------------------------------------------------------- likelihoods

class Likelihood:
    """p(x | params): `nll` in nats per image, `mean` for reconstructions, `sample` for images.

    params: the decoder's output (B, out_channels, H, W); x: images (B, 3, H, W) in [0, 1].
    """
    name = "?"
    out_channels = 3
    discrete = True   # True: the 256 levels' probabilities sum to 1, so bits/dim is valid

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Bernoulli(Likelihood):
    """Binary cross-entropy with logits, summed over pixels: the study's reconstruction loss.

    Not a proper likelihood for pixels in [0, 1] (see module docstring): `discrete` is False.
    Its "sample" is the mean image, since flipping coins per pixel makes no sense here.
    """
    name, out_channels, discrete = "bernoulli", 3, False

    def nll(self, params, x):
        bce = F.binary_cross_entropy_with_logits(params.float(), x, reduction="none")
        return bce.flatten(1).sum(1)           # (B, C*H*W) -> (B,)

    def mean(self, params):
        return torch.sigmoid(params)

    sample = mean


class DiscretizedGaussian(Likelihood):
    """Discretised N(mean, sigma^2) per sub-pixel; sigma fixed, or learned per pixel.

    sigma is on the [-1, 1] scale (sigma = 0.1 there is 0.05 on [0, 1]). With a fixed sigma the
    NLL is, up to constants, the squared error / (2 sigma^2): MSE is a Gaussian in disguise.
    """

    def __init__(self, sigma: float | None = 0.1):
        self.sigma = sigma
        self.name = "gaussian" if sigma is not None else "gaussian_learned"
        self.out_channels = 3 if sigma is not None else 6

    def _split(self, params):
        params = params.float()
        if self.sigma is not None:
            return params, torch.full_like(params, math.log(self.sigma))
        mean, log_sigma = params.chunk(2, dim=1)              # (B, 6, H, W) -> 2 x (B, 3, H, W)
        return mean, soft_clamp(log_sigma, -7.0, 1.0)

    def nll(self, params, x):
        mean, log_sigma = self._split(params)
        return -discretized_gaussian_logp(from_unit(x), mean, log_sigma).flatten(1).sum(1)

    def mean(self, params):
        return to_unit(self._split(params)[0])

    def sample(self, params):
        mean, log_sigma = self._split(params)
        return _quantize(mean + log_sigma.exp() * torch.randn_like(mean))

    def __repr__(self):
        return f"DiscretizedGaussian(sigma={self.sigma})"


class DiscretizedLogistic(Likelihood):
    """A discretised logistic per sub-pixel with a learned mean and log-scale (6 channels)."""
    name, out_channels = "logistic", 6

    def _split(self, params):
        mean, log_scale = params.float().chunk(2, dim=1)      # (B, 6, H, W) -> 2 x (B, 3, H, W)
        return mean, soft_clamp(log_scale, -7.0, 1.0)

    def nll(self, params, x):
        mean, log_scale = self._split(params)
        return -discretized_logistic_logp(from_unit(x), mean, log_scale).flatten(1).sum(1)

    def mean(self, params):
        return to_unit(self._split(params)[0])

    def sample(self, params):
        mean, log_scale = self._split(params)
        u = torch.rand_like(mean).clamp(1e-5, 1 - 1e-5)
        return _quantize(mean + log_scale.exp() * (u.log() - (-u).log1p()))  # inverse CDF


class DiscretizedLogisticMixture(Likelihood):
    """A mixture of K discretised logistics per pixel with RGB coupling (Salimans et al. 2017).

    params (B, 10K, H, W) = K mixture logits, then 3K means (R's K, G's K, B's K), 3K log-scales
    (same order) and 3K coupling coefficients (c0's K, c1's K, c2's K): grouped by kind, not
    by colour as in PixelCNN++'s code (tests/test_references.py pins the order). Within
    component k the channels are autoregressive:
    mean_G = mu_G + c_0 x_R and mean_B = mu_B + c_1 x_R + c_2 x_G, so one pixel's colour
    channels are modelled jointly (they are strongly correlated in natural images).
    """
    name = "logistic_mixture"

    def __init__(self, n_mix: int = 5):
        self.n_mix = n_mix
        self.out_channels = 10 * n_mix

    def _split(self, params):
        K = self.n_mix
        B, _, H, W = params.shape
        params = params.float()
        logit_pi = params[:, :K]                                  # (B, K, H, W)
        rest = params[:, K:].reshape(B, 3, 3, K, H, W)            # (B, 3 kinds, C=3, K, H, W)
        mu, log_s, coef = rest[:, 0], soft_clamp(rest[:, 1], -7.0, 1.0), torch.tanh(rest[:, 2])
        return logit_pi, mu, log_s, coef                          # mu etc.: (B, C, K, H, W)

    @staticmethod
    def _coupled_means(mu, coef, x):
        """Means of G and B shifted by the (true or sampled) R and G values; x: (B, 3, 1|K, H, W)."""
        m_r = mu[:, 0]
        m_g = mu[:, 1] + coef[:, 0] * x[:, 0]
        m_b = mu[:, 2] + coef[:, 1] * x[:, 0] + coef[:, 2] * x[:, 1]
        return torch.stack([m_r, m_g, m_b], dim=1)                # (B, 3, K, H, W)

    def nll(self, params, x):
        logit_pi, mu, log_s, coef = self._split(params)
        xs = from_unit(x).unsqueeze(2)                             # (B, 3, H, W) -> (B, 3, 1, H, W)
        means = self._coupled_means(mu, coef, xs)
        logp = discretized_logistic_logp(xs, means, log_s).sum(1)  # (B, K, H, W): channels joint
        logp = torch.logsumexp(logp + F.log_softmax(logit_pi, dim=1), dim=1)  # (B, H, W)
        return -logp.flatten(1).sum(1)

    def mean(self, params):
        logit_pi, mu, _, coef = self._split(params)
        m = mu.clone()
        m[:, 1] = mu[:, 1] + coef[:, 0] * mu[:, 0]
        m[:, 2] = mu[:, 2] + coef[:, 1] * mu[:, 0] + coef[:, 2] * m[:, 1]
        pi = F.softmax(logit_pi, dim=1).unsqueeze(1)              # (B, 1, K, H, W)
        return to_unit((m * pi).sum(2))

    def sample(self, params):
        logit_pi, mu, log_s, coef = self._split(params)
        B, C, K, H, W = mu.shape
        k = torch.distributions.Categorical(logits=logit_pi.permute(0, 2, 3, 1)).sample()  # (B, H, W)
        onehot = F.one_hot(k, K).permute(0, 3, 1, 2).unsqueeze(1).float()  # (B, 1, K, H, W)
        mu, log_s, coef = [(t * onehot).sum(2) for t in (mu, log_s, coef)]  # (B, 3, H, W)
        u = torch.rand_like(mu).clamp(1e-5, 1 - 1e-5)
        noise = log_s.exp() * (u.log() - (-u).log1p())
        x_r = (mu[:, 0] + noise[:, 0]).clamp(-1, 1)
        x_g = (mu[:, 1] + coef[:, 0] * x_r + noise[:, 1]).clamp(-1, 1)
        x_b = (mu[:, 2] + coef[:, 1] * x_r + coef[:, 2] * x_g + noise[:, 2]).clamp(-1, 1)
        return _quantize(torch.stack([x_r, x_g, x_b], dim=1))

    def __repr__(self):
        return f"DiscretizedLogisticMixture(n_mix={self.n_mix})"


LIKELIHOODS = ("bernoulli", "gaussian", "gaussian_learned", "logistic", "logistic_mixture")


def make_likelihood(name: str, sigma: float = 0.1, n_mix: int = 5) -> Likelihood:
    """The likelihood called `name` (one of LIKELIHOODS); sigma for "gaussian", n_mix for the mixture."""
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return DiscretizedGaussian(sigma)
    if name == "gaussian_learned":
        return DiscretizedGaussian(None)
    if name == "logistic":
        return DiscretizedLogistic()
    if name == "logistic_mixture":
        return DiscretizedLogisticMixture(n_mix)
    raise ValueError(f"unknown likelihood {name!r}; choose one of {', '.join(LIKELIHOODS)}")
