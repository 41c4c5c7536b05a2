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
# Chapter 01 ended with an autoencoder whose codes could not be sampled. The VAE (Kingma &
# Welling, 2013) makes the encoder output a *distribution* $q(z \mid x) = \mathcal N(\mu,
# \sigma^2)$, decodes a sample of it, and pulls $q$ towards the prior $p(z) = \mathcal N(0, I)$.
# It maximises the **evidence lower bound**
#
# $$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \underbrace{\mathbb E_{q(z|x)}[\log p(x \mid z)]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\big(q(z \mid x)\,\|\,p(z)\big)}_{\text{how far the code is from the prior}} .$$
#
# You will write the reparameterisation trick and the KL yourself, train a VAE, watch the two
# terms of the ELBO, compare likelihoods (the study's binary cross-entropy among them) in
# **bits per dimension**, see posterior collapse and what $\beta$, warm-up and free bits do to
# it, sample from the prior, and explore the latent space with sliders.
#
# | profile | measured run time (2 shared CPU cores) | what it trains |
# |---|---|---|
# | smoke | 12 s (`make course`, idle 2-core CPU) | tiny models, a few steps: proves the notebook runs; loads the shipped VAE |
# | cpu | 4.0 and 3.2 min (239 s and 190 s, two clean fp32 `CVAE_AMP=off make course` runs on an idle 2-core Intel Xeon VM) | one VAE for 240 steps of 64 images and five small side runs; then the same VAE trained for 46 minutes (shipped) |
# | gpu | estimated, not measured: 5.1 min on a T4 (`python -m cvae_lib.compute`) | a 64-channel VAE for 60 epochs, the side runs for 10 |
#
# Exercise: `exercises/ex02_vae.ipynb` (reparameterisation, KL, ELBO in bits/dim).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%

import torch

from cvae_lib.data import load_cifar10
from cvae_lib.profiles import get_profile
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %%
full_train = load_cifar10("train").subset(n_per_class=P.vae.train_per_class, seed=0)
train, val = full_train.split(n_val_per_class=P.val_per_class, seed=0)
test = load_cifar10("test").subset(n_per_class=P.test_per_class, seed=0)
print("train:", len(train), " validation:", len(val), " test:", len(test))

# %% [markdown]
# ## 1. The reparameterisation trick, written out
#
# The encoder gives $\mu$ and $\log \sigma^2$ (the log-variance, which can be any real number).
# Sampling $z \sim \mathcal N(\mu, \sigma^2)$ directly has no gradient with respect to $\mu$
# and $\sigma$. Writing the sample as a deterministic function of them and of noise from a
# fixed distribution moves the randomness out of the way:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), \qquad \sigma = e^{\frac12 \log \sigma^2}.$$

# %%
def reparameterize(mu, logvar, eps):
    """z = mu + sigma * eps; all (B, Z)."""
    sigma = torch.exp(0.5 * logvar)
    return mu + sigma * eps


from cvae_lib.models import likelihoods as L

g = torch.Generator().manual_seed(0)
mu, logvar, eps = (torch.randn(4, 8, generator=g) for _ in range(3))
mu.requires_grad_(True)
z = reparameterize(mu, logvar, eps)
torch.testing.assert_close(z, L.reparameterize(mu, logvar, eps))   # ours == the library's
z.sum().backward()
print("identical to cvae_lib's reparameterize; dz/dmu =", mu.grad[0, :4].tolist())

# %% [markdown]
# The gradient reaches $\mu$ (it is 1: $z$ moves one for one with $\mu$). From here on we use
# the tested library version.
#
# The KL between two Gaussians has a closed form. For one latent dimension,
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big) = \tfrac12\big(\mu^2 + \sigma^2 - 1 - \log \sigma^2\big),$$
#
# summed over the dimensions of $z$. It is zero only for $\mu = 0, \sigma = 1$: a code that
# says nothing about $x$.

# %%
kl_ours = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
torch.testing.assert_close(kl_ours, torch.distributions.kl_divergence(q, p))
torch.testing.assert_close(kl_ours, L.kl_normal(mu, logvar))
print("KL per image (nats):", kl_ours.sum(1).detach().numpy().round(2))

