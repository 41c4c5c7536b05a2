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
# # 04 · Denoising diffusion: a VAE with a thousand latent layers
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/04_ddpm.ipynb)
#
# The study compared its CVAE with a DDPM (Ho et al. 2020) whose results "varied from plausible
# images to pure noise between runs". This chapter builds a DDPM piece by piece and shows that it
# is chapter 02's VAE of a special kind: the encoder is fixed (it only adds noise), there are a
# thousand latent layers of the image's own size, and the decoder removes the noise one layer at a
# time. Its ELBO, with the weights dropped, is the plain noise-regression loss everyone trains
# with. Then we sample faster (DDIM) and steer the class (classifier-free guidance).
#
# **You will**
# - write the forward process in closed form and compare noise schedules by their signal-to-noise ratio;
# - derive the forward posterior $q(x_{t-1} \mid x_t, x_0)$ and, from it, the reverse step of Ho et al.;
# - see the DDPM as a hierarchical VAE and follow its ELBO down to the loss $L_\text{simple}$;
# - train a small class-conditional U-Net, sample it with DDPM and with DDIM, and explain what $\eta$ does;
# - guide samples towards a class and explain with Bayes' rule why guidance works.
#
# **Prerequisites:** chapter 02 (the ELBO, the KL between two Gaussians) and chapter 03 (class
# conditioning, the study). Some algebra with Gaussians (products of Gaussian densities,
# completing the square).
#
# **Time to work through:** about 90 minutes. **Run time:** about 5 min on a laptop CPU (the `cpu` profile), about 2 min in the `smoke` profile; the long runs are shipped pretrained.
#
# Exercise: `exercises/ex04_ddpm.ipynb` (the forward process, the DDPM loss, one reverse step, the
# general DDIM update with $\eta$, and the whole guided sampling loop).

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
from cvae_lib.recipes import recipe
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
run = recipe("ddpm", P)    # this chapter's run in this profile: model, process, training, data, checkpoint
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
train, val = run.data.select(load_cifar10("train"))            # those classes, validation held out
print("train:", train, "\nvalidation:", len(val))

# %% [markdown]
# ## 2. The forward process: from an image to noise
#
# Inside the process, images live in $[-1, 1]$: `from_unit` maps our pixels from $[0, 1]$ there,
# by $2x - 1$. Diffusion destroys an image $x_0$ in $T$ small steps, each adding a little
# Gaussian noise of variance $\beta_t$ (the **noise schedule**; this $\beta_t$ has nothing to do
# with chapter 02's KL weight $\beta$, both names are standard):
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{\alpha_t}\, x_{t-1},\ \beta_t I\big), \qquad \alpha_t = 1-\beta_t .$$
#
# The factor $\sqrt{\alpha_t}$ shrinks the image a little so that the variance does not grow:
# $\mathrm{Var}(x_t) = \alpha_t \mathrm{Var}(x_{t-1}) + \beta_t$, which is 1 if $\mathrm{Var}(x_{t-1}) = 1$,
# and pixels in $[-1, 1]$ drift towards that, the variance of the pure noise at the end.
#
# Gaussians compose, so we can jump to any step at once. Write $\bar\alpha_t = \alpha_1 \alpha_2 \cdots \alpha_t$
# (so $\alpha_t \bar\alpha_{t-1} = \bar\alpha_t$) and suppose
# $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\, x_0 + \sqrt{1-\bar\alpha_{t-1}}\, \varepsilon'$ with $\varepsilon' \sim \mathcal N(0, I)$.
# One more step, with fresh noise $\varepsilon''$, gives
#
# $$x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{\beta_t}\, \varepsilon''
# = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{\alpha_t(1-\bar\alpha_{t-1})}\, \varepsilon' + \sqrt{\beta_t}\, \varepsilon'' ,$$
#
# and a sum of independent Gaussians is a Gaussian whose variances add:
# $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t = \alpha_t - \bar\alpha_t + 1 - \alpha_t = 1 - \bar\alpha_t$. So the form
# holds at $t$ if it holds at $t - 1$, and at $t = 0$ it holds trivially ($\bar\alpha_0 = 1$, no
# noise); by induction it holds for every $t$ (Ho et al. 2020, Eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big), \quad\text{i.e.}\quad
# x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,
# \qquad \varepsilon \sim \mathcal N(0, I), \qquad \bar\alpha_t = \prod_{s=1}^{t} \alpha_s .$$
#
# > **How we count $t$.** In every formula of this chapter $t$ runs from $1$ to $T$, as in Ho et
# > al.: $x_0$ is the clean image, $x_T$ is (almost) pure noise, and $\bar\alpha_0 = 1$. Python
# > counts from 0, so the library stores $\bar\alpha_t$ at `alpha_bar[t - 1]`, and its functions
# > take that index, `t - 1` in `0..T-1`. Figure labels use the formulas' $t$.
#
# The library keeps the schedule in a `Diffusion` object, apart from any network; `add_noise`
# is the jump above (exercise 04 builds it). The course's recipe, `DiffusionConfig.course(T)`,
# is Ho et al.'s linear schedule plus classifier-free guidance's null label (section 11).

# %%
from cvae_lib.diffusion import Diffusion, DiffusionConfig, from_unit, to_unit
from cvae_lib.plotting import save_figure, show_images

diffusion = Diffusion(run.process).to(device)                 # run.process: DiffusionConfig.course(T)
T = diffusion.T
print(f"T = {T} steps, {diffusion.cfg.schedule} schedule, beta_1 = {diffusion.beta[0]:.2e}, "
      f"beta_T = {diffusion.beta[-1]:.2e}, alpha_bar_T = {diffusion.alpha_bar[-1]:.1e}")
