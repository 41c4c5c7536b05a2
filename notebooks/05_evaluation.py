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
# # 05 · An honest evaluation: where does a VAE stand against a diffusion model?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/05_evaluation.ipynb)
#
# The study judged its models by eye and by one number, an SSIM between generated and test
# images of about 0.999. This chapter measures the course's models properly: on the **test
# split**, against a row of real images, with the number of samples beside every number. Then
# it examines the study's SSIM, checks what the metrics reward, and asks what responsible use of
# an image generator involves.
#
# **You will**
# - define the **judge** (a small CIFAR-10 classifier shipped with the course) and the three
#   metrics built on it: class accuracy, the Frechet distance (FD) and the kernel distance (KID);
# - build **one table** over the course's models: parameters, training and sampling time,
#   bits/dim, reconstruction PSNR/SSIM, FD, KID, class accuracy;
# - show why an SSIM of about 0.999 between samples and test images cannot be right, and find the
#   likely mistake;
# - calibrate the judge on real images damaged in known ways;
# - check a generator for **memorisation** and per-class differences, and learn where CIFAR-10
#   comes from and how generated images can be labelled as generated.
#
# **Prerequisites:** chapters 01-04 (the autoencoder, the VAE and its bits/dim, the conditional
# VAE, DDPM with DDIM and guidance). Chapter 06's latent diffusion appears in the table as a
# preview: read its rows now or after chapter 06.
#
# **Time to work through:** about 60 minutes. **Run time:** about 7 min on a laptop CPU (the `cpu` profile) with the shipped models and whatever runs of chapters 01-06 you have, seconds in the `smoke` profile; training the missing runs first is optional (the cell that would do it prints its cost).
#
# Exercise: `exercises/ex05_frechet.ipynb` (the Frechet distance with its matrix square root, and KID).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
RETRAIN_OWN_RUNS = False   # True: first train the runs of chapters 01, 03, 04 and 06 that are missing

import time

import torch
from IPython.display import Markdown, display

from cvae_lib.data import CLASSES, load_cifar10
from cvae_lib.profiles import get_profile
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # where chapters 01-06 saved their models in this profile
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %% [markdown]
# ## 1. What we compare, on what
#
# The table has two kinds of rows. The **shipped** models were trained longer and come with the
# course. **Your own runs** are the models chapters 01, 03, 04 and 06 trained and saved in this
# profile's folder: if you ran those chapters, their rows
# appear; if not, they are marked "not run". The next cell says which are there. Setting
# `RETRAIN_OWN_RUNS = True` in the cell above trains the missing ones first (it prints how long
# that takes before it starts); running the chapters themselves does the same and lets you
# watch them train.

# %%
from cvae_lib.comparison import OWN_RUNS
from cvae_lib.course import own_runs

found = own_runs(OWN_RUNS, RUNS, retrain=RETRAIN_OWN_RUNS, profile=P)

# %% [markdown]
# Chapter 04's diffusion model only learned the classes in `P.diffusion.classes` (airplanes and
# frogs, the study's pair, in the cpu profile), so every model is judged on those classes:
# conditional samples of those classes against the **test** images of those classes. The test
# split was never used to train, tune or stop any model in the course.

# %%
names = list(P.diffusion.classes or CLASSES)
C = [CLASSES.index(c) for c in names]                         # class ids, e.g. [0, 6]
test = load_cifar10("test").subset(names, n_per_class=P.test_per_class, seed=0)
train = load_cifar10("train").subset(names)
x_test, y_test = test.images(), test.y                        # (N, 3, 32, 32) in [0, 1], (N,)
k = P.n_eval // len(C)                                        # samples per class and model
y_gen = torch.tensor(C).repeat_interleave(k)                  # the labels we ask each model for
print(f"classes {names}; {len(test)} test images; {len(y_gen)} samples per model ({k} per class)")

