"""The two pixel scales: [0, 1] (images as loaded and shown) and [-1, 1] (what models and the
diffusion process work in). A leaf module, so models and diffusion convert without importing
the data module.

    x = from_unit(images)     # [0, 1] -> [-1, 1]
    images = to_unit(x)       # [-1, 1] -> [0, 1], clamped
"""
from __future__ import annotations

import torch

__all__ = ["to_unit", "from_unit"]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (a model's or the diffusion process's scale) -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> [-1, 1], the centred scale models and the diffusion process use."""
    return x * 2 - 1
