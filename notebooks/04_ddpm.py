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
# # 04 · Denoising diffusion: DDPM, fast sampling with DDIM, classifier-free guidance
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/04_ddpm.ipynb)
#
# The study compared its CVAE with a DDPM (Ho et al. 2020) whose results "varied from plausible
# images to pure noise between runs". This chapter builds a DDPM step by step, so that you can
# see where each piece comes from and why ours trains reliably:
#
# 1. the **forward process** that turns images into noise, and its schedule;
# 2. a U-Net trained to **predict the noise** (a plain mean squared error);
# 3. **ancestral sampling**, written out, then the library version;
# 4. **DDIM** (Song et al. 2020): the same network, 10-100 steps instead of 1,000;
# 5. **classifier-free guidance** (Ho & Salimans 2022): one network, conditional and not;
# 6. a **timestep scrubber** to see what the network predicts at every noise level.
#
# | profile | measured run time (2-core CPU) | what it trains |
# |---|---|---|
# | smoke | 100 s (`make course`, idle 2-core CPU; about 40 s of it for the shipped ten-class DDPM's 40 guided samples) | a tiny U-Net for 8 steps, T = 100, then the shipped network (proves the notebook runs) |
# | cpu | 5.1 and 5.0 min (305 s and 298 s, two clean fp32 `CVAE_AMP=off make course` runs on an idle 2-core Intel Xeon VM; about 17 s of it for the ten-class section's 60 guided DDIM-50 samples) | a 0.28M-parameter U-Net, 2 epochs over 9,800 airplanes and frogs (614 steps of 32); then samples from the same network trained for 12,280 steps (shipped), and from the ten-class one (15,320 steps, shipped) |
# | gpu | estimated, not measured: 6.1 min on a T4 (`python -m cvae_lib.compute`) | a 32-channel U-Net (1.1M parameters) for 30 epochs on all ten classes |
#
# Exercise: `exercises/ex04_ddpm.ipynb` (the forward process, the loss, one reverse step).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import math
import time

import torch

from cvae_lib.data import CLASSES, load_cifar10
from cvae_lib.profiles import get_profile
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")
print(P.ddpm, P.diffusion, sep="\n")

# %% [markdown]
# ## 1. Data
#
# A small CPU cannot train a diffusion model on all of CIFAR-10 in minutes, so, like the study,
# we use a subset: the classes in `P.diffusion.classes` (the study's airplanes and frogs in the
# cpu profile). The model is still **class-conditional**, which is what lets us guide it later.

# %%
names = P.diffusion.classes or CLASSES                          # None in the profile: all ten
classes = [CLASSES.index(c) for c in names]                     # their ids, e.g. [0, 6]
full = load_cifar10("train").subset(names, n_per_class=P.ddpm.train_per_class, seed=0)
train, val = full.split(n_val_per_class=P.val_per_class, seed=0)
print("train:", train, "\nvalidation:", len(val))

# %% [markdown]
# ## 2. The forward process: from an image to noise
#
# Diffusion destroys an image $x_0$ in $T$ small steps, each adding a little Gaussian noise of
# variance $\beta_t$: $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\, x_{t-1}, \beta_t I)$.
# Gaussians compose, so we can jump to any step at once (Ho et al. 2020, Eq. 4):
#
# $$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,
# \qquad \varepsilon \sim \mathcal N(0, I), \qquad \bar\alpha_t = \prod_{s \le t} (1-\beta_s).$$
#
# Images live in $[-1, 1]$ inside the process (`from_unit` maps our $[0, 1]$ images there).
# The library keeps the schedule in a `Diffusion` object, apart from any network. The course's
# recipe, `DiffusionConfig.course(T)`, is Ho et al.'s linear schedule plus classifier-free
# guidance's null label (section 5); the printed config shows every value.

# %%
from cvae_lib.diffusion import Diffusion, DiffusionConfig, from_unit, to_unit
from cvae_lib.plotting import save_figure, show_images

