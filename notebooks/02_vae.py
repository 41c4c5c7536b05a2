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
# # 02 · The variational autoencoder: a code space you can sample from
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/02_vae.ipynb)
#
# Chapter 01 ended with an autoencoder whose codes could not be sampled. The **variational
# autoencoder** (VAE; Kingma & Welling, 2013) makes the encoder output a *distribution*
# $q(z \mid x) = \mathcal N(\mu, \sigma^2)$, decodes a sample of it, and pulls $q$ towards a fixed
# **prior** $p(z) = \mathcal N(0, I)$, so that decoding $z \sim \mathcal N(0, I)$ gives images. It
# is trained by maximising the **evidence lower bound** (ELBO), a bound on how probable the model
# finds the training images:
#
# $$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \underbrace{\mathbb E_{q(z|x)}[\log p(x \mid z)]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big)}_{\text{how far the code is from the prior}} .$$
#
# **You will**
# - see why the ELBO is a lower bound on $\log p(x)$, and what the gap between them is;
# - use the reparameterisation trick and the closed-form KL, and train a VAE, reading its two
#   terms in nats and in bits per dimension;
# - compare likelihoods (the student study's binary cross-entropy among them), and measure what
#   the KL costs against an autoencoder of the same size;
# - see posterior collapse and what $\beta$, KL warm-up and free bits do to it;
# - sample from the prior and explore the latent space with sliders.
#
# **Prerequisites:** chapter 01 (the autoencoder); a Gaussian density, expectations and
# log-likelihoods. The KL divergence is defined below.
#
# **Time to work through:** about 90 minutes. **Run time:** about 4 min on a laptop CPU (the `cpu` profile), seconds in the `smoke` profile; the longer run is shipped pretrained.
#
# Exercise: `exercises/ex02_vae.ipynb` (reparameterisation, the KL, bits/dim, the negative ELBO,
# the full objective with $\beta$ and warm-up, an optimiser step and a short training run).

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
from IPython.display import Markdown

from cvae_lib.data import load_cifar10
from cvae_lib.profiles import get_profile
from cvae_lib.recipes import recipe
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
run = recipe("vae", P)     # this chapter's main run in this profile: model, training, data, checkpoint
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %%
images = load_cifar10("train")                            # CIFAR-10's training split
train, val = run.data.select(images)
test = load_cifar10("test").subset(n_per_class=P.test_per_class, seed=0)
print(f"train: {len(train):,}   validation: {len(val):,}   test: {len(test):,} images")

