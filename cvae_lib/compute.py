"""What a chapter costs: its training and sampling FLOPs in a profile, and the minutes they mean.

No GPU has run the `gpu` profile, so it is sized on paper, and this module is the paper. Each
chapter's training runs are its recipes (cvae_lib.recipes, which the notebook trains): images
x FLOPs of one forward+backward pass, counted by `torch.utils.flop_counter` on a batch of 2;
its sampling and scoring passes are listed here from the profile fields the notebook reads
(images x network calls x FLOPs of one forward pass).
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

A chapter that gains a training run gains it in cvae_lib/recipes.py, and the estimate with it;
keep the sampling passes below in step with the notebooks.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch

from .models.first_stage import FirstStage
from .models.unet import UNet
from .profiles import Profile, get_profile
from .recipes import Run, chapter_runs, recipe, shipped_recipe

__all__ = ["Device", "T4", "BUDGET_MINUTES", "Work", "chapter_work", "estimate_minutes", "table", "CHAPTERS"]

CHAPTERS = ("01", "02", "03", "04", "05", "06", "07")
BUDGET_MINUTES = 10.0          # the bound for one notebook on a student's GPU (gpu profile)
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


INCEPTION_FLOPS = 2 * 5.7e9   # Inception-v3 at 299x299: 5.7 G multiply-adds per image, 2 FLOPs each
_PER_IMAGE: dict[str, tuple[float, float]] = {}


def per_image(run: Run) -> tuple[float, float]:
    """(training FLOPs, forward FLOPs) per image of `run`'s network, counted once per configuration.

    A training pass is the loss and its backward pass; a forward pass is the loss (autoencoders
    and VAEs, whose loss is one encode and decode), one denoiser call (U-Nets), or one encode
    and decode (the first stage).
    """
    key = repr((run.model, run.process))
    if key not in _PER_IMAGE:
        with torch.random.fork_rng(devices=[]):            # the caller's random numbers stay as they were
            torch.manual_seed(0)
            _PER_IMAGE[key] = _count_per_image(run)
    return _PER_IMAGE[key]


def _count_per_image(run: Run) -> tuple[float, float]:
    model, loss_fn = run.build(), run.loss()
    unet = isinstance(model, UNet)
    x, y = _images(*((run.model.in_channels, run.model.resolution) if unet else ()))

    def train_step():
        out = loss_fn(model, x, y)
        (out[0] if isinstance(out, tuple) else out).backward()
    train = _count(train_step) if not isinstance(model, FirstStage) else 0.0
    with torch.no_grad():
        forward = _count(lambda: model(x, torch.tensor([3, 5]), y) if unet else
                         model(x) if isinstance(model, FirstStage) else loss_fn(model, x, y))
    return train, forward


# --- each chapter's runs, from the recipes ----------------------------------------------------

def _train(run: Run) -> Work:
    """Training `run`: every step a batch of `batch_size` images (both phases of a two-phase run)."""
    phases = [run.train] + ([run.then] if run.then is not None else [])
    steps = sum(t.total_steps(run.data.n_train()) for t in phases)
    return Work(f"train {run.what}", per_image(run)[0] * steps * run.train.batch_size, steps=steps)


def _forward(what: str, run: Run | None, images: int, calls_per_image: int = 1, batch: int = 500,
             guided: bool = False) -> Work:
    """`images` images through `run`'s network (None: Inception) `calls_per_image` times (a
    sampler's steps), in batches."""
    fwd = per_image(run)[1] if run is not None else INCEPTION_FLOPS
    factor = 2 if guided else 1                    # classifier-free guidance: conditional + unconditional
    calls = math.ceil(images / batch) * calls_per_image
    return Work(what, fwd * images * calls_per_image * factor, calls=calls)


def _test(P: Profile, classes: int = 10) -> int:
    return classes * (P.test_per_class or TEST_PER_CLASS)


def chapter_work(chapter: str, P: Profile) -> list[Work]:
    """Every run chapter `chapter` ("01".."07") does in profile `P`, as `Work` items: its training
    runs (cvae_lib.recipes) and its sampling and scoring passes."""
    training = [_train(run) for run in chapter_runs(chapter, P)]
    chapters = {"01": _ch01, "02": _ch02, "03": _ch03, "04": _ch04, "05": _ch05, "06": _ch06, "07": _ch07}
    return training + chapters[chapter](P)