diffusion = Diffusion(DiffusionConfig.course(P.diffusion.T)).to(device)
print(diffusion.cfg)
x0 = from_unit(train.images(4))                               # (4, 3, 32, 32) in [-1, 1]
steps = [0, 50, 100, 200, 400, 700, P.diffusion.T - 1]
steps = sorted({min(s * P.diffusion.T // 1000, P.diffusion.T - 1) for s in steps})
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
rows = [diffusion.add_noise(x0, torch.full((4,), t), eps) for t in steps]   # each (4, 3, 32, 32)
grid = torch.stack(rows, 1).flatten(0, 1)                     # (4, S, 3, 32, 32) -> (4S, 3, 32, 32)
fig = show_images(to_unit(grid), nrow=len(steps), col_labels=[f"t={t}" for t in steps],
                  title="x_t: the same images and noise at growing t")
save_figure(fig, "04_forward")

# %% [markdown]
# By $t \approx 200$ the object is hard to make out, by $t \approx 400$ it is gone, and at
# $t = T$ nothing of the image is left: $\bar\alpha_T \approx 4 \cdot 10^{-5}$. A model that can undo one step at a time can therefore
# start from pure noise.
#
# ## 3. Schedules: linear and cosine
#
# Ho et al. let $\beta_t$ grow linearly from $10^{-4}$ to $0.02$. Nichol & Dhariwal (2021)
# noticed that this destroys information too early for small images and chose $\bar\alpha_t$
# directly, as a squared cosine. The **signal-to-noise ratio**
# $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$ shows the difference best.

# %%
from cvae_lib.plotting import schedule_curves

cosine = Diffusion(DiffusionConfig(T=P.diffusion.T, schedule="cosine"))
fig = schedule_curves({"linear (Ho et al.)": diffusion.alpha_bar, "cosine (Nichol & Dhariwal)": cosine.alpha_bar})
save_figure(fig, "04_schedules")

# %% [markdown]
# With the linear schedule the SNR crosses 1 (log 0, signal and noise equally strong) near
# $t = 250$, the cosine schedule near $t = 500$; with the linear one the last few hundred steps
# are almost pure noise; the cosine schedule spends its steps more
# evenly. We keep the linear schedule of the paper here; `schedule="cosine"` is one switch away.
#
# ## 4. The loss: predict the noise
#
# The network $\varepsilon_\theta(x_t, t, y)$ sees a noisy image, the step $t$ and the class
# $y$, and guesses the noise that was added. Training (Algorithm 1) is regression:
#
# $$L = \mathbb E_{x_0, t, \varepsilon} \lVert \varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\varepsilon, t, y) \rVert^2,
# \qquad t \sim \mathrm{Uniform}\{1..T\}.$$
#
# Written out for one batch, next to the library's version (same seed, so the same $t$ and
# $\varepsilon$). For classifier-free guidance the label is replaced by a "null" class (id 10)
# with probability 0.1, so the same network also learns the unconditional model.

# %%
from cvae_lib.models.unet import UNet, UNetConfig

model = UNet(UNetConfig.course(P.ddpm.width))   # levels at 32, 16, 8; attention at 16; + null class
print(model.cfg)
x, y = next(train.batches(8, seed=0))                         # x (8, 3, 32, 32) in [0, 1]

torch.manual_seed(1)
x0 = from_unit(x)
t = torch.randint(0, diffusion.T, (8,))                       # one random step per image
eps = torch.randn_like(x0)
xt = diffusion.add_noise(x0, t, eps)
y_in = diffusion.drop_labels(y)                               # ~10% become the null class
loss_by_hand = ((model(xt, t, y_in) - eps) ** 2).mean()

torch.manual_seed(1)
loss_library = diffusion.train_loss(model, x, y)
print(f"by hand {loss_by_hand:.4f}   library {loss_library:.4f}")

# %% [markdown]
# The two agree. An untrained network predicts roughly zero, so the loss starts near
# $\mathbb E[\varepsilon^2] = 1$.
#
# ## 5. The network: a small U-Net
#
# The denoiser is the U-Net of Ho et al.: residual blocks with GroupNorm, the step $t$ fed in as
# a sinusoidal embedding, self-attention at 16x16, skip connections from the down path to the up
# path, and (our addition) a class embedding with one extra row for the null class. The paper's
# CIFAR-10 network has 35.7M parameters; ours is a small member of the same family.

# %%
n_ours = sum(p.numel() for p in model.parameters())
n_paper = sum(p.numel() for p in UNet(UNetConfig.paper()).parameters())
print(f"ours: {n_ours / 1e6:.2f}M parameters   Ho et al. CIFAR-10: {n_paper / 1e6:.2f}M")
print(model.cfg)

# %% [markdown]
# ## 6. Training, with an average of the weights for sampling
#
# Samples are drawn from an **exponential moving average** (EMA) of the weights,
# $\theta_\text{EMA} \leftarrow d\, \theta_\text{EMA} + (1-d)\, \theta$, which smooths out the
# noise of the last optimizer steps. Its horizon is about $1/(1-d)$ steps, and it matters:
# with the paper's $d = 0.9999$ (a horizon of 10,000 steps) a run of a few hundred steps would
# still be mostly the *random initial* weights, and its samples would be pure noise. We use
# $d$ = `P.diffusion.ema_decay`, a horizon of a small fraction of the run.

# %%
from cvae_lib.train import EMA, TrainConfig, load_or_train

ema = EMA(model, decay=P.diffusion.ema_decay)
tcfg = TrainConfig(epochs=P.ddpm.epochs, batch_size=P.ddpm.batch_size, lr=2e-3, warmup_steps=100,
                   grad_clip=1.0, hflip=True, max_steps=P.ddpm.max_steps)
history = load_or_train(model, diffusion.train_loss, train, tcfg, RUNS / "ddpm.pt", val=val,
                        ema=ema, device=device)
n_seen = history.steps * tcfg.batch_size                   # training images seen (steps x batch)
print(f"trained {len(history)} epochs ({n_seen} images) in {history.seconds:.0f} s, "
      f"{n_seen / max(history.seconds, 1e-9):.0f} images/s")
eps_model = ema.model.to(device).eval()                     # sample with the averaged weights

# %%
from cvae_lib.plotting import loss_curves

fig = loss_curves(history, title="DDPM: noise-prediction MSE")
save_figure(fig, "04_loss")

# %% [markdown]
# The loss falls from about 1 towards 0.1 and keeps creeping down: unlike a VAE's, a diffusion
# loss is an average over all noise levels, and most of the remaining error sits at small $t$,
# where the noise is too faint to be told apart from image detail.
#
# ### The same recipe, trained longer
#
# A few CPU minutes are far too few steps for a diffusion model (the paper trained for 800,000
# steps of 128 images). So the course ships `checkpoints/ddpm_cpu.safetensors`: this U-Net,
# schedule and label drop, trained by `tools/train_ddpm.py` on airplanes and frogs for many
# more steps on a CPU, with a cosine learning-rate decay and a longer EMA. If it learned this
# profile's classes, the rest of the chapter samples from it; set `USE_SHIPPED = False` to
# sample from the model you just trained instead. Same noise, same sampler (DDIM, 50 steps,
# $\eta = 1$; section 8 explains the $\eta$):

# %%
from dataclasses import asdict

from cvae_lib.weights import load_weights, read_metadata, shipped

USE_SHIPPED = True
meta = read_metadata(shipped("ddpm_cpu"))["metrics"]
own_model, own_diffusion = eps_model, diffusion
if USE_SHIPPED and meta["classes"] == list(names):
    eps_model = load_weights(shipped("ddpm_cpu"), UNet, UNetConfig).to(device)   # checksum-verified
    diffusion = Diffusion(DiffusionConfig(**meta["diffusion"])).to(device)       # its own schedule (T)
    n_seen = meta["steps"] * meta["batch_size"]
    print(f"sampling from the shipped run: {meta['steps']} steps of {meta['batch_size']} images "
          f"({meta['train_seconds'] / 60:.0f} min on {meta['threads']} CPU thread(s)), "
          f"held-out loss {meta['heldout_loss']:.4f} on {meta['n_test']} test images")
    y_cmp = torch.tensor(classes, device=device).repeat_interleave(6)
    cmp = [d.ddim_sample(m, len(y_cmp), y_cmp, steps=P.diffusion.ddim_steps[1], eta=1.0,
                         generator=torch.Generator(device).manual_seed(3))
           for m, d in ((own_model, own_diffusion), (eps_model, diffusion))]
    fig = show_images(torch.cat(cmp), nrow=len(y_cmp), row_labels=["trained here", "shipped, longer"],
                      title=f"{' / '.join(names)}: the run above against the longer run")
    save_figure(fig, "04_own_vs_shipped")
else:
    print(f"the shipped DDPM learned {meta['classes']}, this profile uses {list(names)}: "
          f"sampling from the model trained above")

# %% [markdown]
# ## 7. Sampling, written out (Algorithm 2)
#
# Start from $x_T \sim \mathcal N(0, I)$ and undo one step at a time (Ho et al., Eq. 11):
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}} \Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \varepsilon_\theta(x_t, t, y)\Big) + \sigma_t z, \qquad z \sim \mathcal N(0, I),$$
#
# with $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ and no
# noise in the last step. That is $T$ network calls per image batch.