# %% [markdown]
# ## 1. The ELBO, and why it is a lower bound
#
# The model has two parts: a prior $p(z) = \mathcal N(0, I)$ over codes and a decoder
# $p(x \mid z)$, a distribution over images for each code. The probability the model gives an
# image is an average over all codes,
#
# $$p(x) = \int p(x \mid z)\, p(z)\, dz ,$$
#
# and for a neural-network decoder this integral has no closed form, so we cannot maximise
# $\log p(x)$ directly. Neither can we compute the **posterior** $p(z \mid x) = p(x \mid z)\,p(z) /
# p(x)$, the codes that could have produced $x$. The encoder's $q(z \mid x)$ is a guess of it.
#
# How far a guess $q$ is from a distribution $p$ is measured by the **Kullback-Leibler
# divergence**, $\mathrm{KL}(q \,\|\, p) = \mathbb E_{z \sim q}[\log q(z) - \log p(z)]$. It is never
# negative, and it is zero only when $q = p$.
#
# Now the identity. Since $p(x) = p(x, z) / p(z \mid x)$ for every $z$, $\log p(x)$ equals its own
# average over $z \sim q(z \mid x)$; multiply and divide by $q$ inside the logarithm:
#
# $$\log p(x) = \mathbb E_{q}\Big[\log \frac{p(x, z)}{q(z \mid x)}\Big] + \mathbb E_{q}\Big[\log \frac{q(z \mid x)}{p(z \mid x)}\Big]
# = \mathrm{ELBO}(x) + \mathrm{KL}\big(q(z \mid x)\,\|\,p(z \mid x)\big).$$
#
# The first term, with $p(x, z) = p(x \mid z)\,p(z)$, is the ELBO of the header. The second is a KL,
# so it is at least zero, and therefore $\mathrm{ELBO}(x) \le \log p(x)$. (The same inequality follows
# from Jensen's inequality, $\log \mathbb E_q[p(x, z)/q] \ge \mathbb E_q[\log p(x, z)/q]$ because the
# logarithm is concave; the identity also says what the inequality leaves out.)
#
# **The gap** between the bound and $\log p(x)$ is exactly how far the encoder's $q(z \mid x)$ is
# from the true posterior. Two consequences:
# - training the encoder can only close the gap, since $\log p(x)$ does not depend on it; training
#   the decoder raises $\log p(x)$ itself (or makes the true posterior easier for a Gaussian $q$ to
#   match);
# - any number we compute from the ELBO, such as the bits per dimension below, is a *bound*: the
#   model's true value is better by the gap, which we cannot compute exactly.
#
# **Units.** Log-probabilities with the natural logarithm are measured in **nats**: an outcome
# of probability $p$ carries $-\ln p$ nats of information. One nat is $1/\ln 2 \approx 1.44$ bits,
# so dividing by $\ln 2$ turns nats into bits.
#
# A one-dimensional model shows the identity with numbers. Let $p(z) = \mathcal N(0, 1)$ and a
# "decoder" that adds noise, $p(x \mid z) = \mathcal N(z, s^2)$. Then everything has a closed form:
# $p(x) = \mathcal N(0, 1 + s^2)$, and the posterior is $\mathcal N\big(x/(1+s^2),\, s^2/(1+s^2)\big)$
# (Bayes' rule for two Gaussians: multiply the prior by the likelihood and complete the square).
# We evaluate the ELBO and the gap for four guesses $q$.

# %%
from torch.distributions import Normal, kl_divergence

s, x = 0.5, torch.tensor(1.2)                                  # decoder noise, one observed x
prior = Normal(0.0, 1.0)
log_px = Normal(0.0, math.sqrt(1 + s**2)).log_prob(x)          # exact log p(x)
post = Normal(x / (1 + s**2), s / math.sqrt(1 + s**2))         # exact posterior p(z | x)
guesses = {"q = p(z|x)": post, "mean off by 0.5": Normal(post.mean + 0.5, post.stddev),
           "4x too narrow": Normal(post.mean, post.stddev / 4), "q = p(z)": prior}
for name, q in guesses.items():
    # E_q[log p(x|z)], exact: for q = N(m, v), E_q[(x - z)^2] = (x - m)^2 + v
    rec = Normal(q.mean, s).log_prob(x) - q.variance / (2 * s**2)
    elbo, gap = rec - kl_divergence(q, prior), kl_divergence(q, post)
    print(f"{name:16s} ELBO {elbo:7.3f} + gap {gap:6.3f} = {elbo + gap:7.3f}   log p(x) = {log_px:.3f}")

# %% [markdown]
# For every guess, ELBO plus gap is $\log p(x)$, to the last digit. The bound is tight only when
# $q$ is the true posterior; a shifted or too-narrow guess loses exactly its KL from the
# posterior. The last guess, $q = p(z)$, ignores $x$ altogether: its KL from the prior is zero,
# but so is what the code says about the image. Section 9 meets this again as *posterior
# collapse*.
#
# ## 2. The reparameterisation trick and the KL
#
# The encoder gives $\mu$ and $\log \sigma^2$ (the log-variance, which can be any real number).
# Drawing $z \sim \mathcal N(\mu, \sigma^2)$ directly has no gradient with respect to $\mu$ and
# $\sigma$. Writing the draw as a deterministic function of them and of noise from a fixed
# distribution moves the randomness out of the way:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), \qquad \sigma = e^{\frac12 \log \sigma^2}.$$
#
# Exercise 02 writes this function; here we call the library's `reparameterize` and look at the
# gradients that reach $\mu$ and $\log\sigma^2$.

