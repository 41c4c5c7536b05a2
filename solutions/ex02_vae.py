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
# # Exercise 02: a VAE, from its equations to its samples
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex02_vae.ipynb)
#
# Chapter 02 trains a VAE with the library. Here you build its objective yourself, piece by
# piece: the reparameterisation trick, the KL term, the study's Bernoulli likelihood, the KL
# warm-up and the whole negative ELBO. Then you write one optimiser step and a short training
# loop, train a VAE on CIFAR-10 with it, and look at its two ELBO terms and at its samples.
#
# Write each function where it says `YOUR CODE HERE`, then run the check cell below it: the
# check tells you **which property** of your function does not hold yet, not just "wrong".
#
# **Run time:** seconds for the checks; the two training runs of part 6 take about two minutes
# on a laptop CPU (seconds in the `smoke` profile).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import torch
import torch.nn.functional as F

from cvae_lib.checks import ex02
from cvae_lib.models.vae import VAE, VAEConfig
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 6's runs

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
# ## 3. The study's likelihood
#
# The study's decoder outputs one number per pixel, a **logit** $l$, and reads it as the
# probability $p = \sigma(l) = 1 / (1 + e^{-l})$ of a Bernoulli variable. For a pixel value
# $x \in [0, 1]$ its negative log-likelihood is the binary cross-entropy
#
# $$-\log p(x \mid z) = -\big(x \log \sigma(l) + (1 - x) \log (1 - \sigma(l))\big),$$
#
# summed over the $C \cdot H \cdot W$ pixels of an image: nats **per image**. Computing
# $\log \sigma(l)$ literally fails for confident logits ($\sigma(-100)$ rounds to 0, and
# $\log 0 = -\infty$): use `F.binary_cross_entropy_with_logits(..., reduction="none")` or
# `F.logsigmoid`, which never form $\sigma(l)$.

# %%
def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image in nats; logits, x: (B, C, H, W), x in [0, 1] -> (B,)."""
    ### BEGIN SOLUTION
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")  # (B, C, H, W)
    return bce.flatten(1).sum(dim=1)                                        # (B,)
    ### END SOLUTION


# %%
ex02.check_bernoulli_nll(bernoulli_nll);

# %% [markdown]
# ## 4. The KL warm-up
#
# Early in training the KL term can win before the decoder has learned to use $z$: the encoder
# then sends $q(z \mid x)$ to the prior and the decoder learns to ignore $z$ (posterior
# collapse). A **warm-up** (Bowman et al., 2016) weighs the KL by $\beta_s$ that grows linearly
# from 0 at step $s = 0$ to $\beta$ at step $s = S$ (the warm-up's length) and stays there:
#
# $$\beta_s = \beta \cdot \min(1, s / S), \qquad \beta_s = \beta \text{ if } S = 0 .$$

# %%
def kl_weight(step: int, warmup_steps: int, beta: float = 1.0) -> float:
    """The KL weight at optimiser step `step` (counted from 0)."""
    ### BEGIN SOLUTION
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)
    ### END SOLUTION


# %%
ex02.check_kl_weight(kl_weight);

# %% [markdown]
# ## 5. The objective
#
# Put the pieces together. Given a batch of images `x`, the decoder's `logits` for them and the
# encoder's `mu`, `logvar`, return
#
# - `rec`: the reconstruction term $-\log p(x \mid z)$, nats per image, averaged over the batch;
# - `kl`: $\mathrm{KL}(q(z \mid x) \,\|\, p(z))$ summed over the latent dimensions, nats per image,
#   averaged over the batch;
# - `loss` $=$ `rec` $+\ \beta\,$`kl`, the negative ELBO when $\beta = 1$.
#
# Use your `bernoulli_nll` and `kl_normal`.

# %%
def vae_objective(x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                  beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, logits (B, C, H, W); mu, logvar (B, Z) -> (loss, rec, kl), three scalar tensors."""
    ### BEGIN SOLUTION
    rec = bernoulli_nll(logits, x)               # (B,)
    kl = kl_normal(mu, logvar).sum(dim=1)         # (B, Z) -> (B,)
    return (rec + beta * kl).mean(), rec.mean(), kl.mean()
    ### END SOLUTION


