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
# # Exercise 01: an autoencoder, measured and trained by hand
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/solutions/ex01_autoencoder.ipynb)
#
# Chapter 01 trains an autoencoder with the library. Here you build the pieces yourself: the
# score of a reconstruction (PSNR), the walk between two codes, the encoder's building block,
# and finally the training loop, which you run on CIFAR-10 to look at what your autoencoder
# reconstructs and what it decodes between two images.
#
# Write each function where it says `YOUR CODE HERE`, then run the check cell below it: the
# check tells you **which property** of your function does not hold yet (shape, a known value,
# an edge case), not just "wrong".
#
# **Run time:** seconds for the checks; the training run in part 4 takes about a minute on a
# laptop CPU (seconds in the `smoke` profile).

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

from cvae_lib.checks import ex01
from cvae_lib.profiles import get_profile

P = get_profile()          # CVAE_PROFILE: smoke (seconds) | cpu | gpu; sizes part 4's run

# %% [markdown]
# ## 1. PSNR
#
# The peak signal-to-noise ratio of a reconstruction $\hat x$ of an image $x$ with pixels in
# $[0, 1]$ is
#
# $$\mathrm{PSNR}(x, \hat x) = 10 \log_{10} \frac{1}{\mathrm{MSE}(x, \hat x)} \;\text{dB},
# \qquad \mathrm{MSE} = \frac{1}{CHW} \sum_{c,h,w} (x_{chw} - \hat x_{chw})^2 .$$
#
# Write `psnr(x, x_hat)` for batches `(B, 3, H, W)`; return **one value per image**, shape `(B,)`.

# %%
def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair; x, x_hat: (B, C, H, W) in [0, 1] -> (B,)."""
    ### BEGIN SOLUTION
    mse = (x - x_hat).pow(2).flatten(1).mean(dim=1)  # (B, C*H*W) -> (B,)
    return 10 * torch.log10(1.0 / mse)
    ### END SOLUTION


# %%
ex01.check_psnr(psnr);

# %% [markdown]
# ## 2. Walking between two codes
#
# Chapter 01 decodes points on the straight line between the codes of two images. Write
# `interpolate(z0, z1, n)` returning `n` evenly spaced points from `z0` to `z1` (both included),
# shape `(n, Z)`.

# %%
def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int) -> torch.Tensor:
    """n points on the segment z0 -> z1; z0, z1: (Z,) -> (n, Z)."""
    ### BEGIN SOLUTION
    w = torch.linspace(0, 1, n)[:, None]  # (n, 1)
    return (1 - w) * z0 + w * z1          # (n, Z)
    ### END SOLUTION


# %%
ex01.check_interpolate(interpolate);

# %% [markdown]
# ## 3. The study's bottleneck block
#
# The encoder of the study stacks the four-convolution block of Very Deep VAEs (Child, 2021):
# GELU, then a 1x1 convolution, then GELU and 3x3, GELU and 3x3, GELU and 1x1. With
# `residual=True` the input is added back to the result. A `cvae_lib.models.blocks.Bottleneck`
# holds the four convolutions as `block.c1`, ..., `block.c4` and the flag `block.residual`.
# Recompute its forward pass from those parts.

# %%
def bottleneck_forward(block, x: torch.Tensor) -> torch.Tensor:
    """The VDVAE bottleneck: (B, C, H, W) -> (B, C, H, W)."""
    ### BEGIN SOLUTION
    h = block.c1(F.gelu(x))
    h = block.c2(F.gelu(h))
    h = block.c3(F.gelu(h))
    h = block.c4(F.gelu(h))
    return x + h if block.residual else h
    ### END SOLUTION


# %%
ex01.check_bottleneck(bottleneck_forward);

# %% [markdown]
# ## 4. Train it yourself, then look
#
# An autoencoder learns by gradient descent on the reconstruction error. One **step**: draw a
# batch of training images, reconstruct them, take the mean squared error per pixel as the
# loss, clear the old gradients (`optimizer.zero_grad()`), compute the new ones
# (`loss.backward()`) and move the weights (`optimizer.step()`).
#
# Write the loop: `steps` such steps on batches drawn at random (with `generator`) from
# `images`, returning the loss of every step.

# %%
def train_autoencoder(model, images: torch.Tensor, steps: int, batch_size: int = 64, lr: float = 2e-3,
                      seed: int = 0) -> torch.Tensor:
    """Adam on the mean squared error per pixel; images (N, 3, 32, 32) in [0, 1] -> losses (steps,)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    ### BEGIN SOLUTION
    for _ in range(steps):
        x = images[torch.randint(len(images), (batch_size,), generator=generator)]  # (B, 3, 32, 32)
        loss = F.mse_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    ### END SOLUTION
    model.eval()
    return torch.tensor(losses)


