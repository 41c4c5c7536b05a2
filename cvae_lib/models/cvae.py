"""The study's class-conditional VAE (chapter 03), with options that go beyond it.

    model = CVAE(CVAEConfig())                # the study: no residuals, BCE, vector latent
    loss, terms = cvae_loss(model, x, y)
    x_new = model.sample(y)                   # one image per label in y, z ~ N(0, I)
    x_new = model.sample(y, noise="uniform")  # what the study did: z ~ U[0, 1)

Architecture of the study (defaults here): 3 downsampling blocks of the VDVAE four-convolution
bottleneck *without* residuals, MLP heads for mu and logvar, and the label conditioning
    c = MLP(Embedding(y)),   z_c = z + label_weight * c,   x_hat = Decoder(z_c)
with a decoder that mirrors the encoder with upsampling. The encoder does not see y, so
q(z|x) must carry the class itself. Beyond the study: `condition_encoder` (q(z|x, y), the
CVAE of Sohn et al. 2015), residual blocks, width, latent size and shape, likelihood.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import ConvDecoder, ConvEncoder, mlp, stage_widths
from .likelihoods import make_likelihood, reparameterize, soft_clamp, vae_objective

__all__ = ["CVAEConfig", "CVAE", "cvae_loss"]


@dataclass
class CVAEConfig:
    n_classes: int = 10            # K: labels 0..K-1
    embed_dim: int = 32            # size of the label embedding
    label_weight: float = 1.0      # z_c = z + label_weight * MLP(embedding(y))
    condition_encoder: bool = False  # also feed y to the encoder: q(z|x, y) (the study: no)
    latent_dim: int = 128          # Z: size of z (vector) or channels per latent position (spatial)
    spatial: bool = False          # False: z (B, Z); True: z (B, Z, s, s), s = 32 / 2**n_stages
    width: int = 32                # channels of the first stage; stages use (w, 2w, 4w, ...)
    n_stages: int = 3              # downsamplings: 32x32 -> 4x4 with 3
    residual: bool = False         # VDVAE residual bottlenecks (the study used False)
    hidden: int = 512              # width of the MLPs (heads, label MLP)
    likelihood: str = "bernoulli"  # see likelihoods.LIKELIHOODS; the study used BCE
    sigma: float = 0.1             # fixed sigma of the "gaussian" likelihood, on the [-1, 1] scale
    n_mix: int = 5                 # components of "logistic_mixture"
    beta: float = 1.0              # KL weight
    kl_warmup_steps: int = 0       # the KL weight ramps linearly 0 -> beta over this many steps
    free_bits: float = 0.0         # nats per latent element the KL may use for free (0: off)


class CVAE(nn.Module):
    """(images (B, 3, 32, 32) in [0, 1], labels (B,)) -> parameters of p(x | z, y)."""

    def __init__(self, cfg: CVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CVAEConfig()          # a fresh default: instances never share a config
        self.likelihood = make_likelihood(cfg.likelihood, cfg.sigma, cfg.n_mix)
        widths = stage_widths(cfg.width, cfg.n_stages)
        side = 32 // 2**cfg.n_stages
        self.feat_shape = (widths[-1], side, side)                        # (C, s, s)
        self.z_shape = (cfg.latent_dim, side, side) if cfg.spatial else (cfg.latent_dim,)
        n_z = cfg.latent_dim * (side * side if cfg.spatial else 1)
        self.encoder = ConvEncoder(widths, cfg.residual)
        self.decoder = ConvDecoder(widths, cfg.residual, out_channels=self.likelihood.out_channels)
        self.embed = nn.Embedding(cfg.n_classes, cfg.embed_dim)
        self.label_mlp = mlp(cfg.embed_dim, cfg.hidden, n_z)             # c, added to z
        if cfg.condition_encoder:
            self.label_to_features = nn.Linear(cfg.embed_dim, widths[-1])  # a bias per channel
        if cfg.spatial:
            self.to_stats = nn.Conv2d(widths[-1], 2 * cfg.latent_dim, 1)
            self.from_z = nn.Conv2d(cfg.latent_dim, widths[-1], 1)
        else:
            n_feat = widths[-1] * side * side
            self.mu_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.logvar_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.from_z = mlp(cfg.latent_dim, cfg.hidden, n_feat)
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))

    def label_code(self, y: torch.Tensor) -> torch.Tensor:
        """c = MLP(Embedding(y)): labels (B,) -> (B, *z_shape), the shift added to z."""
        return self.label_mlp(self.embed(y)).view(-1, *self.z_shape)    # (B, n_z) -> (B, *z_shape)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [0, 1], y (B,) -> mu, logvar (B, *z_shape); y used only if
        `condition_encoder`."""
        h = self.encoder(x * 2 - 1)                                      # (B, C, s, s)
        if self.cfg.condition_encoder:
            h = h + self.label_to_features(self.embed(y))[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        if self.cfg.spatial:
            mu, logvar = self.to_stats(h).chunk(2, dim=1)                # -> 2 x (B, Z, s, s)
        else:
            h = h.flatten(1)                                             # (B, C, s, s) -> (B, C*s*s)
            mu, logvar = self.mu_head(h), self.logvar_head(h)
        return mu, soft_clamp(logvar)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape), y (B,) -> likelihood parameters (B, out_channels, 32, 32)."""
        h = self.from_z(z + self.cfg.label_weight * self.label_code(y))
        if not self.cfg.spatial:
            h = h.view(-1, *self.feat_shape)                             # (B, C*s*s) -> (B, C, s, s)
        return self.decoder(h)

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        """(params of p(x|z, y), mu, logvar) with z drawn by reparameterisation."""
        mu, logvar = self.encode(x, y)
        return self.decode(reparameterize(mu, logvar), y), mu, logvar

    def kl_weight(self) -> float:
        """beta, ramped linearly from 0 over the first `kl_warmup_steps` updates."""
        if self.cfg.kl_warmup_steps <= 0:
            return self.cfg.beta
        return self.cfg.beta * min(1.0, int(self.n_updates) / self.cfg.kl_warmup_steps)

    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape), y (B,) -> the mean image of p(x|z, y), (B, 3, 32, 32) in [0, 1]."""
        return self.likelihood.mean(self.decode(z, y))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image at z = mu: (B, 3, 32, 32) in [0, 1]."""
        return self.decode_mean(self.encode(x, y)[0], y)

    def prior_noise(self, n: int, noise: str = "normal", generator: torch.Generator | None = None) -> torch.Tensor:
        """z for sampling, (n, *z_shape): "normal" is the prior N(0, I) the KL trained towards;
        "uniform" is U[0, 1), what the study fed the decoder (mean 1/2, std 0.29: off the prior)."""
        shape = (n, *self.z_shape)
        if noise == "normal":
            z = torch.randn(shape, generator=generator)
        elif noise == "uniform":
            z = torch.rand(shape, generator=generator)
        else:
            raise ValueError(f"noise must be 'normal' or 'uniform', got {noise!r}")
        return z.to(next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, y: torch.Tensor, noise: str = "normal", temperature: float = 1.0,
               generator: torch.Generator | None = None, z: torch.Tensor | None = None,
               mean: bool = True) -> torch.Tensor:
        """One image per label: y (B,) -> (B, 3, 32, 32) in [0, 1]. Pass z to reuse the same noise."""
        y = y.to(next(self.parameters()).device)
        if z is None:
            z = self.prior_noise(len(y), noise, generator) * temperature
        params = self.decode(z, y)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)


def cvae_loss(model: CVAE, x: torch.Tensor, y: torch.Tensor):
    """-ELBO per dimension of p(x|y) for `fit`, and its terms (rec, kl in nats/image; bpd)."""
    params, mu, logvar = model(x, y)
    return vae_objective(model, params, mu, logvar, x)
