# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 01: autoencoder building blocks
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex01_autoencoder.ipynb)
#
# Three small functions from chapter 01. Write each one where it says `YOUR CODE HERE`, then run
# the check cell below it: the check tells you **which property** of your function does not
# hold yet (shape, a known value, an edge case), not just "wrong".
#
# Run time: a few seconds, no training, no data.
#
# *This notebook is generated from `solutions/ex01_autoencoder.py` by `tools/build_notebooks.py`; edit the solution, not this file.*

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch
import torch.nn.functional as F

from cvae_lib.checks import ex01

# %% [markdown]
# ## 1. PSNR
#
# The peak signal-to-noise ratio of a reconstruction $\hat x$ of an image $x$ with pixels in
# $[0, 1]$ is
#
# $$\mathrm{PSNR}(x, \hat x) = 10 \log_{10} \frac{1}{\mathrm{MSE}(x, \hat x)} \;\text{dB},
# \qquad \mathrm{MSE} = \frac{1}{CHW} \sum_{c,h,w} (x_{chw} - \hat x_{chw})^2 .$$
#
# Write `psnr(x, x_hat)` for batches `(B, 3, H, W)`; return **one value per image**, shape `(B,)`.

# %%
def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair; x, x_hat: (B, C, H, W) in [0, 1] -> (B,)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex01.check_psnr(psnr);

# %% [markdown]
# ## 2. Walking between two codes
#
# Chapter 01 decodes points on the straight line between the codes of two images. Write
# `interpolate(z0, z1, n)` returning `n` evenly spaced points from `z0` to `z1` (both included),
# shape `(n, Z)`.

# %%
def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """n points on the segment z0 -> z1; z0, z1: (Z,) -> (n, Z)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex01.check_interpolate(interpolate);

# %% [markdown]
# ## 3. The study's bottleneck block
#
# The encoder of the study stacks the four-convolution block of Very Deep VAEs (Child, 2021):
# GELU, then a 1x1 convolution, then GELU and 3x3, GELU and 3x3, GELU and 1x1. With
# `residual=True` the input is added back to the result. A `cvae_lib.models.blocks.Bottleneck`
# holds the four convolutions as `block.c1`, ..., `block.c4` and the flag `block.residual`.
# Recompute its forward pass from those parts.

# %%
def bottleneck_forward(block, x: torch.Tensor) -> torch.Tensor:
    """The VDVAE bottleneck: (B, C, H, W) -> (B, C, H, W)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex01.check_bottleneck(bottleneck_forward);

# %% [markdown]
# ## Going further
#
# - Why does the residual connection make deep stacks of these blocks trainable? (Hint: what is
#   the gradient of `x + h(x)` with respect to `x`?)
# - PSNR averages squared errors. Which kind of reconstruction error does it barely punish that
#   your eye notices at once? (Chapter 05 meets SSIM, which was designed for that.)