# %% [markdown]
# ## 2. The judge, FD and KID
#
# The standard score for generated images, **FID** (Heusel et al. 2017), compares generated and
# real images in the feature space of Inception-v3, a network trained on ImageNet. ImageNet
# features are not made for 32x32 images, and on a CPU the network is slow (each image is
# resized to 299x299 first). The course ships a small CIFAR-10 classifier instead, the
# **judge**, trained on the training split minus a held-out part; its file holds its config, its
# weights and the test accuracy it reached. Write $f(x) \in \mathbb R^D$ for its features of an image $x$ (the
# pooled activations before its last layer). Three metrics use it:
#
# - **Class accuracy**: the fraction of samples drawn for class $y$ that the judge assigns to
#   $y$. Does a sample drawn for "airplane" look like an airplane to a model that has only seen
#   real ones?
# - **FD, the Frechet distance**: fit a Gaussian $\mathcal N(\mu_g, \Sigma_g)$ to the features of
#   the samples and one, $\mathcal N(\mu_r, \Sigma_r)$, to the features of the test images, and
#   take the squared Frechet (2-Wasserstein) distance between the two Gaussians:
#   $$\mathrm{FD} = \lVert\mu_g-\mu_r\rVert^2 + \operatorname{tr}\Big(\Sigma_g+\Sigma_r-2\big(\Sigma_g^{1/2}\,\Sigma_r\,\Sigma_g^{1/2}\big)^{1/2}\Big).$$
#   The first term compares where the two clouds of features sit, the trace compares their
#   spread, so FD sees both quality and diversity. Lower is better. It is **biased upwards** at
#   small sample counts: $\Sigma_g$ and $\Sigma_r$ are estimated from $N$ points in $D$
#   dimensions, and their estimation noise adds to the distance. Compare FDs only at the same
#   $N$. With Inception's features in place of the judge's, this is FID.
# - **KID, the kernel distance** (Binkowski et al. 2018) assumes no Gaussian. It is the
#   **unbiased estimate of the squared maximum mean discrepancy** (MMD) between the two feature
#   sets, with the cubic polynomial kernel $k(a, b) = (a^\top b / D + 1)^3$. For sample features
#   $a_1, \dots, a_m$ and real features $b_1, \dots, b_n$:
#   $$\mathrm{KID} = \frac{1}{m(m-1)}\sum_{i \ne j} k(a_i, a_j) + \frac{1}{n(n-1)}\sum_{i \ne j} k(b_i, b_j) - \frac{2}{mn}\sum_{i, j} k(a_i, b_j).$$
#   Leaving out the $i = j$ terms is what makes it unbiased: its expected value is the true
#   $\mathrm{MMD}^2$, which is 0 when the two distributions are the same, at any sample size. So
#   a few hundred samples can be compared fairly, and two sets of real images score near 0
#   (a little below 0 is possible: an unbiased estimate of 0 scatters around it). The library
#   averages it over 10 random subsets of 100 features from each set. Lower is better.
#
# Exercise 05 builds both, the Frechet distance with its matrix square root and KID; this
# chapter calls the library's `frechet_distance` and `kid`.

# %%
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.train import infer
from cvae_lib.weights import load_weights, read_metadata, shipped

judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).to(device)
recorded = read_metadata(shipped("classifier"))["metrics"]
feats_test = infer(judge.features, x_test, device=device)                     # (N, D) pooled features
acc_here = float((infer(judge.head, feats_test, device=device).argmax(1) == y_test).float().mean())  # head: logits
print(f"judge: {sum(p.numel() for p in judge.parameters()) / 1e6:.2f}M parameters; recorded test accuracy "
      f"{recorded['test_accuracy']:.1%} on {recorded['n_test']} test images (all ten classes); "
      f"{acc_here:.1%} on our {len(test)} test images of {names}")

# %% [markdown]
# A judge that is right about 9 times in 10 on real images cannot certify a model to better
# than that, so read class accuracies against the judge's accuracy on real images (the "real
# images" row of the table), not against 100%.
#
# ## 3. The models
#
# | row | model | from |
# |---|---|---|
# | AE | the plain autoencoder (not generative: reconstruction only) | chapter 01 |
# | CVAE, study recipe | the study's architecture and BCE loss, full data | chapter 03 |
# | CVAE, improved for bits/dim | residual, spatial latent, mixture of logistics | chapter 03 |
# | CVAE, improved for samples | residual, vector latent, Gaussian likelihood | chapter 03 |
# | CVAE, shipped | the "improved for samples" recipe trained longer on these classes | shipped |
# | DDPM, chapter 04 run | the U-Net you trained in chapter 04 | chapter 04 |
# | DDPM, shipped | chapter 04's recipe trained longer on these classes | shipped |
# | DDPM, shipped, guided | the same, with classifier-free guidance $w = 2$ | |
# | DDPM, shipped, eta 0 | the same, with the deterministic DDIM sampler | |
# | LDM, chapter 06 run | a diffusion prior trained in chapter 06 on the latents of a shipped autoencoder (the "first stage") | chapter 06 |
# | LDM, chapter 06 run, guided | the same, with the guidance weight chosen for the shipped prior | |
# | LDM, shipped, guided | chapter 06's recipe trained longer, guided | shipped |
# | flow matching, chapter 07 run, guided | chapter 06's prior trained by flow matching instead | chapter 07 |
# | ten-class generator, shipped, guided | chapter 07's flow-matching generator of all ten classes | shipped |
#
# The shipped CVAE and DDPM learned the same classes on the same kind of machine, but not for
# the same time: the next cell prints each shipped model's training minutes, recorded in its
# file, and the table repeats them, so weigh every comparison against them. The shipped rows
# appear when the shipped files learned this profile's classes. Every VAE draws $z$ from its prior
# $\mathcal N(0, I)$ at temperature 1 (no tuning); every diffusion model samples with DDIM in
# `P.diffusion.ddim_steps[1]` steps (50 in the cpu profile) with $\eta = 1$, the
# stochastic variant chapter 04 chose by eye, and every flow-matching model (chapter 07) with as
# many Euler steps. One row shows the deterministic $\eta = 0$ for the
# shipped DDPM, so you can see what that choice is worth. `load_lineup` loads them all and
# builds each row's sampler with a fixed seed.

