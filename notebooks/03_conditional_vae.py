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
# # 03 · The study's conditional VAE, reproduced and then beaten
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/03_conditional_vae.ipynb)
#
# A **conditional** VAE (Sohn et al., 2015) models $p(x \mid y)$: here $y$ is the CIFAR-10 class,
# so we can ask for "a frog". This chapter rebuilds the CVAE of the student study this course is
# built around (Linköping University, TDDE70) with its own settings, reruns its experiments
# (airplanes only, frogs only, 1 image per class, 100 per class, full data), looks critically at
# how it sampled, adds the validation set and early stopping it asked for, and then trains an
# improved recipe for the same wall-clock time and compares them on the test split.
#
# | profile | measured run time (2 shared CPU cores) | what it trains |
# |---|---|---|
# | smoke | 22 s (`make course`, with one other job on the 2 cores; 12 s idle before the ten-class CVAE's grids and explorers) | tiny models, a few steps: proves the notebook runs |
# | cpu | 7.2 and 6.5 min (434 s and 391 s, two clean fp32 `CVAE_AMP=off make course` runs on an idle 2-core Intel Xeon VM) | seven short runs of 15 s to 1.3 minutes, the study-budget models and the ten-class CVAE loaded, then the evaluation on all 10,000 test images |
# | gpu | estimated, not measured: 5.8 min on a T4 (`python -m cvae_lib.compute`) | the study's model: 100 epochs per one-class run, 200 on 100 per class, 20 on all classes |
#
# Exercise: `exercises/ex03_conditional_vae.ipynb` (label conditioning, the class grid).

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

from cvae_lib.data import CLASSES, ImageSet, load_cifar10
from cvae_lib.profiles import get_profile
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import run_dir

P = get_profile()          # CVAE_PROFILE: smoke | cpu | gpu (read once, here)
device = pick_device()
seed_everything(0)
RUNS = run_dir(P.name)     # checkpoints of this profile
print(f"profile {P.name!r} on {device}; checkpoints in {RUNS}")

# %%
train_all, val = load_cifar10("train").split(n_val_per_class=P.val_per_class, seed=0)
test = load_cifar10("test").subset(n_per_class=P.test_per_class, seed=0)
print("train:", len(train_all), " validation:", len(val), " test:", len(test))

# %% [markdown]
# ## 1. The study's model
#
# - **Encoder**: 3 stages, each the four-convolution bottleneck block of Very Deep VAEs
#   (Child, 2021: 1x1, 3x3, 3x3, 1x1 convolutions with GELU) *without* its residual connection,
#   then 2x downsampling; two MLP heads give $\mu$ and $\log \sigma^2$ of a 128-number $z$.
# - **Conditioning**: the label goes through an embedding and an MLP, and the result $c(y)$ is
#   weighted and added to the latent: $z_c = z + w\, c(y)$. The encoder does not see $y$.
# - **Decoder**: mirrors the encoder with upsampling; **loss**: BCE + KL; **training**: Adam,
#   learning rate $10^{-3}$, batch size 46.
#
# `CVAEConfig()`'s defaults are exactly this model.

# %%
from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.train import TrainConfig, load_or_train

study_cfg = CVAEConfig(width=P.cvae.width)
print(study_cfg)
print(f"{sum(p.numel() for p in CVAE(study_cfg).parameters()) / 1e6:.2f}M parameters")


def study_training(size, **overrides) -> TrainConfig:
    """The study's optimiser settings; the run length comes from the profile's RunSize."""
    return TrainConfig(**{"epochs": size.epochs, "batch_size": 46, "lr": 1e-3, "optimizer": "adam",
                          "max_steps": size.max_steps, **overrides})

# %% [markdown]
# One thing to notice before training. Without residual connections, a signal passing through
# the twelve plain convolutions of the decoder shrinks at PyTorch's default initialisation. How
# much does the untrained decoder's output depend on its input $z$?

# %%
for residual in (False, True):
    m = CVAE(CVAEConfig(width=P.cvae.width, residual=residual)).eval()
    z = torch.randn(8, m.cfg.latent_dim)
    with torch.no_grad():
        out = m.decode(z, torch.zeros(8, dtype=torch.long))     # (8, 3, 32, 32) logits
    print(f"residual={residual!s:5}: spread of the output over 8 different z: {out.std(0).mean():.1e}")

