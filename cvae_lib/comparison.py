"""Chapter 05's line-up: every model of the course as one table row, loaded and sampled one way.

    lineup = load_lineup(P, runs, device, 50, names)     # runs found in `runs`, shipped models of `names`
    for name in lineup.order:                            # the table's rows, in order
        entry = lineup.entries.get(name)                 # None: its chapter has not run (lineup.missing[name])
        x = entry.draw(y) if entry.draw else None        # samples (B, 3, 32, 32) in [0, 1], seed 0

The protocol is chapter 05's: every VAE draws z from its prior N(0, I) at temperature 1; every
diffusion model samples with DDIM in `steps` steps, eta = 1 unless the row says otherwise, from
`torch.Generator(device).manual_seed(0)`; guided rows use classifier-free guidance. The shipped
pixel models are used when they learned the profile's classes (`SHIPPED_PIXEL`); the shipped
latent-diffusion prior likewise.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .diffusion import Diffusion, DiffusionConfig
from .latent import LatentDiffusion
from .models.ae import AEConfig, Autoencoder
from .models.cvae import CVAE, CVAEConfig
from .models.first_stage import FirstStage, FirstStageConfig
from .models.unet import UNet, UNetConfig
from .recipes import recipe, shipped_recipe
from .train import History, infer, load_checkpoint, load_model
from .weights import load_weights, read_metadata, shipped

__all__ = ["OWN_RUNS", "SHIPPED_PIXEL", "Entry", "Lineup", "load_lineup", "train_minutes"]

# the chapters' runs (cvae_lib.recipes) whose models the table shows -> the table's rows that need each
_ROWS_OF_RUN = {"ae": ["AE"], "cvae_study_full": ["CVAE, study recipe"],
                "cvae_improved_bpd": ["CVAE, improved for bits/dim"],
                "cvae_improved_samples": ["CVAE, improved for samples"], "ddpm": ["DDPM, chapter 04 run"],
                "ldm_prior": ["LDM, chapter 06 run", "LDM, chapter 06 run, guided"],
                "lfm_prior": ["flow matching, chapter 07 run, guided"]}
# their checkpoints in a profile's runs folder -> the chapter that writes them (names are the same in every profile)
OWN_RUNS = {r.checkpoint: r.chapter for r in (recipe(name, "smoke") for name in _ROWS_OF_RUN)}
# shipped (CVAE, DDPM) files, one pair per set of classes they learned
SHIPPED_PIXEL = (("cvae_cpu", "ddpm_cpu"), ("cvae_ten_class", "ddpm_ten_class"))
SHIPPED_DDPM_ROWS = ("DDPM, shipped", "DDPM, shipped, guided", "DDPM, shipped, eta 0")
TEN_CLASS, TEN_CLASS_ROW = "ldm_ten_class", "ten-class generator, shipped, guided"   # chapter 07's


def train_minutes(path: str | Path) -> float:
    """Training time recorded in a chapter's checkpoint, in minutes."""
    return History(load_checkpoint(path)["history"]["rows"]).seconds / 60


@dataclass
class Entry:
    """One row of the table: the network, its training minutes, and how it samples and reconstructs."""
    network: nn.Module                                   # what the parameter count counts (no discriminator)
    minutes: float                                       # training minutes, recorded with the weights
    draw: Callable[[torch.Tensor], torch.Tensor] | None = None          # labels (B,) -> (B, 3, 32, 32) in [0, 1]
    reconstruct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None   # (x, y) -> x_hat
    bits_per_dim: bool = False                           # a CVAE: its loss gives test bits/dim

    @property
    def params(self) -> int:
        return sum(p.numel() for n, p in self.network.named_parameters() if ".disc." not in f".{n}")


@dataclass
class Lineup:
    """The table's rows in order; `entries` holds those whose model is here, `missing` the others
    (row -> the chapter that trains it); `shipped` one line per shipped model (what, how long)."""
    order: list[str]
    entries: dict[str, Entry]
    missing: dict[str, str]
    first_stage: FirstStage
    first_stage_minutes: float                          # its training time (shared by every LDM row)
    reconstruct_first: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]   # through it, computed once per x
    guidance_ldm: float
    shipped: list[str] = field(default_factory=list)


def _vae_draw(model: CVAE, device) -> Callable:
    return lambda y: model.sample(y.to(device), generator=torch.Generator().manual_seed(0))


