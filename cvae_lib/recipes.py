"""The course's runs, each written once: what every chapter trains, and what every shipped file
was trained with.

    run = recipe("ae", P)                     # chapter 01's autoencoder in profile P
    train, val = run.data.select(load_cifar10("train"))
    model = Autoencoder(run.model)
    load_or_train(model, ae_loss, train, run.train, run_dir(P.name) / run.checkpoint, val=val)

    shipped_recipe("vae_cpu")                 # checkpoints/vae_cpu.safetensors: chapter 02's VAE, longer
    shipped_recipe("vae_cpu", epochs=1, max_steps=2, per_class=3)   # the same recipe, smaller (smoke runs)

A recipe (`Run`) is a run's name, the chapter that trains or loads it, its model's config, its
`TrainConfig` (derived from the profile's `RunSize`), the images it trains on (`Data`), its
checkpoint's file name and, for a diffusion model, the process's config and the EMA decay.
The notebooks, the course runner (`course.own_runs`), the cost estimate (`compute`), the
scripts in tools/ and the benchmarks read the recipes here and none of them writes one again;
tests/test_recipes.py looks for copies, and checks every shipped file against its recipe.

Two facts decide a run's length: the profile's `RunSize` (epochs, batch, steps per epoch) and
the number of training images, which `Data.n_train` counts without loading them, so that
`Run.steps` (and everything sized by it, such as a KL warm-up) is known before any data is read.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from .data import CLASSES, ImageSet
from .diffusion import Diffusion, DiffusionConfig
from .flow import FlowConfig, FlowMatching
from .models.ae import AEConfig, Autoencoder, ae_loss
from .models.classifier import Classifier, ClassifierConfig, classifier_loss
from .models.cvae import CVAE, CVAEConfig, cvae_loss
from .models.first_stage import FirstStage, FirstStageConfig, first_stage_loss
from .models.toy import ToyConfig, ToyNet
from .models.unet import UNet, UNetConfig
from .models.vae import VAE, VAEConfig, vae_loss
from .profiles import Profile, RunSize, get_profile
from .train import TrainConfig

__all__ = ["Data", "Run", "RECIPES", "SHIPPED", "recipe", "shipped_recipe", "chapter_runs", "own_checkpoints",
           "open_ended", "toy_training", "IMAGES_PER_CLASS"]

IMAGES_PER_CLASS = 5000           # CIFAR-10 training images per class
STUDY_BATCH = 46                  # the study's batch size (and its copies of the 1-per-class images)
PAIR = ("airplane", "frog")       # the study's two classes: the shipped pixel models and the latent prior
_MODELS = {AEConfig: (Autoencoder, ae_loss), VAEConfig: (VAE, vae_loss), CVAEConfig: (CVAE, cvae_loss),
           ClassifierConfig: (Classifier, classifier_loss), FirstStageConfig: (FirstStage, first_stage_loss),
           UNetConfig: (UNet, None), ToyConfig: (ToyNet, None)}   # a U-Net's loss is its process's


@dataclass(frozen=True)
class Data:
    """Which of CIFAR-10's training images a run sees.

    `select(images)` draws them from the training split: `per_class` images of each of `classes`
    (a seeded choice), then `val_per_class` of each set aside for validation; with
    `held_out_first` (chapter 03, whose runs share one validation set) the validation images
    are set aside from all 50,000 first and the subset drawn from the rest.
    """
    classes: tuple[str, ...] | None = None   # None: all ten
    per_class: int | None = None             # at most this many images per class (None: all)
    val_per_class: int = 0                   # held out for validation (0: no validation set)
    held_out_first: bool = False             # validation from all images first, then the subset
    seed: int = 0                            # which `per_class` images
    copies: int = 1                          # each image this many times (1 per class x 46: batches)
    mirror: bool = False                     # latent runs encode each image and its mirror image

    def select(self, images: ImageSet) -> tuple[ImageSet, ImageSet | None]:
        """(training images, validation images or None) drawn from `images`, CIFAR-10's training split."""
        if self.held_out_first:
            pool, val = _held_out(images, self.val_per_class)
            train = pool.subset(self.classes, self.per_class, seed=self.seed) if self._subset else pool
        else:
            train, val = images.subset(self.classes, self.per_class, seed=self.seed), None
            if self.val_per_class:
                train, val = train.split(n_val_per_class=self.val_per_class, seed=0)
        if self.copies > 1:
            train = ImageSet(train.x.repeat(self.copies, 1, 1, 1), train.y.repeat(self.copies), train.classes)
        return train, val

    @property
    def _subset(self) -> bool:
        return self.classes is not None or self.per_class is not None

    def n_train(self, available: int = IMAGES_PER_CLASS) -> int:
        """How many training items `select` gives (mirror images included), counted without loading
        the images: `available` images per class (CIFAR-10's training split has 5,000)."""
        pool = available - self.val_per_class if self.held_out_first else available
        per_class = min(self.per_class or pool, pool)
        if not self.held_out_first:
            per_class -= self.val_per_class
        k = len(self.classes) if self.classes else len(CLASSES)
        return k * per_class * self.copies * (2 if self.mirror else 1)

    def describe(self) -> str:
        """One line for people: which images, how many."""
        which = ", ".join(self.classes) if self.classes else "all ten classes"
        each = f"{self.per_class:,} per class" if self.per_class else "every image"
        val = f"; {self.val_per_class} per class held out for validation" if self.val_per_class else ""
        copies = f", each {self.copies} times" if self.copies > 1 else ""
        mirror = ", and their mirror images" if self.mirror else ""
        return f"{which}, {each}{copies}{mirror}{val}: {self.n_train():,} training items"