# %%
from cvae_lib.models import likelihoods as L

g = torch.Generator().manual_seed(0)
mu, logvar, eps = (torch.randn(4, 8, generator=g).requires_grad_() for _ in range(3))  # (B, Z) each
L.reparameterize(mu, logvar, eps).sum().backward()                                      # z: (4, 8)
sigma_eps_half = (0.5 * logvar).exp() * eps / 2
print("dz/dmu       :", mu.grad[0, :4].numpy().round(3))
print("dz/dlogvar   :", logvar.grad[0, :4].numpy().round(3))
print("sigma * eps/2:", sigma_eps_half[0, :4].detach().numpy().round(3))

# %% [markdown]
# The gradient reaches both: $z$ moves one for one with $\mu$, and with $\log \sigma^2$ by
# $\sigma\varepsilon/2$, the chain rule through $\sigma = e^{\frac12\log\sigma^2}$.
#
# The KL between the Gaussian $q$ and the prior has a closed form. For one latent dimension,
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big) = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log \sigma^2\big),$$
#
# summed over the dimensions of $z$. It is zero only for $\mu = 0, \sigma = 1$: a code that
# says nothing about $x$. Exercise 02 writes it too; the library's `kl_normal` is checked here
# against PyTorch's general KL.

# %%
kl = L.kl_normal(mu, logvar)                                       # (B, Z) nats per latent dimension
q = Normal(mu, (0.5 * logvar).exp())
torch.testing.assert_close(kl, kl_divergence(q, Normal(0.0, 1.0)))  # the closed form is exact
print("KL per image (nats):", kl.sum(1).detach().numpy().round(2))

# %% [markdown]
# ## 3. The model and its likelihood
#
# The encoder and decoder are those of chapter 01 (VDVAE bottleneck blocks with residual
# connections), with two small MLP heads for $\mu$ and $\log\sigma^2$, as in the student study.
#
# The decoder does not output an image but the parameters of a distribution $p(x \mid z)$ over
# images, and the reconstruction term is its log-likelihood. We use a **discretised logistic**
# per sub-pixel (Salimans et al., 2017): a logistic density with a learned mean and scale,
# integrated over the bin of each of the 256 pixel levels, so the probabilities of the 256
# levels sum to exactly 1. Then $-\log_2 p(x)$ is a code length: the bits a compressor built on
# the model would need for the image. Divided by the $3 \cdot 32 \cdot 32 = 3072$ sub-pixels (one
# colour value of one pixel each) it is **bits per dimension** (bits/dim; the "dimensions" here
# are the image's sub-pixels, not the latent dimensions of $z$),
#
# $$\text{bits/dim} = \frac{-\ln p(x)}{3072 \cdot \ln 2},$$
#
# from nats per image. A model that knows nothing (every level equally likely) needs 8 bits/dim;
# the best published models on CIFAR-10 need about 3.
#
# The KL weight starts at 0 and grows linearly to 1 over the first quarter of training
# (**KL warm-up**, Bowman et al. 2016): the decoder first learns to use $z$ before the KL
# starts to squeeze it.

# %%
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.train import load_or_train

tcfg = run.train                                          # a TrainConfig
steps = tcfg.total_steps(len(train))                      # optimizer steps the run will take
cfg = run.model                                           # a VAEConfig; its KL warm-up: a quarter of the steps
model = VAE(cfg)
print(cfg)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {steps} training steps")

# %%
x = train.images(4)                                       # (4, 3, 32, 32) in [0, 1]
params, mu, logvar = model(x)
print("image", tuple(x.shape), "-> mu, logvar", tuple(mu.shape), "-> decoder output", tuple(params.shape),
      f"({model.likelihood.out_channels} channels: a mean and a log-scale per colour)")