# %% [markdown]
# With the study's plain blocks the output is, at the start, practically the same for every
# $z$: the first updates must come from the biases, and training starts slowly. This is the
# problem residual connections (and careful initialisation) were invented for. We keep the
# study's design for the reproduction.
#
# ## 2. The study's experiments
#
# ### One class: airplanes only, frogs only
#
# The study trained on the 5,000 images of one class. (Our runs are much shorter than its
# 200 epochs; the profile says how long.)

# %%
from cvae_lib.plotting import loss_curves, save_figure, show_images

one_class = {}
for name in ("airplane", "frog"):
    one_class[name] = CVAE(study_cfg)
    data = train_all.subset(classes=[name], n_per_class=P.cvae_one_class.train_per_class)
    h = load_or_train(one_class[name], cvae_loss, data, study_training(P.cvae_one_class),
                      RUNS / f"cvae_study_{name}.pt", device=device)
    print(f"{name}: {len(data)} images, {len(h)} epochs, {h.seconds:.0f} s")

g = torch.Generator().manual_seed(0)
rows = [one_class[n].sample(torch.full((10,), CLASSES.index(n)), generator=g).cpu() for n in one_class]
fig = show_images(torch.cat(rows), nrow=10, row_labels=list(one_class), title="one-class CVAEs, z ~ N(0, I)")
save_figure(fig, "03_one_class")

# %% [markdown]
# Grey-blue and grey-green blobs: each model has learned the average colour layout of its
# class (sky around planes, vegetation around frogs) and little else. That is what the
# study's figures showed too.
#
# #### The same two experiments at the study's budget
#
# The course ships both trained as the study trained them: 200 epochs over the class's 4,900
# training images (`tools/train_study.py airplane`, `... frog`; about an hour each on one CPU
# thread). Laid out like the study's figures: ten test images of the class, then ten samples
# with the normal prior the KL term trained towards, then ten with the study's uniform noise
# $z \sim U[0, 1)$, all with the same seed.

# %%
from cvae_lib.train import evaluate
from cvae_lib.weights import load_weights, read_metadata, shipped

study_budget = {}        # experiment -> the shipped model trained at the study's budget
for name in ("airplane", "frog"):
    study_budget[name] = load_weights(shipped(f"study_{name}"), CVAE, CVAEConfig).to(device)   # float16 file
    meta = read_metadata(shipped(f"study_{name}"))["metrics"]
    print(f"{name}: {meta['epochs']} epochs ({meta['steps']:,} steps of {meta['batch_size']}), "
          f"{meta['train_seconds'] / 60:.0f} min on {meta['threads']} CPU thread; -ELBO per dimension (BCE) "
          f"on its {meta['n_test']:,} test images {meta['test_loss']:.4f} (the short run above: "
          f"{evaluate(one_class[name], cvae_loss, test.subset([name]))['loss']:.4f}); KL {meta['test_kl']:.1f} nats")
    real = test.subset([name], n_per_class=10, seed=0).images()
    y = torch.full((len(real),), CLASSES.index(name))
    rows = [real] + [study_budget[name].sample(y, noise=noise, generator=torch.Generator().manual_seed(0)).cpu()
                     for noise in ("normal", "uniform")]
    fig = show_images(torch.cat(rows), nrow=len(real), row_labels=["test images", "z ~ N(0, I)", "z ~ U[0, 1)"],
                      title=f"{name}s only, the study's 200 epochs")
    save_figure(fig, f"03_{name}_study")