_last_split: dict = {}


def _held_out(images: ImageSet, n_val: int) -> tuple[ImageSet, ImageSet]:
    """images.split(n_val, seed=0), computed once for the same image set: chapter 03 draws seven
    runs from one split of the 50,000 images, and each split copies them all."""
    ref = _last_split.get("images")
    if ref is None or ref() is not images or _last_split["n_val"] != n_val:
        _last_split.update(images=weakref.ref(images), n_val=n_val, result=images.split(n_val, seed=0))
    return _last_split["result"]


@dataclass(frozen=True)
class Run:
    """One training run: everything needed to build, train and find it again."""
    name: str
    chapter: str                  # the chapter that trains it (own runs) or shows it (shipped files)
    what: str                     # one line for people
    model: Any                    # the model's config dataclass (AEConfig, VAEConfig, CVAEConfig, UNetConfig, ...)
    train: TrainConfig
    data: Data
    checkpoint: str               # own runs: file in the profile's runs folder; shipped: checkpoints/<name>.safetensors
    size: RunSize                 # the run length it was derived from
    process: DiffusionConfig | FlowConfig | None = None   # a diffusion (or flow-matching) model's process
    ema_decay: float | None = None           # EMA of the weights used for sampling (None: no EMA)
    then: TrainConfig | None = None          # a second phase (the first stage's adversarial epochs)

    @property
    def steps(self) -> int:
        """Optimizer steps of the whole run (of its first phase)."""
        return self.train.total_steps(self.data.n_train())

    def build(self) -> nn.Module:
        """A fresh model of this run's config (its class is the config's, e.g. VAEConfig -> VAE)."""
        return _MODELS[type(self.model)][0](self.model)

    def build_process(self) -> Diffusion | FlowMatching | None:
        """A fresh forward process of a diffusion or flow-matching run (None for other runs)."""
        if isinstance(self.process, FlowConfig):
            return FlowMatching(self.process)
        return Diffusion(self.process) if self.process is not None else None

    def loss(self) -> Callable:
        """The training loss `loss(model, x, y)`: the model's own, or the diffusion process's."""
        process = self.build_process()
        return process.train_loss if process is not None else _MODELS[type(self.model)][1]


# ----------------------------------------------------------------------------- the models