# %% [markdown]
# Now train chapter 01's autoencoder (a small one: a 64-number code) on CIFAR-10 training
# images with your loop, and score its reconstructions of test images with your `psnr`.

# %% tags=["experiment"]
import matplotlib.pyplot as plt

from cvae_lib.data import load_cifar10
from cvae_lib.models.ae import AEConfig, Autoencoder
from cvae_lib.plotting import reconstructions, show_images

STEPS = 8 if P.name == "smoke" else 250      # the smoke profile only shows that the cells run
train_images = load_cifar10("train").subset(n_per_class=20 if P.name == "smoke" else 500, seed=0).images()
test = load_cifar10("test").subset(n_per_class=2, seed=0)
x_test = test.images()                                                 # (20, 3, 32, 32)

torch.manual_seed(0)
model = Autoencoder(AEConfig(latent_dim=64, width=8))
losses = train_autoencoder(model, train_images, STEPS)
with torch.no_grad():
    x_hat = model(x_test)
print(f"loss: {losses[:5].mean():.4f} in the first 5 steps, {losses[-5:].mean():.4f} in the last 5; "
      f"test PSNR {psnr(x_test, x_hat).mean():.1f} dB")

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(5, 2.5))
ax.plot(losses), ax.set_xlabel("step"), ax.set_ylabel("MSE per pixel"), ax.set_yscale("log")
reconstructions(x_test, x_hat, n=10, title="test images (top) and your autoencoder's reconstructions");

# %% [markdown]
# The loss falls quickly and then slowly; the reconstructions keep the layout and the colours
# and lose the details, and the PSNR says how much (chapter 01's longer run reaches more).
#
# ### Predict, then run
#
# The next cell decodes 8 evenly spaced points on the line between the codes of two test
# images, with your `interpolate`. Before you run it, write down what you expect the middle
# images to look like: a third, plausible object halfway between the two, or something else?
# And why?

# %% [markdown] tags=["prediction"]
# **Answer.** The middle images look like **cross-fades**: both images faintly overlaid, the
# colours and blobs of one fading into the other, not a new object and not a smooth morph.
#
# **Why.** An autoencoder is trained only to reconstruct the training images from their own
# codes. Nothing in its loss says anything about the codes *between* two images: the decoder has
# never been asked to produce an image from them, and the straight line between two codes passes
# through regions no training image was mapped to. The decoder is close to linear in a small
# neighbourhood, so halfway between two codes it produces something close to the average of the
# two reconstructions. Chapter 02's VAE adds what is missing: a term that makes every code near
# $\mathcal N(0, I)$ decode to an image.

# %% tags=["experiment"]
with torch.no_grad():
    pair = [int((test.y == k).nonzero()[0]) for k in (1, 7)]   # an automobile and a horse
    z = model.encode(x_test[pair])                              # (2, 64)
    path = model.decode(interpolate(z[0], z[1], 8))     # (8, 3, 32, 32)
show_images(path, nrow=8, title="decoding the line between two codes");

# %% [markdown]
# ## Going further
#
# - Why does the residual connection make deep stacks of these blocks trainable? (Hint: what is
#   the gradient of `x + h(x)` with respect to `x`?)
# - PSNR averages squared errors. Which kind of reconstruction error does it barely punish that
#   your eye notices at once? (Chapter 05 meets SSIM, which was designed for that.)
# - Decode random codes $z \sim \mathcal N(0, I)$ with your trained model. What do you get, and
#   why is this not a way to generate new images?

# %% [markdown] tags=["going-further"]
# **Answers.**
#
# - The gradient of $x + h(x)$ with respect to $x$ is $I + \partial h / \partial x$. Through a stack
#   of $L$ blocks the gradient is a product of $L$ such factors, and the identity in each keeps a
#   direct path from the loss to every layer: the product cannot shrink towards zero just because
#   some $\partial h / \partial x$ are small (the vanishing gradient of a plain deep stack), and at
#   initialisation each block is close to the identity, so a deep stack starts as a shallow one.
# - A **shift** of an edge or a texture by one pixel: the eye barely notices it, but every pixel
#   on the edge now differs, so the MSE is large and PSNR low. The opposite also holds: **blur**
#   (the average of the possible details) has a small MSE, so a blurry reconstruction scores a good
#   PSNR while it looks clearly worse than a sharp one with slightly misplaced details. PSNR does
#   not know about structure; SSIM compares local means, contrasts and correlations instead.
# - Mostly grey or brown smears, with no object in them. The codes of real images occupy a small,
#   oddly shaped region of the 64-dimensional code space, not the region where $\mathcal N(0, I)$
#   puts its mass, and the decoder was never trained on codes outside that region. To generate, the
#   codes must come from a distribution the decoder was trained on: the VAE of chapter 02.