def _ddim_draw(model: nn.Module, diffusion: Diffusion, steps: int, device, guidance: float = 1.0,
               eta: float = 1.0) -> Callable:
    return lambda y: diffusion.ddim_sample(model, len(y), y.to(device), steps=steps, eta=eta, guidance=guidance,
                                           generator=torch.Generator(device).manual_seed(0))


def _ldm_draw(ldm: LatentDiffusion, steps: int, device, guidance: float = 1.0) -> Callable:
    return lambda y: ldm.sample(y, steps=steps, eta=1.0, guidance=guidance,
                                generator=torch.Generator(device).manual_seed(0))


def _cvae_reconstruct(model: CVAE, device) -> Callable:
    return lambda x, y: torch.cat([model.reconstruct(a.to(device), b.to(device)).cpu()
                                   for a, b in zip(x.split(500), y.split(500))])


def _shipped_pixel(names: list[str]) -> tuple[str, str] | None:
    for cvae_file, ddpm_file in SHIPPED_PIXEL:
        if all(read_metadata(shipped(f))["metrics"]["classes"] == names for f in (cvae_file, ddpm_file)):
            return cvae_file, ddpm_file
    return None


def load_lineup(P, runs: str | Path, device, steps: int, names: list[str]) -> Lineup:
    """Every model chapter 05 compares on the classes `names` in profile `P`: the runs found in
    `runs` (the others are listed in `missing`) and the shipped models that learned `names`."""
    runs, e = Path(runs), {}
    path = {name: runs / recipe(name, P).checkpoint for name in _ROWS_OF_RUN}
    order = ["AE", "CVAE, study recipe", "CVAE, improved for bits/dim", "CVAE, improved for samples"]
    if path["ae"].exists():
        ae = load_model(path["ae"], Autoencoder, AEConfig).to(device)
        e["AE"] = Entry(ae, train_minutes(path["ae"]), reconstruct=lambda x, y: infer(ae, x, device=device))
    for run in ("cvae_study_full", "cvae_improved_bpd", "cvae_improved_samples"):
        if path[run].exists():
            m = load_model(path[run], CVAE, CVAEConfig).to(device)
            e[_ROWS_OF_RUN[run][0]] = Entry(m, train_minutes(path[run]), _vae_draw(m, device),
                                            _cvae_reconstruct(m, device), True)
    pixel = _shipped_pixel(names)
    if pixel:
        order.append("CVAE, shipped")
    order += ["DDPM, chapter 04 run", *(SHIPPED_DDPM_ROWS if pixel else ()),
              "LDM, chapter 06 run", "LDM, chapter 06 run, guided", "flow matching, chapter 07 run, guided"]
    if path["ddpm"].exists():   # chapter 04's run: the EMA weights, with the schedule chapter 04 used in this profile
        m = load_model(path["ddpm"], UNet, UNetConfig, ema=True).to(device)
        diffusion = Diffusion(recipe("ddpm", P).process).to(device)
        e["DDPM, chapter 04 run"] = Entry(m, train_minutes(path["ddpm"]), _ddim_draw(m, diffusion, steps, device))
    latent = _latent_rows(P, (path["ldm_prior"], path["lfm_prior"]), device, steps, names, e, order)
    shipped_lines = (_pixel_rows(pixel, device, steps, e) if pixel else []) + latent.pop("lines")
    missing = {row: recipe(run, P).chapter for run, f in path.items() if not f.exists() for row in _ROWS_OF_RUN[run]}
    return Lineup(order, {row: e[row] for row in order if row in e}, missing, shipped=shipped_lines, **latent)