# %% [markdown]
# ## 4. Training, and the two terms of the ELBO
#
# The loss `vae_loss` is the negative ELBO divided by 3072 (nats per sub-pixel, a scale the
# optimiser likes). It also logs `rec`, the reconstruction term as a loss,
# $-\mathbb E_q[\log p(x \mid z)]$ (lower is better), and the `kl`, both in nats per image, and `bpd`,
# the negative ELBO in bits per sub-pixel (bits/dim). Exercise 02 assembles the same objective
# from its pieces.
#
# A word on **epochs**. An epoch is normally one pass over the training set, but in the `cpu`
# profile a run may cap its epochs at a fixed number of steps, so that it fits in minutes; then
# an "epoch" is a slice of the run, not a full pass. The next cell prints this run's cap (and
# chapters 03 and 06 use such caps too).

# %%
history = load_or_train(model, vae_loss, train, tcfg, RUNS / run.checkpoint, val=val, device=device)
full_pass = math.ceil(len(train) / tcfg.batch_size)               # steps of one pass over the training set
print(f"trained {len(history)} epochs in {history.seconds:.0f} s; an epoch here is "
      f"{tcfg.steps_per_epoch(len(train))} steps (a full pass would be {full_pass}); "
      f"KL warm-up over the first {cfg.kl_warmup_steps} steps")

# %%
import matplotlib.pyplot as plt

from cvae_lib.plotting import reconstructions, save_figure, show_images

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, key, title in zip(axes, ["rec", "kl", "bpd"], ["rec = -E_q[log p(x|z)], nats per image",
                                                        "KL(q(z|x) || p(z)), nats per image", "-ELBO, bits/dim"]):
    for split in ("train", "val"):
        ax.plot(history["epoch"], history[f"{split}_{key}"], marker="o", label=split)
    ax.set_title(title), ax.set_xlabel("epoch"), ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
save_figure(fig, "02_elbo_terms")

# %% [markdown]
# Read the middle panel first: the KL, the nats per image that $z$ stores. During the warm-up
# the KL is cheap, so the encoder can pack information into $z$; once the full weight applies,
# every extra nat in $z$ must pay for itself in reconstruction. Each point is one epoch, and in
# the `cpu` profile the warm-up is over by the first point (the cell above printed both), so the
# plot cannot show the KL during the warm-up, only where it goes after it. With a handful of
# points per curve, read the direction of each curve, not its shape. The reconstruction loss
# (left) falls as training goes on. The sum of the two, in bits/dim (right), is what a
# compressor built on this model would pay per sub-pixel.
#
# ## 5. Bits per dimension and reconstructions on the test split

# %%
from cvae_lib.metrics import psnr
from cvae_lib.train import evaluate, infer

scores = evaluate(model, vae_loss, test)
x_test = test.images()
x_hat = infer(model.reconstruct, x_test, device=device)
print(f"test -ELBO: {scores['bpd']:.3f} bits/dim (reconstruction {scores['rec']:.0f} + KL "
      f"{scores['kl']:.0f} nats per image), PSNR of the mean reconstruction "
      f"{psnr(x_test, x_hat).mean():.2f} dB, on {len(test)} test images")
fig = reconstructions(x_test, x_hat, n=10, title="test images and VAE reconstructions (decoder mean at z = mu)")
save_figure(fig, "02_reconstructions")

# %% [markdown]
# The bits/dim printed above is an upper bound on the model's true $-\log_2 p(x)/3072$: the true
# value is lower by the gap of section 1. The reconstructions keep the layout and the colours
# and lose the detail.
#
# Are they blurrier than chapter 01's? Side by side, that comparison would be unfair: chapter
# 01's autoencoder has a code of 256 numbers, this VAE 64, and the two trained for different
# numbers of steps at different widths. Section 8 compares an autoencoder and a VAE of the
# same size, trained the same way.
#
# ## 6. Generating: decode samples from the prior
#
# This is what the autoencoder could not do. We draw $z \sim \mathcal N(0, I)$ and show the
# decoder's mean image; with a **temperature** $\tau < 1$, $z \sim \mathcal N(0, \tau^2 I)$ stays
# nearer the centre of the prior, where more training codes are. (We write $\tau$ because
# chapter 04 uses $T$ for something else, the number of diffusion steps.)
#
# **Predict first:** chapter 01's random codes decoded to garbage. What will this VAE's samples
# look like: recognisable objects, or something else? Then run the next cell.

