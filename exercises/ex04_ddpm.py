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
# # Exercise 04: a DDPM sampler, equation by equation
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex04_ddpm.ipynb)
#
# Chapter 04 trains and samples a diffusion model with `cvae_lib.diffusion`. Here you write
# its core yourself: the forward process, the training loss, one step of ancestral sampling
# (Ho et al. 2020), the general DDIM step with its parameter $\eta$ (Song et al. 2020), and
# finally the whole sampling loop with classifier-free guidance (Ho & Salimans 2022), which you
# run on the course's shipped ten-class DDPM to draw images of a class you pick.
# Run the check cell under each function: it tells you **which property** does not hold yet.
#
# Conventions: images are in $[-1, 1]$ inside the process, shape `(B, C, H, W)`; timesteps `t`
# are indices `0..T-1`; the schedule comes as 1-D tensors `beta`, `alpha_bar` of length `T`.
#
# **Run time:** seconds for the checks; the samples of part 5 take well under a minute on a laptop
# CPU (seconds in the `smoke` profile).

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
from cvae_lib.diffusion import Diffusion, DiffusionConfig, ddim_timesteps
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 5's sampling
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
# ## 4. DDIM: one update, any $\eta$
#
# DDIM (Song et al. 2020) predicts the clean image from the noise estimate and moves to an
# *earlier* step $t'$ of a shorter sequence, which need not be $t - 1$. With
# $\bar\alpha = \bar\alpha_t$ and $\bar\alpha' = \bar\alpha_{t'}$ (and $\bar\alpha' = 1$ when
# `t_prev == -1`, the end):
#
# $$\hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha}\,\hat\varepsilon}{\sqrt{\bar\alpha}}, \qquad
# x_{t'} = \sqrt{\bar\alpha'}\,\hat x_0 + \sqrt{1 - \bar\alpha' - \sigma^2}\;\hat\varepsilon + \sigma z \quad\text{(Eq. 12)},$$
#
# $$\sigma = \eta\,\sqrt{\frac{1 - \bar\alpha'}{1 - \bar\alpha}}\,\sqrt{1 - \frac{\bar\alpha}{\bar\alpha'}} \quad\text{(Eq. 16)} .$$
#
# $\eta = 0$ is deterministic; $\eta = 1$ adds as much fresh noise as the DDPM does. With
# `clip=True`, clamp $\hat x_0$ to $[-1, 1]$ (the range of images) and recompute the noise that
# goes with the clamped $\hat x_0$, $\hat\varepsilon = (x_t - \sqrt{\bar\alpha}\,\hat x_0) / \sqrt{1 - \bar\alpha}$,
# before the update. `t` and `t_prev` are plain ints.

# %%
def ddim_step(eps_hat: torch.Tensor, xt: torch.Tensor, t: int, t_prev: int, eta: float, z: torch.Tensor,
              alpha_bar: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """x_t (B, C, H, W) -> x_{t_prev} (B, C, H, W); t_prev = -1 means x0; z: noise like xt."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex04.check_ddim_step(ddim_step);

# %% [markdown]
# ## 5. The whole sampler, with classifier-free guidance
#
# A class-conditional model $\varepsilon_\theta(x_t, t, y)$ trained with classifier-free
# guidance also knows a "null" class (`null`, here 10) meaning "no class". Guidance mixes the
# two predictions with a weight $w$:
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big).$$
#
# Write the loop: start from $x_T \sim \mathcal N(0, I)$ of shape `(n, 3, 32, 32)` drawn with
# `torch.randn(..., generator=generator)`; for each timestep `t` of `ddim_timesteps(T, steps)`
# (given: e.g. `[999, 666, 333, 0]`), call the model with `t` as a `(n,)` tensor, guide, draw
# `z = torch.randn(x.shape, generator=generator)` if `eta > 0` and this is not the last step
# (zeros otherwise), and take your `ddim_step` to the next listed timestep (`-1` after the last)
# with `clip=True`. Return the images mapped from $[-1, 1]$ to $[0, 1]$. Drawing from the
# generator in exactly this order makes your samples comparable with the library's.

# %%
def sample(model, y: torch.Tensor, w: float, eta: float, steps: int, generator: torch.Generator,
           alpha_bar: torch.Tensor, null: int = 10) -> torch.Tensor:
    """n images for the labels y (n,), guidance weight w -> (n, 3, 32, 32) in [0, 1]."""
    ts = ddim_timesteps(len(alpha_bar), steps).tolist()      # from T-1 down to 0
    # YOUR CODE HERE
    raise NotImplementedError()


# %% [markdown]
# The check runs your sampler on the shipped ten-class DDPM with a few steps and compares it,
# image for image, with the library's `Diffusion.ddim_sample` on the same generator, for
# $\eta \in \{0, 1\}$ and $w \in \{0, 2\}$.

# %%
ex04.check_sample(sample);

# %% [markdown]
# Now draw images of a class you pick with your sampler and the shipped network (a small U-Net
# trained for a few hours on a CPU: do not expect the sharpness of published models).

# %% tags=["experiment"]
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.plotting import show_images
from cvae_lib.weights import load_weights, shipped

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CLASS = "horse"                                   # pick any of the ten
STEPS = 5 if P.name == "smoke" else 50            # the smoke profile only shows that the cells run
ddpm = load_weights(shipped("ddpm_ten_class"), UNet, UNetConfig)
y = torch.full((8,), CLASSES.index(CLASS))

# %% [markdown]
# ### Predict, then run
#
# The next cell draws 8 images of your class from the same noise with $w = 0$, $1$ and $3$.
# Before you run it, write down what you expect each row to look like, and why.

# %% [markdown] tags=["prediction"]
# YOUR ANSWER HERE

# %% tags=["experiment"]
rows = [sample(ddpm, y, w, 0.0, STEPS, torch.Generator().manual_seed(0), alpha_bar) for w in (0.0, 1.0, 3.0)]
show_images(torch.cat(rows), nrow=8, row_labels=["w = 0", "w = 1", "w = 3"],
            title=f"your sampler, {STEPS} DDIM steps, class {CLASS!r}");

# %% [markdown]
# ## Going further
#
# - Run your sampler with a model that always predicts zero noise, `lambda x, t, y: torch.zeros_like(x)`.
#   What does it produce, with and without clipping, and why?
# - Why is $\tilde\beta$ zero at the first step (index 0)? (What do you know about $x_0$ once
#   you know $x_1$ and the noise?)
# - Chapter 04 clips the predicted $\hat x_0$ to $[-1, 1]$ also in the ancestral step. Rewrite
#   the mean of Eq. 11 in terms of $\hat x_0$ (Eq. 7) to see where that clipping goes.
# - With $\eta = 0$, how do the samples change from 5 to 50 steps? And with $\eta = 1$?

# %% [markdown] tags=["going-further"]
# YOUR ANSWER HERE
