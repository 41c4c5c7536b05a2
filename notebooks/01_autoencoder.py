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
# You will train one on CIFAR-10, measure how well it reconstructs test images, walk between
# two codes, and then try to *generate* by decoding random codes, which fails. Why it fails is
# the reason the next chapter introduces the variational autoencoder.
#
# | profile | measured run time (2-core CPU) | what it trains |
# |---|---|---|
# | smoke | 8 s | a tiny model for a few steps (proves the notebook runs) |
# | cpu | 2.8 and 3.2 min (170 s and 189 s, two clean fp32 `CVAE_AMP=off make course` runs on an idle 2-core Intel Xeon VM; the same code has run up to 50% slower or faster between two such runs) | the model below for 2 epochs on all 49,000 training images; test PSNR 20.7 dB |
# | gpu | estimated, not measured: 1.4 min on a T4 (`python -m cvae_lib.compute`) | a 64-channel model for 30 epochs |
#
# Exercise: `exercises/ex01_autoencoder.ipynb` (PSNR, interpolation, the bottleneck block).

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

# %% [markdown]
# ## 1. Data
#
# We train on the training split minus a validation set of `P.val_per_class` images per class,
# and keep the **test split** for the final numbers only: it never influences training.

# %%
full_train = load_cifar10("train").subset(n_per_class=P.ae.train_per_class, seed=0)
train, val = full_train.split(n_val_per_class=P.val_per_class, seed=0)
test = load_cifar10("test").subset(n_per_class=P.test_per_class, seed=0)
print("train:", len(train), " validation:", len(val), " test:", len(test))

# %% [markdown]
# ## 2. The model
#
# The encoder is the one the study used: three stages, each a four-convolution *bottleneck
# block* from Very Deep VAEs (Child, 2021) followed by 2x downsampling, so a 32x32 image
# becomes a 4x4 feature map, which a linear layer turns into the code $z$. The decoder mirrors
# it with 2x upsampling. We use the residual version of the block (`residual=True`); chapter 03
# uses the study's version without it.

# %%
from cvae_lib.models.ae import AEConfig, Autoencoder, ae_loss

cfg = AEConfig(latent_dim=256, width=P.ae.width, residual=True)
model = Autoencoder(cfg)
n_params = sum(p.numel() for p in model.parameters())
print(cfg)
print(f"{n_params / 1e6:.2f}M parameters")

x = train.images(4)                          # (4, 3, 32, 32) in [0, 1]
z = model.encode(x)
print("image", tuple(x.shape), "-> code", tuple(z.shape), "-> image", tuple(model.decode(z).shape))

# %% [markdown]
# A 32x32x3 image has 3,072 numbers; the code has 256, a 12x compression. The loss is the mean
# squared error per pixel, $\frac{1}{3072}\lVert x - \hat x \rVert^2$.
#
# ## 3. Training
#
# `load_or_train` loads a finished checkpoint of this exact configuration if there is one and
# trains otherwise (resuming an interrupted run where it stopped). Every epoch is checkpointed,
# so you can interrupt the kernel and run the cell again.

# %%
from cvae_lib.train import TrainConfig, load_or_train

tcfg = TrainConfig(epochs=P.ae.epochs, batch_size=P.ae.batch_size, lr=2e-3, hflip=True,
                   max_steps=P.ae.max_steps, warmup_steps=100, schedule="cosine")
history = load_or_train(model, ae_loss, train, tcfg, RUNS / "ae.pt", val=val, device=device)
print(f"trained {len(history)} epochs in {history.seconds:.0f} s")

# %%
from cvae_lib.plotting import loss_curves, reconstructions, save_figure, show_images

fig = loss_curves(history, title="autoencoder: MSE per pixel", logy=True)
save_figure(fig, "01_loss")

# %% [markdown]
# Training and validation loss fall together: with 12x compression the model cannot memorise
# 49,000 images, so it does not overfit in a few epochs.
#
# ## 4. How good are the reconstructions?
#
# We reconstruct the test images and measure the **PSNR** (peak signal-to-noise ratio,
# $10 \log_{10} 1/\mathrm{MSE}$ in dB; higher is better; 20 dB means a typical error of 0.1 per
# pixel). You implement it yourself in exercise 01.

