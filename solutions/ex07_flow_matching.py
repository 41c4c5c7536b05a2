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
# # Exercise 07: flow matching, from the path to your own sampler
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex07_flow_matching.ipynb)
#
# Chapter 07 trained networks to predict the velocity of a straight path from data to noise.
# Here you write the pieces yourself: the **path**, its **velocity target**, one **guided Euler
# step**, and the **sampler** that joins them, which you then run on the course's shipped
# ten-class generator to draw a class of your choice. Run the check cell under each function: it
# tells you **which property** does not hold yet.
#
# Conventions: data and noise are `(B, C, H, W)` float tensors; time `t` runs from 0 (the data)
# to 1 (pure noise); a velocity model is called as `v_theta(x, t, y)` with `t` a `(B,)` float
# tensor in $[0, 1]$ and `y` `(B,)` class ids, where class `null` means "no class".
#
# **Run time:** seconds for the checks; part 5 draws images in well under a minute on a laptop
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

from cvae_lib.checks import ex07
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 5's sampling

# %% [markdown]
# ## 1. The straight path
#
# A data point $x_0$ and a noise sample $\epsilon$ are joined by
#
# $$x_t = (1 - t)\, x_0 + t\, \epsilon .$$
#
# In a batch every sample has its own time: `t` has shape `(B,)`, and you must reshape it so that
# it multiplies every entry of its own sample.

# %%
def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x0, eps: (B, C, H, W); t: (B,) in [0, 1] -> x_t (B, C, H, W)."""
    ### BEGIN SOLUTION
    t = t.view(-1, 1, 1, 1)                      # (B,) -> (B, 1, 1, 1)
    return (1 - t) * x0 + t * eps
    ### END SOLUTION


# %%
ex07.check_interpolate(interpolate);

# %% [markdown]
# ## 2. The velocity target
#
# The network learns the velocity of the point along its path, $u_t = dx_t / dt$. Differentiate
# your `interpolate` with respect to $t$ by hand: what is left does not depend on $t$ at all.

# %%
def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The velocity d x_t / dt of the straight path, (B, C, H, W)."""
    ### BEGIN SOLUTION
    return eps - x0
    ### END SOLUTION


# %%
ex07.check_velocity_target(velocity_target);

# %% [markdown]
# ## 3. One guided Euler step
#
# Sampling runs the ODE $dx/dt = v$ backwards, from $t = 1$ to $t = 0$. With classifier-free
# guidance the velocity is
#
# $$v = v_\theta(x_t, t, \varnothing) + w\,\big(v_\theta(x_t, t, y) - v_\theta(x_t, t, \varnothing)\big),$$
#
# and one Euler step to an earlier time $t' < t$ is $x_{t'} = x_t + (t' - t)\, v$. Call the model
# with a `(B,)` tensor of times, and with the class `null` for the unconditional prediction.

# %%
def guided_euler_step(v_theta, x: torch.Tensor, t: float, t_next: float, y: torch.Tensor, w: float,
                      null: int) -> torch.Tensor:
    """x_t (B, C, H, W) at time t -> x at time t_next (< t); y (B,) class ids; w the guidance weight."""
    ### BEGIN SOLUTION
    tt = torch.full((x.shape[0],), t)
    v_c = v_theta(x, tt, y)
    v_u = v_theta(x, tt, torch.full_like(y, null))
    v = v_u + w * (v_c - v_u)
    return x + (t_next - t) * v
    ### END SOLUTION


# %%
ex07.check_guided_euler_step(guided_euler_step);

# %% [markdown]
# ## 4. Your sampler
#
# Draw $x_1 \sim \mathcal N(0, I)$ of shape `(n, *shape)` with
# `torch.randn(..., generator=generator)`, then take `steps` guided Euler steps over the equally
# spaced times `torch.linspace(1, 0, steps + 1)`, and return where you end up.

# %%
def sample_flow(v_theta, y: torch.Tensor, w: float, steps: int, generator: torch.Generator, null: int,
                shape: tuple[int, int, int]) -> torch.Tensor:
    """Samples (n, *shape) for the labels y (n,) with guidance weight w and `steps` Euler steps."""
    times = torch.linspace(1, 0, steps + 1).tolist()
    ### BEGIN SOLUTION
    x = torch.randn((len(y), *shape), generator=generator)          # x_1, pure noise
    for t, t_next in zip(times[:-1], times[1:]):
        x = guided_euler_step(v_theta, x, t, t_next, y, w, null)
    return x
    ### END SOLUTION