# %%
from cvae_lib.comparison import load_lineup

steps = P.diffusion.ddim_steps[1]
lineup = load_lineup(P, RUNS, device, steps, names)
print(*lineup.shipped, sep="\n")
print(f"{len(lineup.entries)} rows here; not run yet: {'; '.join(lineup.missing) or 'none'}")

# %% [markdown]
# ## 4. Sampling
#
# Each generative model draws the same labels `y_gen`, with a fixed seed, and we time it on
# this machine. A VAE needs one decoder call per image; a DDPM needs one U-Net call per
# sampling step (twice that with guidance).

# %%
from tqdm.auto import tqdm

samples, sample_seconds = {}, {}
for name, entry in tqdm([(n, e) for n, e in lineup.entries.items() if e.draw], desc="sampling"):
    t0 = time.perf_counter()
    samples[name] = entry.draw(y_gen).float().cpu().clamp(0, 1)               # (n, 3, 32, 32) in [0, 1]
    sample_seconds[name] = (time.perf_counter() - t0) / len(y_gen)

# real images the judge never trained on: the part of the training split its training held
# out, the same classes and count as the samples
_, judge_val = load_cifar10("train").subset().split(100)
samples["real images (held out)"] = judge_val.subset(names, n_per_class=min(k, 100), seed=0).images()

# %% [markdown]
# **Predict:** which rows will look most like airplanes and frogs: the VAEs, the pixel DDPMs or
# the latent diffusion models? Will guidance help? Then run the next cell.

# %%
from cvae_lib.plotting import save_figure, show_images

n_show = min(k, 8)
grid = torch.cat([s.view(len(C), -1, 3, 32, 32)[:, :n_show].flatten(0, 1) for s in samples.values()])
fig = show_images(grid, nrow=n_show * len(C), row_labels=list(samples),
                  title=f"{n_show} samples per class ({', '.join(names)}), same labels for every model")
save_figure(fig, "05_samples")

# %% [markdown]
# Each row is one model, the first half of it drawn for the first class, the second half for
# the second. The VAE rows are smooth, blurry averages: colours and a rough layout of the class
# (sky around a shape, green-brown ground), no edges. The diffusion rows have edges and texture,
# and the guided rows look more clearly like their class. Keep your own ranking in mind and
# compare it with the numbers below.
#
# ## 5. The table
#
# For every model we compute what is defined for it:
#
# - **test bits/dim** for models with a likelihood over pixel levels (the improved CVAEs; the
#   study's BCE is not one, see chapter 03; a DDPM's bound needs all $T$ steps per image and is
#   left out here);
# - **reconstruction PSNR / SSIM** of test images for models with an encoder;
# - **FD**, **KID** and **class accuracy** of the samples, by the judge, against the test images;
# - **FID** in the gpu profile: Inception-v3 sees each image resized to 299x299, and on a CPU it
#   manages only a few images per second. In the cpu profile the judge's FD stands in for it,
#   and `CVAE_FID=1` turns FID on (about 5 more minutes, plus about 5 the first time).
#
# The next cell sets FID up, the one after it computes the reconstructions, and then each row
# is filled by `table_row`.

# %%
from cvae_lib.metrics import MissingWeightsError, cached_inception_features, fid, inception_weights

fid_ok = P.fid
if fid_ok:
    try:
        inception_weights()                                                    # local file, never a download
    except MissingWeightsError as e:
        fid_ok = False
        print(f"FID skipped: {e}")
