"""Run profiles: the one switch that sizes every run in the course.

Set the environment variable `CVAE_PROFILE` before starting Jupyter (or in the first cell):

| profile | for | what it means |
|---|---|---|
| `smoke` | CI, `pytest --nbval-lax` | tiny subsets, a few steps: proves the notebook runs, in seconds |
| `cpu`   | a laptop or free Colab CPU | real CIFAR-10, small models, minutes per notebook |
| `gpu`   | one GPU | full data, longer runs, the numbers quoted in the README |

Unset, the profile is `gpu` when CUDA is available and `cpu` otherwise. Every size a
notebook uses comes from the `Profile` returned by `get_profile()`; this file is the only
place that says what a profile means.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

__all__ = ["RunSize", "Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class RunSize:
    """How big one training run is."""
    train_per_class: int | None   # training images per class (None: all 5,000 minus validation)
    epochs: int                   # passes over that subset
    batch_size: int               # images per optimizer step
    max_steps: int | None = None  # cap on steps per epoch (smoke only); None: whole epoch
    width: int = 32               # channels of the first stage; later stages double it


@dataclass(frozen=True)
class Profile:
    """Every size a notebook needs; chapters read their own field (`P.ae`, `P.ddpm`, ...)."""
    name: str
    summary: str
    val_per_class: int            # validation images per class, carved from train
    test_per_class: int | None    # test images per class for evaluation (None: all 1,000)
    n_samples: int                # images generated for sample grids and metrics
    ae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    vae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    cvae: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))
    ddpm: RunSize = field(default_factory=lambda: RunSize(None, 1, 128))


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", summary="CI: tiny subsets and a few steps, seconds per notebook",
        val_per_class=5, test_per_class=10, n_samples=20,
        ae=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
        vae=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
        cvae=RunSize(train_per_class=20, epochs=2, batch_size=46, max_steps=4, width=8),
        ddpm=RunSize(train_per_class=20, epochs=2, batch_size=50, max_steps=4, width=8),
    ),
    "cpu": Profile(
        name="cpu", summary="a laptop CPU: real CIFAR-10, small models, minutes per notebook",
        val_per_class=100, test_per_class=None, n_samples=100,
        ae=RunSize(train_per_class=None, epochs=6, batch_size=128, width=32),
        vae=RunSize(train_per_class=None, epochs=6, batch_size=128, width=32),
        cvae=RunSize(train_per_class=None, epochs=6, batch_size=46, width=32),
        ddpm=RunSize(train_per_class=None, epochs=6, batch_size=128, width=32),
    ),
    "gpu": Profile(
        name="gpu", summary="one GPU: full data, longer runs, the README's numbers",
        val_per_class=100, test_per_class=None, n_samples=1000,
        ae=RunSize(train_per_class=None, epochs=30, batch_size=256, width=64),
        vae=RunSize(train_per_class=None, epochs=100, batch_size=256, width=64),
        cvae=RunSize(train_per_class=None, epochs=100, batch_size=256, width=64),
        ddpm=RunSize(train_per_class=None, epochs=200, batch_size=128, width=128),
    ),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile named `name`, else `$CVAE_PROFILE`, else gpu (CUDA present) or cpu."""
    name = name or os.environ.get("CVAE_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"Unknown profile {name!r}: set CVAE_PROFILE to one of "
                         f"{', '.join(PROFILES)} (or leave it unset to choose automatically).") from None