# %% [markdown]
# ## 2. The model and its likelihood
#
# The encoder and decoder are those of chapter 01 (the study's VDVAE bottleneck blocks, here
# with residual connections), with two MLP heads for $\mu$ and $\log\sigma^2$, like the study.
#
# The decoder does not output an image but the parameters of a distribution $p(x \mid z)$ over
# images, and the reconstruction term is its log-likelihood. We use a **discretised logistic**
# per sub-pixel (Salimans et al., 2017): a logistic density with a learned mean and scale,
# integrated over the bin of each of the 256 pixel levels, so the probabilities of the 256
# levels sum to exactly 1. Then $-\log_2 p(x)$ is a code length, and divided by the
# $3 \cdot 32 \cdot 32 = 3072$ sub-pixels it is **bits per dimension** (bits/dim): 8 for a model
# that knows nothing (uniform over 256 levels), about 3 for the best models on CIFAR-10.
#
# The KL weight starts at 0 and grows linearly to 1 over the first quarter of training
# (**KL warm-up**, Bowman et al. 2016): the decoder first learns to use $z$ before the KL
# starts to squeeze it.

# %%
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.train import TrainConfig, load_or_train

tcfg = TrainConfig(epochs=P.vae.epochs, batch_size=P.vae.batch_size, lr=2e-3, hflip=True,
                   max_steps=P.vae.max_steps, grad_clip=100.0)
