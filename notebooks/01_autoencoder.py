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
# # 01 · The autoencoder: compressing images, and why that is not yet generating them
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/01_autoencoder.ipynb)
#
# An autoencoder squeezes each image through a small code $z$ and learns to rebuild it:
#
# $$x \xrightarrow{\text{encoder}} z \in \mathbb{R}^{Z} \xrightarrow{\text{decoder}} \hat x,
# \qquad \text{trained to make } \hat x \approx x .$$
#
# It is the first half of every model in this course: the VAE of chapter 02 and the latent
# diffusion model of chapter 06 both start from an encoder and a decoder like these. Here you
# train one, see what it keeps and what it loses, and then try to *generate* with it, which
# fails. Why it fails is the reason for the next chapter.
#
# **You will**
# - build a convolutional autoencoder from the bottleneck blocks of Very Deep VAEs and train it
#   on CIFAR-10;
# - measure its reconstructions with PSNR and see why a squared-error loss gives blur;
# - walk along the straight line between the codes of two images;
# - decode random codes and see why an autoencoder is not a generator.
#
# **Prerequisites:** chapter 00 (the profiles, the data); convolutional networks and a PyTorch
# training loop.
#
# **Time to work through:** about 45 minutes. **Run time:** about 3 min on a laptop CPU (the `cpu` profile), seconds in the `smoke` profile.
#
# Exercise: `exercises/ex01_autoencoder.ipynb` (PSNR, latent interpolation, the bottleneck block).

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
from cvae_lib.recipes import recipe
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
run = recipe("ae", P)      # this chapter's run in this profile: model, training, data, checkpoint
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %% [markdown]
# ## 1. Data
#
# We train on the training split minus a small validation set (to watch for overfitting), and
# keep the **test split** for the final numbers only: it never influences training.

# %%
train, val = run.data.select(load_cifar10("train"))
test = load_cifar10("test").subset(n_per_class=P.test_per_class, seed=0)
print(f"train: {len(train):,}   validation: {len(val):,}   test: {len(test):,} images")

# %% [markdown]
# ## 2. The model
#
# The encoder has three stages. Each is a **bottleneck block** from Very Deep VAEs (Child,
# 2021), the block the student study (chapter 00) used, followed by 2x downsampling. The block
# is four convolutions, each after a GELU: a 1x1 convolution that narrows the channels, two
# 3x3 convolutions that look at neighbouring pixels, and a 1x1 that widens the channels back.
# With `residual=True` the block's input is added to its output, which makes deep stacks easier
# to train; chapter 03 uses the study's version without it. Exercise 01 writes the block's
# forward pass.
#
# Three stages turn a 32x32 image into a 4x4 feature map, which a linear layer turns into the
# code $z$. The decoder mirrors the encoder with 2x upsampling.

# %%
from cvae_lib.models.ae import Autoencoder, ae_loss

cfg = run.model                              # an AEConfig
model = Autoencoder(cfg)
print(cfg)
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

# %%
x = train.images(4)                          # (4, 3, 32, 32) in [0, 1]
z = model.encode(x)                          # (4, 256)
print("image", tuple(x.shape), "-> code", tuple(z.shape), "-> image", tuple(model.decode(z).shape))

# %% [markdown]
# A 32x32x3 image has 3,072 numbers; the code has 256, twelve times fewer. The loss is the mean
# squared error per pixel, $\frac{1}{3072}\lVert x - \hat x \rVert^2$.
#
# ## 3. Training
#
# `load_or_train` loads a finished checkpoint of this exact configuration if there is one and
# trains otherwise (resuming an interrupted run where it stopped). Every epoch is checkpointed,
# so you can interrupt the kernel and run the cell again.

# %%
from cvae_lib.train import load_or_train

tcfg = run.train                             # a TrainConfig: epochs, batch size, learning rate, ...
print(tcfg)
history = load_or_train(model, ae_loss, train, tcfg, RUNS / run.checkpoint, val=val, device=device)
print(f"trained {len(history)} epochs in {history.seconds:.0f} s")

# %%
from cvae_lib.plotting import loss_curves, reconstructions, save_figure, show_images

fig = loss_curves(history, title="autoencoder: MSE per pixel", logy=True)
save_figure(fig, "01_loss")