def _vae(width: int, total_steps: int, likelihood: str = "logistic") -> VAEConfig:
    """Chapter 02's VAE: a vector latent of 64, residual blocks, a KL warm-up over the first quarter."""
    return VAEConfig(latent_dim=64, width=width, residual=True, likelihood=likelihood,
                     kl_warmup_steps=max(1, total_steps // 4))


def _cvae_for_samples(width: int, total_steps: int, sigma: float = 0.1) -> CVAEConfig:
    """Chapter 03's CVAE "improved for samples": residual blocks, a vector latent, an encoder that
    sees the label, a Gaussian likelihood, a KL warm-up over the first eighth."""
    return CVAEConfig(width=width, residual=True, condition_encoder=True, likelihood="gaussian", sigma=sigma,
                      kl_warmup_steps=max(1, total_steps // 8))


def _cvae_for_bpd(width: int, total_steps: int) -> CVAEConfig:
    """Chapter 03's CVAE "improved for bits/dim": a spatial 8x8 latent of 8 channels, a mixture of 5
    coupled discretised logistics, an encoder that sees the label, a KL warm-up over the first eighth."""
    return CVAEConfig(width=width, residual=True, spatial=True, n_stages=2, latent_dim=8,
                      likelihood="logistic_mixture", n_mix=5, condition_encoder=True,
                      kl_warmup_steps=max(1, total_steps // 8))


def _study_training(size: RunSize, **changes) -> TrainConfig:
    """The study's optimiser: Adam, learning rate 1e-3, batches of 46; the length is `size`'s."""
    return TrainConfig(epochs=size.epochs, batch_size=STUDY_BATCH, lr=1e-3, optimizer="adam",
                       max_steps=size.max_steps, **changes)


# ----------------------------------------------------------------------------- chapters' runs

def _ch01_ae(P: Profile) -> Run:
    s = P.ae
    return Run("ae", "01", "the autoencoder", AEConfig(latent_dim=256, width=s.width, residual=True),
               TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-3, hflip=True, max_steps=s.max_steps,
                           warmup_steps=100, schedule="cosine"),
               Data(per_class=s.train_per_class, val_per_class=P.val_per_class), "ae.pt", s)


def _ch02_vae(P: Profile) -> Run:
    s = P.vae
    train = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-3, hflip=True, max_steps=s.max_steps,
                        grad_clip=100.0)
    data = Data(per_class=s.train_per_class, val_per_class=P.val_per_class)
    return Run("vae", "02", "the VAE (discretized logistic likelihood)",
               _vae(s.width, train.total_steps(data.n_train())), train, data, "vae_logistic.pt", s)


def _side(P: Profile, name: str, what: str, model: Callable[[int, int], Any], checkpoint: str) -> Run:
    """Chapter 02's side runs: small models, the same short training, 50,000 images (seed 1)."""
    s = P.vae_side
    train = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-3, max_steps=s.max_steps, hflip=True,
                        grad_clip=100.0, progress=False)
    data = Data(per_class=s.train_per_class, seed=1)
    return Run(name, "02", what, model(s.width, train.total_steps(data.n_train())), train, data, checkpoint, s)


def _side_vae(likelihood: str, **changes) -> Callable[[int, int], VAEConfig]:
    return lambda width, steps: VAEConfig(latent_dim=64, width=width, residual=True, likelihood=likelihood,
                                          **{k: v(steps) if callable(v) else v for k, v in changes.items()})


_SIDE = {   # name: (what, model, checkpoint)
    "vae_side_bernoulli": ("side run: Bernoulli likelihood (the study's BCE)", _side_vae("bernoulli"),
                           "vae_side_bernoulli.pt"),
    "vae_side_gaussian": ("side run: Gaussian likelihood", _side_vae("gaussian"), "vae_side_gaussian.pt"),
    "vae_side_logistic_mixture": ("side run: mixture of discretized logistics", _side_vae("logistic_mixture"),
                                  "vae_side_logistic_mixture.pt"),
    "ae_side_64": ("side run: the autoencoder with a code of 64",
                   lambda width, steps: AEConfig(latent_dim=64, width=width, residual=True), "ae_side_64.pt"),
    "vae_side_beta4": ("side run: beta = 4", _side_vae("logistic_mixture", beta=4.0), "vae_side_beta=4.pt"),
    "vae_side_free_bits": ("side run: KL warm-up and free bits",
                           _side_vae("logistic_mixture", free_bits=0.25, kl_warmup_steps=lambda steps: steps // 2),
                           "vae_side_warm-up+freebits.pt"),
}


def _ch03_study(P: Profile, name: str) -> Run:
    """The study's CVAE and optimiser on one of its subsets (chapter 03's case study)."""
    held_out = {"val_per_class": P.val_per_class, "held_out_first": True}
    subsets = {   # name: (what, run length, data, extra training settings)
        "cvae_study_airplane": ("the study's recipe on airplanes", P.cvae_one_class,
                                Data(("airplane",), P.cvae_one_class.train_per_class, **held_out), {}),
        "cvae_study_frog": ("the study's recipe on frogs", P.cvae_one_class,
                            Data(("frog",), P.cvae_one_class.train_per_class, **held_out), {}),
        "cvae_study_1_per_class": ("the study's recipe on 1 image per class", P.cvae_one_per_class,
                                   Data(per_class=P.cvae_one_per_class.train_per_class, copies=STUDY_BATCH,
                                        **held_out), {}),
        "cvae_study_100_per_class": ("the study's recipe on 100 images per class, early stopping",
                                     P.cvae_hundred_per_class,
                                     Data(per_class=P.cvae_hundred_per_class.train_per_class, **held_out),
                                     {"early_stopping": 3}),
        "cvae_study_full": ("the study's recipe on all the data", P.cvae, Data(**held_out), {}),
    }
    what, size, data, changes = subsets[name]
    return Run(name, "03", what, CVAEConfig(width=P.cvae.width), _study_training(size, **changes), data,
               f"{name}.pt", size)


def _ch03_improved_bpd(P: Profile) -> Run:
    """The bits/dim recipe trains as many optimizer steps as the study's all-data run (batches of
    32 instead of 46: about the same computation, 5% less by the FLOP counter), whatever the machine."""
    study = _ch03_study(P, "cvae_study_full")
    per_epoch = study.train.steps_per_epoch(study.data.n_train())
    train = TrainConfig(epochs=P.cvae.epochs, batch_size=32, lr=2e-3, max_steps=per_epoch, hflip=True, grad_clip=100.0)
    return Run("cvae_improved_bpd", "03", "the CVAE improved for bits/dim", _cvae_for_bpd(P.cvae.width, study.steps),
               train, study.data, "cvae_improved_bpd.pt", replace(P.cvae, batch_size=32, max_steps=per_epoch))


def _ch03_improved_samples(P: Profile) -> Run:
    s = P.cvae
    train = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=1e-3, max_steps=s.max_steps, hflip=True,
                        grad_clip=100.0)
    data = Data(val_per_class=P.val_per_class, held_out_first=True)
    return Run("cvae_improved_samples", "03", "the CVAE improved for samples",
               _cvae_for_samples(s.width, train.total_steps(data.n_train())), train, data,
               "cvae_improved_samples.pt", s)


def _ch04_ddpm(P: Profile) -> Run:
    s, D = P.ddpm, P.diffusion
    return Run("ddpm", "04", "the DDPM's U-Net", UNetConfig.course(s.width),
               TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-3, warmup_steps=100, grad_clip=1.0,
                           hflip=True, max_steps=s.max_steps),
               Data(D.classes, s.train_per_class, P.val_per_class), "ddpm.pt", s,
               process=DiffusionConfig.course(D.T), ema_decay=D.ema_decay)


def _ch06_prior(P: Profile) -> Run:
    """The latent-diffusion prior on the shipped first stage's 8x8x8 latents."""
    s, L = P.ldm, P.latent
    return Run("ldm_prior", "06", "the latent-diffusion prior", UNetConfig.latent(num_classes=10, width=s.width),
               TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=1e-3, warmup_steps=100, schedule="cosine",
                           grad_clip=1.0, max_steps=s.max_steps),
               Data(L.classes, s.train_per_class, P.val_per_class, mirror=True), "ldm_prior.pt", s,
               process=DiffusionConfig.course(L.T, data="latent"), ema_decay=L.ema_decay)


def _ch07_flow_prior(P: Profile) -> Run:
    """Chapter 06's prior with one change, the objective: flow matching instead of the DDPM loss
    (chapter 07's equal-minutes comparison: same network, data, optimiser and steps)."""
    return replace(_ch06_prior(P), name="lfm_prior", chapter="07", what="the latent prior, trained by flow matching",
                   checkpoint="lfm_prior.pt", process=FlowConfig.course(data="latent"))


def toy_training(P: Profile) -> TrainConfig:
    """Chapter 07's 2-D toy: the small network's training, the same for both objectives."""
    s = P.toy
    return TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=3e-3, warmup_steps=50, schedule="cosine",
                       max_steps=s.max_steps, progress=False)


