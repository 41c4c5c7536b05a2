"""Sampling time of the course's shipped diffusion models in NCHW vs NHWC (channels_last).

    python benchmarks/sampling_layout.py            # chapter 05's calls: 200 images, DDIM-50
    python benchmarks/sampling_layout.py --n 20     # a quick look

`Diffusion.samples_nhwc` decides the layout the samplers feed the denoiser: NHWC for images on
CPUs and GPUs (the layout `fit` trains in), NCHW for latents. This script measures that choice:
each of chapter 05's shipped diffusion rows (pixel DDPM with eta 1, the same guided with w = 2,
the latent-diffusion prior guided) is sampled once in each layout from the same seed, in the
precision `runtime.autocast` picks (set CVAE_AMP=off for fp32, as the course's times are
quoted), and the two sample sets are compared (max |difference| in [0, 1] pixels, or latent
units). Writes benchmarks/results/sampling-layout-<device>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.runtime import autocast, describe, pick_device
from cvae_lib.weights import load_weights, read_metadata, shipped

OUT = Path(__file__).resolve().parent / "results"


def timed(draw, device: torch.device) -> tuple[float, torch.Tensor]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    with autocast(device):
        x = draw()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, x.float().cpu()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="images per row (chapter 05: 200 in the cpu profile)")
    ap.add_argument("--steps", type=int, default=50)
    args = ap.parse_args()
    device = pick_device()
    write(measure(samplers(args, device), args, device), args, device)


def samplers(args, device) -> dict:
    """Chapter 05's three diffusion rows on the shipped models: name -> a call that draws args.n images."""
    meta = read_metadata(shipped("ddpm_cpu"))["metrics"]
    ddpm = load_weights(shipped("ddpm_cpu"), UNet, UNetConfig).to(device)
    d_img = Diffusion(DiffusionConfig(**meta["diffusion"])).to(device)
    meta_ldm = read_metadata(shipped("ldm_prior"))["metrics"]
    prior = load_weights(shipped("ldm_prior"), UNet, UNetConfig).to(device)
    d_lat = Diffusion(DiffusionConfig(**meta_ldm["diffusion"])).to(device)
    latent_shape = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).cfg.latent_shape
    y = torch.arange(args.n, device=device) % 2     # the two classes the shipped models learned

    def row(diffusion, model, shape, **kw):
        return lambda: diffusion.ddim_sample(model, args.n, y, steps=args.steps, shape=shape, progress=False,
                                             generator=torch.Generator(device).manual_seed(0), **kw)

    return {"pixel DDPM, eta 1": row(d_img, ddpm, (3, 32, 32), eta=1.0),
            "pixel DDPM, guided w=2": row(d_img, ddpm, (3, 32, 32), eta=1.0, guidance=2.0),
            "latent prior, guided": row(d_lat, prior, latent_shape, eta=1.0, guidance=meta_ldm["guidance"])}


def measure(rows: dict, args, device) -> list[dict]:
    """Each row sampled once in NCHW and once in NHWC: seconds, and the largest difference."""
    results = []
    rule = Diffusion.samples_nhwc
    for name, draw in rows.items():
        t, x = {}, {}
        for layout in ("NCHW", "NHWC"):
            # force the layout the sampler would otherwise choose itself
            Diffusion.samples_nhwc = (lambda self, shape, dev, nhwc=layout == "NHWC": nhwc)
            t[layout], x[layout] = timed(draw, device)
            print(f"{name:26s} {layout}: {t[layout]:6.1f} s", flush=True)
        Diffusion.samples_nhwc = rule
        results.append({"row": name, "n": args.n, "steps": args.steps, "nchw_s": round(t["NCHW"], 2),
                        "nhwc_s": round(t["NHWC"], 2), "speedup": round(t["NCHW"] / t["NHWC"], 2),
                        "max_abs_diff": float((x["NCHW"] - x["NHWC"]).abs().max())})
    return results


def write(results: list[dict], args, device) -> None:
    """results/sampling-layout-<device>.json and .md."""
    info = describe(device)
    OUT.mkdir(exist_ok=True)
    stem = OUT / f"sampling-layout-{device.type}"
    stem.with_suffix(".json").write_text(json.dumps({"runtime": info, "results": results}, indent=1) + "\n")
    lines = [f"# Sampling layout, {device.type} ({info['cpu_threads']} threads, autocast {info['autocast']})", "",
             f"{args.n} images per row, DDIM-{args.steps}, seed 0; one run per layout.", "",
             "| row | NCHW (s) | NHWC (s) | NCHW / NHWC | max abs diff |", "|---|---|---|---|---|"]
    lines += [f"| {r['row']} | {r['nchw_s']} | {r['nhwc_s']} | {r['speedup']} | {r['max_abs_diff']:.1e} |"
              for r in results]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