# %%
ex02.check_vae_objective(vae_objective);

# %% [markdown]
# ## 6. Training
#
# One **optimiser step** on a batch `x`: encode it (`model.encode(x)` gives `mu`, `logvar`),
# draw $\varepsilon \sim \mathcal N(0, I)$ and reparameterise, decode $z$ into logits
# (`model.decode(z)`), compute your objective with the warm-up's weight for this step, then
# clear the old gradients, backpropagate and step:
# `optimizer.zero_grad(); loss.backward(); optimizer.step()`. Return the terms as numbers.

# %%
def train_step(model, optimizer, x: torch.Tensor, step: int, warmup_steps: int, beta: float = 1.0) -> dict:
    """One step on the batch x (B, 3, 32, 32) in [0, 1] -> {"loss", "rec", "kl", "beta"} as floats."""
    ### BEGIN SOLUTION
    mu, logvar = model.encode(x)                                   # (B, Z) each
    z = reparameterize(mu, logvar, torch.randn_like(mu))
    weight = kl_weight(step, warmup_steps, beta)
    loss, rec, kl = vae_objective(x, model.decode(z), mu, logvar, weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "rec": rec.item(), "kl": kl.item(), "beta": weight}
    ### END SOLUTION


# %% [markdown]
# The training run: `steps` calls of `train_step` on batches drawn at random from `images`,
# recording the terms of every step; then, with the trained model in `eval()` mode, 16 samples:
# $z \sim \mathcal N(0, I)$ decoded to logits, and the sigmoid of those (the decoder's mean image).

# %%
def train_vae(images: torch.Tensor, steps: int, warmup_steps: int, beta: float = 1.0, batch_size: int = 64,
              lr: float = 2e-3, latent_dim: int = 32, width: int = 16, seed: int = 0) -> dict:
    """images (N, 3, 32, 32) in [0, 1] -> {"rec", "kl", "beta": (steps,), "samples": (16, 3, 32, 32),
    "model": the trained VAE}."""
    torch.manual_seed(seed)                        # the initial weights and every random draw below
    model = VAE(VAEConfig(latent_dim=latent_dim, width=width, residual=True, likelihood="bernoulli"))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"rec": [], "kl": [], "beta": []}
    ### BEGIN SOLUTION
    for step in range(steps):
        x = images[torch.randint(len(images), (batch_size,))]     # (B, 3, 32, 32)
        terms = train_step(model, optimizer, x, step, warmup_steps, beta)
        for key in history:
            history[key].append(terms[key])
    model.eval()
    with torch.no_grad():
        samples = torch.sigmoid(model.decode(torch.randn(16, latent_dim)))   # (16, 3, 32, 32)
    ### END SOLUTION
    return {**{key: torch.tensor(values) for key, values in history.items()}, "samples": samples, "model": model}


# %%
ex02.check_train_vae(train_vae);

# %% [markdown]
# Now the real thing: a VAE trained on CIFAR-10 images with your loop, its KL weight warmed up
# over the first quarter of the run.

# %% tags=["experiment"]
import matplotlib.pyplot as plt

from cvae_lib.data import load_cifar10
from cvae_lib.plotting import show_images