# %%
from tqdm.auto import tqdm

n = P.diffusion.n_ddpm
y_plane = torch.full((n,), classes[0], device=device)       # the first class, e.g. airplane
g = torch.Generator(device).manual_seed(0)

with torch.no_grad():
    x = torch.randn((n, 3, 32, 32), generator=g, device=device)              # x_T
    for t in tqdm(range(diffusion.T - 1, -1, -1), desc="DDPM by hand"):
        tt = torch.full((n,), t, device=device)
        eps_hat = eps_model(x, tt, y_plane)
        beta, alpha, ab = diffusion.beta[t], diffusion.alpha[t], diffusion.alpha_bar[t]
        x = (x - beta / (1 - ab).sqrt() * eps_hat) / alpha.sqrt()           # the mean, Eq. 11
        if t > 0:
            x = x + diffusion.beta_tilde[t].sqrt() * torch.randn(x.shape, generator=g, device=device)
x_by_hand = to_unit(x).cpu()

# %% [markdown]
# The library's `ddpm_sample` runs the same loop. It computes the mean from the predicted
# $\hat x_0$ (Eq. 7), which is Eq. 11 rearranged, but first clips $\hat x_0$ to $[-1, 1]$, a
# standard safeguard against drifting out of the image range. With clipping switched off it
# reproduces our loop exactly (same seed, same noise):