else:
    print(f"FID skipped in the {P.name} profile (Inception at 299x299 is slow on a CPU; CVAE_FID=1 turns it on)")
t_fid = time.perf_counter()
fid_ref = cached_inception_features(x_test, RUNS / "fid") if fid_ok else None   # the test images, once per machine
fid_seconds = time.perf_counter() - t_fid

# %%
recon = {name: e.reconstruct(x_test, y_test) for name, e in lineup.entries.items() if e.reconstruct}

# %%
from cvae_lib.metrics import frechet_distance, kid, psnr, ssim
from cvae_lib.models.cvae import cvae_loss
from cvae_lib.train import evaluate

verdicts = {}   # name -> (the judge's predicted classes, the labels asked for), for section 8


def sample_scores(name: str) -> dict:
    """FD, KID and class accuracy of a row's samples (and FID where it is on)."""
    global fid_seconds
    x = samples[name]
    feats = infer(judge.features, x, device=device)
    y_true = y_gen if name != "real images (held out)" else torch.tensor(C).repeat_interleave(len(x) // len(C))
    pred = infer(judge.head, feats, device=device).argmax(1)                      # logits from the same features
    verdicts[name] = (pred, y_true)
    out = {"FD (judge)": round(frechet_distance(feats, feats_test), 2), "KID": round(kid(feats, feats_test)[0], 3),
           "class acc": f"{float((pred == y_true).float().mean()):.0%}"}
    if fid_ok:
        t_fid = time.perf_counter()
        out["FID"] = round(fid(fid_ref, x), 1)
        fid_seconds += time.perf_counter() - t_fid
    return out


# %%
def table_row(name: str) -> dict:
    """Every column defined for this row; n/a where it is not (or where its run is missing)."""
    e = lineup.entries.get(name)
    row = {"model": f"{name}: not run (chapter {lineup.missing[name]})" if name in lineup.missing else name,
           "params (M)": round(e.params / 1e6, 2) if e else None, "train (min)": round(e.minutes, 1) if e else None,
           "sample (ms/img)": round(1000 * sample_seconds[name], 1) if name in sample_seconds else None,
           "test bits/dim": None, "PSNR (dB)": None, "SSIM": None,
           "FD (judge)": None, "KID": None, "class acc": None, "FID": None}
    if e is not None and e.bits_per_dim:
        bpd = evaluate(e.network, cvae_loss, test).get("bpd")
        row["test bits/dim"] = round(bpd, 3) if bpd is not None else None
    if name in recon:
        row["PSNR (dB)"] = round(float(psnr(x_test, recon[name]).mean()), 2)
        row["SSIM"] = round(float(ssim(x_test, recon[name]).mean()), 3)
    if name in samples:
        row.update(sample_scores(name))
    return row


# %%
from cvae_lib.plotting import markdown_table, save_table

rows = [table_row(name) for name in [*lineup.order, "real images (held out)"]]
note = (f"Profile `{P.name}`, device {device}. Classes {', '.join(names)}; {len(test)} test images; "
        f"{len(y_gen)} samples per generative model ({k} per class), seed 0; DDPM rows use DDIM with {steps} "
        f"steps (eta 1 unless the row says otherwise). FD and KID use the course classifier's features (samples vs the test images); class acc is "
        f"its verdict on the samples. Training times are this machine's, as recorded in each checkpoint. "
        f"LDM rows: latent diffusion (chapter 06), guided rows with w = {lineup.guidance_ldm} (chosen on training images); their "
        f"params and PSNR/SSIM include the shipped first stage (reconstructions through it), their training "
        f"minutes are the prior's only: the first stage was trained once, {lineup.first_stage_minutes:.0f} "
        f"CPU minutes, and is shared.")
if fid_ok:
    note += (f" FID: Inception-v3 pool features, {len(y_gen)} samples per model against the {len(test)} test "
             f"images (biased upwards at this N: published CIFAR-10 FIDs use 50,000); it took "
             f"{fid_seconds / 60:.1f} min here.")
if lineup.missing:
    note += (f" Rows marked 'not run': that chapter's model is not in {RUNS}; run the chapter, or set "
             f"RETRAIN_OWN_RUNS = True in the first cell.")
save_table(rows, "05_evaluation", note)
display(Markdown(markdown_table(rows) + "\n" + note))


# %%
def best(column: str, prefix: str = "", lowest: bool = False) -> str:
    """The row (of those whose model name starts with `prefix`) with the best value in `column`."""
    scored = [r for r in rows if r["model"].startswith(prefix) and r[column] is not None]
    if not scored:
        return "no row yet"
    r = (min if lowest else max)(scored, key=lambda r: r[column])
    return f"**{r['model']}** ({r[column]})"


display(Markdown(f"In this table: the best test bits/dim is {best('test bits/dim', lowest=True)}; the best "
                 f"reconstructions (PSNR, dB) are {best('PSNR (dB)')}, and among the CVAEs {best('PSNR (dB)', 'CVAE')}."))

# %% [markdown]
# How to read it:
#
# - **The real-images row is the floor.** Two sets of real images of the same classes do not
#   give FD 0 at this sample size: FD is biased upwards when it is estimated from few samples.
#   Only compare FDs computed with the same number of samples, and compare them with this row.
#   KID is unbiased, so it is near 0 for real images.
# - **Bits/dim, reconstructions and samples measure different things.** The line under the
#   table names the best model by bits/dim and by reconstruction in your run: they need not be
#   the same model, and neither need draw the most convincing samples. A likelihood rewards
#   covering every test image a little, not drawing any image well (chapter 03).
# - **FID mostly agrees with the judge's FD on the order, not on the scale.** With
#   `CVAE_FID=1` in the cpu profile the models come out in nearly the same order, but at 200
#   samples even real held-out images score an FID of about 100, so only differences from that
#   row mean anything, and published CIFAR-10 FIDs (50,000 samples) are not comparable.
# - **Time is part of the answer.** A VAE samples in a fraction of a millisecond per image; a
#   DDPM needs `steps` network calls per image. Compare the training minutes too: the shipped
#   DDPM had far more of them than any model trained in the notebooks.
#
# ## 6. The study's SSIM, examined
#
# The study reported an SSIM between its generated images and test images of about 0.999
# (0.9987 for airplanes, 0.9997 for frogs). SSIM (Wang et al. 2004) compares two images'
# local means, contrasts and correlations, window by window, and is 1 only for identical
# images. A generated airplane is a new image, not a copy of any test airplane, so its SSIM
# with a test image should be about what two **different** real airplanes get.
#
# **Predict:** what SSIM do two different test images get? A sample and its nearest training
# image? A test image and itself with one grey level of noise added? Then run the next cell.

# %%
from cvae_lib.metrics import nearest_neighbours

best_ddpm = next(n for n in ("DDPM, shipped, guided", "DDPM, chapter 04 run") if n in samples)
x_gen = samples[best_ddpm]
g = torch.Generator().manual_seed(0)
rand_test = x_test[torch.randint(len(x_test), (len(x_gen),), generator=g)]      # random test partners
other_test = x_test[torch.randperm(len(x_test), generator=g)]                    # test vs other test images
pool = train.x.float() / 255                                                    # the training images of our classes
x_nn = pool[nearest_neighbours(x_gen, pool)[1][:, 0]]                          # each sample's nearest training image
noisy = (x_test + torch.randn(x_test.shape, generator=g) / 255).clamp(0, 1)     # +- 1 grey level of noise

# %%
pairs = {"sample vs random test image": (x_gen, rand_test),
         "test image vs another test image": (x_test, other_test),
         "sample vs its nearest training image": (x_gen, x_nn),
         "test image vs itself + 1/255 noise": (x_test, noisy)}
ssim_rows = [{"pair": name, "n": len(a), "SSIM": round(float(ssim(a, b).mean()), 4),
              "SSIM with data_range=255 on [0, 1] images": round(float(ssim(a, b, data_range=255).mean()), 4)}
             for name, (a, b) in pairs.items()]
display(Markdown(markdown_table(ssim_rows)))
save_table(ssim_rows, "05_ssim", f"Profile `{P.name}`; samples from {best_ddpm}.")

# %% [markdown]
# The `SSIM` column answers the prediction. Samples against random test images, two different
# test images, even a sample against its nearest training image: all far from 1. An SSIM of about
# 0.999 is what an image gets against **a nearly identical copy of itself** (the last row). So
# the study's figures cannot come from comparing independent samples with test images: either
# the images compared were (almost) the same, or the computation was wrong.
#
# The last column shows the most likely mistake. With $\mu$, $\sigma^2$ the local means and
# variances and $\sigma_{xy}$ the local covariance,
#
# $$\mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)\,(2\sigma_{xy} + C_2)}{(\mu_x^2 + \mu_y^2 + C_1)\,(\sigma_x^2 + \sigma_y^2 + C_2)}, \qquad C_1 = (0.01\,L)^2,\ C_2 = (0.03\,L)^2,$$
#
# where $L$ is the range of the pixel values. The constants only keep the ratios stable near
# zero. Give SSIM $L = 255$ (the default for 8-bit images) while the images are floats in
# $[0, 1]$, and $C_1 \approx 6.5$ and $C_2 \approx 58.5$ dwarf every mean product ($\le 1$) and
# variance ($\le 0.25$): both ratios become nearly 1 for **any** pair of images. That is the last
# column: every pair, related or not, lands close to 1, where the study's figures lie. A metric
# is only evidence if it can tell a good model from a bad one: check it on a pair that should
# score badly before you trust it on a pair that scores well.
#
# ## 7. Calibration: what does the judge reward?
#
# Before trusting a metric on samples, look at what it does to images whose flaws we know. We
# take the test images and damage them in known ways: Gaussian noise, strong JPEG compression,
# a slight blur, and reconstructions through three autoencoders (chapter 01's, the shipped VAE
# of chapter 02, and the first stage of chapter 06's latent diffusion). For each: the PSNR
# against the original, the judge's class accuracy on all of them, and the FD of `P.n_eval` of
# them against all test images (the sample count of the table above).
#
# **Predict:** which costs the judge more accuracy, JPEG at quality 25 or a 3x3 blur? Which has
# the higher PSNR?

# %%
# Helpers: two kinds of damage whose effect on an image we know.
import io

import numpy as np
import torch.nn.functional as F
from PIL import Image


def blur(x: torch.Tensor) -> torch.Tensor:
    """3x3 binomial blur ([1, 2, 1] x [1, 2, 1] / 16), reflecting at the border: (N, 3, H, W) -> same."""
    k = torch.tensor([1.0, 2.0, 1.0])
    w = (k[:, None] * k[None] / 16).expand(3, 1, 3, 3)             # one kernel per channel
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w, groups=3)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image through Pillow's JPEG encoder at `quality` and back: (N, 3, H, W) in [0, 1]."""
    out = []
    for a in (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():   # (H, W, 3) uint8
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=quality)
        out.append(torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1))
    return torch.stack(out).float() / 255