RECIPES: dict[str, Callable[[Profile], Run]] = {
    "ae": _ch01_ae,
    "vae": _ch02_vae,
    **{name: (lambda P, name=name, v=v: _side(P, name, *v)) for name, v in _SIDE.items()},
    **{name: (lambda P, name=name: _ch03_study(P, name))
       for name in ("cvae_study_airplane", "cvae_study_frog", "cvae_study_1_per_class", "cvae_study_100_per_class",
                    "cvae_study_full")},
    "cvae_improved_bpd": _ch03_improved_bpd,
    "cvae_improved_samples": _ch03_improved_samples,
    "ddpm": _ch04_ddpm,
    "ldm_prior": _ch06_prior,
    "lfm_prior": _ch07_flow_prior,
}


def _profile(profile: Profile | str | None) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def recipe(name: str, profile: Profile | str | None = None) -> Run:
    """The run `name` that a chapter trains, in `profile` (a Profile or its name; default: the current one)."""
    if name not in RECIPES:
        raise KeyError(f"no chapter run {name!r}; the runs are: {', '.join(RECIPES)}")
    return RECIPES[name](_profile(profile))


def chapter_runs(chapter: str, profile: Profile | str | None = None) -> list[Run]:
    """Every run chapter `chapter` ("01".."07") trains in `profile`, in the order it trains them."""
    P = _profile(profile)
    return [r for r in (build(P) for build in RECIPES.values()) if r.chapter == chapter]


