"""What a chapter costs: its training and sampling FLOPs in a profile, and the minutes they mean.

No GPU has run the `gpu` profile, so it is sized on paper, and this module is the paper. Each
chapter's work is listed from the same profile fields the notebook reads: every training run
(images x FLOPs of one forward+backward pass, counted by `torch.utils.flop_counter` on a batch
of 2) and every sampling or scoring pass (images x network calls x FLOPs of one forward pass).
The time estimate on a device is

    minutes = (FLOPs / sustained throughput + optimizer steps x step overhead
               + batched network calls x call overhead) / 60

The overheads matter: the study's batch of 46 images on a GPU is launch-bound, not FLOP-bound.
The figures for a T4 (Colab's free GPU) are stated below with their reasons; they are
estimates, not measurements, and the notebooks' headers say so. `tests/test_compute.py` keeps
every chapter's `gpu` estimate under `BUDGET_MINUTES`, so an edit to a profile cannot silently
turn a Colab notebook into an all-night run.

    python -m cvae_lib.compute                  # the gpu profile's table on a T4
    python -m cvae_lib.compute --profile cpu    # any profile (the cpu one is measured in the headers)

Keep `chapter_work` in step with the notebooks when a chapter gains or loses a run.
"""
from __future__ import annotations

import argparse
import functools
import math
from dataclasses import dataclass

import torch

from .profiles import Profile, RunSize, get_profile

__all__ = ["Device", "T4", "BUDGET_MINUTES", "Work", "chapter_work", "estimate_minutes", "table", "CHAPTERS"]

CHAPTERS = ("01", "02", "03", "04", "05", "06")
BUDGET_MINUTES = 10.0          # the bound for one notebook on a student's GPU (gpu profile)
IMAGES_PER_CLASS = 5000        # CIFAR-10 training images per class
TEST_PER_CLASS = 1000


@dataclass(frozen=True)
class Device:
    """A device's sustained throughput and fixed costs, for estimates."""
    name: str
    tflops: float        # sustained FLOP/s in training (not the peak), in units of 1e12
    step_ms: float       # fixed cost of one eager optimizer step (kernel launches, Adam), milliseconds
    call_ms: float       # fixed cost of one batched forward call while sampling, milliseconds
    why: str


T4 = Device(
    name="T4 (Colab free tier)", tflops=8.0, step_ms=4.0, call_ms=1.5,
    why=("8 TFLOP/s sustained is 12% of the T4's 65 TFLOP/s fp16 tensor-core peak (and about its "
         "8.1 TFLOP/s fp32 peak): the course's networks are small convolutions on 32x32 and 8x8 "
         "grids with GroupNorm and attention, memory-bound rather than FLOP-bound, and the T4 runs "
         "at a 70 W cap. 4 ms per optimizer step and 1.5 ms per sampling call stand for eager "
         "PyTorch's kernel launches (a few hundred per training step at ~10 us each)."))


@dataclass(frozen=True)
class Work:
    """One run of a chapter: `flops` in all, `steps` optimizer steps, `calls` batched forward calls."""
    what: str
    flops: float
    steps: int = 0
    calls: int = 0


def estimate_minutes(work: list[Work], device: Device = T4) -> float:
    """Estimated minutes for all of `work` on `device` (see the module docstring)."""
    seconds = sum(w.flops / (device.tflops * 1e12) + w.steps * device.step_ms / 1e3
                  + w.calls * device.call_ms / 1e3 for w in work)
    return seconds / 60


# --- FLOPs per image, counted once per configuration ----------------------------------------

