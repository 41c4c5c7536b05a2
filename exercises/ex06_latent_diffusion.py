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
# # Exercise 06: latent diffusion, the three pieces between the stages
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex06_latent_diffusion.ipynb)
#
# Chapter 06 joins an autoencoder (the first stage) and a diffusion prior over its latents.
# Here you write what sits between them: the **scale** that gives the prior unit-variance
# latents, one **guided denoising step** in latent space, and the **decoding** of the final
# latents into images. Run the check cell under each function: it tells you **which
# property** does not hold yet.
#
# Conventions: latents are `(B, C, h, w)` float tensors (8x8 grids in chapter 06); timesteps
# are indices `0..T-1`; `alpha_bar` is the schedule's `(T,)` tensor; the prior is called as
# `model(z, t, y)` with `t` and `y` of shape `(B,)`, and class `null` means "no class".
#
# Run time: a few seconds, no training, no data.
#
# *This notebook is generated from `solutions/ex06_latent_diffusion.py` by `tools/build_notebooks.py`; edit the solution, not this file.*

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch

from cvae_lib.checks import ex06

# %% [markdown]
# ## 1. Scaling the latents
#
# The first stage's KL weight is tiny ($10^{-6}$), so nothing fixes the size of its latents;
# the diffusion process, however, ends in $\mathcal N(0, I)$ and assumes unit-variance data.
# Latent diffusion therefore measures one number on the training latents,
# $s = 1 / \operatorname{std}(\mu)$ over **all** their entries, and feeds the prior $s\,\mu$.

# %%
def latent_scale(mu: torch.Tensor) -> float:
    """mu: training latents (N, C, h, w) -> s = 1 / std over every entry, a float."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex06.check_latent_scale(latent_scale);

# %% [markdown]
# ## 2. One guided step in latent space
#
# Classifier-free guidance mixes the prior's conditional and unconditional predictions,
#
# $$\tilde\varepsilon = \varepsilon_\theta(z_t, t, \varnothing) + w\,\big(\varepsilon_\theta(z_t, t, y) - \varepsilon_\theta(z_t, t, \varnothing)\big),$$
#
# and the deterministic DDIM step (Song et al. 2020, Eq. 12 with $\eta = 0$) predicts the clean
# latent and re-noises it to the earlier step $t'$:
#
# $$\hat z_0 = \frac{z_t - \sqrt{1-\bar\alpha_t}\,\tilde\varepsilon}{\sqrt{\bar\alpha_t}}, \qquad
# z_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat z_0 + \sqrt{1-\bar\alpha_{t'}}\,\tilde\varepsilon,$$
#
# with $\bar\alpha_{t'} = 1$ when `t_prev == -1` (the last step). Unlike images, latents have no
# range: **do not clip** $\hat z_0$.

# %%
def guided_latent_step(model, zt: torch.Tensor, t: int, t_prev: int, y: torch.Tensor, w: float,
                       null: int, alpha_bar: torch.Tensor) -> torch.Tensor:
    """z_t (B, C, h, w) at step t -> z_{t_prev} (B, C, h, w); y (B,) class ids; t_prev = -1: z0."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex06.check_guided_latent_step(guided_latent_step);

# %% [markdown]
# ## 3. Decoding
#
# At the end of sampling the prior hands over a scaled latent $z_0$. The first stage's decoder
# was trained on *unscaled* latents, so divide by the scale first; `first_stage.decode(z)` then
# returns images in $[0, 1]$. (The scale is stored with the first stage as `first_stage.scale`.)

# %%
def decode_samples(first_stage, z: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, C, h, w) -> images (B, 3, 32, 32) in [0, 1], without gradients."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex06.check_decode_samples(decode_samples);

# %% [markdown]
# ## Going further
#
# - Put the three together with the shipped models of chapter 06: sample $z_T \sim \mathcal N(0, I)$
#   of shape `(B, 8, 8, 8)`, take 50 `guided_latent_step`s over `ddim_timesteps(1000, 50)`, and
#   decode. Compare with `LatentDiffusion.sample(..., eta=0.0)`.
# - What happens to the samples if you forget the scale in `decode_samples` (decode $z$ as it
#   is)? And if you clip $\hat z_0$ to $[-1, 1]$ as the image sampler does? Try both and look.
# - The scale is measured on the *training* latents. Why not on the test images?