# %%
exact = Diffusion(DiffusionConfig(**{**asdict(diffusion.cfg), "clip_x0": False})).to(device)
t0 = time.perf_counter()
x_lib = exact.ddpm_sample(eps_model, n, y_plane, generator=torch.Generator(device).manual_seed(0))
seconds_ddpm = time.perf_counter() - t0
print(f"largest difference to the loop by hand: {(x_lib - x_by_hand).abs().max():.2e}")

# %% [markdown]
# For the comparison below we also draw the same images with the library's default, which
# clips $\hat x_0$:

# %%
t0 = time.perf_counter()
x_ddpm = diffusion.ddpm_sample(eps_model, n, y_plane, generator=torch.Generator(device).manual_seed(0))
seconds_ddpm = time.perf_counter() - t0

# %% [markdown]
# ## 8. DDIM: the same network, far fewer steps
#
# Song et al. (2020) showed that the DDPM objective is also the objective of a whole family of
# samplers, including a **deterministic** one that can skip steps (Eq. 12, $\eta = 0$):
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\, \hat x_0 + \sqrt{1-\bar\alpha_{t'}}\, \varepsilon_\theta(x_t, t),
# \qquad \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\, \varepsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}},$$
#
# for any earlier step $t' < t$: predict the clean image, then re-noise it to the level of $t'$.
# $\eta = 1$ with every step gives back DDPM (a test checks this). Same starting noise below,
# so the rows can be compared image by image.
#
# Which $k$ timesteps? The library spaces them evenly from $T-1$ down to 0 and rounds
# (`ddim_timesteps(1000, 4)` is `[999, 666, 333, 0]`): diffusers calls this spacing
# `"linspace"`. The gaps are then not all equal, so each step goes to the *next listed*
# timestep $t'$, which keeps $x$ at exactly the noise level the network is asked about next.
# (diffusers' DDIM step assumes equal gaps of $T // k$; on its evenly spaced lists the two
# agree, which `tests/test_references.py` checks.)

# %%
rows, labels, rates = [x_lib, x_ddpm], [f"DDPM {diffusion.T}, no clip", f"DDPM {diffusion.T}"], [math.nan, n / seconds_ddpm]
for k, eta in [(k, 0.0) for k in P.diffusion.ddim_steps] + [(P.diffusion.ddim_steps[1], 1.0)]:
    t0 = time.perf_counter()
    rows.append(diffusion.ddim_sample(eps_model, n, y_plane, steps=k, eta=eta, generator=torch.Generator(device).manual_seed(0)))
    rates.append(n / (time.perf_counter() - t0))
    labels.append(f"DDIM {k}" + (f", eta {eta:g}" if eta else ""))
fig = show_images(torch.cat(rows), nrow=n, row_labels=labels, title=f"{names[0]}: DDPM vs DDIM")
save_figure(fig, "04_ddpm_vs_ddim")
for name, r in zip(labels[1:], rates[1:]):
    print(f"{name:>10}: {r:6.2f} images/s ({n} images)")

# %% [markdown]
# DDIM is faster in proportion to its steps (about $T/k$ times). For a well-trained model its
# samples are about as good as DDPM's from 50 steps on (Song et al. report FID ~13 at 10
# steps against ~4 at 100 for the paper's model). The $\eta = 0$ rows resemble each other
# image by image: the starting noise *determines* the image.
#
# For a model trained on a CPU, compare the $\eta = 0$ rows with DDPM and with the last row
# ($\eta = 1$, which adds fresh noise at every step as DDPM does). With $\eta = 0$ nothing ever
# corrects the network's errors: a small bias in its noise predictions at large $t$ (where
# $\hat x_0$ divides by $\sqrt{\bar\alpha_t} \approx 0.006$) is carried to the end, and the
# colours saturate. Fresh noise washes such errors out, so the stochastic samplers keep natural
# colours. The rest of the course samples with DDIM, 50 steps, $\eta = 1$: a choice made by
# looking at these samples, not at any test score.
#
# Look at the first row too. After a short run the network's noise predictions are still
# rough at small $t$, and over 1,000 unclipped steps those errors push the pixels out of range
# (saturated, flat colours in the cpu profile). Clipping $\hat x_0$ to $[-1, 1]$ in every step,
# as the library does by default, keeps the chain on track: one cheap reason why a DDPM run
# can give "pure noise" or garbage while the network itself is fine.
#
# ## 9. Classifier-free guidance
#
# Because ~10% of the training labels were replaced by the null class, one network gives both
# the conditional prediction $\varepsilon_\theta(x_t, t, y)$ and the unconditional one
# $\varepsilon_\theta(x_t, t, \varnothing)$. Guidance extrapolates from the second towards the first
# (Ho & Salimans 2022):
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big).$$
#
# $w = 0$ ignores the class, $w = 1$ is the plain conditional model, $w > 1$ exaggerates
# whatever distinguishes the class. A warning for reading papers: Ho & Salimans write the same
# formula as $(1 + w)\,\varepsilon_\theta(x_t, t, y) - w\,\varepsilon_\theta(x_t, t, \varnothing)$, so
# their $w$ is ours minus one (their $w = 0$ is our $w = 1$). Ours is diffusers'
# `guidance_scale`. Same noise in every row:

# %%
scales = [0.0, 1.0, 2.0, 4.0]
g_rows = [diffusion.ddim_sample(eps_model, 8, torch.full((8,), classes[0], device=device), steps=50, eta=1.0,
                                guidance=w, generator=torch.Generator(device).manual_seed(1))
          for w in tqdm(scales, desc="guidance sweep")]
fig = show_images(torch.cat(g_rows), nrow=8, row_labels=[f"w={w:g}" for w in scales],
                  title=f"guidance for class {names[0]!r} (DDIM 50)")
save_figure(fig, "04_guidance")

# %% [markdown]
# Guidance can only amplify a difference the network has learned. Airplanes and frogs differ
# most in colour and background (sky against grass), which even a short run picks up; the
# shapes come later. With long training, $w = 0$ mixes the classes, larger $w$ commits each
# sample to its class, and very large $w$ gives saturated, less varied images: guidance trades
# diversity for fidelity.
#
# ## 10. Samples of each class
#
# DDIM with 50 steps, $\eta = 1$ and guidance $w = 2$, `P.diffusion.n_grid` images per class.

# %%
k = P.diffusion.n_grid
y_all = torch.tensor(classes, device=device).repeat_interleave(k)        # (len(classes) * k,)
samples = diffusion.ddim_sample(eps_model, len(y_all), y_all, steps=50, eta=1.0, guidance=2.0,
                                generator=torch.Generator(device).manual_seed(2))
fig = show_images(samples, nrow=k, row_labels=list(names),
                  title=f"DDIM-50 samples (eta 1, w = 2) after {n_seen} training images")
save_figure(fig, "04_samples")

# %% [markdown]
# Be honest about what you see. In the cpu profile these come from the shipped run (12,280
# steps, 71 minutes on one CPU thread): many airplanes are recognisable shapes, a fuselage and
# wings against the sky, while most frogs are still green-brown texture around a darker blob.
# The model you trained above in about 3 minutes (the first row of the comparison in section
# 6) gets each class's colours (greens and browns, sky blues) but no shape, only texture: the
# state in which the study's DDPM "produced noise". Its loss was already low, because most of
# the loss is easy, large-$t$ denoising; the details need far more steps: the paper trained for
# 800,000 steps of 128 images (FID 3.17), public reproductions reach FID ~9 after 47,000.
# Chapter 05 measures how far these samples are from real ones.
#
# ### All ten classes (shipped)
#
# Two classes are the easy case: guidance only has to tell sky from grass. The course also
# ships the same U-Net and recipe trained on all 49,000 training images of the ten classes
# (`checkpoints/ddpm_ten_class.safetensors`, `tools/train_ddpm.py ... --name ddpm_ten_class`).
# Its metadata records chapter 05's judge metrics on 2,000 samples (200 per class, DDIM-50,
# $\eta = 1$, seed 0), unguided and at $w = 2$, against all 10,000 test images. Same sampler
# as above, six images per class (fewer in the smoke profile):

# %%
meta_ten = read_metadata(shipped("ddpm_ten_class"))["metrics"]
ten = load_weights(shipped("ddpm_ten_class"), UNet, UNetConfig).to(device)        # checksum-verified
diffusion_ten = Diffusion(DiffusionConfig(**meta_ten["diffusion"])).to(device)
print(f"shipped ten-class DDPM: {meta_ten['steps']:,} steps of {meta_ten['batch_size']} images "
      f"({meta_ten['train_seconds'] / 60:.0f} min on {meta_ten['threads']} CPU thread), held-out loss "
      f"{meta_ten['heldout_loss']:.4f} on {meta_ten['n_test']:,} test images")
for w, s in meta_ten["judge"].items():
    print(f"  w = {float(w):g}: judge class accuracy {s['acc']:.1%} (chance 10%), FD {s['fd']:.1f}, "
          f"KID {s['kid']:.2f} ({s['n_eval']:,} samples)")
k_ten = min(k, 6)
y_ten = torch.arange(10, device=device).repeat_interleave(k_ten)
samples_ten = diffusion_ten.ddim_sample(ten, len(y_ten), y_ten, steps=50, eta=1.0, guidance=2.0,
                                        generator=torch.Generator(device).manual_seed(2))
fig = show_images(samples_ten, nrow=k_ten, row_labels=list(CLASSES),
                  title=f"shipped ten-class DDPM: DDIM-50 samples (eta 1, w = 2), {meta_ten['steps']:,} steps")
save_figure(fig, "04_samples_ten_class")

# %% [markdown]
# With ten classes guidance has real work to do, and this small U-Net does it: cars and trucks
# in red and white against a road, ships on blue water, horses as brown silhouettes on grass,
# most of them recognisable at 32x32. The judge agrees: 52% of its guided samples are recognised
# as their class (chance 10%; real test images: 87.5%), against 29% of its unguided ones, so
# guidance nearly doubles the class signal and also lowers the FD, from 57 to 48. Both are far
# closer to the test images than chapter 03's ten-class CVAE (FD 132 at temperature 1, 14%). Cats, dogs, deer and
# birds are the hard classes here as in every CIFAR-10 model: similar shapes, varied poses, and
# still mostly fur-coloured blobs after 82 minutes of one CPU thread.
#
# ## 11. What does the network predict at each step?
#
# Drag $t$: the columns show $x_t$, the true noise, the network's prediction and the clean image
# it implies, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$.
# (Outside a Jupyter kernel, or with `CVAE_STATIC_WIDGETS=1`, a static table for several $t$ is
# shown instead.)

# %%
from cvae_lib.widgets import timestep_scrubber

val_x, val_y = next(val.batches(3, shuffle=True, seed=0))
timestep_scrubber(diffusion, eps_model, val_x, val_y.to(device))

# %% [markdown]
# At small $t$ the prediction of $\hat x_0$ is nearly perfect (little to undo); at large $t$ it
# is a blurry average of plausible images of the class, which is why sampling needs many steps:
# each step commits to a little more detail.
#
# ## What this chapter showed
#
# - The forward process has a closed form; training is noise regression at a random noise level.
# - Sampling undoes the noise step by step; DDIM does it in 50 steps instead of 1,000 with the
#   same network, and classifier-free guidance turns the class signal up or down.
# - A short run trains reliably if the samples come from an EMA whose horizon fits the run
#   (a too-long horizon is one way to get the study's "pure noise").
#
# Chapter 05 compares these samples with the CVAE's: quality, diversity, memorisation and cost.
