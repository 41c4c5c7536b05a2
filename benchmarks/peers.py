"""The peers: denoising-diffusion-pytorch and diffusers, as the benchmarks run them.

    unet, wrapper = lucidrains(dim=16, mults=(1, 2, 2), objective="pred_noise", beta_schedule="linear")
    loss = wrapper(x)                                   # its own training objective, x in [0, 1]
    model = DiffusersEps(diffusers_unet((16, 32, 32), layers=1), DDPMScheduler(num_train_timesteps=1000))
    loss = model(x)                                     # diffusers' train_unconditional.py objective
    x = diffusers_sample(model.unet, DDIMScheduler(num_train_timesteps=1000), n=16, steps=50, device=device)

bench.py times them against the course's U-Nets at about the same size; time_to_quality.py trains
them with the course's `fit` on the peers' own recipes (`TRAINING`, from their documentation).
Both packages are pinned in requirements-test.txt; nothing here imports them until a peer is used.
"""
from __future__ import annotations

import torch
from torch import nn

from cvae_lib.pixels import from_unit, to_unit
from cvae_lib.train import TrainConfig

__all__ = ["lucidrains", "lucidrains_ddim", "diffusers_unet", "DiffusersEps", "diffusers_sample", "TRAINING"]

# The peers' own optimiser settings, for `fit`: denoising-diffusion-pytorch's Trainer defaults
# (Adam, lr 1e-4, betas (0.9, 0.99), batch 16, gradient norm 1, flips; EMA 0.995) and diffusers'
# train_unconditional.py example (AdamW lr 1e-4, betas (0.95, 0.999), weight decay 1e-6, 500
# warm-up steps, batch 16, flips; EMA up to 0.9999). `epochs` and `max_steps` are set per run.
TRAINING = {
    "denoising-diffusion-pytorch": (TrainConfig(batch_size=16, lr=1e-4, betas=(0.9, 0.99), grad_clip=1.0, hflip=True),
                                    0.995),
    "diffusers": (TrainConfig(batch_size=16, lr=1e-4, optimizer="adamw", betas=(0.95, 0.999), weight_decay=1e-6,
                              warmup_steps=500, hflip=True), 0.9999),
}


def lucidrains(dim: int, mults: tuple[int, ...], **diffusion):
    """(Unet, GaussianDiffusion) of denoising-diffusion-pytorch at 32x32 (flash attention off:
    the CPU has none); `diffusion` are GaussianDiffusion's options (its defaults otherwise:
    v-prediction, sigmoid schedule, T = 1000)."""
    from denoising_diffusion_pytorch import GaussianDiffusion, Unet

    unet = Unet(dim=dim, dim_mults=mults, flash_attn=False)
    return unet, GaussianDiffusion(unet, image_size=32, **diffusion)


def lucidrains_ddim(wrapper, n: int, steps: int = 50) -> torch.Tensor:
    """n images in [0, 1] from a GaussianDiffusion with its own DDIM sampler in `steps` steps."""
    before = wrapper.sampling_timesteps, wrapper.is_ddim_sampling
    wrapper.sampling_timesteps, wrapper.is_ddim_sampling = steps, True
    try:
        return wrapper.ddim_sample((n, 3, 32, 32))
    finally:
        wrapper.sampling_timesteps, wrapper.is_ddim_sampling = before


def diffusers_unet(channels: tuple[int, ...], layers: int):
    """diffusers' UNet2DModel at 32x32 with `channels` per level, attention at the second level
    (16x16, as the course's U-Net), GroupNorm groups of a quarter of the first level's channels."""
    from diffusers import UNet2DModel

    down = tuple("AttnDownBlock2D" if i == 1 else "DownBlock2D" for i in range(len(channels)))
    up = tuple("AttnUpBlock2D" if i == len(channels) - 2 else "UpBlock2D" for i in range(len(channels)))
    return UNet2DModel(sample_size=32, block_out_channels=channels, layers_per_block=layers,
                       down_block_types=down, up_block_types=up, norm_num_groups=min(32, channels[0] // 4))


class DiffusersEps(nn.Module):
    """diffusers' UNet2DModel as a module whose forward(x) is its noise-prediction loss, for `fit`:
    the noise, timesteps and MSE of diffusers' train_unconditional.py example; x in [0, 1]."""

    def __init__(self, unet, scheduler):
        super().__init__()
        self.unet, self.scheduler = unet, scheduler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = from_unit(x)                                             # [0, 1] -> [-1, 1]
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(x0),), device=x0.device)
        return nn.functional.mse_loss(self.unet(self.scheduler.add_noise(x0, noise, t), t).sample.float(), noise)


@torch.no_grad()
def diffusers_sample(unet, scheduler, n: int, steps: int, device, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
    """n images in [0, 1] from `unet` with a diffusers scheduler (DDPM or DDIM) in `steps` steps."""
    scheduler.set_timesteps(steps)
    x = torch.randn(n, 3, 32, 32, generator=generator, device=device)
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    return to_unit(x)