# %% [markdown]
# Compare the rows. The test images are sharp and varied: planes against sky, on runways, in
# close-up. With the normal prior, the study-budget airplane model draws blurred but varied
# scenes: a dark or light elongated shape across the middle, on sky-blue, grey or ground-coloured
# backgrounds. Unlike the short run above it does use $z$ (the KL printed above is well above
# zero for airplanes), so different $z$ give different layouts. These are the "class-shaped blobs" the study
# described; no sample would pass for a photograph. The uniform row is paler and nearly the same
# image ten times: $U[0, 1)$ has mean 1/2 and a twelfth of the prior's variance, so it feeds the
# decoder one narrow, off-centre corner of the latent space it was trained on.
#
# The frog model, same recipe and same budget, went the other way: its KL is 0.0 nats, the
# posterior collapsed, and every sample is the same brown-green blob, the average frog image,
# whatever the noise. Which of the two a run ends in is decided early, when the decoder either
# learns to read $z$ or learns to ignore it (the plain blocks of section 1 make reading it hard),
# and nothing in the study's recipe (no KL warm-up, no free bits) steers it. The study saw blobs
# in both; its uniform noise made them look even more alike.
#
# ### One image per class: memorisation
#
# With 10 training images the model can store each one. (We repeat the 10 images 46 times so
# that an epoch has several batches; the images seen are the same.)

# %%
tiny = train_all.subset(n_per_class=P.cvae_one_per_class.train_per_class, seed=0)   # 10 images
tiny_rep = ImageSet(tiny.x.repeat(46, 1, 1, 1), tiny.y.repeat(46))                 # (460, 3, 32, 32)
one_per_class = CVAE(study_cfg)
h_one = load_or_train(one_per_class, cvae_loss, tiny_rep, study_training(P.cvae_one_per_class),
                      RUNS / "cvae_study_1_per_class.pt", device=device)
samples = one_per_class.sample(tiny.y, generator=torch.Generator().manual_seed(1)).cpu()
fig = show_images(torch.cat([tiny.images(), samples]), nrow=10, row_labels=["training", "samples"],
                  col_labels=[CLASSES[k] for k in tiny.y.tolist()], title=f"1 image per class ({h_one.seconds:.0f} s)")
save_figure(fig, "03_one_per_class")

# %% [markdown]
# Given enough steps the samples converge to the training image of their class, whatever $z$
# is: the label alone identifies the image, so the decoder can ignore $z$. A generator that
# reproduces its training data has learned nothing about the class. (With the short
# cpu-profile run you see blurred versions of them.)
#
# ### 100 images per class, with a validation set
#
# The study listed "a validation set with early stopping" as an improvement. Here it is: we
# train on 100 images per class and watch the loss on 100 *other* images per class after every
# epoch. `early_stopping=3` stops when the validation loss has not improved for 3 epochs and
# restores the best weights.

# %%
hundred = train_all.subset(n_per_class=P.cvae_hundred_per_class.train_per_class, seed=0)
model_100 = CVAE(study_cfg)
h100 = load_or_train(model_100, cvae_loss, hundred, study_training(P.cvae_hundred_per_class, early_stopping=3),
                     RUNS / "cvae_study_100_per_class.pt", val=val, device=device)
fig = loss_curves(h100, title=f"100 images per class: -ELBO / dim (best epoch {h100.best_epoch})")
save_figure(fig, "03_hundred_curve")
print(f"{len(h100)} epochs, stopped early: {h100.stopped_early}, best epoch: {h100.best_epoch}")

# %% [markdown]
# The gap between the curves is the point: the loss on the 1,000 training images falls below
# the loss on 1,000 images the model has not seen, and when the training loss keeps improving
# while the validation loss does not, the model is learning *those images* rather than the
# classes: **overfitting**, and the moment to stop. Early stopping restores the weights of the
# best validation epoch. (In the short cpu-profile run the study's plain-block model hardly gets
# past the average image of each class, so both curves are nearly flat and the stopping
# decision rests on small differences; the study's 200 epochs, or the gpu profile, go much
# further into overfitting.)
#
# ### The same experiment at the study's budget
#
# The course ships this experiment trained as the study trained it: the same 1,000 images, 200
# epochs of 22 steps, no validation set and no early stopping (`tools/train_study.py
# hundred_per_class`; the file records how long it took). Ten samples per class, one row per
# class, first with the normal prior, then with the study's uniform noise:

