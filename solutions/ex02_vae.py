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
# # Exercise 02: the pieces of a VAE
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex02_vae.ipynb)
#
# Four small functions from chapter 02. Write each one where it says `YOUR CODE HERE`, then run
# the check cell below it: the check tells you **which property** of your function does not
# hold yet, not just "wrong".
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

from cvae_lib.checks import ex02

# %% [markdown]
# ## 1. The reparameterisation trick
#
# The encoder outputs $\mu$ and the log-variance $\log \sigma^2$. Write $z$ as a differentiable
# function of them and of noise $\varepsilon \sim \mathcal N(0, I)$ that you are given:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \sigma = \exp\!\big(\tfrac12 \log \sigma^2\big).$$

# %%
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps; mu, logvar, eps: (B, Z) -> (B, Z)."""
    ### BEGIN SOLUTION
    return mu + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


# %%
ex02.check_reparameterize(reparameterize);

# %% [markdown]
# ## 2. The KL term
#
# For one latent dimension,
# $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1)\big) = \tfrac12 (\mu^2 + \sigma^2 - 1 - \log\sigma^2)$.
# Return it **per element** (same shape as `mu`); the ELBO sums it over the latent dimensions.

# %%
def kl_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element, in nats; (B, Z) -> (B, Z)."""
    ### BEGIN SOLUTION
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    ### END SOLUTION


# %%
ex02.check_kl_normal(kl_normal);

# %% [markdown]
# ## 3. Bits per dimension
#
# A likelihood that is a distribution over the 256 pixel levels gives $-\log p(x)$ in nats per
# image. Turn it into bits (divide by $\ln 2$) per dimension (divide by the number of
# sub-pixels, $3 \cdot 32 \cdot 32 = 3072$ for CIFAR-10).

# %%
def bits_per_dim(nll: torch.Tensor, n_dims: int = 3072) -> torch.Tensor:
    """Nats per image (B,) -> bits per dimension (B,)."""
    ### BEGIN SOLUTION
    return nll / (n_dims * math.log(2))
    ### END SOLUTION


# %%
ex02.check_bits_per_dim(bits_per_dim);

# %% [markdown]
# ## 4. The negative ELBO in bits/dim
#
# Put it together: given the reconstruction term $-\log p(x \mid z)$ in nats per image and the
# posterior's `mu`, `logvar` (B, Z), return $-\mathrm{ELBO}$ per image in bits/dim. Use your
# functions from above.

# %%
def negative_elbo_bpd(nll: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(nll + KL summed over z) in bits/dim; nll (B,), mu and logvar (B, Z) -> (B,)."""
    ### BEGIN SOLUTION
    return bits_per_dim(nll + kl_normal(mu, logvar).sum(dim=1))
    ### END SOLUTION


# %%
ex02.check_negative_elbo_bpd(negative_elbo_bpd);

# %% [markdown]
# ## Going further
#
# - The study trained with binary cross-entropy on pixels in $[0, 1]$. Why can its loss not be
#   turned into bits/dim with your function? (Hint: is BCE with a target of 0.3 the
#   log-probability of anything?)
# - Why does the encoder output $\log \sigma^2$ rather than $\sigma$?
