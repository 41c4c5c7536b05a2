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
# # 00 · Setup: is everything in place?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/cvae-course/cvae-course/blob/main/notebooks/00_setup.ipynb)
#
# This notebook checks your environment before the course starts: library versions, the device
# PyTorch will use, whether CIFAR-10 can be found, and which **profile** sizes every run.
# Nothing is trained here.
#
# | profile | measured run time of this notebook |
# |---|---|
# | smoke (CI) | 7 s (2-core CPU, `make course`, data already cached) |
# | cpu | 7 s and 13 s in two clean fp32 `CVAE_AMP=off make course` runs on an idle 2-core Intel Xeon VM (the images already decoded); about 15 s more the first time, which decodes the 60,000 images once |
#
# **Where to run the course**
# - *Laptop*: `make course` (or `make lab` to open JupyterLab) from the repository root.
# - *Colab*: open a notebook from the README's badges; its first cell installs the course.
# - *Binder*: the README's Binder badge builds `environment.yml` (CPU only, so use the cpu profile).

# %%
# Setup: on Colab, install the course (keeping Colab's torch); elsewhere nothing happens.
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("cvae_lib") is None:
    subprocess.run(["git", "clone", "-q", "--depth", "1", "https://github.com/cvae-course/cvae-course", "/content/cvae-course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/cvae-course"], check=True)
    sys.path.insert(0, "/content/cvae-course")  # importable in this kernel without a restart

# %%
import os
import platform
import sys

import torch
import torchvision

import cvae_lib
from cvae_lib.profiles import PROFILES, get_profile
from cvae_lib.runtime import describe, pick_device, seed_everything

P = get_profile()               # read CVAE_PROFILE once; every size below comes from P
device = pick_device()
seed_everything(0)

# %% [markdown]
# ## Versions and device
#
# The course is tested with the versions in `requirements-lock.txt`. `describe()` also says
# whether bf16 mixed precision will be used: on GPUs yes; on CPUs only if they have AMX
# matrix units (recent Intel Xeons), because on other CPUs bf16 is *slower* than fp32.

# %%
print(f"python       {platform.python_version()} ({sys.platform})")
print(f"torch        {torch.__version__}   torchvision {torchvision.__version__}")
print(f"cvae_lib     {cvae_lib.__version__}")
for key, value in describe(device).items():
    print(f"{key:<12} {value}")

# %% [markdown]
# ## Profiles
#
# One environment variable, `CVAE_PROFILE`, sizes every run in every notebook. Set it before
# starting Jupyter (`CVAE_PROFILE=cpu make lab`); unset, the course picks `gpu` when CUDA is
# available and `cpu` otherwise.

# %%
for name, prof in PROFILES.items():
    mark = "->" if name == P.name else "  "
    print(f"{mark} {name:<6} {prof.summary}")
print(f"\nThis session uses the {P.name!r} profile; autoencoder run: {P.ae}")

# %% [markdown]
# ## The data
#
# The course reads CIFAR-10 (Krizhevsky, 2009) from a folder of images if `CVAE_DATA_DIR`
# points at one (`<dir>/train/<class>/*.jpg`, `<dir>/test/<class>/*.jpg`), and otherwise
# downloads the original with torchvision. Either way it is decoded once and cached as a
# single uint8 tensor, so later notebooks load it in about a second.

# %%
from cvae_lib.data import CLASSES, cache_dir, load_cifar10

print("CVAE_DATA_DIR =", os.environ.get("CVAE_DATA_DIR", "(unset: download with torchvision)"))
print("cache folder  =", cache_dir())
train, test = load_cifar10("train"), load_cifar10("test")
print(train)
print(test)
assert len(train) == 50_000 and len(test) == 10_000, "CIFAR-10 should have 50,000 + 10,000 images"

# %% [markdown]
# Ten classes, 5,000 training and 1,000 test images each, 32x32 RGB. One image of each class:

# %%
from cvae_lib.plotting import save_figure, show_images

first = torch.stack([train.x[train.y == k][0] for k in range(10)])  # (10, 3, 32, 32) uint8
fig = show_images(first, nrow=10, col_labels=CLASSES, title="CIFAR-10, one image per class")
save_figure(fig, "00_classes")

# %% [markdown]
# If every cell ran, you are ready for chapter 01. If loading failed, the error message names
# the folder, class or file that is missing and how to fix it.