# %% [markdown]
# Training and validation loss fall together, so the model is not overfitting. In the `cpu`
# profile that says little: two epochs, two points per curve, are too short to overfit. (A
# model overfits in its weights, which could store training images whatever the code size;
# the validation curve is how you would see it in a longer run.)
#
# ## 4. How good are the reconstructions?
#
# We reconstruct the test images and measure the **PSNR** (peak signal-to-noise ratio,
# $10 \log_{10} 1/\mathrm{MSE}$ in dB, for pixels in $[0, 1]$; higher is better). For example,
# 20 dB is an MSE of $0.01$: a typical error of $0.1$, a tenth of the pixel range. Exercise 01
# writes `psnr`; the chapter uses the library's.

# %%
from cvae_lib.metrics import psnr
from cvae_lib.train import infer

x_test = test.images()                                   # (N, 3, 32, 32) in [0, 1]
# infer(f, x) applies f to x in batches, without gradients; here f is the whole autoencoder
x_hat = infer(model, x_test, device=device)              # reconstructions, same shape
scores = psnr(x_test, x_hat)                             # (N,) dB per image
print(f"test PSNR: {scores.mean():.2f} dB (mean over {len(scores)} test images; "
      f"worst {scores.min():.1f}, best {scores.max():.1f})")

# %%
show = torch.arange(10) * (len(x_test) // 10)            # one image of each class (test is sorted by class)
fig = reconstructions(x_test[show], x_hat[show], title=f"test images and reconstructions, mean PSNR {scores.mean():.1f} dB")
save_figure(fig, "01_reconstructions")

# %% [markdown]
# The reconstructions keep the layout and the colours but lose the fine detail: edges are
# soft, textures are smoothed away. That is what a squared error asks for: when the code cannot
# say exactly where an edge is, the prediction with the lowest expected squared error is the
# *average* over the possibilities, a blur, rather than one sharp guess. Chapter 02 meets the
# same effect again.
#
# ## 5. Walking between two codes
#
# Take the codes $z_0, z_1$ of two test images and decode evenly spaced points on the line
# between them, $z_t = (1 - t)\, z_0 + t\, z_1$ for $t$ from 0 to 1. The library's `interpolate`
# returns those points; exercise 01 writes it.
#
# **Predict first:** halfway between a car and a horse, will you see a creature that is half car,
# half horse, or a double exposure of the two photos? Then run the next cell.

# %%
from cvae_lib.models.ae import interpolate

with torch.no_grad():
    z0, z1 = model.encode(x_test[show[[1, 7]]].to(device))  # a car and a horse: two codes, (Z,) each
    path = model.decode(interpolate(z0, z1, 8))             # (8, Z) codes -> (8, 3, 32, 32) images
fig = show_images(path, nrow=8, title="decoding the line between two codes")
save_figure(fig, "01_interpolation")

# %% [markdown]
# The in-between images are mostly cross-fades, a double exposure of the two ends, not a smooth
# change of one object into another: nothing in the training asked the space *between* the
# codes of real images to decode to anything in particular.
#
# ## 6. Can we generate new images by decoding random codes?
#
# A generator needs a distribution to draw codes from, and the autoencoder never said which
# one. We try the obvious guess, $z \sim \mathcal N(0, I)$, and a better one, a Gaussian with the
# mean and standard deviation of the real codes in each dimension.
#
# **Predict first:** which of the two rows will look more like CIFAR-10, and will either of them
# show a recognisable object? Then run the next cell.

# %%
with torch.no_grad():
    codes = infer(model.encode, train.images(2000), device=device)   # f = the encoder only: (2000, Z) codes
    mu, sd = codes.mean(0), codes.std(0)                                # (Z,) each
    g = torch.Generator().manual_seed(0)
    z_std = torch.randn(10, cfg.latent_dim, generator=g)               # N(0, I)
    z_fit = mu + sd * torch.randn(10, cfg.latent_dim, generator=g)     # N(mu, diag(sd^2))
    samples = torch.cat([model.decode(z_std.to(device)), model.decode(z_fit.to(device))]).cpu()
fig = show_images(samples, nrow=10, row_labels=["N(0, I)", "fitted"], title="decoding random codes")
save_figure(fig, "01_random_codes")
print(f"code statistics: mean of |mu| {mu.abs().mean():.2f}, sd ranges {sd.min():.2f}..{sd.max():.2f}")

# %% [markdown]
# Neither row looks like CIFAR-10. With $\mathcal N(0, I)$ the codes land where the decoder has
# never been (the printed statistics show that the real codes are neither centred nor of unit
# spread). Even the fitted Gaussian fails: the real codes occupy a thin, oddly shaped region of
# the 256-dimensional space, and drawing each dimension independently lands outside it.
#
# The histogram below shows one code dimension of the real images next to $\mathcal N(0, 1)$.

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3))
ax.hist(codes[:, 0].numpy(), bins=50, density=True, alpha=0.7, label="real codes, dimension 0")
grid = torch.linspace(-4, 4, 200)
ax.plot(grid, torch.exp(-grid**2 / 2) / (2 * torch.pi) ** 0.5, label="N(0, 1)")
ax.set_xlabel("z[0]"), ax.legend()
fig.tight_layout()
save_figure(fig, "01_code_histogram")