def own_checkpoints(chapters: tuple[str, ...], profile: Profile | str | None = None) -> dict[str, str]:
    """{checkpoint file name: chapter} of the runs `chapters` train: what `course.own_runs` looks for."""
    return {r.checkpoint: r.chapter for ch in chapters for r in chapter_runs(ch, profile)}


# Changes for an open-ended run (time to quality: trained until a number of minutes has passed, so
# no schedule can know its end), beside the chapter's recipe; what benchmarks/time_to_quality.py measured.
_OPEN_ENDED = {"cvae_improved_bpd": {"train": {"warmup_steps": 100}, "model": {"kl_warmup_steps": 1000}},
               "ddpm": {}, "ldm_prior": {"train": {"schedule": "constant"}}}


def open_ended(name: str, profile: Profile | str | None = None, *, steps_per_epoch: int,
               batch_size: int | None = None, compile: bool | str = False) -> Run:
    """The chapter run `name` trained without an end: epochs of `steps_per_epoch` steps (one scored
    point each), a constant learning rate after the warm-up, no progress bars."""
    run = recipe(name, profile)
    changes = _OPEN_ENDED[name]
    train = replace(run.train, epochs=10**6, max_steps=steps_per_epoch, compile=compile, progress=False,
                    batch_size=batch_size or run.train.batch_size, **changes.get("train", {}))
    return replace(run, train=train, model=replace(run.model, **changes.get("model", {})))


# ----------------------------------------------------------------------------- shipped files

def _shipped_data(classes, per_class: int | None, **kw) -> Data:
    """The tools' images: the classes, 100 per class held out for validation (1 in a smaller subset)."""
    return Data(tuple(classes) if classes else None, per_class, 100 if per_class is None else 1, **kw)


def _size(epochs: int, batch_size: int, max_steps: int | None, width: int, per_class: int | None) -> RunSize:
    return RunSize(train_per_class=per_class, epochs=epochs, batch_size=batch_size, max_steps=max_steps, width=width)


def _shipped_classifier(epochs=10, batch_size=256, max_steps=None, per_class=None, lr=2e-3, **_) -> Run:
    return Run("classifier", "05", "the judge: a small CIFAR-10 classifier", ClassifierConfig(),
               TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, optimizer="adamw", weight_decay=0.05,
                           hflip=True, translate=2, warmup_steps=200, schedule="cosine", max_steps=max_steps,
                           early_stopping=3),
               _shipped_data(None, per_class), "classifier", _size(epochs, batch_size, max_steps, 0, per_class))


def _shipped_ddpm(name, classes=PAIR, epochs=40, batch_size=32, max_steps=None, width=16, per_class=None,
                  ema_decay=0.999, **_) -> Run:
    """Chapter 04's cpu-profile recipe, longer, with a cosine decay and a longer EMA."""
    return Run(name, "04", f"chapter 04's U-Net on {', '.join(classes) if classes else 'all ten classes'}",
               UNetConfig.course(width),
               TrainConfig(epochs=epochs, batch_size=batch_size, lr=2e-3, warmup_steps=100, schedule="cosine",
                           grad_clip=1.0, hflip=True, max_steps=max_steps),
               _shipped_data(classes, per_class), name, _size(epochs, batch_size, max_steps, width, per_class),
               process=DiffusionConfig.course(1000), ema_decay=ema_decay)


