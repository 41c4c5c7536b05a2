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
# # Exercise 03: conditioning on the class
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex03_conditional_vae.ipynb)
#
# Three small functions from chapter 03. Write each one where it says `YOUR CODE HERE`, then run
# the check cell below it: the check names the property that does not hold yet.
#
# Run time: a few seconds, no training, no data.

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import math

import torch

from cvae_lib.checks import ex03

# %% [markdown]
# ## 1. Adding the label to the code
#
# The study's CVAE embeds the label, passes it through an MLP and adds the result, weighted,
# to the latent before decoding: $z_c = z + w \cdot \mathrm{MLP}(\mathrm{Embedding}(y))$.
# A `cvae_lib.models.cvae.CVAE` holds the parts as `model.embed`, `model.label_mlp` and the
# weight as `model.cfg.label_weight`. Compute $z_c$ for a vector latent `z` (B, Z).

# %%
def conditioned_code(model, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z (B, Z), labels y (B,) -> z_c (B, Z)."""
    ### BEGIN SOLUTION
    return z + model.cfg.label_weight * model.label_mlp(model.embed(y))
    ### END SOLUTION


# %%
ex03.check_conditioned_code(conditioned_code);

# %% [markdown]
# ## 2. The grid of samples
#
# Chapter 03 shows a grid with one class per column and one $z$ per row, shared along the row,
# so that moving along a row changes only the label. Build the inputs: `z` of shape
# `(n_rows * num_classes, Z)` drawn from $\mathcal N(0, I)$ with `generator`, and labels `y` of
# shape `(n_rows * num_classes,)`, row by row.

# %%
def class_grid(n_rows: int, num_classes: int, latent_dim: int, generator: torch.Generator):
    """-> (z (R*K, Z), y (R*K,) long) with y = 0..K-1 in every row and one z per row."""
    ### BEGIN SOLUTION
    z = torch.randn(n_rows, latent_dim, generator=generator)   # (R, Z)
    z = z.repeat_interleave(num_classes, dim=0)                   # (R*K, Z)
    y = torch.arange(num_classes).repeat(n_rows)                  # (R*K,)
    return z, y
    ### END SOLUTION


# %%
ex03.check_class_grid(class_grid);

# %% [markdown]
# ## 3. Repairing the study's noise
#
# The study sampled $z \sim U[0, 1)$, but the prior is $\mathcal N(0, I)$. If uniform noise is
# all you have, the inverse of the normal CDF turns it into normal noise:
# $z = \Phi^{-1}(u) = \sqrt 2 \,\mathrm{erf}^{-1}(2u - 1)$ (`torch.special.erfinv`).

# %%
def uniform_to_normal(u: torch.Tensor) -> torch.Tensor:
    """u in (0, 1), any shape -> standard normal values, same shape."""
    ### BEGIN SOLUTION
    return math.sqrt(2) * torch.special.erfinv(2 * u - 1)
    ### END SOLUTION


# %%
ex03.check_uniform_to_normal(uniform_to_normal);

# %% [markdown]
# ## Going further
#
# - The study's encoder does not see the label. What must $q(z \mid x)$ then encode that a
#   CVAE with $q(z \mid x, y)$ need not? (Try `CVAEConfig(condition_encoder=True)`.)
# - With 1 image per class, why can the decoder ignore $z$ entirely?