steps = tcfg.total_steps(len(train))                      # optimizer steps the run will take
cfg = VAEConfig(latent_dim=64, width=P.vae.width, residual=True, likelihood="logistic",
                kl_warmup_steps=steps // 4)
model = VAE(cfg)
print(cfg)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {steps} training steps")

x = train.images(4)
params, mu, logvar = model(x)
print("image", tuple(x.shape), "-> mu, logvar", tuple(mu.shape), "-> decoder output", tuple(params.shape),
      f"({model.likelihood.out_channels} channels: a mean and a log-scale per colour)")

# %% [markdown]
# ## 3. Training, and the two terms of the ELBO
#
# The loss `vae_loss` is the negative ELBO divided by 3072 (nats per dimension, a scale the
# optimiser likes); it also logs the reconstruction term `rec` and the `kl`, both in nats per
# image, and `bpd`, the negative ELBO in bits/dim.

# %%
history = load_or_train(model, vae_loss, train, tcfg, RUNS / "vae_logistic.pt", val=val, device=device)
print(f"trained {len(history)} epochs in {history.seconds:.0f} s")

# %%
import matplotlib.pyplot as plt

from cvae_lib.plotting import reconstructions, save_figure, show_images

fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, key, title in zip(axes, ["rec", "kl", "bpd"], ["reconstruction -log p(x|z), nats",
                                                        "KL(q(z|x) || p(z)), nats", "-ELBO, bits/dim"]):
    for split in ("train", "val"):
        ax.plot(history["epoch"], history[f"{split}_{key}"], marker="o", label=split)
    ax.set_title(title), ax.set_xlabel("epoch"), ax.grid(alpha=0.3)
axes[0].legend()
fig.tight_layout()
save_figure(fig, "02_elbo_terms")

# %% [markdown]
# Read the middle panel first. During the warm-up the KL is cheap, so the encoder packs
# information into $z$ and the KL *rises*; once the full weight applies, every extra nat in $z$
# must pay for itself in reconstruction, and the rise slows (in the short cpu-profile run it has
# not levelled off yet). The reconstruction term falls throughout. The
# sum, in bits/dim, is what a compressor built on this model would pay per sub-pixel.
#
# ## 4. Bits per dimension and reconstructions on the test split

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
# The reconstructions are blurrier than the autoencoder's: the KL charges for every nat that $z$
# stores, so the VAE keeps the layout and the colours and leaves the detail to the likelihood's
# spread. The bits/dim is an upper bound on the model's true $-\log_2 p(x)$ (the ELBO is a bound).
#
# ## 5. Which likelihood? BCE, Gaussian, logistic mixture
#
# The study used **binary cross-entropy** (BCE), a Bernoulli likelihood, on pixels in $[0, 1]$.
# A Bernoulli distribution is over $\{0, 1\}$; for a target like 0.3 the "probability" $0.3
# \log \hat x + 0.7 \log(1 - \hat x)$ does not belong to any distribution over the 256 pixel
# levels, and it is smallest at $\hat x = x$ only up to a constant that depends on $x$ (BCE of a
# perfect reconstruction of a grey image is not 0). So its value in nats **is not a code length,
# and it cannot be reported as bits/dim**. It still trains a decoder whose mean is a sensible
# image, which is why the study's reconstructions look reasonable.
#
# We train the same small model with three likelihoods for the same number of steps:
# - `bernoulli`: the study's BCE;
# - `gaussian`: a discretised Gaussian of fixed $\sigma$ (0.1 on the $[-1, 1]$ scale): up to a
#   constant, the squared error divided by $2\sigma^2$, so "MSE loss" is this likelihood in disguise;
# - `logistic_mixture`: a mixture of 5 discretised logistics per pixel whose colour channels are
#   coupled (PixelCNN++, Salimans et al. 2017): green is predicted knowing red, blue knowing both.

# %%
side_train = load_cifar10("train").subset(n_per_class=P.vae_side.train_per_class, seed=1)
test_side = test.subset(n_per_class=100, seed=0)          # 1,000 test images suffice to rank them
x_side = test_side.images()
side_cfg = TrainConfig(epochs=P.vae_side.epochs, batch_size=P.vae_side.batch_size, lr=2e-3,
                       max_steps=P.vae_side.max_steps, hflip=True, grad_clip=100.0, progress=False)
side = {}
for lik in ["bernoulli", "gaussian", "logistic_mixture"]:
    side[lik] = VAE(VAEConfig(latent_dim=64, width=P.vae_side.width, residual=True, likelihood=lik))
    h = load_or_train(side[lik], vae_loss, side_train, side_cfg, RUNS / f"vae_side_{lik}.pt", device=device)
    s = evaluate(side[lik], vae_loss, test_side)
    rec = infer(side[lik].reconstruct, x_side, device=device)
    bpd = f"{s['bpd']:.2f}" if "bpd" in s else "n/a (not a distribution over pixel levels)"
    print(f"{lik:17s} test bits/dim {bpd:>42s}   PSNR {psnr(x_side, rec).mean():5.2f} dB   ({h.seconds:.0f} s)")
print(f"(on {len(test_side)} test images)")

# %% [markdown]
# Two lessons. First, the proper likelihoods give comparable numbers, and the coupled mixture
# is far better in bits/dim than the fixed Gaussian: the Gaussian's $\sigma$ is fixed at a value
# much wider than the decoder's real uncertainty in flat regions, and it cannot model the strong
# correlation between the three colours of a pixel. Second, **a better likelihood is not a
# sharper mean image**: PSNR only looks at the decoder's mean, and the mixture spends its
# capacity on the *spread* around it. Chapter 05 comes back to this: likelihood, reconstruction
# error and sample quality are three different things.
#
# ## 6. Posterior collapse, $\beta$, warm-up and free bits
#
# If the decoder can model the data well without $z$, the cheapest ELBO sets $q(z \mid x) = p(z)$
# for some or all dimensions: KL 0, and those dimensions carry nothing (**posterior collapse**).
# We call a latent dimension **active** if it stores more than half a nat per image on average
# (its mean KL over test images; Burda et al. 2016 use the variance of the posterior mean
# instead, which needs longer training to separate). Count them for the models so far, then train
# two more: $\beta = 4$ (a KL four times as expensive, Higgins et al. 2017) and the mixture with
# warm-up and **free bits** (each latent dimension gets 0.25 nats of KL for free, Kingma et al. 2016).

# %%
def active_units(m, x: torch.Tensor, threshold: float = 0.5) -> int:
    """How many latent dimensions carry more than `threshold` nats of KL, averaged over images x."""
    stats = infer(lambda xb: torch.cat(m.encode(xb), dim=1), x, device=device)   # (N, 2Z): mu, logvar
    mu, logvar = stats.chunk(2, dim=1)                                          # 2 x (N, Z)
    return int((L.kl_normal(mu, logvar).mean(0) > threshold).sum())


extra = {
    "beta=4": VAEConfig(latent_dim=64, width=P.vae_side.width, residual=True, likelihood="logistic_mixture", beta=4.0),
    "warm-up + free bits": VAEConfig(latent_dim=64, width=P.vae_side.width, residual=True, likelihood="logistic_mixture",
                                     kl_warmup_steps=side_cfg.total_steps(len(side_train)) // 2, free_bits=0.25),
}
for name, c in extra.items():
    side[name] = VAE(c)
    load_or_train(side[name], vae_loss, side_train, side_cfg, RUNS / f"vae_side_{name.replace(' ', '')}.pt", device=device)

x_probe = x_side[:500]
print(f"{'model':22s} active units of 64   KL nats/image (on {len(test_side)} test images)")
for name, m in [("main (logistic)", model)] + list(side.items()):
    print(f"{name:22s} {active_units(m, x_probe):>8d}   {evaluate(m, vae_loss, test_side)['kl']:>12.1f}")

# %% [markdown]
# A higher $\beta$ switches dimensions off: the KL falls (in our cpu-profile run, to under
# half of the $\beta = 1$ mixture's), and so does what $z$ knows about the image. The study's
# BCE also leaves many dimensions nearly unused: its reconstruction term is weak next to the KL.
# Warm-up and free bits push the other way: they keep dimensions in use in the early phase,
# where a strong decoder would otherwise learn to ignore $z$ (with short runs the gain is
# modest). Which dimensions survive varies from seed to seed.
#
# ## 7. Generating: decode samples from the prior
#
# This is what the autoencoder could not do. We draw $z \sim \mathcal N(0, I)$ and show the
# decoder's mean image; with a **temperature** $T < 1$, $z \sim \mathcal N(0, T^2 I)$ stays
# nearer the centre of the prior, where more training codes are.

# %%
g = torch.Generator().manual_seed(0)
samples = torch.cat([model.sample(10, temperature=t, generator=g).cpu() for t in (1.0, 0.7)])
fig = show_images(samples, nrow=10, row_labels=["T = 1.0", "T = 0.7"], title="VAE samples from the prior")
save_figure(fig, "02_samples")

# %% [markdown]
# Smooth, plausible colour layouts (sky above ground, a blob in the middle) but no recognisable
# objects: 64 numbers per image, traded against the KL, cannot hold much more, and the mean
# image of the decoder averages away the detail. This is what the study's samples looked like
# too. Chapter 03 adds the class label, and chapter 04 a different kind of model.
#
# How much of that blur is the short run, and how much the model? The course ships this same
# architecture trained for longer on all 49,000 training images (`tools/train_vae.py`; the file
# says how long). Below, each model decodes ten draws from its prior, made from the same random
# numbers ($T = 0.7$); the two latent spaces are unrelated, so compare the rows, not the columns.

# %%
from cvae_lib.weights import load_weights, read_metadata, shipped

longer = load_weights(shipped("vae_cpu"), VAE, VAEConfig).to(device)   # checksum-verified safetensors
meta = read_metadata(shipped("vae_cpu"))["metrics"]
long_scores = evaluate(longer, vae_loss, test)
print(f"shipped run: {meta['epochs']} epochs, {meta['steps']} steps of {meta['batch_size']} images, "
      f"{meta['train_seconds'] / 60:.0f} min on {meta['threads']} CPU thread(s)")
for name, sc in (("trained here", scores), ("shipped", long_scores)):
    print(f"{name:>12}: test -ELBO {sc['bpd']:.3f} bits/dim, KL {sc['kl']:.0f} nats per image ({len(test)} test images)")
same_z = [m.sample(10, temperature=0.7, generator=torch.Generator().manual_seed(1)).cpu() for m in (model, longer)]
fig = show_images(torch.cat(same_z), nrow=10, row_labels=["trained here", "trained longer"],
                  title="samples from the prior of each model (T = 0.7)")
save_figure(fig, "02_samples_longer")

# %% [markdown]
# In the cpu profile the longer run (46 minutes on one thread) improves the test bound from
# about 7.08 to 6.13 bits/dim, and its code carries twice the information (a KL of about 186
# nats per image against 93). The samples show it: sky-over-ground and water scenes, dark or
# coloured objects against a background, some bird- and plane-like silhouettes, where the short
# run gives grey-brown blobs. Still no recognisable object in most of them. More training helps
# this model less than chapter 03's changes do (a spatial latent, a better likelihood and the
# label reach about 5.5 bits/dim in about a minute of the same CPU): the next chapter's lesson.
#
# ## 8. Exploring the latent space
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
# - The reparameterisation $z = \mu + \sigma \varepsilon$ lets gradients reach the encoder;
#   the KL term has a closed form.
# - The ELBO has two terms that pull against each other; warm-up, $\beta$ and free bits change
#   the balance, and posterior collapse is the KL winning.
# - Only a likelihood that is a distribution over the 256 pixel levels gives bits/dim; the
#   study's BCE is not one. The best likelihood is not the sharpest mean image.
# - Samples from the prior are smooth colour layouts: a VAE with a 64-number code is a
#   generator, but a weak one. Chapter 03 reproduces the study's conditional VAE.
