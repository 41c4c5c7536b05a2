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
# # 00 · Start here: the course, the study, and your set-up
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/00_setup.ipynb)
#
# This course teaches image generation on CIFAR-10 by building the models one after another,
# from an autoencoder to a diffusion model, and around a real student project that it reproduces
# and examines. This first chapter lays out the path, introduces that project, explains how to
# run the course on your machine, and checks that everything is in place. Nothing is trained.
#
# **You will**
# - see the path through the course and the question each chapter answers;
# - meet the student study the course reproduces and examines;
# - choose where to run the course and which profile (how big every run is);
# - check your Python, PyTorch, the course library, the shipped weights and the data.
#
# **Prerequisites:** Python and basic PyTorch (tensors, `nn.Module`, a training loop); basic
# probability (a Gaussian, an expectation, a log-likelihood). The chapters define the rest.
#
# **Time to work through:** about 15 minutes. **Run time:** about 15 s on a laptop CPU (the `cpu` profile; about 15 s more the first time, which decodes the images once), seconds in the `smoke` profile.
#
# Exercise: none; from chapter 01 on, each chapter has one.

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %% [markdown]
# ## 1. The path through the course
#
# A generative model learns to draw new images that look as if they came from the training
# set. Each chapter answers one question and leaves a new one for the next:
#
# | chapter | the question it answers |
# |---|---|
# | 01 autoencoder | Can a network squeeze an image into a short code and rebuild it, and why is that not yet a way to make new images? |
# | 02 variational autoencoder (VAE) | How do we get a code space we can *sample* from, and what does its training objective, the ELBO, measure? |
# | 03 conditional VAE | How does a class label steer what a VAE draws? The student study's model, reproduced and examined. |
# | 04 diffusion model (DDPM) | How does a model generate by removing noise one small step at a time? |
# | 05 evaluation | How do we compare generators honestly: likelihood, image statistics, class accuracy, memorisation? |
# | 06 latent diffusion | What happens when the diffusion model works in an autoencoder's code space instead of on pixels? |
# | 07 flow matching | Can straight paths from noise to images generate in fewer steps? |
#
# Each chapter's header lists what you will learn, what it assumes, and how long it takes. Each
# chapter from 01 on has an exercise in `exercises/` in which you write the chapter's key
# pieces yourself; the check cells tell you which property of your code does not hold yet.

# %% [markdown]
# ## 2. The student study
#
# The course is built around one student project: *Variational Autoencoder for Image
# Generation*, written for the Deep Learning course TDDE70 at Linköping University. Its authors
# built a **class-conditional VAE** on CIFAR-10 (a VAE that is told which of the ten classes to
# draw) and compared it with a **diffusion model** (DDPM). In this course it is called
# **the study**. What it did (the terms in this list are defined in the chapters named beside
# them; you need none of them yet):
#
# - an encoder of three convolutional stages, a decoder that mirrors it, and the class label
#   added to the code before decoding (chapter 03 builds it);
# - training with binary cross-entropy plus a KL term (chapter 02), Adam, batches of 46, 200
#   epochs, on subsets of CIFAR-10 (one class of 5,000 images, one image per class, 100 per
#   class) because of limited hardware;
# - generation from *uniform* noise, and evaluation by eye and by SSIM, an image-similarity score
#   between generated and test images, with published SSIM scores of 0.9987 (airplanes) and
#   0.9997 (frogs) (chapter 05);
# - a DDPM (chapter 04) from a course lab whose results ranged from plausible images to pure
#   noise between runs.
#
# The course **reproduces** the study (chapter 03) and **examines it critically**: whether
# binary cross-entropy is a likelihood (chapter 02), what uniform noise does to a model whose
# codes were trained to follow a Gaussian (chapter 03), and what an SSIM near 1 can and cannot
# mean (chapter 05). Then it goes further than the study could: a well-trained diffusion model
# (chapter 04), an honest comparison (chapter 05), and the two model families as partners
# (chapter 06). The study also discussed the ethics of image generation; chapter 05 comes back
# to that with the course's own tools.