# %%
from cvae_lib.metrics import judge_scores
from cvae_lib.models.vae import VAE, VAEConfig

vae_shipped = load_weights(shipped("vae_cpu"), VAE, VAEConfig).to(device)
noise = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(0))
damaged = {"test images themselves": x_test,
           "Gaussian noise, sd 0.06": (x_test + 0.06 * noise).clamp(0, 1),
           "JPEG, quality 25": jpeg(x_test, 25),
           "3x3 binomial blur": blur(x_test),
           "AE reconstructions (chapter 01 run)": recon.get("AE"),
           "VAE reconstructions (shipped, chapter 02)": infer(vae_shipped.reconstruct, x_test, device=device),
           "first stage reconstructions (chapter 06)": lineup.reconstruct_first(x_test, y_test)}
damaged = {name: x for name, x in damaged.items() if x is not None}   # the AE row needs chapter 01's run

# %%
n_fd = min(P.n_eval, len(x_test))
spread = torch.linspace(0, len(x_test) - 1, n_fd).long()   # evenly over the class-sorted test set
calibration = []
for name, x in damaged.items():
    acc = judge_scores(judge, x, y_test, feats_test)["acc"]
    fd = judge_scores(judge, x[spread], y_test[spread], feats_test)["fd"]    # every class, like the samples
    calibration.append({"images": name, "PSNR (dB)": None if x is x_test else round(float(psnr(x_test, x).mean()), 1),
                        "class acc": f"{acc:.1%}", f"FD ({n_fd} vs {len(x_test)})": round(fd, 1)})