# %% [markdown]
# The real codes of this dimension sit in a range of their own, with their own centre and
# spread, and nothing in the training made them look like $\mathcal N(0, 1)$: the encoder is free
# to put codes anywhere that helps the decoder. That explains the $\mathcal N(0, I)$ row.
#
# The fitted row matches every dimension's centre and spread and still fails, because it draws
# each dimension on its own, while the dimensions of real codes depend on each other. The next
# cell shows this two ways: the two most strongly correlated code dimensions plotted against
# each other, and the variance of the codes along their principal directions (PCA: the
# directions in which the codes vary most, largest first) next to the fitted Gaussian's.

# %%
corr = torch.corrcoef(codes.T).nan_to_num() - torch.eye(cfg.latent_dim)      # (Z, Z), diagonal removed
i, j = divmod(int(corr.abs().argmax()), cfg.latent_dim)                       # the most correlated pair
fitted = mu[[i, j]] + sd[[i, j]] * torch.randn(len(codes), 2, generator=g)    # the fitted Gaussian, dims i and j
var_real = torch.linalg.eigvalsh(torch.cov(codes.T)).flip(0).clamp_min(1e-12)  # (Z,) variance per principal direction
var_fit = (sd**2).sort(descending=True).values                                # (Z,) the fitted Gaussian's: each dim's own
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
ax0.scatter(fitted[:, 0], fitted[:, 1], s=3, alpha=0.3, label="fitted Gaussian")
ax0.scatter(codes[:, i], codes[:, j], s=3, alpha=0.3, label="real codes")
ax0.set(xlabel=f"z[{i}]", ylabel=f"z[{j}]", title=f"two code dimensions (correlation {corr[i, j]:.2f})")
ax1.semilogy(var_real, label="real codes")
ax1.semilogy(var_fit, label="fitted Gaussian")
ax1.set(xlabel="direction, largest variance first", ylabel="variance", title="variance along each direction")
ax0.legend(), ax1.legend()
fig.tight_layout()
save_figure(fig, "01_code_dependence")
print(f"the 10 largest of {cfg.latent_dim} directions hold {float(var_real[:10].sum() / var_real.sum()):.0%} of the "
      f"real codes' variance and {float(var_fit[:10].sum() / var_fit.sum()):.0%} of the fitted Gaussian's")

# %% [markdown]
# Left: the real codes of the two dimensions form a tilted, elongated cloud (the title gives
# their correlation), while the fitted Gaussian, which draws each dimension alone, fills an
# axis-aligned one around it, with many draws where no real code is. Right: the real codes' variance is
# concentrated in a few directions and falls off steeply; the fitted Gaussian has the same total
# variance, spread more evenly over all the directions (the printed shares compare the ten
# largest). So most of what it draws varies in directions where real codes hardly vary, and in
# 256 dimensions almost every draw lands off the thin region the real codes occupy. A Gaussian
# with a full covariance matrix would capture the correlations, but not a curved shape.
# Chapter 02 takes the other route: instead of fitting the codes' shape after training, it
# trains the encoder so that the codes fill a shape we know how to sample.
#
# ## What this chapter showed
#
# - An autoencoder compresses the 3,072 numbers of an image into a code of 256 and rebuilds
#   test images at the PSNR printed above; its squared-error loss makes it blur what the code
#   cannot store.
# - Its code space has no known shape, so decoding random codes gives garbage, even codes from
#   a Gaussian fitted to each dimension, because the dimensions depend on each other: an
#   autoencoder is a compressor, not a generator.
#
# The **variational autoencoder** (chapter 02) fixes exactly this: it makes the encoder output
# a distribution and pulls it towards $\mathcal N(0, I)$ with a KL term, so that decoding
# $z \sim \mathcal N(0, I)$ is what the decoder has been trained for.
