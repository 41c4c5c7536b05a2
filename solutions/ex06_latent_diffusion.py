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
# # Exercise 06: latent diffusion, the pieces between the stages
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex06_latent_diffusion.ipynb)
#
# Chapter 06 joins an autoencoder (the first stage) and a diffusion prior over its latents.
# Here you write what sits between them: the **scale** that gives the prior unit-variance
# latents, one **guided denoising step** in latent space, the **decoding** of the final latents
# into images, and the **sampling loop** that joins them, which you then run with the course's
# shipped first stage and prior. Run the check cell under each function: it tells you **which
# property** does not hold yet.
#
# Conventions: latents are `(B, C, h, w)` float tensors (8x8 grids in chapter 06); timesteps
# are indices `0..T-1`; `alpha_bar` is the schedule's `(T,)` tensor; the prior is called as
# `model(z, t, y)` with `t` and `y` of shape `(B,)`, and class `null` means "no class".
#
# **Run time:** seconds for the checks; the samples of part 4 take well under a minute on a
# laptop CPU (seconds in the `smoke` profile).

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
from cvae_lib.diffusion import ddim_timesteps
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 4's sampling

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
    ### BEGIN SOLUTION
    return 1.0 / float(mu.std())
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    tt = torch.full((zt.shape[0],), t, dtype=torch.long)
    eps_c = model(zt, tt, y)
    eps_u = model(zt, tt, torch.full_like(y, null))
    eps = eps_u + w * (eps_c - eps_u)
    ab = alpha_bar[t]
    ab_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    z0 = (zt - (1 - ab).sqrt() * eps) / ab.sqrt()
    return ab_prev.sqrt() * z0 + (1 - ab_prev).sqrt() * eps
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    with torch.no_grad():
        return first_stage.decode(z / first_stage.scale)
    ### END SOLUTION


# %%
ex06.check_decode_samples(decode_samples);

# %% [markdown]
# ## 4. The whole sampler in latent space
#
# Put your step in a loop: draw $z_T \sim \mathcal N(0, I)$ of shape `(n, *shape)` with
# `torch.randn(..., generator=generator)`, then take one `guided_latent_step` from each timestep
# of `ddim_timesteps(T, steps)` (given) to the next one, and to `-1` after the last. Return the
# final latents; decoding is a separate step (part 3), so that you can look at what goes into
# the decoder.

# %%
def sample_latent(prior, y: torch.Tensor, w: float, steps: int, generator: torch.Generator,
                  alpha_bar: torch.Tensor, null: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Scaled latents (n, *shape) for the labels y (n,), guidance weight w, deterministic DDIM."""
    ts = ddim_timesteps(len(alpha_bar), steps).tolist()      # from T-1 down to 0
    ### BEGIN SOLUTION
    z = torch.randn((len(y), *shape), generator=generator)    # z_T
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        z = guided_latent_step(prior, z, t, t_prev, y, w, null, alpha_bar)
    return z
    ### END SOLUTION


# %%
ex06.check_sample_latent(sample_latent);

# %% [markdown]
# Now with the course's shipped first stage and prior: your loop draws the latents, your
# `decode_samples` turns them into images.

# %% tags=["experiment"]
from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.plotting import show_images
from cvae_lib.weights import load_weights, read_metadata, shipped

first_stage = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig)
prior = load_weights(shipped("ldm_prior"), UNet, UNetConfig)
meta = read_metadata(shipped("ldm_prior"))["metrics"]
diffusion = Diffusion(DiffusionConfig(**meta["diffusion"]))
CLASSES = meta["classes"]
STEPS = 5 if P.name == "smoke" else 50          # the smoke profile only shows that the cells run
y = torch.arange(8) % len(CLASSES)
with torch.no_grad():
    z = sample_latent(prior, y, 3.0, STEPS, torch.Generator().manual_seed(0), diffusion.alpha_bar,
                      diffusion.cfg.null_label, first_stage.cfg.latent_shape)
show_images(decode_samples(first_stage, z), nrow=8, col_labels=[CLASSES[i] for i in y],
            title=f"your latent sampler, w = 3, {STEPS} steps");
print(f"the first stage's scale: {float(first_stage.scale):.3f}; std of your final latents: {z.std():.2f}")

# %% [markdown]
# ### Predict, then run
#
# The next cell decodes the same latents once more, but forgets the scale: it feeds the
# decoder `z` as it is, not `z / scale`. Look at the scale printed above. Before you run it,
# write down how the images will differ from the ones above, and why.

# %% [markdown] tags=["prediction"]
# **Answer.** The same compositions, but **washed out**: lower contrast, greyer and flatter
# colours, fewer details, closer to an average image.
#
# **Why.** The scale is $s = 1/\operatorname{std}(\mu)$ of the training latents, and it is below
# 1 here (about 0.45): the first stage's latents are spread more widely than unit variance, and
# the prior works with the shrunk $s\,\mu$. Decoding $z$ instead of $z/s$ feeds the decoder codes
# about half as far from the origin as the ones it was trained on. A decoder maps codes near the
# centre of its latent space to what is common to many images, so every feature comes out weaker.
# (Had $s$ been above 1, the same mistake would have exaggerated every feature instead.)

# %% tags=["experiment"]
with torch.no_grad():
    forgot = first_stage.decode(z)                       # z, not z / scale
show_images(torch.cat([decode_samples(first_stage, z), forgot]), nrow=8, row_labels=["z / scale", "z"],
            title="decoded with and without undoing the scale");

# %% [markdown]
# ## Going further
#
# - Compare your samples with `LatentDiffusion(first_stage, prior, diffusion).sample(y, steps=50,
#   eta=0.0, guidance=3.0, generator=torch.Generator().manual_seed(0))`. Why are they the same?
# - What happens if you clip $\hat z_0$ to $[-1, 1]$ as the image sampler does? Try it and look.
# - The scale is measured on the *training* latents. Why not on the test images?

# %% [markdown] tags=["going-further"]
# **Answers.**
#
# - The library's sampler draws $z_T$ from the same generator in the same shape, steps through the
#   same `ddim_timesteps` with the same deterministic update ($\eta = 0$ draws nothing more), and
#   decodes with `decode_latent`, which divides by the scale just as `decode_samples` does. The
#   only difference is that it computes both predictions of a guided step in one call on a doubled
#   batch, which changes the result only by float rounding.
# - The scaled latents have unit variance, so about a third of their entries lie outside
#   $[-1, 1]$: clipping $\hat z_0$ at every step cuts off every strong feature of the code. The
#   samples become flat and low in contrast, with the detail that lives in the large latent values
#   lost. Clipping makes sense for images, whose range is $[-1, 1]$ by construction; a latent has
#   no such range.
# - The scale is part of the model, like a layer's weights: it must be fixed before the prior is
#   trained, from the data the prior learns from, and the same value must be used at sampling
#   time. Measuring it on test images would use data that must stay unseen until evaluation, and
#   would change the model after training (any new measurement would give a slightly different
#   scale, and the prior's inputs would no longer match what it learned on).