# %%
g = torch.Generator().manual_seed(0)
samples = torch.cat([model.sample(10, temperature=t, generator=g).cpu() for t in (1.0, 0.7)])
fig = show_images(samples, nrow=10, row_labels=[r"$\tau$ = 1.0", r"$\tau$ = 0.7"], title="VAE samples from the prior")
save_figure(fig, "02_samples")

# %% [markdown]
# Smooth, plausible colour layouts (sky above ground, a blob in the middle) but no recognisable
# objects: 64 numbers per image, traded against the KL, cannot hold much more, and the mean
# image of the decoder averages away the detail. The student study's samples looked like this
# too. Chapter 03 adds the class label, and chapter 04 a different kind of model.
#
# The rest of the chapter looks at what shapes these samples: the likelihood (section 7), the
# price of the KL (section 8), the balance between the two terms (section 9) and a longer run
# (section 10).
#
# ## 7. Which likelihood? BCE, Gaussian, logistic mixture
#
# The study used **binary cross-entropy** (BCE) on pixels in $[0, 1]$. For one sub-pixel with
# value $x$ and decoder output $p$ it is $-[x \log p + (1 - x)\log(1 - p)]$. BCE is smallest
# exactly at $p = x$, so it does pull the decoder's output towards the image, which is why the
# study's reconstructions look reasonable. But its minimum is not 0: at $p = x$ it equals the
# **binary entropy** $H(x) = -x \log x - (1 - x)\log(1 - x)$, which is zero only for pure black or
# white. A perfect reconstruction therefore still "costs" a sum of entropies that depends on the
# image, not on the model. The reason is that BCE is the log-likelihood of a Bernoulli
# distribution, a distribution over $\{0, 1\}$: a pixel value such as $0.3$ is not one of its
# outcomes, so BCE is not $-\log$ of the probability the model gives the image. Its nats are **not
# a code length, and cannot be reported as bits/dim**.

# %%
import torch.nn.functional as F

p = torch.linspace(0.01, 0.99, 99)                                          # candidate outputs
bce = F.binary_cross_entropy(p, torch.full_like(p, 0.3), reduction="none")  # target 0.3
H = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))                            # binary entropy H(0.3)
print(f"target 0.3: BCE is smallest at p = {p[bce.argmin()]:.2f}, where it is {bce.min():.4f} nats; H(0.3) = {H:.4f}")
x0 = x_test[:1]                                                             # one test image
print(f"BCE of a perfect reconstruction of a test image: {F.binary_cross_entropy(x0, x0, reduction='sum'):.0f} nats, not 0")

# %% [markdown]
# We train the same small model with three likelihoods for the same number of steps:
# - `bernoulli`: the study's BCE;
# - `gaussian`: a discretised Gaussian of fixed width $\sigma_x$ around the decoder's mean. (We write
#   $\sigma_x$ for this width over pixel values, to keep it apart from the encoder's $\sigma$ of
#   section 2.) Like the other likelihoods it works on pixel values mapped from $[0, 1]$ to
#   $[-1, 1]$ by $2x - 1$, so $\sigma_x = 0.1$ there is a twentieth of the pixel range, about 13 of
#   the 256 grey levels. Up to a constant its negative log-likelihood is the squared error divided
#   by $2\sigma_x^2$, so "MSE loss" is this likelihood in disguise;
# - `logistic_mixture`: a mixture of 5 discretised logistics per pixel whose colour channels are
#   coupled (PixelCNN++, Salimans et al. 2017): green is predicted knowing red, blue knowing both.