def _latent_rows(P, priors: tuple[Path, Path], device, steps: int, names: list[str], e: dict, order: list[str]):
    """Chapter 06's latent diffusion: the shipped first stage with chapter 06's prior, chapter 07's
    prior trained by flow matching (Euler with as many steps as DDIM takes), the shipped prior if it
    learned these classes, and the shipped ten-class generator; the two-class rows are guided with
    the weight the prior's training script chose on training images, the ten-class one with its own.
    Returns the Lineup's first-stage fields, and "lines" about the files."""
    prior, flow_prior = priors
    first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).to(device).requires_grad_(False)
    meta_first, meta_ldm = (read_metadata(shipped(f))["metrics"] for f in ("ldm_first_stage", "ldm_prior"))
    w = meta_ldm["guidance"]
    recon = _once(lambda x: infer(first, x, device=device))              # every LDM row decodes through it
    if prior.exists():
        ldm = LatentDiffusion(first, load_model(prior, UNet, UNetConfig, ema=True).to(device),
                              Diffusion(recipe("ldm_prior", P).process).to(device))
        minutes = train_minutes(prior)
        e["LDM, chapter 06 run"] = Entry(ldm, minutes, _ldm_draw(ldm, steps, device), recon)
        e["LDM, chapter 06 run, guided"] = Entry(ldm, minutes, _ldm_draw(ldm, steps, device, w), recon)
    if flow_prior.exists():
        ldm = LatentDiffusion(first, load_model(flow_prior, UNet, UNetConfig, ema=True).to(device),
                              recipe("lfm_prior", P).build_process())
        e["flow matching, chapter 07 run, guided"] = Entry(ldm, train_minutes(flow_prior),
                                                           _ldm_draw(ldm, steps, device, w), recon)
    lines = [f"first stage shared by every LDM row: trained once, {meta_first['train_seconds'] / 60:.0f} min on "
             f"{meta_first['threads']} CPU thread(s)"]
    if meta_ldm["classes"] == names:
        ldm = LatentDiffusion(first, load_weights(shipped("ldm_prior"), UNet, UNetConfig).to(device),
                              Diffusion(DiffusionConfig(**meta_ldm["diffusion"])).to(device))
        e["LDM, shipped, guided"] = Entry(ldm, meta_ldm["train_seconds"] / 60, _ldm_draw(ldm, steps, device, w), recon)
        order.append("LDM, shipped, guided")
        lines.append(_shipped_line("latent-diffusion prior", meta_ldm))
    if shipped(TEN_CLASS).exists():                 # draws any class, so it joins every profile's table
        meta_ten = read_metadata(shipped(TEN_CLASS))["metrics"]
        ldm = LatentDiffusion(first, load_weights(shipped(TEN_CLASS), UNet, UNetConfig).to(device),
                              shipped_recipe(TEN_CLASS, objective=meta_ten["objective"]).build_process())
        e[TEN_CLASS_ROW] = Entry(ldm, meta_ten["train_seconds"] / 60,
                                 _ldm_draw(ldm, steps, device, meta_ten["guidance"]), recon)
        order.append(TEN_CLASS_ROW)
        lines.append(_shipped_line(f"ten-class generator ({meta_ten['objective']})", meta_ten))
    return {"first_stage": first, "first_stage_minutes": meta_first["train_seconds"] / 60,
            "reconstruct_first": recon, "guidance_ldm": w, "lines": lines}


def _pixel_rows(files: tuple[str, str], device, steps: int, e: dict) -> list[str]:
    """The shipped CVAE and DDPM (schedules and training times from the files' metadata)."""
    meta_cvae, meta = (read_metadata(shipped(f))["metrics"] for f in files)
    cvae = load_weights(shipped(files[0]), CVAE, CVAEConfig).to(device)
    e["CVAE, shipped"] = Entry(cvae, meta_cvae["train_seconds"] / 60, _vae_draw(cvae, device),
                               _cvae_reconstruct(cvae, device), True)
    ddpm = load_weights(shipped(files[1]), UNet, UNetConfig).to(device)
    diffusion = Diffusion(DiffusionConfig(**meta["diffusion"])).to(device)
    for name, kw in zip(SHIPPED_DDPM_ROWS, ({}, {"guidance": 2.0}, {"eta": 0.0})):
        e[name] = Entry(ddpm, meta["train_seconds"] / 60, _ddim_draw(ddpm, diffusion, steps, device, **kw))
    return [_shipped_line("CVAE", meta_cvae), _shipped_line("DDPM", meta)]


def _shipped_line(what: str, meta: dict) -> str:
    return (f"shipped {what}: trained on {', '.join(meta['classes'])} for {meta['steps']:,} steps of "
            f"{meta['batch_size']} ({meta['train_seconds'] / 60:.0f} min on {meta['threads']} CPU thread(s))")


def _once(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """fn(x) as a reconstruct(x, y), computed once for the same x (rows that share a first stage)."""
    memo: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def reconstruct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if id(x) not in memo or memo[id(x)][0] is not x:
            memo.clear()
            memo[id(x)] = (x, fn(x))
        return memo[id(x)][1]
    return reconstruct
