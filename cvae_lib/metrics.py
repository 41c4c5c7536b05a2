"""Evaluation metrics as pure functions of tensors (no plotting, no training).

Images are float tensors (B, 3, H, W) in [0, 1] unless a docstring says otherwise.
"""
from __future__ import annotations

import math

import torch

__all__ = ["psnr", "mse_per_image", "ssim", "bits_per_dim"]


def mse_per_image(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image pair: (B, C, H, W) x2 -> (B,)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return (x.float() - x_hat.float()).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: 10 log10(range^2 / MSE), (B,).

    Identical images give +inf. Average PSNR over a set with `.mean()` (the convention of
    most papers), not from the mean MSE.
    """
    return 10 * torch.log10(data_range**2 / mse_per_image(x, x_hat))


def ssim(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image pair via scikit-image (Wang et al. 2004), (B,).

    Uses the standard 7x7 window on each RGB channel, data range 1.
    """
    from skimage.metrics import structural_similarity

    a = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()      # (B, H, W, C)
    b = x_hat.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return torch.tensor([structural_similarity(u, v, channel_axis=-1, data_range=1.0)
                         for u, v in zip(a, b)])


def bits_per_dim(nll: torch.Tensor, n_dims: int = 3 * 32 * 32) -> torch.Tensor:
    """Negative log-likelihood in nats per image -> bits per dimension: nll / (n_dims ln 2).

    Only meaningful for a proper distribution over the 256 pixel levels (a discretised
    likelihood): then it is the average code length of one sub-pixel, and a uniform model
    scores exactly 8. Applied to a negative ELBO it is an upper bound on the true value.
    """
    return nll / (n_dims * math.log(2.0))
