"""Two-dimensional toys for chapter 07: data a student can see whole, and the paths samplers take.

    data = ring_of_gaussians(4096)                       # TensorSet of (N, 2, 1, 1) points
    fit(ToyNet(), flow.train_loss, data, cfg)            # the course's loop, as for images
    path = sample_paths(flow, model, x1, steps=20)       # (steps + 1, B, 2): from noise to data

Both processes see points as (B, 2, 1, 1) "images" (data="latent": nothing is clipped), so the
same `Diffusion` and `FlowMatching` that train U-Nets on images train the toy network.
"""
from __future__ import annotations

import math

import torch

from .data import TensorSet
from .diffusion import Diffusion, ddim_timesteps
from .flow import FlowMatching, flow_times
from .runtime import eval_mode

__all__ = ["ring_of_gaussians", "sample_paths", "training_paths", "ring_distance", "straightness"]


def ring_of_gaussians(n: int, modes: int = 8, radius: float = 2.0, std: float = 0.12,
                      seed: int = 0) -> TensorSet:
    """n points (N, 2, 1, 1) from `modes` Gaussians of std `std` evenly spaced on a circle of
    `radius`; y (N,) is the mode each point came from (the toys ignore it)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * y.double() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)                # (N, 2)
    x = (centres + std * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()
    return TensorSet(x.view(n, 2, 1, 1), y, tuple(f"mode {k}" for k in range(modes)))  # (N, 2) -> (N, 2, 1, 1)


@torch.no_grad()
def sample_paths(process: Diffusion | FlowMatching, model, x1: torch.Tensor, steps: int) -> torch.Tensor:
    """Every intermediate point of a deterministic sampler started at the noise x1 (B, 2, 1, 1):
    Euler steps of the flow's ODE, or DDIM with eta = 0 (the DDPM's ODE sampler).
    Returns (steps + 1, B, 2): row 0 the noise, the last row the samples."""
    x, path = x1.clone(), [x1.flatten(1)]
    with eval_mode(model):
        if isinstance(process, FlowMatching):
            times = flow_times(steps).tolist()
            for t, t_next in zip(times[:-1], times[1:]):
                v = process.guided_velocity(model, x, torch.full((len(x),), t))
                x = process.euler_step(v, t, t_next, x)
                path.append(x.flatten(1))
        else:
            ts = ddim_timesteps(process.T, steps).tolist()
            for i, t in enumerate(ts):
                eps = model(x, torch.full((len(x),), t, dtype=torch.long), None)
                x = process.ddim_step(eps, t, ts[i + 1] if i + 1 < len(ts) else -1, x, eta=0.0)
                path.append(x.flatten(1))
    return torch.stack(path)                                                        # (steps + 1, B, 2)


def ring_distance(x: torch.Tensor, modes: int = 8, radius: float = 2.0) -> float:
    """How close points (N, 2) or (N, 2, 1, 1) are to the ring's blobs: the mean distance of each
    point to the nearest of the `modes` blob centres (real points score about std * 1.25)."""
    x = x.detach().float().cpu().reshape(len(x), 2)                              # (N, 2, 1, 1) -> (N, 2)
    angle = 2 * math.pi * torch.arange(modes) / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)             # (K, 2)
    return float(torch.cdist(x, centres).min(dim=1).values.mean())


def straightness(path: torch.Tensor) -> float:
    """How straight sampler paths are: the mean over paths of (distance from start to end) /
    (length travelled), 1 for a straight line. path: (steps + 1, B, 2) from `sample_paths`."""
    travelled = (path[1:] - path[:-1]).norm(dim=-1).sum(dim=0)                  # (B,)
    return float(((path[-1] - path[0]).norm(dim=-1) / travelled.clamp_min(1e-12)).mean())


@torch.no_grad()
def training_paths(process: Diffusion | FlowMatching, x0: torch.Tensor, eps: torch.Tensor,
                   points: int = 50) -> torch.Tensor:
    """The paths the forward process draws between data x0 and noise eps (B, 2, 1, 1), the ones a
    network is trained on, from the noise end to the data end: the flow's x_t = (1 - t) x0 + t eps
    (a straight segment) or the DDPM's x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.
    Returns (points, B, 2)."""
    B = len(x0)
    if isinstance(process, FlowMatching):
        ts = torch.linspace(1.0, 0.0, points)
        xs = [process.interpolate(x0, eps, torch.full((B,), float(t))) for t in ts]
    else:
        ts = torch.linspace(process.T - 1, 0, points).round().long()
        xs = [process.add_noise(x0, torch.full((B,), int(t)), eps) for t in ts]
    return torch.stack([x.flatten(1) for x in xs])                              # (points, B, 2)