def _profile_ddpm(profile: str, classes=(), epochs=None, batch_size=None, max_steps=None, width=None,
                  per_class=None, ema_decay=None, **_) -> Run:
    """tools/train_ddpm.py --profile gpu|full: the profile's U-Net and run length (full: Ho et al.'s
    35.7M U-Net with their optimiser: Adam 2e-4, 5,000 warm-up steps, clipping at 1, flips)."""
    P = get_profile(profile)
    s = replace(P.ddpm, epochs=epochs or P.ddpm.epochs, batch_size=batch_size or P.ddpm.batch_size,
                max_steps=max_steps, width=width or P.ddpm.width, train_per_class=per_class)
    classes = P.diffusion.classes if classes == () else classes
    paper = P.diffusion.unet == "paper"
    if paper:
        train = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-4, warmup_steps=5000, grad_clip=1.0,
                            hflip=True, max_steps=max_steps, compile="auto")
    else:
        train = TrainConfig(epochs=s.epochs, batch_size=s.batch_size, lr=2e-3, warmup_steps=100, schedule="cosine",
                            grad_clip=1.0, hflip=True, max_steps=max_steps)
    return Run(f"ddpm_{profile}", "04", f"chapter 04's DDPM at the {profile} profile's size",
               UNetConfig.paper(num_classes=10) if paper else UNetConfig.course(s.width), train,
               _shipped_data(classes, per_class), f"ddpm_{profile}", s, process=DiffusionConfig.course(P.diffusion.T),
               ema_decay=ema_decay or (0.9999 if paper else 0.999))


def _shipped_vae(epochs=15, batch_size=64, max_steps=None, width=32, per_class=None, **_) -> Run:
    """Chapter 02's VAE on all ten classes, longer, with a cosine decay."""
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=2e-3, warmup_steps=100, schedule="cosine",
                        hflip=True, grad_clip=100.0, max_steps=max_steps)
    data = _shipped_data(None, per_class)
    return Run("vae_cpu", "02", "chapter 02's VAE, trained longer", _vae(width, train.total_steps(data.n_train())),
               train, data, "vae_cpu", _size(epochs, batch_size, max_steps, width, per_class))


def _shipped_cvae(name, classes=PAIR, epochs=25, batch_size=STUDY_BATCH, max_steps=None, width=32,
                  per_class=None, sigma=0.1, **_) -> Run:
    """Chapter 03's "improved for samples" CVAE, longer, with a cosine decay."""
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, warmup_steps=100, schedule="cosine",
                        hflip=True, grad_clip=100.0, max_steps=max_steps)
    data = _shipped_data(classes, per_class)
    return Run(name, "03", "chapter 03's CVAE improved for samples, trained longer",
               _cvae_for_samples(width, train.total_steps(data.n_train()), sigma), train, data, name,
               _size(epochs, batch_size, max_steps, width, per_class))


_STUDY_SUBSETS = {"airplane": (("airplane",), None, 1), "frog": (("frog",), None, 1),
                  "one_per_class": (None, 1, STUDY_BATCH), "hundred_per_class": (None, 100, 1)}


def _shipped_study(experiment, epochs=200, batch_size=STUDY_BATCH, max_steps=None, per_class=None,
                   val_per_class=100, **_) -> Run:
    """The study's experiments at the study's own length: its CVAE and optimiser, 200 epochs, on the
    images chapter 03 draws (100 per class held out first)."""
    classes, n, copies = _STUDY_SUBSETS[experiment]
    size = _size(epochs, batch_size, max_steps, 32, per_class or n)
    return Run(f"study_{experiment}", "03", f"the study's recipe on its {experiment.replace('_', ' ')} subset",
               CVAEConfig(), replace(_study_training(size), batch_size=batch_size),
               Data(classes, per_class or n, val_per_class, held_out_first=True, copies=copies),
               f"study_{experiment}", size)