# %%
study_100 = load_weights(shipped("study_hundred_per_class"), CVAE, CVAEConfig).to(device)   # float16 file
m100 = read_metadata(shipped("study_hundred_per_class"))["metrics"]
print(f"study budget: {m100['epochs']} epochs ({m100['steps']:,} steps of {m100['batch_size']}), "
      f"{m100['train_seconds'] / 60:.0f} min on {m100['threads']} CPU thread; -ELBO per dimension (BCE) "
      f"on its training images {m100['final_train_loss']:.4f}, on all {m100['n_test']:,} test images "
      f"{m100['test_loss']:.4f}")
print(f"the run above: {len(h100)} epochs; on the same test images {evaluate(model_100, cvae_loss, test)['loss']:.4f}")
y_rows = torch.arange(10).repeat_interleave(10).to(device)
for noise in ("normal", "uniform"):
    x = study_100.sample(y_rows, noise=noise, generator=torch.Generator().manual_seed(0)).cpu()
    fig = show_images(x, nrow=10, row_labels=CLASSES, title=f"100 images per class, 200 epochs: z ~ {noise}")
    save_figure(fig, f"03_hundred_study_{noise}")

# %% [markdown]
# Every row is one image, ten times over: at the study's own budget its model has collapsed
# completely. The KL term the file records is 0.0 nats per image, so $q(z \mid x)$ equals the
# prior and the decoder ignores $z$; what it draws for a label is the average of that class's
# 100 training images (blue sky around a grey plane, green-brown around frogs), the same for
# normal and for uniform noise, since $z$ no longer matters. The study describes class-shaped
# blobs, which is what this is. Training longer did not make the model use its latent space; it
# only fitted the training images' average a little better than the test images' (compare the
# two losses printed above). Section 4 trains models that do use $z$.
#
# ### The study's SSIM, both ways
#
# The study scored its samples with an SSIM between generated and test images: 0.99872 for
# airplanes and 0.99969 for frogs. We compute it for each study-budget model the way it most
# likely did (samples from the uniform noise it used, each paired with a test image of its
# class, and scikit-image's `data_range=255` on images in [0, 1], the mistake chapter 05
# explains) and correctly (`data_range=1`). The 1-per-class experiment is this chapter's own
# run: at the study's budget it is not shipped (it would not fit the 60 MB of `checkpoints/`).
# Up to 100 pairs per class.

# %%
from IPython.display import Markdown, display

from cvae_lib.metrics import ssim
from cvae_lib.plotting import markdown_table

STUDY_SSIM = {"airplane": 0.99872, "frog": 0.99969}      # the study's reported values


def study_ssim(model, data, per_class: int = 100) -> dict:
    """SSIM between a uniform-noise sample and a test image of the same class, for up to
    `per_class` test images per class of `data`."""
    data = data.subset(n_per_class=per_class, seed=0)
    x = model.sample(data.y.to(device), noise="uniform", generator=torch.Generator().manual_seed(0)).cpu()
    real = data.images()
    return {"pairs": len(real), "SSIM, data_range=255 (the study's likely call)": round(float(ssim(x, real, 255).mean()), 5),
            "SSIM, data_range=1 (correct)": round(float(ssim(x, real).mean()), 4)}


ssim_rows = [{"experiment": f"{name}s only", "training": "200 epochs (shipped)",
              **study_ssim(m, test.subset([name])), "the study": STUDY_SSIM[name]} for name, m in study_budget.items()]
ssim_rows.append({"experiment": "1 image per class", "training": f"this chapter's run ({len(h_one)} epochs)",
                  **study_ssim(one_per_class, test), "the study": None})
ssim_rows.append({"experiment": "100 images per class", "training": "200 epochs (shipped)",
                  **study_ssim(study_100, test), "the study": None})
display(Markdown(markdown_table(ssim_rows)))

# %% [markdown]
# With `data_range=255` every experiment scores between 0.99 and 1, like the study's 0.9987 and
# 0.9997, whatever its samples look like (the collapsed frog model, one blob for every test
# frog, scores as high as the airplane model that varies its samples): the constants $C_1 = (0.01 \cdot 255)^2$ and $C_2 = (0.03 \cdot 255)^2$ are
# thousands of times larger than any mean or variance of pixels in [0, 1], so the formula
# returns almost exactly 1 for any two images. Computed correctly, a blob against a real
# photograph of the same class scores far from 1 (chapter 05 shows what honest values look
# like). The study's SSIM measured its call to scikit-image, not its samples.
#
# ### Full data
#
# All 49,000 training images (1,000 are held out for validation), the study's settings.

