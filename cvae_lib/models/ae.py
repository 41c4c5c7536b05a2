"""A plain convolutional autoencoder (chapter 01): x -> z -> x_hat, trained to reconstruct.

    model = Autoencoder(AEConfig(latent_dim=256))
    x_hat = model(x)                      # (B, 3, 32, 32) in [0, 1]
    loss = ae_loss(model, x, y)           # mean squared error per pixel
    path = model.decode(interpolate(z0, z1, 8))   # 8 images on the line between two codes
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..pixels import from_unit
from .blocks import ConvDecoder, ConvEncoder, stage_widths
from .inputs import check_image_batch

__all__ = ["AEConfig", "Autoencoder", "ae_loss", "interpolate"]


@dataclass
class AEConfig:
    latent_dim: int = 256     # Z: size of the code vector
    width: int = 32           # channels of the first stage; stages use (w, 2w, 4w)
    residual: bool = True     # VDVAE-style residual bottlenecks (the study used False)
    n_stages: int = 3         # 32x32 -> 4x4 with 3 stages


class Autoencoder(nn.Module):
    """Deterministic conv autoencoder. Images in [0, 1], shape (B, 3, 32, 32)."""

    def __init__(self, cfg: AEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or AEConfig()          # a fresh default: instances never share a config
        widths = stage_widths(cfg.width, cfg.n_stages)
        self.side = 32 // 2**cfg.n_stages                     # spatial size at the bottleneck
        self.feat_shape = (widths[-1], self.side, self.side)  # (C, h, w)
        n_feat = widths[-1] * self.side**2
        self.encoder = ConvEncoder(widths, cfg.residual)
        self.to_z = nn.Linear(n_feat, cfg.latent_dim)
        self.from_z = nn.Linear(cfg.latent_dim, n_feat)
        self.decoder = ConvDecoder(widths, cfg.residual)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 32, 32) in [0, 1] -> z (B, Z)."""
        check_image_batch(self, x)
        h = self.encoder(from_unit(x))         # centre the input
        return self.to_z(h.flatten(1))      # (B, C*h*w) -> (B, Z)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Z) -> logits (B, 3, 32, 32); sigmoid gives the image."""
        h = self.from_z(z).view(-1, *self.feat_shape)  # (B, Z) -> (B, C, h, w)
        return self.decoder(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Z) -> images (B, 3, 32, 32) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def ae_loss(model: Autoencoder, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared reconstruction error per pixel (images in [0, 1]); the label is unused."""
    return F.mse_loss(model(x).float(), x)


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """n evenly spaced points from z0 to z1, both included: z0, z1 (...) -> (n, ...).

    z_t = (1 - t) z0 + t z1 for t = 0, 1/(n-1), ..., 1 (exercise 01 writes this function).
    """
    t = torch.linspace(0, 1, n, device=z0.device, dtype=z0.dtype)  # (n,)
    t = t.view(n, *[1] * z0.dim())                                 # (n, 1, ...)
    return (1 - t) * z0 + t * z1                                   # (n, ...)