x0 = from_unit(train.images(4))                               # (4, 3, 32, 32) in [-1, 1]
ts = sorted({max(1, s * T // 1000) for s in (1, 50, 100, 200, 400, 700, 1000)})   # the formulas' t
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
rows = [diffusion.add_noise(x0, torch.full((4,), t - 1), eps) for t in ts]   # index t - 1; each (4, 3, 32, 32)
grid = torch.stack(rows, 1).flatten(0, 1)                     # (4, S, 3, 32, 32) -> (4S, 3, 32, 32)
fig = show_images(to_unit(grid), nrow=len(ts), col_labels=[f"t={t}" for t in ts],
                  title="x_t: the same images and noise at growing t")
save_figure(fig, "04_forward")

# %% [markdown]
# Each row is one image, each column a noise level, with the same $\varepsilon$ throughout. By
# $t \approx T/5$ the object is hard to make out, by $t \approx 2T/5$ it is gone, and at $t = T$
# nothing of the image is left (the cell printed $\bar\alpha_T$). A model that can undo one step
# at a time can therefore start from pure noise.
#
# ## 3. Schedules: linear and cosine
#
# Ho et al. let $\beta_t$ grow linearly from $10^{-4}$ to $0.02$. Nichol & Dhariwal (2021)
# noticed that this destroys information too early for small images and chose $\bar\alpha_t$
# directly, as a squared cosine. The **signal-to-noise ratio**
# $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$ (signal variance over noise variance in
# $x_t$) shows the difference best.
#
# **Predict:** the linear schedule adds noise at a rate that grows steadily with $t$. Where
# along $0..T$ do you expect signal and noise to be equally strong ($\mathrm{SNR}_t = 1$): in the
# first quarter, near the middle, or late? And will the cosine schedule cross earlier or later?
# Then run the next cell.

# %%
from cvae_lib.plotting import schedule_curves

cosine = Diffusion(DiffusionConfig(T=T, schedule="cosine"))
fig = schedule_curves({"linear (Ho et al.)": diffusion.alpha_bar, "cosine (Nichol & Dhariwal)": cosine.alpha_bar})
save_figure(fig, "04_schedules")
for name, d in [("linear", diffusion), ("cosine", cosine)]:
    print(f"{name}: SNR_t falls below 1 at t = {int((d.snr() < 1).nonzero()[0]) + 1} of {T}")

# %% [markdown]
# Left, the share of the signal left; right, the SNR on a log scale, where the dotted line is
# $\mathrm{SNR} = 1$. The linear schedule crosses it in the first third of the steps (the cell
# printed where), the cosine one near the middle. With the linear schedule the last part of the
# chain is almost pure noise, so many of its steps teach the network little; the cosine
# schedule spends its steps more evenly. We keep the linear schedule of the paper here;
# `schedule="cosine"` is one switch away.
#
# ## 4. Going back: the forward posterior
#
# To generate we must run the chain backwards, $x_T \to x_{T-1} \to \dots \to x_0$. The true
# reverse step $q(x_{t-1} \mid x_t)$ depends on the whole data distribution, so we cannot write
# it down. But **given the clean image** $x_0$ it is a Gaussian. By Bayes' rule and the Markov
# property ($x_t$ depends on $x_0$ only through $x_{t-1}$),
#
# $$q(x_{t-1} \mid x_t, x_0) \;\propto\; q(x_t \mid x_{t-1})\; q(x_{t-1} \mid x_0)
# \;\propto\; \exp\Big(-\frac{(x_t - \sqrt{\alpha_t}\, x_{t-1})^2}{2\beta_t}
# - \frac{(x_{t-1} - \sqrt{\bar\alpha_{t-1}}\, x_0)^2}{2(1-\bar\alpha_{t-1})}\Big).$$
#
# The exponent is quadratic in $x_{t-1}$, so the result is Gaussian. Collect the terms (per
# pixel): the $x_{t-1}^2$ terms give the precision, the linear terms the mean:
#
# $$\frac{1}{\tilde\beta_t} = \frac{\alpha_t}{\beta_t} + \frac{1}{1-\bar\alpha_{t-1}}
# = \frac{1-\bar\alpha_t}{\beta_t\,(1-\bar\alpha_{t-1})},
# \qquad
# \frac{\tilde\mu_t}{\tilde\beta_t} = \frac{\sqrt{\alpha_t}}{\beta_t}\, x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1-\bar\alpha_{t-1}}\, x_0 ,$$
#
# (using $\alpha_t(1-\bar\alpha_{t-1}) + \beta_t = 1 - \bar\alpha_t$, the identity of section 2), which is
# Ho et al.'s Eq. 6-7:
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(\tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),\qquad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\, x_0
# + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\, x_t,\qquad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t .$$
#
# Is the algebra right? The cell below simulates it for one pixel: a million runs of the forward
# chain from $x_0 = 0.5$ to step $t-1$ and one step further, then a straight-line fit of
# $x_{t-1}$ on $x_t$. For jointly Gaussian variables that fit *is* the conditional mean, and its
# residual variance is the conditional variance.

# %%
t = T // 2                                                    # a step in the middle (the formulas' t)
g = torch.Generator().manual_seed(0)
a, b, ab_prev, ab = (float(v[t - 1]) for v in (diffusion.alpha, diffusion.beta, diffusion.alpha_bar_prev, diffusion.alpha_bar))
pixel = torch.full((10**6, 1, 1, 1), 0.5, dtype=torch.float64)  # x_0: one pixel, a million copies
eps1, eps2 = torch.randn((2, 10**6, 1, 1, 1), generator=g, dtype=torch.float64)
x_prev = diffusion.add_noise(pixel, torch.full((10**6,), t - 2), eps1).flatten()   # x_{t-1}: index t - 2
x_t = math.sqrt(a) * x_prev + math.sqrt(b) * eps2.flatten()     # one more step, q(x_t | x_{t-1})
slope = torch.cov(torch.stack([x_prev, x_t]))[0, 1] / x_t.var()     # the fit: x_prev ~ slope * x_t + icpt
icpt = x_prev.mean() - slope * x_t.mean()
resid = (x_prev - slope * x_t - icpt).var()
print(f"t = {t}                simulated   formula")
print(f"coefficient of x_t   {slope:9.4f}   {math.sqrt(a) * (1 - ab_prev) / (1 - ab):9.4f}")
print(f"constant (x_0 = 0.5) {icpt:9.4f}   {math.sqrt(ab_prev) * b / (1 - ab) * 0.5:9.4f}")
print(f"variance             {resid:9.5f}   {(1 - ab_prev) / (1 - ab) * b:9.5f}   (beta_tilde_t)")

# %% [markdown]
# Simulation and formula agree to the precision a million samples allow.
#
# **Where the reverse step's mean comes from (Ho et al. Eq. 11).** At sampling time we do not know $x_0$; the network will guess it.
# Because $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$, guessing $x_0$ and
# guessing the noise $\varepsilon$ are the same thing: $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,
# \varepsilon)/\sqrt{\bar\alpha_t}$. Put this into $\tilde\mu_t$. The coefficient of $x_t$ becomes
# $\frac{\alpha_t(1-\bar\alpha_{t-1}) + \beta_t}{(1-\bar\alpha_t)\sqrt{\alpha_t}} = \frac{1}{\sqrt{\alpha_t}}$, and
# the mean reads
#
# $$\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon\Big).$$
#
# Ho et al. give the reverse model the same form with a network $\varepsilon_\theta(x_t, t)$ in place
# of the unknown $\varepsilon$ (their Eq. 11):
#
# $$p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t, t),\ \sigma_t^2 I\big),\qquad
# \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\Big),$$
#
# with a fixed variance, $\sigma_t^2 = \tilde\beta_t$ (what it would be if $x_0$ were known) or
# $\sigma_t^2 = \beta_t$; Ho et al. found both work about equally well. Why this choice of
# $\mu_\theta$ is the right one follows from the ELBO.
#
# ## 5. The DDPM is a hierarchical VAE
#
# Chapter 02 trained a VAE by maximising $\mathrm{ELBO}(x) = \mathbb E_{q(z|x)}[\log p(x \mid z)] -
# \mathrm{KL}(q(z \mid x)\,\|\,p(z))$. A DDPM is the same kind of model with the **latents**
# $z = (x_1, \dots, x_T)$:
#
# - the **encoder** is the forward process $q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$: fixed, no parameters;
# - the **prior** on the top latent is $p(x_T) = \mathcal N(0, I)$;
# - the **decoder** is the reverse chain $p_\theta(x_{0:T-1} \mid x_T) = \prod_t p_\theta(x_{t-1} \mid x_t)$, one shared network for every $t$.
#
# The ELBO is chapter 02's with $z = x_{1:T}$. Both chains factorise into their steps,
# $p_\theta(x_{0:T}) = p(x_T) \prod_t p_\theta(x_{t-1} \mid x_t)$ and $q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$, so
#
# $$-\mathrm{ELBO}(x_0) = \mathbb E_q\Big[-\log \frac{p_\theta(x_{0:T})}{q(x_{1:T} \mid x_0)}\Big]
# = \mathbb E_q\Big[-\log p(x_T) + \sum_{t=1}^{T} \log \frac{q(x_t \mid x_{t-1})}{p_\theta(x_{t-1} \mid x_t)}\Big].$$
#
# Three moves turn this into one term per layer:
#
# 1. For $t \ge 2$, rewrite each encoder step with Bayes' rule, conditioning on $x_0$ as well
#    (which changes nothing, by the Markov property):
#    $q(x_t \mid x_{t-1}) = q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0) / q(x_{t-1} \mid x_0)$. The step $t = 1$ stays as it is.
# 2. The ratios $q(x_t \mid x_0) / q(x_{t-1} \mid x_0)$ for $t = 2, \dots, T$ telescope: their logarithms sum
#    to $\log q(x_T \mid x_0) - \log q(x_1 \mid x_0)$, and the second term cancels the
#    $\log q(x_1 \mid x_0)$ of the step $t = 1$.
# 3. What is left pairs up. $\log q(x_T \mid x_0) - \log p(x_T)$ has the expectation
#    $\mathrm{KL}(q(x_T \mid x_0) \,\|\, p(x_T))$, the top layer against the prior ($L_T$); each
#    $\log q(x_{t-1} \mid x_t, x_0) - \log p_\theta(x_{t-1} \mid x_t)$, averaged over $x_{t-1}$, is a KL between
#    the forward posterior of section 4 and the decoder step ($L_{t-1}$); and $-\log p_\theta(x_0 \mid x_1)$ of
#    the step $t = 1$ remains ($L_0$).
#
# So the negative ELBO is a sum of one term per layer (Ho et al. 2020, Eq. 5):
#
# $$-\mathrm{ELBO}(x_0) = \underbrace{\mathrm{KL}\big(q(x_T \mid x_0)\,\|\,p(x_T)\big)}_{L_T}
# + \sum_{t=2}^{T} \underbrace{\mathbb E_q\,\mathrm{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1} \mid x_t)\big)}_{L_{t-1}}
# \;\underbrace{-\ \mathbb E_q \log p_\theta(x_0 \mid x_1)}_{L_0} .$$
#
# - $L_T$ is chapter 02's KL to the prior, but with nothing to learn: the encoder is fixed and
#   $\bar\alpha_T \approx 0$, so it is a constant close to 0.
# - $L_0$ is chapter 02's reconstruction term, for the last, nearly noise-free step.
# - Each $L_{t-1}$ compares the forward posterior of section 4 with the decoder step. With
#   $\sigma_t^2 = \tilde\beta_t$ both are Gaussians with the same variance, and the KL between two
#   such Gaussians is a squared distance of their means,
#   $\mathrm{KL} = \lVert\tilde\mu_t - \mu_\theta\rVert^2 / (2\sigma_t^2)$ (any other fixed $\sigma_t^2$
#   only adds a constant). With both means written in the $\varepsilon$ form above, only the noise
#   terms differ, $\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}(\varepsilon_\theta - \varepsilon)$, so
#
# $$L_{t-1} = \lambda_t\; \mathbb E_{x_0, \varepsilon}\big\lVert \varepsilon - \varepsilon_\theta(x_t, t)\big\rVert^2,
# \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}
# \quad\big(\text{Ho et al. Eq. 12}\big).$$
#
# So the ELBO asks the network to predict the noise, at every level $t$, with a weight
# $\lambda_t$. Ho et al. dropped the weights: sample $t$ uniformly and minimise
#
# $$L_\text{simple} = \mathbb E_{t, x_0, \varepsilon}\,\big\lVert \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t\big)\big\rVert^2,
# \qquad t \sim \mathrm{Uniform}\{1, \dots, T\}\quad(\text{Eq. 14}).$$
#
# It gave better samples (and a slightly worse likelihood). With $\sigma_t^2 = \tilde\beta_t$ the
# weight simplifies to $\lambda_t = \tfrac12\big(\mathrm{SNR}_{t-1}/\mathrm{SNR}_t - 1\big) \approx
# \tfrac12\,(\log \mathrm{SNR}_{t-1} - \log \mathrm{SNR}_t)$: the ELBO weighs each step by how much
# log-SNR it covers (Kingma et al. 2021 make this exact in continuous time). The next cell
# computes $\lambda_t$ for our schedule both ways (they agree), and the one after plots it against
# $L_\text{simple}$'s constant weight.

# %%
from cvae_lib.diffusion import beta_schedule

b = beta_schedule("linear", T)                                # beta_t for t = 1..T, in float64
a, ab = 1 - b, torch.cumprod(1 - b, 0)                        # alpha_t, alpha_bar_t
beta_tilde = (1 - ab[:-1]) / (1 - ab[1:]) * b[1:]             # sigma_t^2 for t = 2..T
lam = b[1:] ** 2 / (2 * beta_tilde * a[1:] * (1 - ab[1:]))    # Ho et al. Eq. 12, t = 2..T
snr = ab / (1 - ab)
print(f"the two forms of lambda_t agree up to {((lam - (snr[:-1] / snr[1:] - 1) / 2).abs() / lam).max():.0e}")
print(f"relative to the mean weight: lambda_2 {lam[0] / lam.mean():.1f}, the smallest {lam.min() / lam.mean():.2f} "
      f"(at t = {int(lam.argmin()) + 2}), lambda_T {lam[-1] / lam.mean():.2f}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3))
ax.semilogy(range(2, T + 1), lam / lam.mean(), label=r"ELBO: $\lambda_t$ / mean")
ax.semilogy(range(2, T + 1), torch.ones(T - 1), label=r"$L_\mathrm{simple}$: every $t$ alike")
ax.set_xlabel("t"), ax.set_title("how much each noise level counts"), ax.legend(), ax.grid(alpha=0.3)
save_figure(fig, "04_elbo_weights")

# %% [markdown]
# Both curves are scaled to the same average, so they show how each objective shares its
# attention among the noise levels. The ELBO's weight is U-shaped: very large on the first few
# steps, where $x_t$ is nearly clean and the noise to predict is a faint layer over the image's
# finest detail; smallest about a third of the way along the chain, where the objects and their
# shapes are decided; and rising again towards $t = T$ (the printed numbers give the extremes).
# $L_\text{simple}$ takes weight from the nearly clean steps and gives it to the noisier ones,
# where the objects and their shapes are decided.
#
# | | VAE (chapter 02) | DDPM (this chapter) |
# |---|---|---|
# | latents | one $z$, much smaller than $x$ | $x_1, \dots, x_T$, each the size of $x$ |
# | encoder $q$ | learned, $q_\phi(z \mid x)$ | fixed: add Gaussian noise, no parameters |
# | prior | $p(z) = \mathcal N(0, I)$ | $p(x_T) = \mathcal N(0, I)$ |
# | decoder | one step, $p_\theta(x \mid z)$ | $T$ steps $p_\theta(x_{t-1} \mid x_t)$, one shared network |
# | KL to the prior | trained, trades against reconstruction | $L_T$: a constant near 0 |
# | extra terms | none | $T-1$ KLs between Gaussians: weighted noise regression |
# | trained with | the ELBO | the ELBO with its weights dropped, $L_\text{simple}$ |
#
# What the fixed encoder buys: no encoder to train, no posterior collapse (the latents are
# noise-corrupted copies of the image, they cannot be ignored), and a decoder that only ever
# has to make a small step. What it costs: the latents compress nothing, and sampling needs
# many network calls. Chapter 06 gets the best of both by running diffusion in the small
# latent space of an autoencoder.
#
# ## 6. The loss in practice, and the label
#
# The network $\varepsilon_\theta(x_t, t, y)$ is a **U-Net** (section 7 gives its parts). Its shape
# is a U: a *down path* of convolutional blocks halves the resolution step by step (32x32, then
# 16x16, then 8x8) while adding channels, so that deeper layers see larger parts of the image; a
# *bottleneck* works at the lowest resolution; and an *up path* mirrors the down path, doubling
# the resolution back to 32x32. *Skip connections* hand each level's features from the down path
# to the same level of the up path, so that fine detail need not squeeze through the bottleneck.
# The output has the input's shape, $3 \times 32 \times 32$, because what the network predicts, the
# noise $\varepsilon$, is an image-sized tensor.
#
# Besides $x_t$, the network sees the step $t$ and the class $y$. For classifier-free guidance
# (section 11), the label is replaced by a "null" class (id 10, one more than CIFAR-10's
# classes) one time in ten, so the same network also learns the unconditional model. Exercise 04
# builds the loss $L_\text{simple}$; here we call the library's version on one batch of an
# untrained network.

# %%
from cvae_lib.models.unet import UNet, UNetConfig

model = UNet(run.model)    # UNetConfig.course: levels at 32, 16, 8; attention at 16; + null class
x, y = next(train.batches(8, seed=0))                         # x (8, 3, 32, 32) in [0, 1], y (8,)
loss = diffusion.train_loss(model, x, y)                      # maps x to [-1, 1], draws t, eps, drops labels
print(f"L_simple of the untrained network on one batch: {loss:.4f}")

# %% [markdown]
# An untrained network predicts roughly zero, so the loss starts near
# $\mathbb E[\varepsilon^2] = 1$.
#
# ## 7. The network: a small U-Net
#
# The denoiser is the U-Net of Ho et al., with the shape of section 6. Its parts: each block is
# a residual block (two convolutions whose output is added to the input) with GroupNorm (a
# normalisation over groups of channels); the step $t$ enters every block as a sinusoidal
# embedding (sines and cosines of $t$ at many frequencies, like a transformer's position code);
# self-attention at 16x16 lets distant pixels exchange information; and (our addition) a class
# embedding, with one extra row for the null class, is added to the step's. The paper's CIFAR-10
# network is much larger; ours is a small member of the same family.

# %%
n_ours = sum(p.numel() for p in model.parameters())
n_paper = sum(p.numel() for p in UNet(UNetConfig.paper()).parameters())
print(f"ours: {n_ours / 1e6:.2f}M parameters   Ho et al. CIFAR-10: {n_paper / 1e6:.2f}M")
print(model.cfg)

# %% [markdown]
# ## 8. Training, with an average of the weights for sampling
#
# Samples are drawn from an **exponential moving average** (EMA) of the weights,
# $\theta_\text{EMA} \leftarrow d\, \theta_\text{EMA} + (1-d)\, \theta$, which smooths out the
# noise of the last optimizer steps. Its horizon is about $1/(1-d)$ steps, and it matters:
# with the paper's $d = 0.9999$ (a horizon of $10^4$ steps) a run of a few hundred steps would
# still be mostly the *random initial* weights, and its samples would be pure noise. We use
# $d$ = `P.diffusion.ema_decay`, a horizon of a small fraction of the run.

# %%
from cvae_lib.train import EMA, load_or_train

ema = EMA(model, decay=run.ema_decay)                     # P.diffusion.ema_decay
tcfg = run.train                                          # a TrainConfig
print(tcfg)
history = load_or_train(model, diffusion.train_loss, train, tcfg, RUNS / run.checkpoint, val=val,
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
# The loss falls (in the `cpu` profile the curve has one point per epoch, so read its direction,
# not its shape). A diffusion loss is an average over all noise levels. At large $t$, $x_t$ is
# nearly the noise itself, so predicting $\varepsilon$ is easy and costs little; most of the
# remaining error sits at small $t$, where the noise is too faint to be told apart from image
# detail.
#
# ### The same recipe, trained longer
#
# A few CPU minutes are far too few steps for a diffusion model (the paper trained for 800,000
# steps of 128 images). So the course ships this U-Net, schedule and label drop, trained on
# airplanes and frogs for many more steps on a CPU, with a cosine learning-rate decay and a
# longer EMA. If it learned this profile's classes, the rest of the chapter samples from it; set
# `USE_SHIPPED = False` to sample from the model you just trained instead. Both draw from the
# same noise with the same sampler (DDIM with $\eta = 1$; sections 9 and 10 explain how sampling
# works, so for now just compare the images):

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
# Each row holds six samples of each class (airplanes, then frogs in the cpu profile), drawn by
# two networks of the same size trained with the same recipe; only the training time differs
# (compare the number of steps printed above with your run's). The top row, trained here for a
# few minutes, has learned the colours and textures of the data (greens, browns, sky blues) but
# no objects. The bottom row starts to draw them: several airplanes have a fuselage and wings
# against the sky, while the frogs are still mostly texture with now and then a blob. Colour
# comes first, shape much later. (If the cell printed that the shipped model learned other
# classes, there is no figure, and the rest of the chapter samples from your own run.)
#
# ## 9. Sampling: ancestral sampling (Algorithm 2)
#
# Start from $x_T \sim \mathcal N(0, I)$ and apply the decoder step of section 4 for
# $t = T, T-1, \dots, 1$:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}} \Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \varepsilon_\theta(x_t, t, y)\Big) + \sigma_t \xi, \qquad \xi \sim \mathcal N(0, I),
# \qquad \sigma_t^2 = \tilde\beta_t ,$$
#
# with no noise in the last step ($t = 1$, where $\tilde\beta_1 = 0$ anyway). That is $T$ network
# calls per batch. Exercise 04 builds one such step and the whole loop; here the library's
# `ddpm_sample` runs it. The library computes the mean in its $\hat x_0$ form (section 4's
# $\tilde\mu_t$ with the predicted $\hat x_0$, which is the same mean) and first clips $\hat x_0$
# to $[-1, 1]$, a standard safeguard against drifting out of the image range. (We write $\xi$ for
# the fresh noise of each step, to keep it apart from the $\varepsilon$ that the network predicts.)
# We draw the same images twice, with the clipping switched off and on; this cell only draws
# them, and the figure of section 10 shows them next to DDIM's samples.

# %%
n, T = P.diffusion.n_ddpm, diffusion.T                       # T of the model we sample from
y_plane = torch.full((n,), classes[0], device=device)       # the first class, e.g. airplane
no_clip = Diffusion(DiffusionConfig(**{**asdict(diffusion.cfg), "clip_x0": False})).to(device)
x_no_clip = no_clip.ddpm_sample(eps_model, n, y_plane, generator=torch.Generator(device).manual_seed(0))
t0 = time.perf_counter()
x_ddpm = diffusion.ddpm_sample(eps_model, n, y_plane, generator=torch.Generator(device).manual_seed(0))
seconds_ddpm = time.perf_counter() - t0
print(f"DDPM, {T} steps: {n / seconds_ddpm:.2f} images/s ({n} images)")
for name, xs in (("without clipping", x_no_clip), ("with clipping", x_ddpm)):   # pixels in [0, 1]
    print(f"{name:>16}: {float(((xs <= 0) | (xs >= 1)).float().mean()):.0%} of the pixel values saturated (at 0 or 1)")

# %% [markdown]
# ## 10. DDIM: the same network, far fewer steps
#
# Song et al. (2020) noticed that $L_\text{simple}$ only involves the marginals $q(x_t \mid x_0)$,
# never the individual steps. Many other noising processes share those marginals, and each gives
# a sampler for the *same* trained network. In general, from $x_t$ to any earlier step $t' < t$
# (write $\bar\alpha = \bar\alpha_t$, $\bar\alpha' = \bar\alpha_{t'}$):
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha}\;\hat\varepsilon}{\sqrt{\bar\alpha}},\qquad
# x_{t'} = \sqrt{\bar\alpha'}\;\hat x_0 + \sqrt{1-\bar\alpha'-\sigma^2}\;\hat\varepsilon + \sigma \xi,\qquad
# \sigma = \eta\,\sqrt{\frac{1-\bar\alpha'}{1-\bar\alpha}}\,\sqrt{1-\frac{\bar\alpha}{\bar\alpha'}}$$
#
# (Song et al. Eq. 12 and 16), with $\hat\varepsilon = \varepsilon_\theta(x_t, t, y)$ and fresh noise
# $\xi \sim \mathcal N(0, I)$. Read it as: predict the clean image, then re-noise it to the level
# of $t'$, partly with the predicted noise and partly with fresh noise of variance $\sigma^2$.
#
# - $\eta = 0$: no fresh noise. The sampler is **deterministic**: the starting noise $x_T$
#   fixes the image, and the steps can be large (10-100 instead of 1,000).
# - $\eta = 1$ and $t' = t-1$: $\sigma^2 = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t =
#   \tilde\beta_t$, and the update is exactly DDPM's ancestral step. With larger gaps, $\eta = 1$
#   is the ancestral sampler of a shorter chain with the same $\bar\alpha$'s.
#
# Exercise 04 builds this update. The library's `ddim_step` is it; the cell checks the second
# bullet on random tensors, one step with $\eta = 1$ against one DDPM step with the same $\xi$:

# %%
g = torch.Generator().manual_seed(0)
xt, eps_hat, xi = (torch.randn((2, 3, 32, 32), generator=g) for _ in range(3))
i = T // 2                                                    # a library index: the formulas' t = i + 1
x_ddim = diffusion.ddim_step(eps_hat, i, i - 1, xt, eta=1.0, noise=xi)
x_step = diffusion.step(eps_hat, i, xt, noise=xi)
print(f"DDIM (eta 1, one step back) against DDPM: largest difference {(x_ddim - x_step).abs().max():.1e}")

# %% [markdown]
# Which $k$ timesteps does DDIM visit? The library spaces them evenly from $T$ down to 1 and
# rounds; the gaps then need not all be equal, so each step goes to the *next listed* timestep
# $t'$, which keeps $x$ at exactly the noise level the network is asked about next.
#
# **Predict:** the next figure draws the same class from the same starting noise with DDPM (with
# and without clipping), with DDIM at $\eta = 0$ for several step counts, and with DDIM at
# $\eta = 1$. Which rows will look alike image by image? Which row is fastest, and by how much?
# Then run the next cell.

# %%
rows, labels, rates = [x_no_clip, x_ddpm], [f"DDPM {T}, no clip", f"DDPM {T}"], [math.nan, n / seconds_ddpm]
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
# steps against ~4 at 100 for the paper's model; FID is a distance between generated and real
# images that chapter 05 defines). The $\eta = 0$ rows resemble each other image by image: the
# starting noise *determines* the image.
#
# For a model trained on a CPU, compare the $\eta = 0$ rows with DDPM and with the last row
# ($\eta = 1$, which adds fresh noise at every step as DDPM does). With $\eta = 0$ nothing ever
# corrects the network's errors: a small bias in its noise predictions at large $t$ (where
# $\hat x_0$ divides by a tiny $\sqrt{\bar\alpha_t}$) is carried to the end, and the colours
# saturate. Fresh noise washes such errors out, so the stochastic samplers keep natural
# colours. The rest of the course samples with DDIM, 50 steps, $\eta = 1$: a choice made by
# looking at these samples, not at any test score.
#
# Look at the first two rows too: the same network and starting noise, without and with
# clipping (with `USE_SHIPPED = True`, the shipped network; the cell of section 9 printed how
# many of their pixel values ended saturated). Without clipping, small errors in the noise
# predictions are amplified wherever $\hat x_0$ divides by a small $\sqrt{\bar\alpha_t}$, carried
# from step to step over all $T$ steps, and can push the pixels out of range, as far as a flat
# black or white image, even for a network trained for much longer than yours. Clipping
# $\hat x_0$ to $[-1, 1]$ in every step, as the library does by default, keeps the chain on track:
# one cheap reason why a DDPM run can give "pure noise" or garbage while the network itself is
# fine. (With `USE_SHIPPED = False`, compare your own run's two rows the same way.)
#
# ## 11. Classifier-free guidance
#
# Because one label in ten was replaced by the null class, one network gives both the
# conditional prediction $\varepsilon_\theta(x_t, t, y)$ and the unconditional one
# $\varepsilon_\theta(x_t, t, \varnothing)$. Guidance extrapolates from the second towards the
# first (Ho & Salimans 2022):
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big).$$
#
# **Why it works, in one line of Bayes.** The **score** of a distribution $p(x)$ is the gradient of
# its log-density, $\nabla_x \log p(x)$: at every point, the direction in which the density rises
# fastest. A noise prediction is a scaled score:
# $\varepsilon_\theta(x_t, t, y) \approx -\sqrt{1-\bar\alpha_t}\;\nabla_{x_t} \log p(x_t \mid y)$
# (the best guess of $\varepsilon$ given $x_t$ points away from where the data is dense; this
# is denoising score matching, Vincent 2011), and with $\varnothing$ the same holds for $p(x_t)$.
# Bayes' rule, $p(x_t \mid y) \propto p(y \mid x_t)\, p(x_t)$, gives
# $\nabla \log p(x_t \mid y) = \nabla \log p(x_t) + \nabla \log p(y \mid x_t)$: the difference
# $\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)$ is
# $-\sqrt{1-\bar\alpha_t}\;\nabla \log p(y \mid x_t)$, the gradient of a classifier. So
#
# $$\tilde\varepsilon \approx -\sqrt{1-\bar\alpha_t}\;\big(\nabla \log p(x_t) + w\, \nabla \log p(y \mid x_t)\big)
# = -\sqrt{1-\bar\alpha_t}\;\nabla \log\big(p(x_t)\, p(y \mid x_t)^{w}\big).$$
#
# Guided sampling follows $p(x_t)\,p(y \mid x_t)^w$: the network's own implicit classifier
# $p(y \mid x_t)$, raised to the power $w$. $w = 0$ ignores the class, $w = 1$ is the plain
# conditional model, and $w > 1$ sharpens the classifier, pushing samples to where the class
# is unmistakable. A warning for reading papers: Ho & Salimans write the same formula as
# $(1 + w)\,\varepsilon_\theta(x_t, t, y) - w\,\varepsilon_\theta(x_t, t, \varnothing)$, so their $w$
# is ours minus one (their $w = 0$ is our $w = 1$). Ours is diffusers' `guidance_scale`.
# Exercise 04 puts guidance, the DDIM update and the loop over timesteps together into a whole
# guided sampler; here the library's `ddim_sample(..., guidance=w)` runs it.
#
# **Predict:** the next figure draws airplanes (the first class) with $w = 0, 1, 2, 4$ from the
# same noise in every row. How many of the $w = 0$ samples do you expect to look like the class?
# What happens to colour and to the variety within a row as $w$ grows? Then run the next cell.

# %%
from tqdm.auto import tqdm

scales = [0.0, 1.0, 2.0, 4.0]
g_rows = [diffusion.ddim_sample(eps_model, 8, torch.full((8,), classes[0], device=device), steps=50, eta=1.0,
                                guidance=w, generator=torch.Generator(device).manual_seed(1))
          for w in tqdm(scales, desc="guidance sweep")]
fig = show_images(torch.cat(g_rows), nrow=8, row_labels=[f"w={w:g}" for w in scales],
                  title=f"guidance for class {names[0]!r} (DDIM 50)")
save_figure(fig, "04_guidance")

# %% [markdown]
# Each column is one starting noise at four guidance scales. Much of each picture (the
# background colour, the layout) is set by the noise and barely changes down a column. What
# changes is the object: where the unguided sample ($w = 0$) is an ambiguous texture, larger $w$
# tends to draw a dark, elongated airplane silhouette into it, and at $w = 4$ contrast and
# saturation grow. Guidance can only amplify a difference the network has learned. Airplanes
# and frogs differ most in colour and background (sky against grass), which even a short run
# picks up; the shapes come later. With long training, $w = 0$ mixes the classes, larger $w$ commits each sample to its class,
# and very large $w$ gives saturated, less varied images: guidance trades diversity for
# fidelity.
#
# ## 12. Samples of each class
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
# Be honest about what you see. In the cpu profile these come from the shipped run: many
# airplanes are recognisable shapes, a fuselage and wings against the sky, while most frogs are
# still green-brown texture around a darker blob. The model you trained above in a few minutes
# (the first row of the comparison in section 8) gets each class's colours but no shape, only
# texture: the state in which the study's DDPM "produced noise". Its loss was already low,
# because at large $t$ predicting the noise is easy; a low loss says little about shapes, which
# are decided at middle noise levels and need far more steps: the paper trained for 800,000
# steps of 128 images (FID 3.17, Ho et al. 2020), and public reproductions reach FID ~9 after
# 47,000. Chapter 05 measures how far these samples are from
# real ones.
#
# ### All ten classes (shipped)
#
# Two classes are the easy case: guidance only has to tell sky from grass. The course also
# ships the same U-Net and recipe trained on the whole training split of all ten classes. Its
# file also records how the **judge** scores its samples, with plain conditioning ($w = 1$) and
# with guidance $w = 2$:
#
# > **The judge, FD and KID, in brief** (chapter 03 met the judge; chapter 05 defines all three
# > and tests them). The *judge* is the course's small CIFAR-10 classifier, trained on real images
# > only. **Class accuracy**: the share of samples drawn for class $y$ that it labels $y$ (chance
# > is one in ten; its accuracy on real test images is the reference). **FD**, the Fréchet
# > distance between Gaussians fitted to the judge's features of the samples and of the test
# > images, and **KID**, a kernel distance between the same features that is fairer at small
# > sample counts: lower is closer to real images, and both can be compared only between
# > numbers measured the same way.

# %%
from IPython.display import Markdown, display

from cvae_lib.plotting import markdown_table

meta_ten = read_metadata(shipped("ddpm_ten_class"))["metrics"]
print(f"shipped ten-class DDPM: {meta_ten['steps']:,} steps of {meta_ten['batch_size']} images "
      f"({meta_ten['train_seconds'] / 60:.0f} min on {meta_ten['threads']} CPU thread), held-out loss "
      f"{meta_ten['heldout_loss']:.4f} on {meta_ten['n_test']:,} test images; sampler {meta_ten['sampler']}")
cvae_ten = read_metadata(shipped("cvae_ten_class"))["metrics"]["judge"]      # chapter 03's ten-class CVAE
judge_acc = read_metadata(shipped("classifier"))["metrics"]["test_accuracy"]  # the judge on real test images


def score(name, s):   # one row of the table from a file's recorded judge scores
    return {"model": name, "judge accuracy": f"{s['acc']:.0%}", "FD": f"{s['fd']:.0f}", "KID": f"{s['kid']:.2f}",
            "samples": f"{s['n_eval']:,}"}


table = [score(f"ten-class DDPM, w = {float(w):g}", s) for w, s in meta_ten["judge"].items()]
lfm_ten = read_metadata(shipped("ldm_ten_class"))["metrics"]                 # chapter 07's ten-class generator
table += [score("chapter 03's ten-class CVAE", cvae_ten),
          score(f"chapter 07's latent flow matching, w = {lfm_ten['guidance']:g}",
                {**lfm_ten["judge"][str(lfm_ten["guidance"])], "n_eval": lfm_ten["n_eval"]}),
          {"model": "real test images", "judge accuracy": f"{judge_acc:.0%}", "FD": "n/a (the reference set)",
           "KID": "n/a", "samples": "all"}]
display(Markdown(markdown_table(table)))

# %% [markdown]
# Guidance nearly doubles the share of samples the judge recognises and lowers the FD, and
# both DDPM rows are far closer to the test images than chapter 03's CVAE. The row below the
# CVAE is a preview: chapter 07's generator, a flow-matching prior in chapter 06's latent space,
# scored with the same judge against the same test images. The real-images row
# has no FD or KID: the test images are the reference the other rows are measured against.
# (Other real images would not score 0 against them: chapter 05 measures that floor.) Now look
# at the samples themselves, with the same sampler as above, up to six per class:

# %%
ten = load_weights(shipped("ddpm_ten_class"), UNet, UNetConfig).to(device)        # checksum-verified
diffusion_ten = Diffusion(DiffusionConfig(**meta_ten["diffusion"])).to(device)
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
# most of them recognisable at 32x32. Cats, dogs, deer and birds are the hard classes here as
# in every CIFAR-10 model: similar shapes, varied poses, and still mostly fur-coloured blobs
# after the training time printed above.
#
# ## 13. What does the network predict at each step?
#
# Drag $t$: the columns show $x_t$, the true noise, the network's prediction and the clean image
# it implies, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}$.
# The slider is the library's index, `0..T-1` (the formulas' $t$ minus one). (Outside a Jupyter
# kernel, or with `CVAE_STATIC_WIDGETS=1`, a static table for several $t$ is shown instead.)

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
# - The forward process has a closed form, and given $x_0$ its reverse step is a Gaussian with
#   a known mean and variance; the network only has to guess the noise (or, equivalently, $x_0$).
# - A DDPM is a hierarchical VAE with a fixed encoder and $T$ latent layers. Its ELBO is a sum
#   of weighted noise-regression terms; dropping the weights gives $L_\text{simple}$.
# - Sampling undoes the noise step by step. DDIM ($\eta$ from 0 to 1) reuses the same network
#   with 50 steps instead of 1,000, and classifier-free guidance turns the class signal up or
#   down, by sharpening the network's implicit classifier.
# - A short run trains reliably if the samples come from an EMA whose horizon fits the run
#   (a too-long horizon is one way to get the study's "pure noise").
#
# Chapter 05 compares these samples with the CVAE's: quality, diversity, memorisation and cost.