STEPS = 10 if P.name == "smoke" else 200      # the smoke profile only shows that the cells run
images = load_cifar10("train").subset(n_per_class=20 if P.name == "smoke" else 500, seed=0).images()
run = train_vae(images, STEPS, warmup_steps=STEPS // 4)


def plot_terms(*runs_and_labels):
    """The two ELBO terms per step, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    for r, label in runs_and_labels:
        axes[0].plot(r["rec"], label=label)
        axes[1].plot(r["kl"], label=label)
    axes[0].set_title("reconstruction term, nats per image"), axes[1].set_title("KL term, nats per image")
    for ax in axes:
        ax.set_xlabel("step"), ax.grid(alpha=0.3), ax.legend()
    return fig


plot_terms((run, "beta = 1, warm-up"))
show_images(run["samples"], nrow=8, title="your VAE's samples: z ~ N(0, I), decoded");

# %% [markdown]
# The reconstruction term falls throughout. The KL first *rises*: while its weight is small the
# encoder puts information into $z$ cheaply; once the weight reaches 1, every nat in $z$ must pay
# for itself in reconstruction and the rise slows or turns. The samples are blurry: a short run
# of a small model, and a decoder whose mean image averages over everything $z$ does not pin down.
#
# ### Predict, then run
#
# The next cell trains the same VAE again with $\beta = 0$: the KL term costs nothing. Before
# you run it, write down what you expect, compared with the run above, for (a) the KL term at
# the end, (b) the reconstruction term at the end, (c) the samples. Why?

# %% [markdown] tags=["prediction"]
# **Answer.** (a) The KL ends several times **higher**, and is still growing. (b) The
# reconstruction term ends somewhat **lower** (better reconstructions; in a short run the gap is
# small). (c) The samples are **no better**, although the reconstructions are: nothing says that
# codes drawn from $\mathcal N(0, I)$ decode to images, and in a longer run they become blotches
# unlike any training image.
#
# **Why.** With $\beta = 0$ the objective is the reconstruction term alone: a plain autoencoder
# with a little noise on its code. The encoder is free to spread the codes of different images
# far apart and to shrink $\sigma$, which lets the decoder tell them apart (better
# reconstructions) but moves $q(z \mid x)$ away from $\mathcal N(0, I)$: the KL, which is only
# measured, grows. Samples $z \sim \mathcal N(0, I)$ then land in regions the codes of real
# images need not cover, as with chapter 01's autoencoder. The KL term is what makes the prior a
# place the decoder knows; $\beta$ trades reconstruction against that.

# %% tags=["experiment"]
run_free = train_vae(images, STEPS, warmup_steps=0, beta=0.0)
plot_terms((run, "beta = 1, warm-up"), (run_free, "beta = 0"))
print(f"at the end (mean of the last 10 steps):  beta = 1: rec {run['rec'][-10:].mean():.0f}, "
      f"KL {run['kl'][-10:].mean():.1f}   beta = 0: rec {run_free['rec'][-10:].mean():.0f}, "
      f"KL {run_free['kl'][-10:].mean():.1f} nats per image")
show_images(run_free["samples"], nrow=8, title="samples of the beta = 0 run");

# %% [markdown]
# ## Going further
#
# - The study trained with binary cross-entropy on pixels in $[0, 1]$. Why can its loss not be
#   turned into bits per dimension? (Hint: is BCE with a target of 0.3 the log-probability of
#   anything?)
# - Why does the encoder output $\log \sigma^2$ rather than $\sigma$?
# - Your objective averages over the batch. What would change in training if the KL were summed
#   over the batch while the reconstruction term stayed averaged?

# %% [markdown] tags=["going-further"]
# **Answers.**
#
# - Bits per dimension is the length of a code for the image, $-\log_2 p(x)$ divided by the
#   number of sub-pixels, and needs $p$ to be a probability distribution over the 256 pixel
#   levels. The Bernoulli is a distribution over $\{0, 1\}$ only: for a target of 0.3,
#   $\sigma(l)^{0.3} (1 - \sigma(l))^{0.7}$ is not the probability of anything, and summed over
#   the 256 levels these values do not add up to 1 (for pixels strictly inside $(0, 1)$ the BCE
#   never even reaches 0). Its nats are a loss, not a code length. A likelihood defined on the 256
#   levels (chapter 02's discretised logistic) gives true bits per dimension.
# - $\sigma$ must be positive, and a network's output can be any real number; $\log \sigma^2$
#   can be any real number too, so no constraint is needed, and $\sigma = e^{\frac12\log\sigma^2}$
#   is always positive. It is also the scale on which small variances are easy to represent
#   ($\sigma = 10^{-3}$ is $\log\sigma^2 \approx -14$), and the KL uses $\log\sigma^2$ directly.
# - The KL would be weighted by the batch size $B$ relative to the reconstruction term: training
#   with $B = 64$ would be a $\beta = 64$ VAE. The KL would win, $q(z \mid x)$ would be pushed onto
#   the prior and the decoder would learn to ignore $z$ (posterior collapse): blurry reconstructions
#   that all look alike, and a loss that changes meaning when you change the batch size.