# %%
study = CVAE(study_cfg)
h_study = load_or_train(study, cvae_loss, train_all, study_training(P.cvae),
                        RUNS / "cvae_study_full.pt", val=val, device=device)
print(f"study recipe, full data: {len(h_study)} epochs in {h_study.seconds:.0f} s")

# %% [markdown]
# ## 3. Sampling: one class per column, and the study's uniform noise
#
# A 10x10 grid: each column is one class, each row one $z$, shared across the row, so moving
# along a row changes only the label. The study fed the decoder **uniform** noise $U[0, 1)$;
# the prior the KL trained towards is $\mathcal N(0, I)$. Both grids use the same model.

# %%
y_grid = torch.arange(10).repeat(10)                         # (100,) labels 0..9 in every row
grids = {}
for noise in ("normal", "uniform"):
    z = study.prior_noise(10, noise, torch.Generator().manual_seed(0))       # (10, Z): one z per row
    z = z.repeat_interleave(10, dim=0)                                     # (100, Z): same z along a row
    grids[noise] = study.sample(y_grid, z=z).cpu()
    fig = show_images(grids[noise], nrow=10, col_labels=CLASSES, title=f"study's CVAE, z ~ {noise}")
    save_figure(fig, f"03_grid_{noise}")

# %% [markdown]
# Why they differ: $U[0, 1)$ has mean $\tfrac12$ and standard deviation $0.29$ in every
# dimension. So a uniform $z$ sits in one corner of the latent space (all 128 coordinates
# positive), at distance about $\sqrt{128/3} \approx 6.5$ from the origin, where the codes of
# real images, spread like $\mathcal N(0, I)$ with length about $\sqrt{128} \approx 11$, almost
# never are. The decoder only ever learned to decode codes near the prior, so uniform noise
# gives images that vary less from row to row and are all shifted in the same direction: every
# row looks like the same "average" image in the class's colours. With normal noise, the rows
# differ as much as training codes do.

# %% [markdown]
# The argument assumes a decoder that uses $z$. Check how many nats per image the study's
# model actually stores in $z$ (its KL on the validation set): a KL near 0 means posterior
# collapse, the decoder ignores $z$, and then both grids are identical. Short runs of the
# study's plain-block model stay there (section 1's vanishing signal), so we repeat the
# comparison on a model that does use $z$.

# %%
print(f"study's model: KL {h_study['val_kl'][-1]:.1f} nats per image on the validation set")
z_u = study.prior_noise(2000, "uniform").cpu()
z_n = study.prior_noise(2000, "normal").cpu()
print(f"length of z: uniform {z_u.norm(dim=1).mean():.1f}, normal {z_n.norm(dim=1).mean():.1f}; "
      f"mean coordinate: uniform {z_u.mean():.2f}, normal {z_n.mean():.2f}")
print(f"spread of the images across rows: uniform {grids['uniform'].reshape(10, 10, -1).std(0).mean():.3f}, "
      f"normal {grids['normal'].reshape(10, 10, -1).std(0).mean():.3f}")

# %% [markdown]
# ### The same grids from a model that uses $z$, trained on all ten classes
#
# The course ships one: section 4's "improved for samples" recipe (residual blocks, an encoder
# that sees the label, a Gaussian likelihood, KL warm-up), trained by `tools/train_cvae.py` on
# all 49,000 training images of the ten classes for 12 epochs on one CPU thread
# (`checkpoints/cvae_ten_class.safetensors`, width 24 so that it fits the repository in
# float16). One change: the Gaussian's $\sigma$ is 0.3, not 0.1. At $\sigma = 0.1$ the
# reconstruction term is worth so much that $z$ stores nearly everything about an image,
# including its class; the decoder then has no reason to read the label, and a first ten-class
# run (16 epochs) drew samples the course classifier assigned to their class 10.4% of the
# time, chance level. A larger $\sigma$ makes $z$ cheaper to leave out, so the label has to carry
# the class. The file's metadata records chapter 05's judge metrics: 2,000 samples at
# temperature 1, 200 per class, scored by the course classifier against all 10,000 test
# images. Same grids, same seed:

