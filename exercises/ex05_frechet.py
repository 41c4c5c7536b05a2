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
# # Exercise 05: the Frechet distance, behind FID
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/exercises/ex05_frechet.ipynb)
#
# Chapter 05 compares generated and real images with the **Frechet distance** (FD) between
# Gaussians fitted to their features; with Inception features it is called FID. Here you
# write it yourself, check it on Gaussians whose answer is known, and then see why the
# number of samples must always be reported beside it. Run the check cell under each
# function: it tells you **which property** does not hold yet.
#
# Run time: a few seconds, no training, no data.
#
# *This notebook is generated from `solutions/ex05_frechet.py` by `tools/build_notebooks.py`; edit the solution, not this file.*

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch

from cvae_lib.checks import ex05

# %% [markdown]
# ## 1. Between two Gaussians
#
# For $P = \mathcal N(\mu_1, \Sigma_1)$ and $Q = \mathcal N(\mu_2, \Sigma_2)$ the squared
# Frechet (2-Wasserstein) distance has a closed form (Dowson & Landau, 1982):
#
# $$d^2(P, Q) = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\Big(\Sigma_1 + \Sigma_2 - 2\,\big(\Sigma_1^{1/2}\, \Sigma_2\, \Sigma_1^{1/2}\big)^{1/2}\Big).$$
#
# In one dimension it is $(m_1 - m_2)^2 + (s_1 - s_2)^2$ with standard deviations $s$. The
# hard part is the **matrix** square root. A symmetric positive semi-definite matrix $S$ has
# an eigen-decomposition $S = V \operatorname{diag}(w) V^\top$ with $w \ge 0$, and then
# $S^{1/2} = V \operatorname{diag}(\sqrt w) V^\top$ (`torch.linalg.eigh`). Work in float64,
# and clamp tiny negative eigenvalues (rounding) to 0 before the square root.

# %%
def sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix (D, D) -> (D, D)."""
    # YOUR CODE HERE
    raise NotImplementedError()


def gaussian_frechet(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); mu (D,), sigma (D, D)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex05.check_gaussian_frechet(gaussian_frechet);

# %% [markdown]
# Why $\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}$ and not $\Sigma_1\Sigma_2$? Both have the same
# eigenvalues, so the trace of their square roots is the same, but only the first is
# symmetric, which lets `eigh` take its root reliably. (FID code often uses
# `scipy.linalg.sqrtm(s1 @ s2)` and then has to drop a small imaginary part.)
#
# ## 2. Between two sets of features
#
# FD fits a Gaussian to each set: the mean of the rows and their covariance (the unbiased one,
# dividing by $N - 1$, as `torch.cov` does; note that `torch.cov` wants variables in rows, so
# pass `feats.T`). Then it applies part 1.

# %%
def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """FD between Gaussians fitted to features (N, D) and (M, D)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %%
ex05.check_frechet_distance(frechet_distance);

# %% [markdown]
# ## 3. FD is biased: always report the number of samples
#
# Draw two sets of $n$ points from the **same** 64-dimensional Gaussian. Their true distance
# is 0, but the fitted means and covariances are noisy, and $d^2$ can only be positive, so the
# noise never averages out:

# %%
g = torch.Generator().manual_seed(0)
for n in (100, 400, 1600, 6400):
    a, b = torch.randn(n, 64, generator=g), torch.randn(n, 64, generator=g)
    print(f"n = {n:5d}: FD between two samples of the same Gaussian = {frechet_distance(a, b):.3f}")

# %% [markdown]
# The estimate shrinks roughly like $1/n$ but is never 0. This is why chapter 05 puts a row of
# **real** images, at the same $n$, in its table, and why published FIDs (50,000 samples)
# cannot be compared with an FID computed from a few hundred.
#
# ## Going further
#
# - Show that for commuting covariances (e.g. both diagonal) the trace term becomes
#   $\lVert \Sigma_1^{1/2} - \Sigma_2^{1/2} \rVert_F^2$.
# - With $D = 256$ features and $n = 100$ samples the fitted covariance has rank at most 99.
#   What does that do to the estimate? Try it above with a larger dimension.
# - KID (`cvae_lib.metrics.kid`) uses a kernel instead of Gaussians and is unbiased. Compare
#   it with FD for the same pairs of sets.
