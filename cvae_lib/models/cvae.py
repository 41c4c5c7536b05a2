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

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..pixels import from_unit
from .blocks import mlp
from .elbo import GaussianLatentVAE, LatentConfig, elbo_objective
from .inputs import check_image_batch, check_labels
from .likelihoods import reparameterize

__all__ = ["CVAEConfig", "CVAE", "cvae_loss"]


@dataclass
class CVAEConfig(LatentConfig):
    """LatentConfig's fields (latent, coder, likelihood, KL; see models/elbo.py) and the label's."""
    num_classes: int = 10          # K: labels 0..K-1
    embed_dim: int = 32            # size of the label embedding
    label_weight: float = 1.0      # z_c = z + label_weight * MLP(embedding(y))
    condition_encoder: bool = False  # also feed y to the encoder: q(z|x, y) (the study: no)

    _renamed: ClassVar[dict] = {"n_classes": "num_classes"}   # files written before the rename


class CVAE(GaussianLatentVAE):
    """(images (B, 3, 32, 32) in [0, 1], labels (B,)) -> parameters of p(x | z, y)."""

    def __init__(self, cfg: CVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CVAEConfig()          # a fresh default: instances never share a config
        self._build_coder(cfg)
        n_z = math.prod(self.z_shape)
        self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim)
        self.label_mlp = mlp(cfg.embed_dim, cfg.hidden, n_z)             # c, added to z
        if cfg.condition_encoder:
            self.label_to_features = nn.Linear(cfg.embed_dim, self.widths[-1])  # a bias per channel
        self._build_heads(cfg)

    def label_code(self, y: torch.Tensor) -> torch.Tensor:
        """c = MLP(Embedding(y)): labels (B,) -> (B, *z_shape), the shift added to z."""
        return self.label_mlp(self.embed(y)).view(-1, *self.z_shape)    # (B, n_z) -> (B, *z_shape)

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, 32, 32) in [0, 1], y (B,) -> mu, logvar (B, *z_shape); y used only if
        `condition_encoder`."""
        check_image_batch(self, x)
        check_labels(self, y, len(x), self.cfg.num_classes)
        h = self.encoder(from_unit(x))                                   # (B, C, s, s)
        if self.cfg.condition_encoder:
            h = h + self.label_to_features(self.embed(y))[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        return self._stats(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape), y (B,) -> likelihood parameters (B, out_channels, 32, 32)."""
        return self._decode_features(z + self.cfg.label_weight * self.label_code(y))

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        """(params of p(x|z, y), mu, logvar) with z drawn by reparameterisation."""
        mu, logvar = self.encode(x, y)
        return self.decode(reparameterize(mu, logvar), y), mu, logvar

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

    @torch.no_grad()
    def sample_grid(self, n_rows: int = 10, noise: str = "normal",
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """The class grid: one z per row, shared along the row, and labels 0..K-1 across each row,
        so that moving along a row changes only the label. -> (n_rows * K, 3, 32, 32) in [0, 1],
        row by row (show it with nrow=K)."""
        k = self.cfg.num_classes
        z = self.prior_noise(n_rows, noise, generator).repeat_interleave(k, dim=0)   # (R*K, *z_shape)
        y = torch.arange(k).repeat(n_rows)                                         # (R*K,): 0..K-1 per row
        return self.sample(y, z=z)


def cvae_loss(model: CVAE, x: torch.Tensor, y: torch.Tensor, step: int | None = None):
    """-ELBO per dimension of p(x|y) for `fit`, and its terms (rec, kl in nats/image; bpd).
    step: as in `vae_loss` (the KL warm-up; passed by `fit` in training)."""
    params, mu, logvar = model(x, y)
    return elbo_objective(model, params, mu, logvar, x, step)