# %%
from cvae_lib.metrics import psnr
from cvae_lib.train import infer

x_test = test.images()                                   # (N, 3, 32, 32) in [0, 1]
x_hat = infer(model, x_test, device=device)              # reconstructions, same shape
scores = psnr(x_test, x_hat)                             # (N,) dB per image
print(f"test PSNR: {scores.mean():.2f} dB (mean over {len(scores)} test images; "
      f"worst {scores.min():.1f}, best {scores.max():.1f})")
show = torch.arange(10) * (len(x_test) // 10)            # one image of each class (test is sorted by class)
fig = reconstructions(x_test[show], x_hat[show], title=f"test images and reconstructions, mean PSNR {scores.mean():.1f} dB")
save_figure(fig, "01_reconstructions")

# %% [markdown]
# The reconstructions keep the layout and colours but lose fine detail: the squared error is
# minimised by *averaging* over the details the code cannot store, so the decoder produces
# blur rather than a sharp guess. The same happens, more strongly, in the VAE chapters.
#
# ## 5. Walking between two codes
#
# Decode evenly spaced points on the line between the codes of two test images.

# %%
with torch.no_grad():
    z0, z1 = model.encode(x_test[show[[1, 7]]].to(device))  # a car and a horse: two codes, (Z,) each
    w = torch.linspace(0, 1, 8, device=device)[:, None]  # (8, 1)
    path = model.decode((1 - w) * z0 + w * z1)            # (8, 3, 32, 32)
fig = show_images(path, nrow=8, title="decoding the line between two codes")
save_figure(fig, "01_interpolation")

# %% [markdown]
# The in-between images are mostly cross-fades of the two ends, not a smooth morph between
# objects: nothing in the training asked the code space to be organised between images.
#
# ## 6. Can we generate new images by decoding random codes?
#
# A generator needs a distribution to draw codes from. The autoencoder never said which one.
# Try the obvious guess, $z \sim \mathcal N(0, I)$, and a better one, a Gaussian with the mean
# and standard deviation of the real codes in each dimension.

# %%
with torch.no_grad():
    codes = infer(model.encode, train.images(2000), device=device)   # (2000, Z)
    mu, sd = codes.mean(0), codes.std(0)
    g = torch.Generator().manual_seed(0)
    z_std = torch.randn(10, cfg.latent_dim, generator=g)               # N(0, I)
    z_fit = mu + sd * torch.randn(10, cfg.latent_dim, generator=g)     # N(mu, diag(sd^2))
    samples = torch.cat([model.decode(z_std.to(device)), model.decode(z_fit.to(device))]).cpu()
fig = show_images(samples, nrow=10, row_labels=["N(0, I)", "fitted"], title="decoding random codes")
save_figure(fig, "01_random_codes")
print(f"code statistics: mean of |mu| {mu.abs().mean():.2f}, sd ranges {sd.min():.2f}..{sd.max():.2f}")

# %% [markdown]
# Neither row looks like CIFAR-10. With $\mathcal N(0, I)$ the codes land where the decoder has
# never been; even with the fitted Gaussian, real codes occupy a thin, oddly shaped region of
# the 256-dimensional space, and independent draws per dimension fall outside it.
#
# The histogram below shows the problem for one code dimension: the autoencoder's codes are
# neither centred nor of unit scale, and nothing made them so.

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
# ## What this chapter showed
#
# - An autoencoder compresses 3,072 pixel values into a code of 256 and rebuilds test images
#   at the PSNR printed above.
# - Its code space has no known shape, so decoding random codes gives garbage: an
#   autoencoder is a compressor, not a generator.
#
# The **variational autoencoder** (chapter 02) fixes exactly this: it makes the encoder output
# a distribution and pulls it towards $\mathcal N(0, I)$ with a KL term, so that decoding
# $z \sim \mathcal N(0, I)$ is what the decoder has been trained for.