display(Markdown(markdown_table(calibration)))
save_table(calibration, "05_calibration", f"Profile `{P.name}`; {len(x_test)} test images of {', '.join(names)}.")

# %% [markdown]
# PSNR and the judge disagree. Noise and JPEG artefacts cost many decibels and almost no
# accuracy; a blur that keeps a higher PSNR costs much more. The plain autoencoder and the VAE,
# trained on pixel error, produce blurry reconstructions that the judge no longer recognises,
# although their PSNR is similar to the JPEG row's. Like FID's Inception network, the judge
# reads edges and textures, and pixel losses do not keep those. This is why chapter 06's first
# stage adds an **adversarial** term (a second network, the discriminator, learns to tell its
# reconstructions from real images, and the autoencoder learns to fool it; chapter 06 explains),
# and why its reconstructions keep most of the judge's accuracy. Every latent diffusion sample is
# drawn by that decoder, so the judge's accuracy on its reconstructions is a useful reference
# for them, a rough ceiling rather than a strict one: guided samples can score above it
# (chapter 06 explains why). (If your copy of CIFAR-10 came from a folder of JPEG files, as the
# course's offline copy does, the test images themselves carry JPEG artefacts, so the first row
# is not free of them either.)
#
# ## 8. Responsible generation
#
# The study closed with ethical considerations: privacy and data use, bias, misuse. Each has a
# concrete form for the models of this course, and two of them can be measured with the tools
# above.
#
# **Where the data come from.** CIFAR-10 (Krizhevsky 2009) is a hand-labelled subset of the
# **80 Million Tiny Images** collection (Torralba, Fergus & Freeman 2008): 32x32 images gathered
# automatically from web image searches for the nouns of WordNet, without asking the people who
# made or appear in them. In 2020 its authors withdrew 80 Million Tiny Images after Prabhu &
# Birhane (2020) showed that it contained offensive labels (slurs taken over from WordNet) and
# offensive images. CIFAR-10's ten harmless classes were checked by people and the data set is
# still distributed, but its images come from the same scrape. Every model in this course has
# learned from them, and a generator can give back what it learned.
#
# **Memorisation and training-data extraction.** Carlini et al. (2023) generated many images
# from diffusion models, including ones they trained on CIFAR-10, and found among them
# near-exact copies of training images: they extracted training data from the models, and the
# diffusion models memorised more than GANs trained on the same data (generative adversarial
# networks: a generator trained against a discriminator, the adversarial idea of section 7). For a model trained on
# photographs of people, that is a privacy leak. The course's check is simple: find each
# sample's nearest training image (pixel distance), and compare those distances with the same
# distances for **test** images, which by construction were not copied from the training set.