def _count(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2           # every probe below runs a batch of 2


def _images(channels: int = 3, side: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, channels, side, side, generator=g), torch.tensor([0, 1])


def _train_pass(model, loss_fn, channels: int = 3, side: int = 32) -> float:
    x, y = _images(channels, side)

    def step():
        out = loss_fn(model, x, y)
        (out[0] if isinstance(out, tuple) else out).backward()
    return _count(step)


def _forward_pass(fn, channels: int = 3, side: int = 32, timestep: bool = False) -> float:
    x, y = _images(channels, side)
    with torch.no_grad():
        return _count(lambda: fn(x, torch.tensor([3, 5]), y) if timestep else fn(x))


INCEPTION_FLOPS = 2 * 5.7e9   # Inception-v3 at 299x299: 5.7 G multiply-adds per image, 2 FLOPs each


@functools.cache
def per_image(kind: str, width: int, variant: str = "") -> tuple[float, float]:
    """(training FLOPs, forward FLOPs) per image of one of the course's networks.

    kind: "ae" | "vae" | "cvae" | "unet" | "latent_unet" | "first_stage" | "inception"; variant:
    the likelihood (vae) or "study" / "bpd" / "samples" (cvae). A training pass is the loss and
    its backward pass; a forward pass is the loss (autoencoders) or one denoiser call (U-Nets).
    """
    torch.manual_seed(0)
    if kind == "inception":
        return 0.0, INCEPTION_FLOPS
    if kind == "first_stage":                      # encode + decode: the ends of latent diffusion
        from .models.first_stage import FirstStage, FirstStageConfig
        return 0.0, _forward_pass(FirstStage(FirstStageConfig()))
    if kind in ("unet", "latent_unet"):
        from .diffusion import Diffusion, DiffusionConfig
        from .models.unet import UNet, UNetConfig
        latent = kind == "latent_unet"
        cfg = UNetConfig.latent(width=width) if latent else UNetConfig.course(width)
        m = UNet(cfg)
        diffusion = Diffusion(DiffusionConfig.course(1000, data="latent" if latent else "image"))
        shape = (cfg.in_channels, cfg.resolution)
        return _train_pass(m, diffusion.train_loss, *shape), _forward_pass(m, *shape, timestep=True)
    model, loss_fn = _autoencoder(kind, width, variant)
    x, y = _images()
    with torch.no_grad():
        forward = _count(lambda: loss_fn(model, x, y))
    return _train_pass(model, loss_fn), forward


def _autoencoder(kind: str, width: int, variant: str):
    if kind == "ae":
        from .models.ae import AEConfig, Autoencoder, ae_loss
        return Autoencoder(AEConfig(latent_dim=256, width=width, residual=True)), ae_loss
    if kind == "vae":
        from .models.vae import VAE, VAEConfig, vae_loss
        return VAE(VAEConfig(latent_dim=64, width=width, residual=True, likelihood=variant or "logistic")), vae_loss
    if kind == "cvae":
        from .models.cvae import CVAE, cvae_loss
        return CVAE(_cvae_config(width, variant)), cvae_loss
    raise ValueError(f"unknown network kind {kind!r}: one of ae, vae, cvae, unet, latent_unet, first_stage, "
                     f"inception")


def _cvae_config(width: int, variant: str):
    from .models.cvae import CVAEConfig
    if variant == "bpd":
        return CVAEConfig(width=width, residual=True, spatial=True, n_stages=2, latent_dim=8,
                          likelihood="logistic_mixture", n_mix=5, condition_encoder=True)
    if variant == "samples":
        return CVAEConfig(width=width, residual=True, condition_encoder=True, likelihood="gaussian")
    return CVAEConfig(width=width)


# --- each chapter's runs, from the profile ---------------------------------------------------

def _train(what: str, kind: str, size: RunSize, n_images: int, variant: str = "", width: int | None = None,
           batch_size: int | None = None, epochs: int | None = None, max_steps: int | None = -1) -> Work:
    """A training run of `size` (or the overrides) over `n_images` images."""
    batch = batch_size or size.batch_size
    steps_per_epoch = math.ceil(n_images / batch)
    cap = size.max_steps if max_steps == -1 else max_steps
    if cap is not None:
        steps_per_epoch = min(steps_per_epoch, cap)
    steps = (epochs or size.epochs) * steps_per_epoch
    train_flops, _ = per_image(kind, width or size.width, variant)
    return Work(what, train_flops * steps * batch, steps=steps)


def _forward(what: str, kind: str, width: int, images: int, calls_per_image: int = 1, batch: int = 500,
             variant: str = "", guided: bool = False) -> Work:
    """`images` images through a network `calls_per_image` times (a sampler's steps), in batches."""
    _, fwd = per_image(kind, width, variant)
    factor = 2 if guided else 1                    # classifier-free guidance: conditional + unconditional
    calls = math.ceil(images / batch) * calls_per_image
    return Work(what, fwd * images * calls_per_image * factor, calls=calls)


def _per_class(size: RunSize | None, P: Profile, split: bool = True) -> int:
    n = min(size.train_per_class or IMAGES_PER_CLASS, IMAGES_PER_CLASS)
    return n - P.val_per_class if split and n > P.val_per_class else n


def _test(P: Profile, classes: int = 10) -> int:
    return classes * (P.test_per_class or TEST_PER_CLASS)


def chapter_work(chapter: str, P: Profile) -> list[Work]:
    """Every run chapter `chapter` ("01".."06") does in profile `P`, as `Work` items."""
    return {"01": _ch01, "02": _ch02, "03": _ch03, "04": _ch04, "05": _ch05, "06": _ch06}[chapter](P)


def _ch01(P):
    return [_train("train the autoencoder", "ae", P.ae, 10 * _per_class(P.ae, P)),
            _forward("reconstruct the test split", "ae", P.ae.width, _test(P))]


def _ch02(P):
    side_n = 10 * _per_class(P.vae_side, P, split=False)
    side = [_train(f"side run: {name}", "vae", P.vae_side, side_n, variant=lik)
            for name, lik in (("bernoulli", "bernoulli"), ("gaussian", "gaussian"),
                              ("logistic mixture", "logistic_mixture"), ("beta = 4", "logistic_mixture"),
                              ("warm-up + free bits", "logistic_mixture"))]
    return [_train("train the VAE", "vae", P.vae, 10 * _per_class(P.vae, P)),
            _forward("evaluate the VAE and the shipped one on the test split", "vae", P.vae.width, 2 * _test(P)),
            *side]


def _ch03(P):
    per_class = _per_class(P.cvae, P)             # train_all: every class minus validation
    study = _train("the study's recipe on all classes", "cvae", P.cvae, 10 * per_class, "study", batch_size=46)
    one_class = min(P.cvae_one_class.train_per_class or per_class, per_class)
    one_per_class = 10 * (P.cvae_one_per_class.train_per_class or 1) * 46
    return [
        *[_train(f"one class: {c}", "cvae", P.cvae_one_class, one_class, "study", batch_size=46)
          for c in ("airplane", "frog")],
        _train("1 image per class (x 46 copies)", "cvae", P.cvae_one_per_class, one_per_class, "study", batch_size=46),
        _train("100 images per class (early stopping: at most)", "cvae", P.cvae_hundred_per_class,
               10 * min(P.cvae_hundred_per_class.train_per_class or per_class, per_class), "study", batch_size=46),
        study,
        Work("improved for bits/dim (the study run's minutes, by design)", study.flops, steps=study.steps),
        _train("improved for samples", "cvae", P.cvae, 10 * per_class, "samples"),
        _forward("evaluate three models on the test split", "cvae", P.cvae.width, 3 * _test(P), variant="bpd"),
    ]


def _diffusion_classes(run) -> int:
    return len(run.classes) if run.classes else 10


def _ch04(P):
    D, k = P.diffusion, _diffusion_classes(P.diffusion)
    w = P.ddpm.width
    return [
        _train("train the U-Net", "unet", P.ddpm, k * _per_class(P.ddpm, P)),
        _forward("DDPM sampling, twice (Algorithm 2 written out, then the library's)", "unet", w, 2 * D.n_ddpm, D.T),
        _forward("DDIM step counts and eta", "unet", w, D.n_ddpm, sum(D.ddim_steps) + D.ddim_steps[1]),
        _forward("guidance sweep (4 weights x 8 images)", "unet", w, 4 * 8, 50, guided=True),
        _forward("the final grid", "unet", w, D.n_grid * k, 50, guided=True),
    ] + ([_forward("the run against the shipped one", "unet", w, 2 * 6 * k, D.ddim_steps[1])] if k == 2 else [])


def _ch05(P):
    k = _diffusion_classes(P.diffusion)
    n = P.n_eval // k * k
    # shipped pixel models exist for airplanes and frogs and for all ten classes (comparison.SHIPPED_PIXEL),
    # the shipped latent prior for airplanes and frogs only
    ddpm_runs = 1 + (3 if k in (2, 10) else 0)
    ldm_runs = 2 + (1 if k == 2 else 0)
    work = [_forward(f"{ddpm_runs} DDPM samplers x {n} samples (DDIM-50, guided at most)", "unet", P.ddpm.width,
                     ddpm_runs * n, 50, guided=True),
            _forward(f"{ldm_runs} latent-diffusion samplers x {n} samples", "latent_unet", P.ldm.width,
                     ldm_runs * n, 50, guided=True),
            _forward("decode the latent samples", "first_stage", 0, ldm_runs * n),
            _forward("reconstruct the test images (AE, CVAEs, first stage)", "cvae", P.cvae.width, 4 * _test(P, k),
                     variant="bpd")]
    if P.fid:
        models = ddpm_runs + ldm_runs + 4      # + the CVAEs, the AE and the real images
        work.append(_forward("FID: Inception-v3 features of every sample set and the test images", "inception", 0,
                             models * n + _test(P, k), batch=100))
    return work


def _ch06(P):
    L, k = P.latent, _diffusion_classes(P.latent)
    n = k * _per_class(P.ldm, P)
    n_eval = P.n_eval // k * k
    sweep = len(L.guidance) * max(n_eval // 2, 6 * k)
    return [
        _forward("encode the training images and their mirror images", "first_stage", 0, 2 * n),
        _train("train the prior on the latents", "latent_unet", P.ldm, 2 * n),
        _forward("guidance sweep", "latent_unet", P.ldm.width, sweep, L.ddim_steps, guided=True),
        _forward("grids and the scrubber", "latent_unet", P.ldm.width, (L.n_grid + 6) * k + L.T // 10, L.ddim_steps,
                 guided=True),
        _forward("judge the run and the shipped prior", "latent_unet", P.ldm.width, 2 * n_eval, L.ddim_steps,
                 guided=True),
        _forward("decode every sample", "first_stage", 0, sweep + 2 * n_eval + (L.n_grid + 6) * k),
    ]


def table(profile: str | Profile = "gpu", device: Device = T4) -> str:
    """A markdown table: chapter, TFLOPs, optimizer steps, estimated minutes on `device`."""
    P = get_profile(profile) if isinstance(profile, str) else profile
    rows = [f"Estimated, not measured: the `{P.name}` profile on a {device.name} at {device.tflops:g} TFLOP/s "
            f"sustained, {device.step_ms:g} ms per optimizer step, {device.call_ms:g} ms per sampling call.", "",
            "| chapter | training + sampling PFLOPs | optimizer steps | estimated minutes |", "|---|---|---|---|"]
    for ch in CHAPTERS:
        work = chapter_work(ch, P)
        rows.append(f"| {ch} | {sum(w.flops for w in work) / 1e15:.2f} | {sum(w.steps for w in work):,} | "
                    f"{estimate_minutes(work, device):.1f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cvae_lib.compute", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="gpu")
    p.add_argument("--detail", action="store_true", help="every run of every chapter")
    args = p.parse_args(argv)
    print(table(args.profile))
    if args.detail:
        P = get_profile(args.profile)
        for ch in CHAPTERS:
            for w in chapter_work(ch, P):
                print(f"{ch}  {w.what:<70} {w.flops / 1e12:10.1f} TFLOP {w.steps:8,} steps "
                      f"{estimate_minutes([w]):6.2f} min")


if __name__ == "__main__":
    main()
