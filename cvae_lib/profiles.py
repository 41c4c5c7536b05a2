"""Run profiles: the one switch that sizes every run in the course.

Set the environment variable `CVAE_PROFILE` before starting Jupyter (or in the first cell):

| profile | for | what it means |
|---|---|---|
| `smoke` | CI, `pytest --nbval-lax` | tiny subsets, a few steps: proves the notebook runs, in seconds |
| `cpu`   | a laptop or free Colab CPU | real CIFAR-10, small models, minutes per notebook |
| `gpu`   | a student's GPU (Colab's T4) | all ten classes, ~10 min per notebook (estimated: cvae_lib.compute) |
| `full`  | several GPUs, torchrun | the papers' run lengths (tools/, never picked automatically) |

Unset, the profile is `gpu` when CUDA is available and `cpu` otherwise. Every size a
notebook uses comes from the `Profile` returned by `get_profile()`; this file is the only
place that says what a profile means.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from . import settings

__all__ = ["RunSize", "DiffusionRun", "LatentRun", "Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class RunSize:
    """How big one training run is."""
    train_per_class: int | None   # training images per class (None: all 5,000 minus validation)
    epochs: int                   # passes over that subset
    batch_size: int               # images per optimizer step
    max_steps: int | None = None  # cap on steps per epoch (smoke only); None: whole epoch
    width: int = 32               # channels of the first stage; later stages double it


@dataclass(frozen=True)
class DiffusionRun:
    """What chapter 04 trains and samples besides the RunSize `ddpm`."""
    classes: tuple[str, ...] | None = ("airplane", "frog")  # the DDPM learns these (None: all ten)
    T: int = 1000                        # diffusion steps
    n_ddpm: int = 4                      # images drawn with full T-step DDPM (T network calls each batch)
    ddim_steps: tuple[int, ...] = (10, 50, 100)  # DDIM step counts compared with DDPM
    n_grid: int = 10                     # DDIM samples per class in the final grid
    ema_decay: float = 0.995             # EMA of the weights used for sampling (horizon ~ 1 / (1 - decay) steps)
    unet: str = "course"                 # "course" (UNetConfig.course, width from ddpm) | "paper" (Ho et al.)


@dataclass(frozen=True)
class LatentRun:
    """What chapter 06 trains and samples besides the RunSize `ldm` (its prior; width = U-Net ch).

    The first stage is the shipped one (checkpoints/ldm_first_stage.safetensors) in every profile:
    training an adversarial autoencoder takes longer than a chapter may.
    """
    classes: tuple[str, ...] | None = ("airplane", "frog")  # the prior learns these (None: all ten)
    T: int = 1000                        # diffusion steps
    ddim_steps: int = 50                 # DDIM steps for every sample in the chapter
    guidance: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)  # the guidance sweep (the shipped prior uses 3)
    n_grid: int = 10                     # samples per class in the grids
    ema_decay: float = 0.995             # EMA of the prior's weights used for sampling


@dataclass(frozen=True)
class Profile:
    """Every size a notebook needs; chapters read their own field (`P.ae`, `P.ddpm`, ...)."""
    name: str
    summary: str
    val_per_class: int            # validation images per class, carved from train
    test_per_class: int | None    # test images per class for evaluation (None: all 1,000)
    n_samples: int                # images generated for sample grids and metrics
    n_eval: int                   # samples per model in chapter 05's table (split over its classes)
    fid: bool = False             # chapter 05 computes FID (Inception-v3 at 299x299: ~5 images/s on 2 CPU cores)
    ae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    vae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    cvae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    ddpm: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    diffusion: DiffusionRun = field(default_factory=DiffusionRun)  # chapter 04: classes, T, sampling
    ldm: RunSize = field(default_factory=lambda: RunSize(None, 1, 64, width=64))  # chapter 06's prior
    latent: LatentRun = field(default_factory=LatentRun)           # chapter 06: classes, T, sampling
    # chapter 07: the 2-D toy's small network (8,192 points, batches of 256: 32 steps an epoch)
    toy: RunSize = field(default_factory=lambda: RunSize(None, 100, 256))
    # chapters 02-03: the side runs (likelihoods, beta) and the study's subset experiments
    vae_side: RunSize = field(default_factory=lambda: RunSize(None, 2, 64, max_steps=60, width=16))
    cvae_one_class: RunSize = field(default_factory=lambda: RunSize(None, 2, 46, max_steps=60))
    cvae_one_per_class: RunSize = field(default_factory=lambda: RunSize(1, 15, 46))  # 10 images x 46 copies
    cvae_hundred_per_class: RunSize = field(default_factory=lambda: RunSize(100, 12, 46))


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", summary="CI: tiny subsets and a few steps, seconds per notebook",
        val_per_class=5, test_per_class=10, n_samples=20, n_eval=20,
        ae=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
        vae=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
        cvae=RunSize(train_per_class=20, epochs=2, batch_size=46, max_steps=4, width=8),
        vae_side=RunSize(train_per_class=10, epochs=1, batch_size=50, max_steps=2, width=8),
        cvae_one_class=RunSize(train_per_class=20, epochs=1, batch_size=46, max_steps=2, width=8),
        cvae_one_per_class=RunSize(train_per_class=1, epochs=2, batch_size=46, max_steps=2, width=8),
        cvae_hundred_per_class=RunSize(train_per_class=8, epochs=3, batch_size=46, max_steps=2, width=8),
        ddpm=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
        diffusion=DiffusionRun(T=100, n_ddpm=2, ddim_steps=(5, 10, 50), n_grid=4, ema_decay=0.9),
        ldm=RunSize(train_per_class=20, epochs=2, batch_size=32, max_steps=3, width=16),
        latent=LatentRun(T=100, ddim_steps=5, guidance=(0.0, 2.0), n_grid=4, ema_decay=0.9),
        toy=RunSize(None, 1, 256, max_steps=4),
    ),
    "cpu": Profile(
        name="cpu", summary="a laptop CPU: real CIFAR-10, small models, minutes per notebook",
        val_per_class=100, test_per_class=None, n_samples=100, n_eval=200,
        ae=RunSize(train_per_class=None, epochs=2, batch_size=128, width=16),
        vae=RunSize(train_per_class=None, epochs=4, batch_size=64, max_steps=60, width=32),
        cvae=RunSize(train_per_class=None, epochs=4, batch_size=46, max_steps=80, width=32),
        vae_side=RunSize(train_per_class=None, epochs=2, batch_size=64, max_steps=35, width=16),
        cvae_one_class=RunSize(train_per_class=None, epochs=2, batch_size=46, max_steps=40, width=32),
        cvae_one_per_class=RunSize(train_per_class=1, epochs=12, batch_size=46, width=32),
        cvae_hundred_per_class=RunSize(train_per_class=100, epochs=8, batch_size=46, width=32),
        ddpm=RunSize(train_per_class=None, epochs=2, batch_size=32, width=16),
        diffusion=DiffusionRun(n_ddpm=4, n_grid=10, ema_decay=0.98),  # 614 steps; EMA horizon ~50
        ldm=RunSize(train_per_class=None, epochs=10, batch_size=64, max_steps=50, width=64),   # 500 steps
        latent=LatentRun(n_grid=10, ema_decay=0.99),                   # EMA horizon ~100 steps
    ),
    # Sized on paper for a T4 (Colab's free GPU): every chapter's estimate by cvae_lib.compute stays
    # under 10 minutes (tests/test_compute.py). Chapter 04's U-Net is the one that decides it.
    "gpu": Profile(
        name="gpu", summary="a student's GPU (a T4 on Colab): all ten classes, about 10 minutes per notebook",
        val_per_class=100, test_per_class=None, n_samples=1000, n_eval=2000, fid=True,
        ae=RunSize(train_per_class=None, epochs=30, batch_size=256, width=64),
        vae=RunSize(train_per_class=None, epochs=60, batch_size=256, width=64),
        cvae=RunSize(train_per_class=None, epochs=20, batch_size=256, width=32),  # width 32: the study's model
        vae_side=RunSize(train_per_class=None, epochs=10, batch_size=128, width=32),
        cvae_one_class=RunSize(train_per_class=None, epochs=100, batch_size=46, width=32),
        cvae_one_per_class=RunSize(train_per_class=1, epochs=100, batch_size=46, width=32),
        cvae_hundred_per_class=RunSize(train_per_class=100, epochs=200, batch_size=46, width=32),
        ddpm=RunSize(train_per_class=None, epochs=30, batch_size=128, width=32),   # 1.1M parameters, 11,490 steps
        diffusion=DiffusionRun(classes=None, n_ddpm=16, n_grid=10, ema_decay=0.999),
        ldm=RunSize(train_per_class=None, epochs=25, batch_size=128, width=64),
        latent=LatentRun(classes=None, n_grid=10, ema_decay=0.999),
    ),
}


# `full`: the long reproductions, for instructors producing shipped weights and for researchers
# (hours to days; never picked automatically). Chapter 04's DDPM is the paper's: Ho et al.'s
# 35.7M U-Net, 800k steps of 128 images (2,090 epochs of the 49,000 training images), EMA 0.9999.
PROFILES["full"] = replace(
    PROFILES["gpu"], name="full", summary="the papers' run lengths: hours to days on several GPUs (torchrun)",
    ddpm=RunSize(train_per_class=None, epochs=2090, batch_size=128, width=128),
    diffusion=DiffusionRun(classes=None, n_ddpm=16, n_grid=10, ema_decay=0.9999, unet="paper"))


def get_profile(name: str | None = None) -> Profile:
    """The profile named `name`, else `$CVAE_PROFILE`, else gpu (CUDA present) or cpu.

    `$CVAE_FID` (1 or 0) overrides the profile's `fid`: `CVAE_FID=1` fills chapter 05's FID
    column in the cpu profile too, at the cost its header states.
    """
    env = settings.current()
    name = name or env.profile or ("gpu" if torch.cuda.is_available() else "cpu")
    try:
        profile = PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}: set CVAE_PROFILE to one of "
                         f"{', '.join(PROFILES)} (or leave it unset to choose automatically).") from None
    fid = env.fid
    if fid not in ("", "0", "1"):
        raise ValueError(f"CVAE_FID={fid!r}: set it to 1 (chapter 05 computes FID) or 0 (it does not), "
                         f"or leave it unset for the profile's choice ({profile.name}: {int(profile.fid)})")
    return replace(profile, fid=fid == "1") if fid else profile