# %%
import matplotlib.pyplot as plt

d_gen, nn_idx = nearest_neighbours(x_gen, pool)                     # (n, 1): distance, index of the nearest
d_test, _ = nearest_neighbours(x_test[:len(x_gen)], pool)
fig, ax = plt.subplots(figsize=(6, 3))
ax.hist(d_test[:, 0].numpy(), bins=30, alpha=0.6, label=f"test images (n={len(d_test)})")
ax.hist(d_gen[:, 0].numpy(), bins=30, alpha=0.6, label=f"{best_ddpm} samples (n={len(d_gen)})")
ax.set_xlabel("L2 distance to the nearest training image"), ax.set_ylabel("count"), ax.legend()
fig.tight_layout()
save_figure(fig, "05_nn_distances")
print(f"distance to the nearest training image, median (smallest): samples {d_gen[:, 0].median():.2f} "
      f"({d_gen[:, 0].min():.2f}), test images {d_test[:, 0].median():.2f} ({d_test[:, 0].min():.2f})")
n_nn = min(8, len(x_gen))
fig = show_images(torch.cat([x_gen[:n_nn], pool[nn_idx[:n_nn, 0]]]), nrow=n_nn,
                  row_labels=["sample", "nearest training image"], title="memorisation check")
save_figure(fig, "05_nearest_neighbours")

# %% [markdown]
# If the samples had been memorised, their distances would pile up near 0, well left of the
# test images'. In the cpu profile they do not: the two histograms overlap, and the samples'
# median is only a little smaller, which smoother images get anyway (a blurry image is close,
# in pixels, to many images). The pairs share a layout and colours (sky around a dark shape, a
# green-brown field), not the object itself. A network this small, trained this briefly, cannot
# store thousands of training images. Memorisation becomes a real risk for large models trained
# long on small data sets, or on images that appear many times in the data, and this is the
# check to run then (Carlini et al. compare images tile by tile and keep the worst tile, since
# plain pixel distance calls two images close when they share a large plain background).
#
# **Per-class quality.** A class-conditional generator can be good on average and poor on one
# class. The judge's accuracy per class, for every row of the table:

# %%
per_class = [{"images": name, **{c: f"{float((p[t == i] == i).float().mean()):.0%}" for c, i in zip(names, C)}}
             for name, (p, t) in verdicts.items()]
display(Markdown(markdown_table(per_class)))

