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
# # Exercise 04: the three equations of a DDPM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex04_ddpm.ipynb)
#
# Chapter 04 trains and samples a diffusion model with `cvae_lib.diffusion`. Here you write
# its core yourself: the forward process, the training loss and one step of ancestral
# sampling (Ho et al. 2020). Run the check cell under each function: it tells you **which
# property** does not hold yet.
#
# Conventions: images are in $[-1, 1]$, shape `(B, C, H, W)`; timesteps `t` are indices
# `0..T-1`; the schedule comes as 1-D tensors `beta`, `alpha_bar` of length `T`.
#
# Run time: a few seconds, no training, no data.
#
# *This notebook is generated from `solutions/ex04_ddpm.py` by `tools/build_notebooks.py`; edit the solution, not this file.*

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch

from cvae_lib.checks import ex04
from cvae_lib.diffusion import Diffusion, DiffusionConfig

schedule = Diffusion(DiffusionConfig(T=1000))       # linear schedule of Ho et al.
beta, alpha_bar = schedule.beta, schedule.alpha_bar  # (T,) each
print(f"beta from {beta[0]:.4f} to {beta[-1]:.4f}; alpha_bar from {alpha_bar[0]:.4f} to {alpha_bar[-1]:.2e}")

# %% [markdown]
# ## 1. The forward process
#
# Jump straight from a clean image to step $t$ (Eq. 4):
#
# $$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon .$$
#
# Every image in the batch has **its own** $t$: pick `alpha_bar[t]` (shape `(B,)`) and reshape
# it so that it broadcasts over `(B, C, H, W)`.

# %%
def add_noise(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x0, eps: (B, C, H, W); t: (B,) int64 in 0..T-1; alpha_bar: (T,) -> xt (B, C, H, W)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex04.check_add_noise(add_noise);

# %% [markdown]
# ## 2. The training loss
#
# The network `model(xt, t)` predicts the noise in $x_t$. The loss (Algorithm 1, Eq. 14) is the
# mean squared error between the true noise and the prediction:
#
# $$L = \operatorname{mean}\big(\varepsilon - \varepsilon_\theta(x_t, t)\big)^2 .$$
#
# In training, `t` and `eps` are drawn at random for each batch; here they are arguments, so
# that the check can control them. Use your `add_noise`.

# %%
def ddpm_loss(model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the noise prediction, a scalar tensor."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex04.check_ddpm_loss(ddpm_loss);

# %% [markdown]
# ## 3. One step back
#
# Ancestral sampling (Algorithm 2) goes from $x_t$ to $x_{t-1}$ with the predicted noise
# $\hat\varepsilon$ (Eq. 11):
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\hat\varepsilon\Big) + \sigma_t z,
# \qquad \alpha_t = 1 - \beta_t,\qquad
# \sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t ,$$
#
# and **no noise at the last step** ($t = 0$ in our indexing). `t` is a plain `int` here: all
# images are at the same step while sampling.

# %%
def reverse_step(eps_hat: torch.Tensor, xt: torch.Tensor, t: int, z: torch.Tensor,
                 beta: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x_t (B, C, H, W) -> x_{t-1} (B, C, H, W), given eps_hat and the noise z (both like xt)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex04.check_reverse_step(reverse_step);

# %% [markdown]
# ## Going further
#
# - Put your three functions together: a loop from $x_T \sim \mathcal N(0, I)$ to $x_0$ with
#   `reverse_step`, for a model that always predicts zero noise. What does it produce, and why?
# - Why is $\tilde\beta_1 = 0$? (What do you know about $x_0$ once you know $x_1$ and the noise?)
# - Chapter 04 clips the predicted $\hat x_0$ to $[-1, 1]$ before taking the step. Rewrite the
#   mean of Eq. 11 in terms of $\hat x_0$ (Eq. 7) to see where that clipping goes.
