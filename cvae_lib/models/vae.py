"""A variational autoencoder (chapter 02): q(z|x) = N(mu, sigma^2), p(z) = N(0, I), p(x|z) chosen.

    model = VAE(VAEConfig(likelihood="logistic", spatial=True))
    loss, terms = vae_loss(model, x)          # -ELBO / (3*32*32); terms: rec, kl (nats/image), bpd
    x_hat = model.reconstruct(x)              # (B, 3, 32, 32) in [0, 1]
    x_new = model.sample(16)                  # decode z ~ N(0, I)

Two shapes of latent:
- vector (`spatial=False`, the study's design): conv encoder -> flatten -> two MLP heads give
  mu and logvar of z (B, Z); an MLP and the mirrored conv decoder map z back to pixels.
- spatial (`spatial=True`): 1x1 conv heads give z (B, Z, s, s) with s = 32 / 2**n_stages;
  every latent position describes one image patch, which reconstructs far better at the same
  number of nats, but a N(0, I) sample of it decodes to texture rather than objects.

The ELBO (Kingma & Welling 2013):  log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..pixels import from_unit
from .elbo import GaussianLatentVAE, LatentConfig, elbo_objective
from .inputs import check_image_batch
from .likelihoods import reparameterize

__all__ = ["VAEConfig", "VAE", "vae_loss"]


@dataclass
class VAEConfig(LatentConfig):
    """All fields are LatentConfig's (latent, coder, likelihood, KL); see models/elbo.py."""


class VAE(GaussianLatentVAE):
    """Images (B, 3, 32, 32) in [0, 1] -> decoder parameters of p(x|z) (B, out_channels, 32, 32)."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VAEConfig()          # a fresh default: instances never share a config
        self._build_coder(cfg)
        self._build_heads(cfg)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [0, 1] -> mu, logvar, each (B, *z_shape); logvar kept in (-10, 5)."""
        check_image_batch(self, x)
        return self._stats(self.encoder(from_unit(x)))   # the input centred

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape) -> likelihood parameters (B, out_channels, 32, 32)."""
        return self._decode_features(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass of the ELBO: (params of p(x|z), mu, logvar) with z drawn by reparameterisation."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape) -> the mean image of p(x|z), (B, 3, 32, 32) in [0, 1]."""
        return self.likelihood.mean(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image at z = mu (no sampling): (B, 3, 32, 32) in [0, 1]."""
        return self.decode_mean(self.encode(x)[0])

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               mean: bool = True) -> torch.Tensor:
        """n images from the prior: z ~ N(0, temperature^2 I), decoded to (n, 3, 32, 32) in [0, 1].

        mean: show the decoder's mean image (smooth); False draws the pixels from p(x|z) too.
        """
        device = next(self.parameters()).device
        z = torch.randn((n, *self.z_shape), generator=generator).to(device) * temperature
        params = self.decode(z)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)


def vae_loss(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None, step: int | None = None):
    """-ELBO per dimension for `fit`, and its terms; the label y is unused.

    step: the optimizer step, passed by `fit` in training: the KL weight follows the warm-up
    and free bits apply. Without it (evaluation) the loss is the plain beta-weighted objective.
    """
    params, mu, logvar = model(x)
    return elbo_objective(model, params, mu, logvar, x, step)