def _shipped_first_stage(epochs=1, gan_epochs=6, batch_size=32, max_steps=None, width=32, per_class=None,
                         latent_channels=8, disc_weight=FirstStageConfig.disc_weight, **_) -> Run:
    """The latent autoencoder: L1 + KL first, then with the patch discriminator (VQGAN's recipe)."""
    return Run("ldm_first_stage", "06", "the first stage of latent diffusion",
               FirstStageConfig(width=width, latent_channels=latent_channels, disc_weight=disc_weight),
               TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, warmup_steps=200, schedule="cosine",
                           grad_clip=1.0, hflip=True, max_steps=max_steps),
               _shipped_data(None, per_class), "ldm_first_stage",
               _size(epochs, batch_size, max_steps, width, per_class),
               then=TrainConfig(epochs=gan_epochs, batch_size=batch_size, lr=2e-4, betas=(0.5, 0.9),
                                schedule="constant", grad_clip=1.0, hflip=True, max_steps=max_steps))


def _shipped_prior(classes=PAIR, epochs=40, batch_size=64, max_steps=None, width=64, per_class=None, lr=1e-3,
                   ema_decay=0.999, latent_channels=8, **_) -> Run:
    """Chapter 06's prior on the shipped first stage's latents, longer, with a cosine decay."""
    return Run("ldm_prior", "06", "the latent-diffusion prior, trained longer",
               UNetConfig.latent(latent_channels, num_classes=10, width=width),
               TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=300, schedule="cosine",
                           grad_clip=1.0, max_steps=max_steps),
               _shipped_data(classes, per_class, mirror=True), "ldm_prior",
               _size(epochs, batch_size, max_steps, width, per_class),
               process=DiffusionConfig.course(1000, data="latent"), ema_decay=ema_decay)


def _shipped_ten_class(epochs=13, batch_size=64, max_steps=None, width=64, per_class=None, lr=1e-3,
                       ema_decay=0.999, latent_channels=8, objective="flow", **_) -> Run:
    """Chapter 07's generator of all ten classes: chapter 06's prior network on the shipped first
    stage's latents of every class, trained by flow matching (the objective that won chapter 07's
    equal-minutes comparison; `objective="ddpm"` trains the DDPM loss instead)."""
    process = FlowConfig.course(data="latent") if objective == "flow" else DiffusionConfig.course(1000, data="latent")
    return Run("ldm_ten_class", "07", "the ten-class latent generator",
               UNetConfig.latent(latent_channels, num_classes=10, width=width),
               TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=300, schedule="cosine",
                           grad_clip=1.0, max_steps=max_steps),
               _shipped_data(None, per_class, mirror=True), "ldm_ten_class",
               _size(epochs, batch_size, max_steps, width, per_class), process=process, ema_decay=ema_decay)


SHIPPED: dict[str, Callable[..., Run]] = {
    "classifier": _shipped_classifier,
    "ddpm_cpu": lambda **kw: _shipped_ddpm("ddpm_cpu", **kw),
    "ddpm_ten_class": lambda **kw: _shipped_ddpm("ddpm_ten_class", **{"classes": None, "epochs": 10, **kw}),
    "ddpm_gpu": lambda **kw: _profile_ddpm("gpu", **kw),           # not shipped: the gpu profile's size
    "ddpm_full": lambda **kw: _profile_ddpm("full", **kw),         # not shipped: Ho et al.'s run
    "vae_cpu": _shipped_vae,
    "cvae_cpu": lambda **kw: _shipped_cvae("cvae_cpu", **kw),
    "cvae_ten_class": lambda **kw: _shipped_cvae("cvae_ten_class", **{"classes": None, "epochs": 12, "width": 24,
                                                                      "sigma": 0.3, **kw}),
    **{f"study_{e}": (lambda e=e, **kw: _shipped_study(e, **kw)) for e in _STUDY_SUBSETS},
    "ldm_first_stage": _shipped_first_stage,
    "ldm_prior": _shipped_prior,
    "ldm_ten_class": _shipped_ten_class,
}


def shipped_recipe(name: str, **changes) -> Run:
    """The recipe of the file checkpoints/<name>.safetensors (and of the tools' runs that are not
    shipped: ddpm_gpu, ddpm_full, study_one_per_class). `changes` (epochs, batch_size, max_steps,
    width, per_class, classes, ...; None: keep the recipe's) make it smaller or otherwise, as the
    tools' command-line options do."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped recipe {name!r}; they are: {', '.join(SHIPPED)}")
    return SHIPPED[name](**{k: v for k, v in changes.items() if v is not None})