# %%
ten = load_weights(shipped("cvae_ten_class"), CVAE, CVAEConfig).to(device)   # float16 file, checksum-verified
meta_ten = read_metadata(shipped("cvae_ten_class"))["metrics"]
judged = meta_ten["judge"]
print(f"shipped ten-class CVAE: {meta_ten['epochs']} epochs ({meta_ten['steps']:,} steps of "
      f"{meta_ten['batch_size']}), {meta_ten['train_seconds'] / 60:.0f} min on {meta_ten['threads']} CPU thread; "
      f"test bits/dim {meta_ten['test_bpd']:.3f} on {meta_ten['n_test']:,} images")
print(f"judge on {judged['n_eval']:,} samples: class accuracy {judged['acc']:.1%} (chance 10%), "
      f"FD {judged['fd']:.1f}, KID {judged['kid']:.2f}")
ten_grids = {}
for noise in ("normal", "uniform"):
    z = ten.prior_noise(10, noise, torch.Generator().manual_seed(0)).repeat_interleave(10, dim=0)
    ten_grids[noise] = ten.sample(y_grid, z=z).cpu()
    fig = show_images(ten_grids[noise], nrow=10, col_labels=CLASSES,
                      title=f"shipped ten-class CVAE, z ~ {noise}")
    save_figure(fig, f"03_grid_ten_class_{noise}")
print(f"spread of the images across rows: uniform {ten_grids['uniform'].reshape(10, 10, -1).std(0).mean():.3f}, "
      f"normal {ten_grids['normal'].reshape(10, 10, -1).std(0).mean():.3f}")

# %% [markdown]
# Here the rows differ: $z$ decides the layout (where the bright and dark masses sit), and the
# label, along a row, mostly shifts colour and background: bluer for airplanes and ships,
# greener and browner for birds, deer and frogs. That is how much of the class a VAE of this
# size learns in 40 CPU minutes, and the judge agrees: 14% of its samples are recognised as
# their class (chance 10%; the first run at $\sigma = 0.1$, which ignored the label, 10.4%).
# With uniform noise every row is the same washed-out image (the spread across rows drops about
# fourfold), exactly the study's sampling mistake.
#
# ### Same $z$, another class; and a walk between two images
#
# Pick a class: the sliders move $z$ along the main directions of the posterior means of test
# images, and the dropdown decodes the same $z$ as another class. A collapsed model would give
# sliders that change nothing, so the explorers use the shipped ten-class model.

# %%
from cvae_lib.widgets import interpolation_explorer, latent_explorer

x_probe, y_probe = test.images(500), test.y[:500]
mu_test = torch.cat([ten.encode(x.to(device), y.to(device))[0].cpu()
                     for x, y in zip(x_probe.split(250), y_probe.split(250))])      # (500, Z)
latent_explorer(lambda z, y: ten.decode_mean(z.to(device), y.to(device)), mu_test, class_names=CLASSES)

# %%
label = torch.tensor([int(test.y[0])])
interpolation_explorer(lambda x: ten.encode(x.to(device), label.expand(len(x)).to(device))[0],
                       lambda z: ten.decode_mean(z.to(device), label.expand(len(z)).to(device)),
                       test.images(20))

# %% [markdown]
# ## 4. Beating the study
#
# What the study's recipe leaves on the table, and what we change:
#
# | | study | improved for bits/dim | improved for samples |
# |---|---|---|---|
# | likelihood | BCE (not a distribution over pixel levels) | mixture of 5 coupled discretised logistics | discretised Gaussian, $\sigma = 0.1$ |
# | blocks | plain | residual | residual |
# | latent | vector, 128 | **spatial**, 8 channels on an 8x8 grid | vector, 128 |
# | encoder sees $y$ | no | yes | yes |
# | KL | plain | warm-up | warm-up |
#
# The bits/dim recipe is trained for **the same wall-clock time** as the study's full-data run
# above, on this machine: we time a few steps of each and set its number of steps accordingly.

# %%
import time