def _ch01(P):
    return [_forward("reconstruct the test split", recipe("ae", P), _test(P))]


def _ch02(P):
    return [_forward("evaluate the VAE and the shipped one on the test split", recipe("vae", P), 2 * _test(P))]


def _ch03(P):
    return [_forward("evaluate three models on the test split", recipe("cvae_improved_bpd", P), 3 * _test(P))]


def _diffusion_classes(run) -> int:
    return len(run.classes) if run.classes else 10


def _ch04(P):
    D, k, ddpm = P.diffusion, _diffusion_classes(P.diffusion), recipe("ddpm", P)
    return [
        _forward("DDPM sampling, twice (Algorithm 2 written out, then the library's)", ddpm, 2 * D.n_ddpm, D.T),
        _forward("DDIM step counts and eta", ddpm, D.n_ddpm, sum(D.ddim_steps) + D.ddim_steps[1]),
        _forward("guidance sweep (4 weights x 8 images)", ddpm, 4 * 8, 50, guided=True),
        _forward("the final grid", ddpm, D.n_grid * k, 50, guided=True),
    ] + ([_forward("the run against the shipped one", ddpm, 2 * 6 * k, D.ddim_steps[1])] if k == 2 else [])


def _ch05(P):
    k = _diffusion_classes(P.diffusion)
    n = P.n_eval // k * k
    first = shipped_recipe("ldm_first_stage")
    # shipped pixel models exist for airplanes and frogs and for all ten classes (comparison.SHIPPED_PIXEL),
    # the shipped latent prior for airplanes and frogs only
    ddpm_runs = 1 + (3 if k in (2, 10) else 0)
    ldm_runs = 4 + (1 if k == 2 else 0)       # chapter 06's run twice, chapter 07's, the ten-class generator
    work = [_forward(f"{ddpm_runs} DDPM samplers x {n} samples (DDIM-50, guided at most)", recipe("ddpm", P),
                     ddpm_runs * n, 50, guided=True),
            _forward(f"{ldm_runs} latent-diffusion samplers x {n} samples", recipe("ldm_prior", P),
                     ldm_runs * n, 50, guided=True),
            _forward("decode the latent samples", first, ldm_runs * n),
            _forward("reconstruct the test images (AE, CVAEs, first stage)", recipe("cvae_improved_bpd", P),
                     4 * _test(P, k))]
    if P.fid:
        models = ddpm_runs + ldm_runs + 4      # + the CVAEs, the AE and the real images
        work.append(_forward("FID: Inception-v3 features of every sample set and the test images", None,
                             models * n + _test(P, k), batch=100))
    return work


def _ch06(P):
    L, k, prior = P.latent, _diffusion_classes(P.latent), recipe("ldm_prior", P)
    first = shipped_recipe("ldm_first_stage")
    n_eval = P.n_eval // k * k
    sweep = len(L.guidance) * max(n_eval // 2, 6 * k)
    return [
        _forward("encode the training images and their mirror images", first, prior.data.n_train()),
        _forward("guidance sweep", prior, sweep, L.ddim_steps, guided=True),
        _forward("grids and the scrubber", prior, (L.n_grid + 6) * k + L.T // 10, L.ddim_steps, guided=True),
        _forward("judge the run and the shipped prior", prior, 2 * n_eval, L.ddim_steps, guided=True),
        _forward("decode every sample", first, sweep + 2 * n_eval + (L.n_grid + 6) * k),
    ]


def _ch07(P):
    """The toy (negligible), chapter 06's prior trained again by flow matching (its training is the
    recipe's), both priors judged at 10, 20 and 50 evaluations, two grids and the class draw."""
    L, k, prior = P.latent, _diffusion_classes(P.latent), recipe("lfm_prior", P)
    first = shipped_recipe("ldm_first_stage")
    n_eval, ten = P.n_eval // k * k, shipped_recipe("ldm_ten_class")
    return [
        _forward("encode the training images and their mirror images", first, prior.data.n_train()),
        _forward("both priors at 10, 20 and 50 evaluations", prior, 2 * n_eval, 10 + 20 + 50, guided=True),
        _forward("both priors' grids at 10 evaluations", prior, 2 * L.n_grid * k, 10, guided=True),
        _forward("the ten-class generator's draws (8 per class, 20 steps)", ten, 8 * 10, 20, guided=True),
        _forward("decode every sample", first, 2 * n_eval * 3 + 2 * L.n_grid * k + 80),
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