# %% [markdown]
# Compare the columns within each row, and each row with the real-images row (the judge's own
# per-class errors). Where a model's gap between classes is much larger than the judge's, the
# generator serves one class worse than another: fewer or more varied training images of that
# class, or a class whose look is harder to learn. With airplanes and frogs that is harmless;
# when the classes are people's skin tones, ages or genders, the same gap is a bias that the
# average hides, which is why an evaluation should report it per group.
#
# **Misuse and provenance.** A generator that draws convincing images can draw convincing false
# ones: deepfakes of real people, invented events, forged documents. Two defences work on the
# images themselves. An invisible **watermark** embedded at generation time can be detected
# later by whoever holds the key (Stable Diffusion's reference code adds one; Google's SynthID
# is another), but editing, cropping or re-compressing can weaken it. **Content credentials**
# (the C2PA standard) attach a signed record to the file: which tool made or edited it, and
# when; it survives only as long as the metadata is kept, and its absence proves nothing.
# Neither tells a true image from a false one; they let honest producers label what they made.
# Our 32x32 airplanes and frogs are harmless, but the pipeline of this course (data, training,
# sampling, evaluation) is the pipeline of the large generators, and these questions belong in
# its evaluation too.
#
# ## 9. Conclusion
#
# Your run, in a few lines: the best row of each kind of model by FD, with its training time,
# and what the two shipped diffusion models cost to train.

# %%
def best_row(prefix: str) -> dict | None:
    """The row of a model family with the lowest FD (None if no such row has samples)."""
    scored = [r for r in rows if r["model"].startswith(prefix) and r["FD (judge)"] is not None]
    return min(scored, key=lambda r: r["FD (judge)"], default=None)


lines = [f"- **{r['model']}**: FD {r['FD (judge)']}, KID {r['KID']}, class accuracy {r['class acc']}"
         + (f", {r['train (min)']} training minutes" if r["train (min)"] is not None else "")
         for r in map(best_row, ("CVAE", "DDPM", "LDM", "real images")) if r is not None]
e = lineup.entries
if "DDPM, shipped" in e and "LDM, shipped, guided" in e:   # the shipped models' recorded training times
    prior_min, first_min = e["LDM, shipped, guided"].minutes, lineup.first_stage_minutes
    lines.append(f"- training minutes: the shipped pixel DDPM {e['DDPM, shipped'].minutes:.0f}; the shipped latent "
                 f"diffusion model {prior_min:.0f} for its prior + {first_min:.0f} for its first stage = "
                 f"{prior_min + first_min:.0f}")
display(Markdown("\n".join(lines)))

# %% [markdown]
# - **Measure on the test split, with a reference.** Every number here comes with its sample
#   count and a real-image row. Without the row, an FD of a few units means nothing.
# - **The study's SSIM is not evidence of quality**: values of about 0.999 arise when SSIM is given
#   the wrong data range, whatever the images.
# - **Likelihood, reconstruction and samples rank models differently.** The line under the
#   table names the winners of bits/dim and of reconstruction in your run, and in the cpu
#   profile every DDPM row beats every CVAE row on the judge's FD, KID and class accuracy. Which
#   is "better" depends on what you need.
# - **At a similar training time the diffusion model still wins on samples.** In the cpu
#   profile the DDPM of chapter 04 (a few CPU minutes) beats the shipped CVAE (about ten) on all
#   three sample metrics, and more training (the shipped DDPM) and guidance improve it further.
#   The price is sampling: 50 U-Net calls per image, hundreds of times slower than one decoder
#   call.
# - **The VAE and the diffusion model work best together.** Latent diffusion (chapter 06), a
#   diffusion prior over an adversarially trained autoencoder's latents, gives the best sample
#   rows: the shipped, guided model reaches about the judge's accuracy on its first stage's
#   reconstructions (section 7). It also cost more: counting both stages, it trained for far
#   more CPU minutes than the shipped pixel DDPM (the last line above). Chapter 06's own
#   few-minute prior beats chapter 04's own few-minute DDPM.
# - **Everything generated is still far from real.** Compare the best generated row with the
#   real-images row above: these are minutes of CPU training, and the gpu profile exists to
#   close that gap.
# - **Generators carry their data.** Where the images came from, whether a sample copies one,
#   and whether every class is served equally are part of an evaluation, not an afterthought.
# - **What the study asked**: a VAE gives a likelihood, an encoder and instant samples; a
#   diffusion model gives more class-faithful samples for more compute. The table, with its
#   sample counts and training times, is the answer for this machine; run the notebook in
#   another profile and read your own table before you trust these sentences.
#
# Next: `exercises/ex05_frechet.ipynb`, then chapter 06.
