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
from torch import nn

from .blocks import ConvDecoder, ConvEncoder, mlp, stage_widths
from .likelihoods import make_likelihood, reparameterize, soft_clamp, vae_objective

__all__ = ["VAEConfig", "VAE", "vae_loss"]


@dataclass
class VAEConfig:
    latent_dim: int = 128          # Z: size of z (vector) or channels per latent position (spatial)
    spatial: bool = False          # False: z (B, Z) from MLP heads; True: z (B, Z, s, s) from 1x1 convs
    width: int = 32                # channels of the first stage; stages use (w, 2w, 4w, ...)
    n_stages: int = 3              # downsamplings: 32x32 -> 4x4 with 3 (s = 32 / 2**n_stages)
    residual: bool = False         # VDVAE residual bottlenecks (the study used False)
    hidden: int = 512              # width of the MLP heads (vector latent)
    likelihood: str = "bernoulli"  # see likelihoods.LIKELIHOODS
    sigma: float = 0.1             # fixed sigma of the "gaussian" likelihood, on the [-1, 1] scale
    n_mix: int = 5                 # components of "logistic_mixture"
    beta: float = 1.0              # KL weight (1: the ELBO; Higgins et al. 2017 use > 1)
    kl_warmup_steps: int = 0       # the KL weight ramps linearly 0 -> beta over this many steps
    free_bits: float = 0.0         # nats per latent element the KL may use for free (0: off)


class VAE(nn.Module):
    """Images (B, 3, 32, 32) in [0, 1] -> decoder parameters of p(x|z) (B, out_channels, 32, 32)."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VAEConfig()          # a fresh default: instances never share a config
        self.likelihood = make_likelihood(cfg.likelihood, cfg.sigma, cfg.n_mix)
        widths = stage_widths(cfg.width, cfg.n_stages)
        side = 32 // 2**cfg.n_stages
        self.feat_shape = (widths[-1], side, side)                       # (C, s, s)
        self.z_shape = (cfg.latent_dim, side, side) if cfg.spatial else (cfg.latent_dim,)
        self.encoder = ConvEncoder(widths, cfg.residual)
        self.decoder = ConvDecoder(widths, cfg.residual, out_channels=self.likelihood.out_channels)
        if cfg.spatial:
            self.to_stats = nn.Conv2d(widths[-1], 2 * cfg.latent_dim, 1)    # -> (mu, logvar)
            self.from_z = nn.Conv2d(cfg.latent_dim, widths[-1], 1)
        else:
            n_feat = widths[-1] * side * side
            self.mu_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.logvar_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.from_z = mlp(cfg.latent_dim, cfg.hidden, n_feat)
        # optimizer steps taken so far: drives the KL warm-up and is saved with the weights
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [0, 1] -> mu, logvar, each (B, *z_shape); logvar kept in (-10, 5)."""
        h = self.encoder(x * 2 - 1)                       # (B, C, s, s), input centred
        if self.cfg.spatial:
            mu, logvar = self.to_stats(h).chunk(2, dim=1)  # (B, 2Z, s, s) -> 2 x (B, Z, s, s)
        else:
            h = h.flatten(1)                               # (B, C, s, s) -> (B, C*s*s)
            mu, logvar = self.mu_head(h), self.logvar_head(h)
        return mu, soft_clamp(logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape) -> likelihood parameters (B, out_channels, 32, 32)."""
        h = self.from_z(z)
        if not self.cfg.spatial:
            h = h.view(-1, *self.feat_shape)               # (B, C*s*s) -> (B, C, s, s)
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pass of the ELBO: (params of p(x|z), mu, logvar) with z drawn by reparameterisation."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return self.decode(z), mu, logvar

    def kl_weight(self) -> float:
        """beta, ramped linearly from 0 over the first `kl_warmup_steps` updates (Bowman et al. 2016)."""
        if self.cfg.kl_warmup_steps <= 0:
            return self.cfg.beta
        return self.cfg.beta * min(1.0, int(self.n_updates) / self.cfg.kl_warmup_steps)

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


def vae_loss(model: VAE, x: torch.Tensor, y: torch.Tensor | None = None):
    """-ELBO per dimension for `fit`, and its terms; the label y is unused.

    In training mode the KL weight follows the warm-up and free bits apply, and each call
    counts one update; in eval mode the loss is the plain beta-weighted objective.
    """
    params, mu, logvar = model(x)
    return vae_objective(model, params, mu, logvar, x)
