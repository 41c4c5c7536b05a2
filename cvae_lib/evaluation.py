"""Scores that need a trained conditional model itself, not only its samples (chapter 03).

    sigma = rms_error(model, val)                 # the maximum-likelihood sigma of a Gaussian decoder
    bpd = plugin_bpd(model, test, sigma)          # -ELBO in bits/dim with that Gaussian
    psnr_db, ssim_mean = reconstruction_scores(model, test)
    sec = seconds_per_step(model, cvae_loss, x, y)
    spread = output_spread(CVAE(cfg))             # does an untrained decoder's output depend on z?
    rows = score_rows({"study": (model, bpd, seconds)}, test)   # table rows, for plotting.markdown_table
    rows = recorded_rows(["study_frog"])          # a shipped run's recorded losses and KL, as table rows
    rows = class_rows(test, "frog", {"short run": model})   # test frogs above a model's frogs, for show_rows

A model trained with binary cross-entropy (the study's CVAE) has no bits/dim: BCE is not a
distribution over the 256 pixel levels. `plugin_bpd` gives it the fairest one we can: its
decoder's mean image as the centre of a discretised Gaussian N(mean, sigma^2), with sigma chosen
on validation images (the RMS error is the maximum-likelihood sigma around fixed means).

The models take (images (B, 3, 32, 32) in [0, 1], labels (B,)) and have `encode(x, y) -> (mu,
logvar)`, `decode_mean(z, y)` and `reconstruct(x, y)`, like `models.cvae.CVAE`.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from .data import CLASSES, ImageSet
from .metrics import bits_per_dim, psnr, ssim
from .models import likelihoods as L
from .pixels import from_unit
from .weights import read_metadata, shipped

__all__ = ["rms_error", "plugin_bpd", "reconstruction_scores", "seconds_per_step", "output_spread",
           "score_rows", "recorded_rows", "STUDY_COLUMNS", "class_rows"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def rms_error(model: nn.Module, data: ImageSet, seed: int = 0, batch_size: int = 500) -> float:
    """Root mean squared error, on the [-1, 1] scale, of the decoder mean at a sampled z ~ q(z|x, y).

    Seeds the global RNG with `seed` (torch.manual_seed), so a call repeats its draws of z."""
    torch.manual_seed(seed)
    sq, n = 0.0, 0
    for x, y in data.to(_device(model)).batches(batch_size, shuffle=False):
        mu, logvar = model.encode(x, y)
        x_mean = model.decode_mean(L.reparameterize(mu, logvar), y)          # (B, 3, 32, 32) in [0, 1]
        sq, n = sq + float((2 * (x_mean - x)).pow(2).sum()), n + x.numel()
    return math.sqrt(sq / n)


@torch.no_grad()
def plugin_bpd(model: nn.Module, data: ImageSet, sigma: float, seed: int = 0, batch_size: int = 500) -> float:
    """Mean -ELBO in bits/dim of `model` with p(x|z, y) = discretised N(decoder mean, sigma^2):
    one z ~ q(z|x, y) per image, sigma on the [-1, 1] scale.

    Seeds the global RNG with `seed` (torch.manual_seed), so a call repeats its draws of z."""
    torch.manual_seed(seed)
    lik, total = L.DiscretizedGaussian(sigma), 0.0
    for x, y in data.to(_device(model)).batches(batch_size, shuffle=False):
        mu, logvar = model.encode(x, y)
        x_mean = model.decode_mean(L.reparameterize(mu, logvar), y)          # (B, 3, 32, 32) in [0, 1]
        nll = lik.nll(from_unit(x_mean), x) + L.kl_normal(mu, logvar).flatten(1).sum(1)   # (B,) nats
        total += float(bits_per_dim(nll).sum())
    return total / len(data)


@torch.no_grad()
def reconstruction_scores(model: nn.Module, data: ImageSet, batch_size: int = 500) -> tuple[float, float]:
    """(mean PSNR in dB, mean SSIM) of the mean reconstructions at z = mu against the images."""
    device, x_hat = _device(model), []
    for x, y in data.batches(batch_size, shuffle=False):
        x_hat.append(model.reconstruct(x.to(device), y.to(device)).cpu())
    x, x_hat = data.images(), torch.cat(x_hat)
    return float(psnr(x, x_hat).mean()), float(ssim(x, x_hat).mean())


def seconds_per_step(model: nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, n: int = 5,
                     lr: float = 1e-3, channels_last: bool = True) -> float:
    """Wall-clock seconds of one training step (forward, backward, Adam) on a copy of `model`,
    on x's device, after one untimed warm-up step; `model` itself is left untouched.
    channels_last: train in the NHWC memory format, as `train.fit` does on CPUs and GPUs."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = copy.deepcopy(model).to(x.device, memory_format=fmt).train()
    opt = torch.optim.Adam(m.parameters(), lr)
    x = x.contiguous(memory_format=fmt)
    for i in range(n + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss, _ = loss_fn(m, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / n


@torch.no_grad()
def output_spread(model: nn.Module, n: int = 8, label: int = 0) -> float:
    """How much the decoder's output depends on z: the standard deviation over `n` draws
    z ~ N(0, I), averaged over the output's (3, 32, 32) logits, all with the label `label`.

    Draws z from the global RNG on the CPU (seed it first to repeat a call); evaluates in eval
    mode and restores the model's mode."""
    was_training = model.training
    model.eval()
    try:
        z = torch.randn(n, model.cfg.latent_dim).to(_device(model))                  # (n, Z)
        out = model.decode(z, torch.full((n,), label, dtype=torch.long, device=z.device))   # (n, 3, 32, 32)
        return float(out.std(0).mean())
    finally:
        model.train(was_training)


def score_rows(runs: dict[str, tuple[nn.Module, float, float]], data: ImageSet) -> list[dict]:
    """One table row per run {name: (model, bits/dim, training seconds)}: the bits/dim given,
    the mean PSNR and SSIM of the model's reconstructions of `data` and the training time,
    formatted for `plotting.markdown_table`."""
    rows = []
    for name, (model, bpd, seconds) in runs.items():
        p, s = reconstruction_scores(model, data)
        rows.append({"model": name, "test bits/dim": f"{bpd:.3f}", "PSNR (dB)": f"{p:.2f}", "SSIM": f"{s:.4f}",
                     "training (s)": f"{seconds:.0f}"})
    return rows


# column -> (key in a shipped file's recorded metrics, format). The study's runs were trained with
# BCE, which is not a distribution over pixel levels: their loss is BCE + KL, not a bound on -log p.
STUDY_COLUMNS = {"training images": ("n_train", "{:,}"), "epochs": ("epochs", "{}"),
                 "train BCE + KL per sub-pixel": ("final_train_loss", "{:.4f}"),
                 "test BCE + KL per sub-pixel": ("test_loss", "{:.4f}"), "KL (nats/image)": ("test_kl", "{:.1f}")}


def recorded_rows(names: list[str], columns: dict[str, tuple[str, str]] = STUDY_COLUMNS) -> list[dict]:
    """One table row per shipped file `name` (checkpoints/<name>.safetensors): the metrics its
    metadata recorded, formatted by `columns` ({column: (metric key, format)}; default: the
    study runs' sizes, losses and KL term), for `plotting.markdown_table`."""
    rows = []
    for name in names:
        m = read_metadata(shipped(name))["metrics"]
        rows.append({"shipped run": name, **{col: fmt.format(m[key]) for col, (key, fmt) in columns.items()}})
    return rows


@torch.no_grad()
def class_rows(data: ImageSet, name: str, models: dict[str, nn.Module], n: int = 10,
               seed: int = 0) -> dict[str, torch.Tensor]:
    """Image rows of one class `name` for `plotting.show_rows`: "<name>s: test", `n` of its images
    in `data` (the seeded `data.subset`), then "<name>s: <label>", `n` samples of that class from
    each of `models` ({label: model with `sample(y, generator=...)`}), each model drawing its noise
    from a CPU generator seeded with `seed`, so every model gets the same z."""
    y = torch.full((n,), CLASSES.index(name))
    rows = {f"{name}s: test": data.subset([name], n_per_class=n).images()}
    for label, model in models.items():
        rows[f"{name}s: {label}"] = model.sample(y, generator=torch.Generator().manual_seed(seed))
    return rows