# %%
side_train, _ = recipe("vae_side_gaussian", P).data.select(images)   # every side run's images
test_side = test.subset(n_per_class=100, seed=0)          # 1,000 test images suffice to rank them
x_side = test_side.images()
side, seconds = {}, {}
for lik in ["bernoulli", "gaussian", "logistic_mixture"]:
    side_run = recipe(f"vae_side_{lik}", P)               # the same small model and training, another likelihood
    side[lik] = VAE(side_run.model)
    h = load_or_train(side[lik], vae_loss, side_train, side_run.train, RUNS / side_run.checkpoint, device=device)
    seconds[lik] = h.seconds
print(side_run.train)

# %%
from cvae_lib.plotting import markdown_table

rows = []
for lik in seconds:
    sc, rec = evaluate(side[lik], vae_loss, test_side), infer(side[lik].reconstruct, x_side, device=device)
    rows.append({"likelihood": lik, "test bits/dim": f"{sc['bpd']:.2f}" if "bpd" in sc else "not a code length",
                 "PSNR (dB)": f"{psnr(x_side, rec).mean():.2f}", "training (s)": f"{seconds[lik]:.0f}"})
Markdown(markdown_table(rows) + f"\non {len(test_side)} test images")

# %% [markdown]
# Two lessons. First, the two proper likelihoods give numbers that can be compared with each
# other, and the coupled mixture needs fewer bits/dim than the fixed Gaussian: the Gaussian's
# $\sigma_x$ is fixed at a value much wider than the decoder's real uncertainty in flat regions,
# and it cannot model the strong correlation between the three colours of a pixel. Second, **a
# better likelihood is not a sharper mean image**: PSNR only looks at the decoder's mean, and
# the mixture spends its capacity on the *spread* around it. Chapter 05 comes back to this: likelihood, reconstruction
# error and sample quality are three different things.
#
# ## 8. What the KL costs: an autoencoder of the same size
#
# Now the fair comparison of section 5: chapter 01's autoencoder with a code of 64 numbers, at
# the width of the side runs, trained on the same images for the same steps as the `gaussian`
# VAE above. That VAE's reconstruction term is the autoencoder's squared error divided by
# $2\sigma_x^2$ (plus a constant), so both minimise the same error; the only differences are the
# KL term and the noise that sampling $z$ adds in training.
#
# **Predict first:** which of the two reconstructs more sharply, and why? Then run the next two
# cells (the first trains the autoencoder, a few seconds).

# %%
from cvae_lib.models.ae import Autoencoder, ae_loss

ae_run = recipe("ae_side_64", P)
ae64 = Autoencoder(ae_run.model)                          # chapter 01's, Z = 64
h = load_or_train(ae64, ae_loss, side_train, ae_run.train, RUNS / ae_run.checkpoint, device=device)
print(f"trained in {h.seconds:.0f} s")

# %%
recs = {"autoencoder": infer(ae64, x_side, device=device),
        "VAE (gaussian)": infer(side["gaussian"].reconstruct, x_side, device=device)}
