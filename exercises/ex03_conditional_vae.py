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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex03_conditional_vae.ipynb)
#
# Chapter 03 runs the study's class-conditional VAE (CVAE) with the library. Here you build the
# conditioning yourself: the label added to the decoder's code, the grid of samples that shows
# what the label does, the repair of the study's uniform noise, and an encoder that sees the label
# too. Then you train a CVAE with your encoder and check that its decoder really uses the label.
#
# Write each function where it says `YOUR CODE HERE`, then run the check cell below it: the
# check names the property that does not hold yet.
#
# **Run time:** seconds for the checks; the training run of part 5 takes about a minute on a
# laptop CPU (seconds in the `smoke` profile).

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
from cvae_lib.data import from_unit
from cvae_lib.models.cvae import CVAE, CVAEConfig
from cvae_lib.models.likelihoods import kl_normal, reparameterize
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 5's run

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
    # YOUR CODE HERE
    raise NotImplementedError()


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
    # YOUR CODE HERE
    raise NotImplementedError()


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
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex03.check_uniform_to_normal(uniform_to_normal);

# %% [markdown]
# ## 4. An encoder that sees the label
#
# The study's encoder does not see $y$, so $q(z \mid x)$ must describe the class too. The CVAE
# of Sohn et al. (2015) gives the encoder the label as well, $q(z \mid x, y)$: then $z$ only needs
# to carry what the label does not say (pose, colour, background). `CVAEConfig(condition_encoder=True)`
# adds a layer `model.label_to_features` that maps the label's embedding `model.embed(y)`, shape
# `(B, E)`, to **one number per channel** of the encoder's last feature map, shape `(B, C)`. That
# bias is added to the features `h`, shape `(B, C, s, s)`, at every position, before the two heads.
# Add it: `h` and the heads are given.

# %%
def encode_with_label(model, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z | x, y): images x (B, 3, 32, 32) in [0, 1], labels y (B,) -> mu, logvar, each (B, Z)."""
    h = model.encoder(from_unit(x))           # (B, C, s, s): the study's encoder features
    # YOUR CODE HERE
    raise NotImplementedError()
    return model._stats(h)                    # the two heads: mu and logvar of z


# %%
ex03.check_encode_with_label(encode_with_label);

# %% [markdown]
# ## 5. Train a CVAE, and ask whether its decoder listens
#
# The training loop of a CVAE is a VAE's with the label passed along: for a batch `x, y`, encode
# with your `encode_with_label`, sample $z$ with `reparameterize(mu, logvar)`, decode with the
# label, `model.decode(z, y)` (it adds the label code of part 1 to $z$), and minimise
#
# $$\text{rec} + \text{kl}, \qquad \text{rec} = -\log p(x \mid z, y) \text{ (`model.likelihood.nll(logits, x)`, nats per image)},
# \qquad \text{kl} = \textstyle\sum_z \mathrm{KL}(q(z \mid x, y) \,\|\, \mathcal N(0, I)),$$
#
# both averaged over the batch (you wrote both pieces in exercise 02; here the library's
# `kl_normal` and the model's Bernoulli likelihood stand in for them). Record the two terms of
# every step.

# %%
def train_cvae(images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 64, lr: float = 2e-3,
               num_classes: int = 10, latent_dim: int = 32, width: int = 16, seed: int = 0) -> dict:
    """images (N, 3, 32, 32) in [0, 1], labels (N,) -> {"rec", "kl": (steps,), "state": the trained
    model's state_dict(), "model": the trained CVAE}."""
    torch.manual_seed(seed)                    # the initial weights and every random draw below
    model = CVAE(CVAEConfig(num_classes=num_classes, latent_dim=latent_dim, width=width, likelihood="bernoulli",
                            condition_encoder=True, residual=True))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"rec": [], "kl": []}
    # YOUR CODE HERE
    raise NotImplementedError()
    model.eval()
    return {"rec": torch.tensor(history["rec"]), "kl": torch.tensor(history["kl"]), "state": model.state_dict(),
            "model": model}


# %% [markdown]
# The check trains a small CVAE with your function on images whose class decides their colour,
# then decodes the same codes $z$ with every label: a decoder that uses the label must paint
# each image in its label's colour.

# %%
ex03.check_train_cvae(train_cvae);

# %% [markdown]
# Now on CIFAR-10: a CVAE for all ten classes, trained with your loop.

# %% tags=["experiment"]
import matplotlib.pyplot as plt

from cvae_lib.data import load_cifar10
from cvae_lib.plotting import show_images

STEPS = 10 if P.name == "smoke" else 300      # the smoke profile only shows that the cells run
train = load_cifar10("train").subset(n_per_class=20 if P.name == "smoke" else 500, seed=0)
run = train_cvae(train.images(), train.y, STEPS)
cvae = run["model"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, key in zip(axes, ("rec", "kl")):
    ax.plot(run[key]), ax.set_title(f"{key}, nats per image"), ax.set_xlabel("step"), ax.grid(alpha=0.3)

# %% [markdown]
# ### Predict, then run
#
# The next cell draws a grid with your `class_grid`: one $z \sim \mathcal N(0, I)$ per row, the
# ten classes in the columns, decoded by the CVAE you just trained. Before you run it, write
# down what you expect to change along a row (same $z$, different label) and down a column
# (same label, different $z$), and whether you expect to recognise the classes. Why?

# %% [markdown] tags=["prediction"]
# YOUR ANSWER HERE

# %% tags=["experiment"]
z, y = class_grid(4, 10, cvae.cfg.latent_dim, torch.Generator().manual_seed(0))
with torch.no_grad():
    grid = cvae.decode_mean(z, y)                      # (40, 3, 32, 32)
show_images(grid, nrow=10, col_labels=train.classes, title="your CVAE: one z per row, one class per column");

# %% [markdown]
# The study sampled with uniform noise. The next cell decodes the same rows from $U[0, 1)$ noise
# as it is, and repaired with your `uniform_to_normal`: the repaired rows match the grid above
# exactly when the uniform numbers are the normal CDF of its $z$, and look like them in general.

# %% tags=["experiment"]
u = torch.rand(4, cvae.cfg.latent_dim, generator=torch.Generator().manual_seed(1)).repeat_interleave(10, 0)
with torch.no_grad():
    raw, repaired = cvae.decode_mean(u, y), cvae.decode_mean(uniform_to_normal(u), y)
show_images(torch.cat([raw[:10], repaired[:10]]), nrow=10, row_labels=["U[0, 1)", "repaired"],
            title="the study's uniform noise, as it is and through the inverse normal CDF");

# %% [markdown]
# ## Going further
#
# - The study's encoder does not see the label. What must $q(z \mid x)$ then encode that the
#   CVAE of part 4, with $q(z \mid x, y)$, need not? What does that do to a class grid?
# - With 1 image per class, why can the decoder ignore $z$ entirely?
# - The check of part 5 decodes the *same* $z$ with every label. Why is a decoder that ignores
#   $y$ still a valid (if useless) maximiser of the ELBO, and what would make it one on CIFAR-10?

# %% [markdown] tags=["going-further"]
# YOUR ANSWER HERE
