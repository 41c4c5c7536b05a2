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
# # Exercise 05: the Frechet distance and KID, behind FID
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex05_frechet.ipynb)
#
# Chapter 05 compares generated and real images with two distances between sets of image
# features: the **Frechet distance** (FD) between Gaussians fitted to them (with Inception
# features it is called FID), and the **kernel inception distance** (KID), which needs no
# Gaussian. Here you write both yourself, check them on cases whose answer is known, see why the
# number of samples must always be reported beside FD, and finally score real images and the
# course's shipped CVAE with your own two functions. Run the check cell under each function: it
# tells you **which property** does not hold yet.
#
# **Run time:** seconds for the checks; part 5 takes under a minute on a laptop CPU (seconds in
# the `smoke` profile).

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
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 5

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
    ### BEGIN SOLUTION
    w, v = torch.linalg.eigh(s.double())
    return (v * w.clamp_min(0).sqrt()) @ v.T
    ### END SOLUTION


def gaussian_frechet(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); mu (D,), sigma (D, D)."""
    ### BEGIN SOLUTION
    mu1, mu2, s1, s2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = sqrtm_psd(s1)
    cross = sqrtm_psd(root1 @ s2 @ root1)          # symmetric, so eigh applies
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1 + s2 - 2 * cross))
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    a, b = feats_a.double(), feats_b.double()
    return gaussian_frechet(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    ### END SOLUTION


# %%
ex05.check_frechet_distance(frechet_distance);

# %% [markdown]
# ## 3. KID: a kernel instead of Gaussians
#
# KID (Binkowski et al. 2018) compares the two sets through a kernel, here the cubic polynomial
# $k(x, y) = \big(\tfrac{x \cdot y}{D} + 1\big)^3$ on features of size $D$. The squared
# **maximum mean discrepancy** between the distributions $P$ of $a$ and $Q$ of $b$ is
# $\mathbb E\,k(a, a') + \mathbb E\,k(b, b') - 2\,\mathbb E\,k(a, b)$, with $a, a'$ two
# *independent* draws from $P$. Its unbiased estimate from sets of $n$ and $m$ points averages
# each within-set term over the pairs of **distinct** points only:
#
# $$\widehat{\mathrm{MMD}^2} = \frac{1}{n(n-1)} \sum_{i \ne j} k(a_i, a_j) + \frac{1}{m(m-1)} \sum_{i \ne j} k(b_i, b_j)
# - \frac{2}{nm} \sum_{i, j} k(a_i, b_j).$$
#
# Compute the three kernel matrices with matrix products (in float64), and leave out the
# diagonals $k(a_i, a_i)$ of the first two. (Chapter 05's KID averages this estimate over random
# subsets of 100; here it is one estimate on the whole sets.)

# %%
def kid(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel between features (N, D) and (M, D)."""
    ### BEGIN SOLUTION
    a, b = feats_a.double(), feats_b.double()
    n, m, d = len(a), len(b), a.shape[1]
    k_aa, k_bb, k_ab = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))   # (n, n), (m, m), (n, m)
    within_a = (k_aa.sum() - k_aa.diagonal().sum()) / (n * (n - 1))
    within_b = (k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return float(within_a + within_b - 2 * k_ab.mean())
    ### END SOLUTION


# %%
ex05.check_kid(kid);

# %% [markdown]
# ## 4. Which of the two is biased?
#
# Draw two sets of $n$ points from the **same** 64-dimensional Gaussian: the true distance
# between their distributions is 0, for FD and for KID alike.
#
# ### Predict, then run
#
# The next cell computes both for $n = 100, 400, 1600$. Before you run it, write down what you
# expect each column to show as $n$ grows, and why.

# %% [markdown] tags=["prediction"]
# **Answer.** FD is **clearly positive** at every $n$ and shrinks roughly like $1/n$ (about four
# times smaller for four times more points), but never reaches 0. KID is **close to 0** already at
# $n = 100$, sometimes slightly **negative**, and only its scatter shrinks with $n$.
#
# **Why.** FD fits a mean and a covariance to each set; both are noisy, and FD is a squared
# distance between the fitted Gaussians, which is positive whatever the noise: the noise never
# averages out, it adds a bias of order $D^2 / n$ (64 dimensions make it large). KID is an
# average of kernel values over pairs of independent points, each an unbiased estimate of its
# expectation, so its expected value is the true MMD$^2$, here 0; a single estimate scatters
# around it on both sides. This is why FD must be reported with the number of samples, and why
# KID can compare models evaluated on a few hundred images.

# %% tags=["experiment"]
g = torch.Generator().manual_seed(0)
for n in (100, 400, 1600):
    a, b = torch.randn(n, 64, generator=g), torch.randn(n, 64, generator=g)
    print(f"n = {n:5d}: FD = {frechet_distance(a, b):7.3f}   KID = {kid(a, b):+.4f}")

# %% [markdown]
# This is why chapter 05 puts a row of **real** images, at the same $n$, in its table, and why
# published FIDs (50,000 samples) cannot be compared with an FID computed from a few hundred.
#
# ## 5. Your two distances on real images
#
# Chapter 05's judge, a small CIFAR-10 classifier shipped with the course, gives 256 features
# per image. Compare two disjoint halves of the test images (real against real) and the test
# images against samples of the course's shipped ten-class CVAE, with your `frechet_distance`
# and your `kid`.

# %% tags=["experiment"]
from cvae_lib.data import load_cifar10
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.cvae import CVAE, CVAEConfig
from cvae_lib.weights import load_weights, shipped

N = 50 if P.name == "smoke" else 500                      # images per set
test = load_cifar10("test").subset(n_per_class=2 * N // 10, seed=0)
judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig)
cvae = load_weights(shipped("cvae_ten_class"), CVAE, CVAEConfig)
with torch.no_grad():
    real = judge.features(test.images())                   # (2N, D)
    fake = judge.features(cvae.sample(torch.arange(N) % 10, generator=torch.Generator().manual_seed(0)))
half_a, half_b = real[0::2], real[1::2]                    # two disjoint halves, every class in each
for name, other in (("real vs real", half_b), ("real vs CVAE", fake)):
    print(f"{name}:  FD = {frechet_distance(half_a, other):7.2f}   KID = {kid(half_a, other):+.4f}   (n = {N})")

# %% [markdown]
# Real against real is not 0 for FD, for the reason of part 4: that row is the floor any model
# is measured against at this $n$. The CVAE's samples are far above it in both columns; KID
# says the same as FD, on a scale where "no difference" is 0.
#
# ## Going further
#
# - Show that for commuting covariances (e.g. both diagonal) the trace term becomes
#   $\lVert \Sigma_1^{1/2} - \Sigma_2^{1/2} \rVert_F^2$.
# - With $D = 256$ features and $n = 100$ samples the fitted covariance has rank at most 99.
#   What does that do to the estimate? Try it in part 4 with a larger dimension.
# - Why does an unbiased estimate of a squared distance come out negative sometimes, and what
#   should you report when it does?

# %% [markdown] tags=["going-further"]
# **Answers.**
#
# - If $\Sigma_1$ and $\Sigma_2$ commute they share eigenvectors, so their square roots commute
#   too and $(\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2} = (\Sigma_1 \Sigma_2)^{1/2} = \Sigma_1^{1/2} \Sigma_2^{1/2}$.
#   Then $\operatorname{tr}(\Sigma_1 + \Sigma_2 - 2\,\Sigma_1^{1/2}\Sigma_2^{1/2}) = \operatorname{tr}\big((\Sigma_1^{1/2} - \Sigma_2^{1/2})^2\big)
#   = \lVert \Sigma_1^{1/2} - \Sigma_2^{1/2} \rVert_F^2$, the squared Frobenius distance of the
#   square roots (for diagonal matrices: the sum of $(\sqrt{v_1} - \sqrt{v_2})^2$, as the check uses).
# - A covariance of rank 99 in 256 dimensions is singular: 157 directions have a fitted variance
#   of 0. The estimate of the trace term is then dominated by the sampling noise of the fitted
#   covariances: FD is hugely inflated (the bias grows like $D^2/n$) and unstable from one draw
#   to the next, and comparing two models at such an $n$ says little. Use $n$ well above $D$
#   (FID's 50,000 for Inception's 2,048 features), or KID.
# - Because an unbiased estimate scatters symmetrically around its expectation: when the true
#   MMD$^2$ is 0 (or tiny), about half of the estimates are below it. Report the value as it is,
#   with its spread (chapter 05 gives the standard deviation over subsets); clipping it at 0 would
#   reintroduce a bias. A negative KID means "indistinguishable at this $n$".