db = {name: psnr(x_side, r).mean().item() for name, r in recs.items()}
show = torch.arange(10) * (len(x_side) // 10)                       # one test image per class
fig = show_images(torch.cat([x_side[show]] + [r[show] for r in recs.values()]), nrow=10,
                  row_labels=["test image", *recs], title="64-number codes, same training")
save_figure(fig, "02_ae_vs_vae")
a, v = db["autoencoder"], db["VAE (gaussian)"]
Markdown(f"Mean test PSNR: autoencoder **{a:.1f} dB**, VAE **{v:.1f} dB**: at equal code size and "
         f"training, the {'autoencoder' if a >= v else 'VAE'} is sharper by {abs(a - v):.1f} dB.")

# %% [markdown]
# In a `cpu`-profile run the autoencoder comes out ahead, by about a decibel or more. That is the
# price of the KL: every nat that $z$ stores about an image costs a nat of KL, so the VAE stores
# less, and what the code does not say the decoder averages over, which is blur. The
# autoencoder stores whatever its 64 numbers can hold, for free, but its codes cannot be
# sampled. The VAE pays in sharpness for the code space that section 6 sampled from.
#
# ## 9. Posterior collapse, $\beta$, warm-up and free bits
#
# If the decoder can model the data well without $z$, the cheapest ELBO sets $q(z \mid x) = p(z)$
# for some or all latent dimensions: KL 0, and those dimensions carry nothing (**posterior collapse**,
# the last guess of section 1). We call a latent dimension **active** if it stores more than half
# a nat per image on average (its mean KL over test images; Burda et al. 2016 use the variance of
# the posterior mean instead, which needs longer training to separate). We count them for the
# models so far, then train two more: $\beta = 4$ (a KL four times as expensive, Higgins et al.
# 2017) and the mixture with warm-up and **free bits** (each latent dimension gets 0.25 nats of
# KL for free, Kingma et al. 2016).

# %%
def active_units(m, x: torch.Tensor, threshold: float = 0.5) -> int:
    """How many latent dimensions carry more than `threshold` nats of KL, averaged over images x."""
    stats = infer(lambda xb: torch.cat(m.encode(xb), dim=1), x, device=device)   # (N, 2Z): mu, logvar
    mu, logvar = stats.chunk(2, dim=1)                                          # 2 x (N, Z)
    return int((L.kl_normal(mu, logvar).mean(0) > threshold).sum())


# %% [markdown]
# Which run has which KL settings? The main VAE, the three likelihood runs and the two new ones:

# %%
kl_runs = {"main (logistic)": run, **{lik: recipe(f"vae_side_{lik}", P) for lik in side},
           "beta=4": recipe("vae_side_beta4", P), "warm-up + free bits": recipe("vae_side_free_bits", P)}
Markdown(markdown_table([{"run": name, "likelihood": r.model.likelihood, "beta": r.model.beta,
                          "KL warm-up (steps)": r.model.kl_warmup_steps or "none",
                          "free bits (nats per latent dimension)": r.model.free_bits or "none",
                          "training steps": r.steps} for name, r in kl_runs.items()]))

# %% [markdown]
# **Predict first:** with $\beta = 4$, will more or fewer of the 64 dimensions be active than in
# the $\beta = 1$ mixture, and will the KL per image go up or down? And with warm-up and free
# bits? Write your guesses down, then run the next two cells (the first trains the two models).

# %%
extra = {"beta=4": recipe("vae_side_beta4", P), "warm-up + free bits": recipe("vae_side_free_bits", P)}
for name, r in extra.items():                             # the logistic mixture of the side runs, changed
    print(f"{name}: beta {r.model.beta}, free bits {r.model.free_bits} nats, KL warm-up {r.model.kl_warmup_steps} steps")
    side[name] = VAE(r.model)
    load_or_train(side[name], vae_loss, side_train, r.train, RUNS / r.checkpoint, device=device)

# %%
x_probe = x_side[:500]                                            # (500, 3, 32, 32)
rows = [{"model": name, "active units of 64": active_units(m, x_probe),
         "KL (nats per image)": f"{evaluate(m, vae_loss, test_side)['kl']:.1f}"}
        for name, m in [("main (logistic)", model)] + list(side.items())]
Markdown(markdown_table(rows) + f"\non {len(test_side)} test images")

# %% [markdown]
# A higher $\beta$ switches dimensions off: the KL falls well below the $\beta = 1$ mixture's
# (compare the two rows), and so does what $z$ knows about the image. The study's BCE also
# leaves many dimensions nearly unused: its reconstruction term is weak next to the KL. Warm-up
# and free bits push the other way: they keep dimensions in use in the early phase, where a
# strong decoder would otherwise learn to ignore $z$ (with short runs the gain is modest). Which
# dimensions survive varies from seed to seed.
#
# ## 10. The same VAE, trained longer
#
# How much of the blur of section 6's samples is the short run, and how much the model? The
# course ships this same architecture trained for much longer on all the training images (the
# cell prints how long). Each model decodes ten draws from its prior, made from the same random
# numbers ($\tau = 0.7$); the two latent spaces are unrelated, so compare the rows, not the columns.

# %%
from cvae_lib.weights import load_weights, read_metadata, shipped

longer = load_weights(shipped("vae_cpu"), VAE, VAEConfig).to(device)   # checksum-verified
meta = read_metadata(shipped("vae_cpu"))["metrics"]
long_scores = evaluate(longer, vae_loss, test)
print(f"shipped run: {meta['epochs']} epochs, {meta['steps']} steps of {meta['batch_size']} images, "
      f"{meta['train_seconds'] / 60:.0f} min on {meta['threads']} CPU thread(s)")
for name, sc in (("trained here", scores), ("shipped", long_scores)):
    print(f"{name:>12}: test -ELBO {sc['bpd']:.3f} bits/dim, KL {sc['kl']:.0f} nats per image ({len(test)} test images)")

# %%
same_z = [m.sample(10, temperature=0.7, generator=torch.Generator().manual_seed(1)).cpu() for m in (model, longer)]
fig = show_images(torch.cat(same_z), nrow=10, row_labels=["trained here", "trained longer"],
                  title=r"samples from the prior of each model ($\tau$ = 0.7)")
save_figure(fig, "02_samples_longer")

# %% [markdown]
# The longer run lowers the test bound in bits/dim and stores more in its code (the KL printed
# above). The samples show it: sky-over-ground and water scenes, dark or coloured objects
# against a background, some bird- and plane-like silhouettes, where a short run gives mostly
# blobs. Still, most of them show no recognisable object. More training helps this model less
# than changing it does: chapter 03 shows that a code laid out as a grid over the image, a better
# likelihood and the class label help more, in a fraction of the time.
#
# ## 11. Exploring the latent space
#
# The sliders move $z$ along the main directions of the posterior means of 500 test images
# (their principal components), in units of the spread of the real codes along each direction.
# In JupyterLab you get sliders; in a static render or a headless run, the same content as a
# grid (a *latent traversal*).

# %%
from cvae_lib.widgets import interpolation_explorer, latent_explorer

mu_test = infer(lambda xb: model.encode(xb)[0], x_probe, device=device)     # (500, Z)
latent_explorer(lambda z: model.decode_mean(z.to(device)), mu_test, n_directions=4)

# %% [markdown]
# The first directions change global properties: brightness, the colour of the background,
# where the bright blob sits. Nothing forced them to be "meaningful"; PCA just orders them by
# how much the codes of real images vary along them.
#
# And a walk between the codes $\mu$ of two test images, as in chapter 01:

# %%
interpolation_explorer(lambda xb: model.encode(xb.to(device))[0], lambda z: model.decode_mean(z.to(device)), x_test[:20])

# %% [markdown]
# Unlike chapter 01's cross-fades, the in-between images are images the decoder has been
# trained to produce, because the KL packed all codes into one region around the origin.
#
# ## What this chapter showed
#
# - $\log p(x) = \mathrm{ELBO}(x) + \mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))$: the ELBO is a lower
#   bound, and its gap is how far the encoder is from the true posterior.
# - The reparameterisation $z = \mu + \sigma \varepsilon$ lets gradients reach the encoder; the KL
#   to the prior has a closed form.
# - The ELBO's two terms pull against each other; $\beta$, warm-up and free bits change the
#   balance, and posterior collapse is the KL winning.
# - Only a likelihood that is a distribution over the 256 pixel levels gives bits/dim; the
#   study's BCE is not one (its minimum is the pixels' entropy, not 0). The best likelihood is
#   not the sharpest mean image.
# - At equal code size, the KL costs sharpness against an autoencoder; it buys a code space one
#   can sample from. Samples from the prior are smooth colour layouts: a VAE with a 64-number
#   code is a generator, but a weak one. Chapter 03 reproduces the student study's conditional
#   VAE.