# %%
ex07.check_sample_flow(sample_flow);

# %% [markdown]
# ## 5. Draw a class with your own sampler
#
# The course ships a generator of all ten classes: a U-Net trained by flow matching on the
# latent grids of chapter 06's first stage. Your sampler runs it in latent space; the first
# stage's decoder turns the final latents into images. (The network sees $t \cdot 1000$, the
# timestep range of chapter 04's U-Net, which `v_theta` below takes care of.)

# %% tags=["experiment"]
from cvae_lib.data import CLASSES
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.plotting import show_images
from cvae_lib.weights import load_weights, read_metadata, shipped

first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).eval()
prior = load_weights(shipped("ldm_ten_class"), UNet, UNetConfig).eval()
meta = read_metadata(shipped("ldm_ten_class"))["metrics"]
null, w_shipped = meta["process"]["null_label"], meta["guidance"]


@torch.no_grad()
def v_theta(x, t, y):
    return prior(x, t * 1000, y)


def draw(name: str, n: int, w: float, steps: int, seed: int = 0) -> torch.Tensor:
    y = torch.full((n,), CLASSES.index(name))
    with torch.no_grad():
        z = sample_flow(v_theta, y, w, steps, torch.Generator().manual_seed(seed), null, first.cfg.latent_shape)
        return first.decode_latent(z)                                   # (n, 3, 32, 32) in [0, 1]


# %% [markdown]
# **Predict first** (write your answer below before you run the next cell): with the shipped
# guidance weight, how many Euler steps does your sampler need before eight horses look like
# horses: 1, 4 or 20? And what will one single step produce?

# %% [markdown] tags=["prediction"]
# **Answer.** One step already gives blurry, horse-coloured blobs: a single Euler step lands on the
# *average* of all images that the noise could lead to under the class, which is smooth. Four
# steps give recognisable shapes, because the paths are nearly straight, and twenty add detail.
# A DDPM sampled with 4 DDIM steps draws far less (chapter 07, section 1, showed the same on
# the toy).

# %% tags=["experiment"]
n = 8 if P.name != "smoke" else 2
steps_tried = (1, 4, 20) if P.name != "smoke" else (1, 2)
x = torch.cat([draw("horse", n, w_shipped, k) for k in steps_tried])
show_images(x, nrow=n, row_labels=[f"{k} steps" for k in steps_tried], title="your sampler, class horse");

# %% [markdown]
# Change the class and the guidance weight: `draw("ship", 8, 0.0, 20)` ignores the class
# (the unconditional model), `w = 1` is the plain conditional model, and larger weights give
# more typical, less varied images.
#
# ## Going further
#
# 1. **Heun's method.** Write `heun_step`: take the Euler step as a trial point
#    $\tilde x$, evaluate the guided velocity there at $t'$, and step from $x_t$ with the average
#    of the two velocities. At equal network evaluations (Heun costs two per step), is it better
#    than Euler on the horses?
# 2. **The DDIM connection.** Given the velocity $\hat v$ at $(x_t, t)$, what are the implied
#    $\hat x_0$ and $\hat\epsilon$? Show that an Euler step from $t$ to $t'$ equals "predict
#    $\hat x_0$ and $\hat\epsilon$, then re-noise them to time $t'$ along the straight path".

# %% [markdown] tags=["going-further"]
# **Answers.**
#
# 1. `x_trial = guided_euler_step(v_theta, x, t, t_next, y, w, null)`, then the guided velocity
#    at `(x_trial, t_next)`, and `x + (t_next - t) * (v_t + v_trial) / 2`; skip the trial on the
#    last step (its end point, t = 0, needs no slope). With 9 evaluations (5 Heun steps) against 9
#    Euler steps the two look alike on these nearly straight paths; Heun pays off at 20 or more
#    evaluations, where its error, proportional to the step size squared, is far smaller.
# 2. From $x_t = (1-t)x_0 + t\epsilon$ and $v = \epsilon - x_0$: $\hat x_0 = x_t - t\,\hat v$ and
#    $\hat\epsilon = x_t + (1 - t)\,\hat v$. Re-noising to $t'$ gives
#    $(1 - t')\hat x_0 + t'\hat\epsilon = x_t - t\hat v + t'\hat v = x_t + (t' - t)\hat v$, the
#    Euler step. This is DDIM's step (chapter 04) written for the flow's schedule: predict the
#    clean data and the noise, then move both to the next noise level.
