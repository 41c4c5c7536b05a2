"""A small MLP for 2-D toy data (chapter 07): the same `model(xt, t, y)` interface as the U-Net,
so `Diffusion` and `FlowMatching` train and sample it unchanged.

Points travel as (B, 2, 1, 1) tensors: one 2-D point per "image" of 2 channels and 1x1 pixels,
the shape every process in the course broadcasts over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ToyConfig", "ToyNet"]


@dataclass
class ToyConfig:
    hidden: int = 128          # units per hidden layer
    depth: int = 3             # hidden layers
    t_features: int = 16       # sinusoidal features of the time (half sine, half cosine)
    t_max: float = 1000.0      # the largest time the process shows the network (1000 steps or t * 1000)


class ToyNet(nn.Module):
    """(B, 2, 1, 1) points and times t (B,) in [0, t_max] -> (B, 2, 1, 1): an MLP on the point
    concatenated with sinusoidal features of t / t_max. Unconditional: y must be None."""

    def __init__(self, cfg: ToyConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ToyConfig()
        layers, width = [], 2 + cfg.t_features
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.SiLU()]
            width = cfg.hidden
        self.mlp = nn.Sequential(*layers, nn.Linear(width, 2))

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            raise ValueError("ToyNet is unconditional: pass y=None")
        k = torch.arange(self.cfg.t_features // 2, device=xt.device)
        angles = (t.float() / self.cfg.t_max)[:, None] * math.pi * 2.0 ** k[None]      # (B, F/2)
        h = torch.cat([xt.flatten(1), angles.sin(), angles.cos()], dim=1)            # (B, 2 + F)
        return self.mlp(h).view_as(xt)                                               # (B, 2) -> (B, 2, 1, 1)