# %% [markdown]
# ## 3. Where to run the course
#
# - **Laptop** (Linux, macOS or Windows with WSL), from the repository root: `make lab`
#   installs PyTorch and the course library into `.venv/` the first time and opens JupyterLab;
#   start with this notebook. (`make course` runs every chapter without opening them.)
# - **Colab**: open any chapter from the README's "Open in Colab" badges. The first code cell of
#   every chapter (the one above) installs the course there and does nothing elsewhere. For a GPU,
#   choose *Runtime > Change runtime type > GPU* before running.
# - **Binder**: the README's Binder badge starts JupyterLab in your browser, with no set-up.
#   Binder has no GPU, so use the `cpu` profile.
#
# ## 4. Profiles: how big every run is
#
# One environment variable, `CVAE_PROFILE`, sets the size of every training run in every
# chapter. You choose it once; the chapters adapt.
#
# | profile | choose it when | what happens |
# |---|---|---|
# | `smoke` | you want to check that everything runs | tiny subsets and a few training steps, seconds per chapter; the pictures are meaningless |
# | `cpu` | you work on a laptop, or on a free Colab or Binder CPU | real CIFAR-10, small models trained for a few minutes; chapters 04-06 train and judge only two classes, airplanes and frogs (the study's pair); where more training matters, the chapter also loads a copy trained for longer, shipped with the course |
# | `gpu` | you have a GPU (Colab's free T4 is enough) | all ten classes and longer runs, about ten minutes per chapter |
# | `full` | you want the papers' run lengths | hours to days on several GPUs; never chosen for you |
#
# Left unset, the course picks `gpu` if PyTorch sees a GPU and `cpu` otherwise. To choose, start
# JupyterLab with `CVAE_PROFILE=cpu make lab`, or, in Colab, run `%env CVAE_PROFILE=cpu` before
# a chapter's first code cell.

# %%
import os
import platform

import torch
import torchvision

import cvae_lib
from cvae_lib.profiles import PROFILES, get_profile
from cvae_lib.runtime import describe, pick_device, seed_everything

P = get_profile()               # read CVAE_PROFILE once; every size below comes from P
device = pick_device()
seed_everything(0)

# %%
for name, prof in PROFILES.items():
    mark = "->" if name == P.name else "  "
    print(f"{mark} {name:<6} {prof.summary}")
print(f"\nThis session uses the {P.name!r} profile.")

# %% [markdown]
# The arrow marks the profile this session uses. Every chapter reads it the same way, in its
# first code cells, so all chapters of one session use the same sizes.
#
# ## 5. The environment check
#
# First the versions and the device. The device is `cuda` on an NVIDIA GPU, `mps` on an
# Apple-silicon Mac, and `cpu` otherwise; the last line says whether training will use mixed
# precision (a shorter number format that is faster on some hardware). The course decides that
# from the hardware, so there is nothing to set.

# %%
info = describe(device)
print(f"python         {platform.python_version()} ({sys.platform})")
print(f"torch          {torch.__version__}   torchvision {torchvision.__version__}   cvae_lib {cvae_lib.__version__}")
print(f"device         {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else ""))
print(f"CPU threads    {info['cpu_threads']}")
amp = info["autocast"].removeprefix("torch.")                     # e.g. "bfloat16", or "None"
print(f"mixed prec.    {'off: full precision' if amp == 'None' else amp}")

# %% [markdown]
# Next, the **shipped weights**: models the course trained for longer than a chapter can, stored
# in `checkpoints/` with a checksum each. Later chapters load them to compare your short runs
# with longer ones. The check recomputes every checksum.

# %%
from cvae_lib.weights import verify_shipped

status = verify_shipped()
for name, state in status.items():
    print(f"{state:8s} {name}")
assert set(status.values()) == {"ok"}, "a shipped file is missing or altered: restore checkpoints/ from the repository"

# %% [markdown]
# Every file should say `ok`. A file that is `missing` or `altered` will make the chapter that
# loads it stop with a message; restore the folder from the repository.
#
# ## 6. The data
#
# CIFAR-10 (Krizhevsky, 2009) has 60,000 colour images of 32x32 pixels in ten classes. The
# course reads it from a folder of images if `CVAE_DATA_DIR` points at one
# (`<dir>/train/<class>/*.jpg`, `<dir>/test/<class>/*.jpg`), and otherwise downloads it with
# torchvision. Either way it is decoded once and cached as a single tensor of bytes, so later
# chapters load it in about a second.

# %%
from cvae_lib.data import CLASSES, cache_dir, load_cifar10

print("CVAE_DATA_DIR =", os.environ.get("CVAE_DATA_DIR", "(unset: download with torchvision)"))
print("cache folder  =", cache_dir())
train, test = load_cifar10("train"), load_cifar10("test")
print(f"train: {len(train):,} images   test: {len(test):,} images")
assert len(train) == 50_000 and len(test) == 10_000, "CIFAR-10 should have 50,000 + 10,000 images"

# %% [markdown]
# Ten classes, 5,000 training and 1,000 test images each. One training image of each class:

# %%
from cvae_lib.plotting import save_figure, show_images

first = torch.stack([train.x[train.y == k][0] for k in range(10)])  # (10, 3, 32, 32) uint8
fig = show_images(first, nrow=10, col_labels=CLASSES, title="CIFAR-10, one image per class")
save_figure(fig, "00_classes")

# %% [markdown]
# Look at how little there is in 32x32 pixels: a frog or a deer is a few dozen pixels of colour
# against a background, and even people often disagree about a blurry one. Keep that in mind
# when you judge the generated images later: the course's models draw at this size too.
#
# If every cell ran, you are ready for chapter 01. If a cell failed, its message names what is
# missing (a folder, a class, a file) and how to fix it.