def seconds_per_step(model, batch_size: int, n: int = 5) -> float:
    """Wall-clock seconds of one training step (forward, backward, Adam) on this machine,
    in the channels-last memory layout that `fit` uses."""
    m = CVAE(model.cfg).to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = train_all.images(batch_size).to(device).contiguous(memory_format=torch.channels_last)
    y = train_all.y[:batch_size].to(device)
    for i in range(n + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss, _ = cvae_loss(m, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / n


steps_study = h_study.steps                                # optimizer steps the study's run took
bpd_cfg = CVAEConfig(width=P.cvae.width, residual=True, spatial=True, n_stages=2, latent_dim=8,
                     likelihood="logistic_mixture", n_mix=5, condition_encoder=True,
                     kl_warmup_steps=steps_study // 8)
bs = 32
ratio = seconds_per_step(CVAE(study_cfg), 46) / seconds_per_step(CVAE(bpd_cfg), bs)
per_epoch = max(1, round(steps_study * ratio / P.cvae.epochs))
print(f"the study's run took {steps_study} steps; the bits/dim recipe gets {per_epoch * P.cvae.epochs} "
      f"steps of {bs} images in the same time (measured step-time ratio {ratio:.2f})")

# %%
improved = CVAE(bpd_cfg)
h_improved = load_or_train(improved, cvae_loss, train_all,
                           TrainConfig(epochs=P.cvae.epochs, batch_size=bs, lr=2e-3, max_steps=per_epoch,
                                       hflip=True, grad_clip=100.0),
                           RUNS / "cvae_improved_bpd.pt", val=val, device=device)
print(f"training time: study {h_study.seconds:.0f} s, improved {h_improved.seconds:.0f} s")

# %% [markdown]
# ### The comparison, on the test split
#
# The improved model reports its negative ELBO in bits/dim directly. The study's BCE model has
# no bits/dim, so we give it the fairest one we can: we read its decoder's mean image as the
# centre of a discretised Gaussian and pick the single $\sigma$ that fits best **on the
# validation set** (the RMS error, which is the maximum-likelihood $\sigma$), then compute the
# negative ELBO on the test set with it. Reconstructions are
# the decoder's mean at $z = \mu$; PSNR and SSIM compare them with the test images.

# %%
from cvae_lib.data import from_unit
from cvae_lib.metrics import bits_per_dim, psnr
from cvae_lib.models import likelihoods as L


@torch.no_grad()
def study_bpd(model, data, sigma: float, seed: int = 0) -> float:
    """-ELBO in bits/dim of `model` with p(x|z, y) = discretised N(decoder mean, sigma^2)."""
    torch.manual_seed(seed)
    lik, total = L.DiscretizedGaussian(sigma), 0.0
    for x, y in data.to(device).batches(500, shuffle=False):
        mu, logvar = model.encode(x, y)
        x_mean = model.decode_mean(L.reparameterize(mu, logvar), y)          # (B, 3, 32, 32) in [0, 1]
        nll = lik.nll(from_unit(x_mean), x) + L.kl_normal(mu, logvar).flatten(1).sum(1)   # (B,) nats
        total += float(bits_per_dim(nll).sum())
    return total / len(data)


@torch.no_grad()
def rms_error(model, data, seed: int = 0) -> float:
    """Root mean squared error, on the [-1, 1] scale, of the decoder mean at a sampled z."""
    torch.manual_seed(seed)
    sq, n = 0.0, 0
    for x, y in data.to(device).batches(500, shuffle=False):
        mu, logvar = model.encode(x, y)
        x_mean = model.decode_mean(L.reparameterize(mu, logvar), y)
        sq, n = sq + float((2 * (x_mean - x)).pow(2).sum()), n + x.numel()
    return math.sqrt(sq / n)


# The maximum-likelihood sigma of a Gaussian around fixed means is the RMS error.
val_small = val.subset(n_per_class=50, seed=0)          # 500 validation images choose sigma
sigma = rms_error(study, val_small)
print({f"sigma = {f:.2f} x RMS": round(study_bpd(study, val_small, f * sigma), 3) for f in (0.8, 1.0, 1.25)},
      f"(validation bits/dim; RMS = {sigma:.3f})")


def report(name: str, model, hist, bpd: float) -> dict:
    """Test bits/dim (given), PSNR and SSIM of the mean reconstructions, training seconds."""
    x_test, y_test = test.images(), test.y
    x_hat = torch.cat([model.reconstruct(x.to(device), y.to(device)).cpu()
                       for x, y in zip(x_test.split(500), y_test.split(500))])
    return {"model": name, "test bits/dim": round(bpd, 3), "PSNR dB": round(float(psnr(x_test, x_hat).mean()), 2),
            "SSIM": round(float(ssim(x_test, x_hat).mean()), 4), "train s": round(hist.seconds)}


results = []
for name, model, hist, bpd in [("study recipe", study, h_study, study_bpd(study, test, sigma)),
                               ("improved (bits/dim)", improved, h_improved, evaluate(improved, cvae_loss, test)["bpd"])]:
    results.append(report(name, model, hist, bpd))
for r in results:
    print(r)
print(f"on all {len(test)} test images; same seed, same machine")

# %% [markdown]
# The improved recipe wins on every number at the same training time: a likelihood that is a
# real distribution over pixel levels and models the colour channels jointly, a latent that
# keeps *where* things are, and residual blocks that train from the first step.
#
# ### Likelihood is not sample quality
#
# Now sample from both, and from a third configuration chosen for samples rather than for
# bits/dim: a vector latent, so that a random $z$ means a random *image* rather than a random
# patch in every position.

# %%
samples_cfg = CVAEConfig(width=P.cvae.width, residual=True, condition_encoder=True, likelihood="gaussian",
                         sigma=0.1, kl_warmup_steps=steps_study // 8)
for_samples = CVAE(samples_cfg)
h_samples = load_or_train(for_samples, cvae_loss, train_all,
                          TrainConfig(epochs=P.cvae.epochs, batch_size=P.cvae.batch_size, lr=1e-3,
                                      max_steps=P.cvae.max_steps, hflip=True, grad_clip=100.0),
                          RUNS / "cvae_improved_samples.pt", device=device)

y10 = torch.arange(10)
g = torch.Generator().manual_seed(0)
rows = {"study (uniform z, as published)": study.sample(y10, noise="uniform", generator=g),
        "study (normal z)": study.sample(y10, generator=g),
        "improved for bits/dim": improved.sample(y10, generator=g),
        "improved for samples, T = 0.8": for_samples.sample(y10, temperature=0.8, generator=g),
        "improved for samples, uniform z": for_samples.sample(y10, noise="uniform", generator=g),
        "shipped ten-class (sigma 0.3, 12 epochs), T = 0.8": ten.sample(y10, temperature=0.8, generator=g)}
fig = show_images(torch.cat([r.cpu() for r in rows.values()]), nrow=10, row_labels=list(rows),
                  col_labels=CLASSES, title="one sample per class from each model")
save_figure(fig, "03_samples_compared")

# %% [markdown]
# The model with the best bits/dim gives the worst-looking samples: coloured texture. Its
# spatial latent has 64 positions that each describe a patch; independent $\mathcal N(0, I)$
# draws for them are patches that do not agree with each other. It reconstructs test images
# very well because the encoder tells it what is in every patch. The study's vector-latent
# model gives grey blurry blobs; the vector-latent model tuned for samples gives class-coloured
# layouts (recognisable objects take the gpu profile's longer training).
#
# The last row repeats the study's sampling mistake on a model that uses $z$: uniform noise
# gives every class the same shifted, washed-out look, because all 128 coordinates of $z$ are
# pushed the same way.
#
# Which samples are "better" should not be decided by eye. Chapter 05 measures it (FID, KID,
# a classifier's accuracy on the conditional samples, nearest training neighbours), and it
# also examines the study's SSIM of 0.9987 between generated and test images, which no pair of
# independent images can reach.
#
# ## What this chapter showed
#
# - The study's CVAE, rebuilt with its settings: one class gives the class's average colours,
#   1 image per class is memorised, 100 per class overfits, which the validation curve shows
#   and early stopping handles.
# - Uniform noise is not the prior: it decodes to less varied, shifted images.
# - A better likelihood, residual blocks and a spatial latent beat the study's recipe on
#   bits/dim, PSNR and SSIM at equal training time, and still do not give better samples.
