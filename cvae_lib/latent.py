"""Latent diffusion (Rombach et al. 2022): a diffusion prior over a first stage's latent grids.

    latents = encode_set(first_stage, train)                       # TensorSet of (8, 8, 8) grids
    diffusion = Diffusion(DiffusionConfig(data="latent", null_label=10))
    fit(prior, diffusion.train_loss, latents, cfg)                 # the course's loop, unchanged
    ldm = LatentDiffusion(first_stage, prior, diffusion)
    x = ldm.sample(y, steps=50, guidance=2.0)                      # (n, 3, 32, 32) in [0, 1]

The VAE-like first stage (`models.first_stage.FirstStage`) compresses each 32x32x3 image to a
small grid of latents, scaled to unit variance; the class-conditional U-Net learns their
distribution; sampling runs the reverse process on latents and decodes once at the end. Every
sampling step is a U-Net call on 8x8 positions instead of 32x32, and the decoder adds the edges
its adversarial training taught it.
"""
from __future__ import annotations

import torch
from torch import nn

from .data import ImageSet, TensorSet
from .diffusion import Diffusion
from .flow import FlowMatching
from .models.first_stage import FirstStage
from .runtime import eval_mode

__all__ = ["encode_set", "LatentDiffusion"]


@torch.no_grad()
def encode_set(first_stage: FirstStage, data: ImageSet, *, mirror: bool = False,
               batch_size: int = 500) -> TensorSet:
    """The scaled latents of every image in `data` (and, with `mirror`, of its mirror image
    after them: the flip augmentation, done on the images): TensorSet (N or 2N, C, h, w) on CPU."""
    device = first_stage.scale.device
    with eval_mode(first_stage):
        x = data.images()                                              # (N, 3, 32, 32) in [0, 1]
        views = [x, x.flip(3)] if mirror else [x]
        z = torch.cat([first_stage.encode_latent(b.to(device)).float().cpu()
                       for v in views for b in v.split(batch_size)])   # (N * views, C, h, w)
    return TensorSet(z, data.y.cpu().repeat(len(views)), data.classes)


class LatentDiffusion(nn.Module):
    """A first stage and a diffusion prior over its latents, as one sampler of images.

    first_stage: a trained FirstStage (its `scale` set); prior: the network on latent grids
    (B, *first_stage.cfg.latent_shape); diffusion: the process the prior was trained with, a
    Diffusion (prior = eps_theta) or a FlowMatching (prior = v_theta), with `data="latent"`.
    """

    def __init__(self, first_stage: FirstStage, prior: nn.Module, diffusion: Diffusion | FlowMatching):
        super().__init__()
        if diffusion.cfg.data != "latent":
            raise ValueError("the diffusion of a latent model needs DiffusionConfig(data='latent'): with "
                             "data='image' it would map latents as if they were images in [0, 1] and clip them")
        classes = getattr(getattr(prior, "cfg", None), "num_classes", None)
        if diffusion.cfg.null_label is not None and classes is not None and diffusion.cfg.null_label != classes:
            raise ValueError(f"null_label={diffusion.cfg.null_label} but the prior's null class is its "
                             f"num_classes={classes}: guidance would ask for a real class")
        self.first_stage, self.prior, self.diffusion = first_stage, prior, diffusion

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.first_stage.cfg.latent_shape

    @torch.no_grad()
    def sample(self, y: torch.Tensor, *, steps: int = 50, eta: float = 1.0, guidance: float = 1.0,
               generator: torch.Generator | None = None, progress: bool = True,
               solver: str = "euler") -> torch.Tensor:
        """Images (n, 3, 32, 32) in [0, 1] for the class ids y (n,): the reverse process in latent
        space with `steps` steps, then one decoder call. A Diffusion samples with DDIM (`eta`;
        `steps` = T with eta = 1 is ancestral DDPM), a FlowMatching with its ODE `solver`."""
        device = self.first_stage.scale.device
        common = dict(guidance=guidance, shape=self.latent_shape, generator=generator, device=device,
                      progress=progress)
        if isinstance(self.diffusion, FlowMatching):
            z = self.diffusion.sample(self.prior, len(y), y.to(device), steps=steps, solver=solver, **common)
        else:
            z = self.diffusion.ddim_sample(self.prior, len(y), y.to(device), steps=steps, eta=eta, **common)
        return self.first_stage.decode_latent(z)                                # z: (n, C, h, w)
