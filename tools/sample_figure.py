"""The README's sample image: the shipped ten-class generator draws every class of CIFAR-10.

    python tools/sample_figure.py                      # docs/ten_class_samples.png, 10 per class, seed 2
    python tools/sample_figure.py --per-class 4 --out /tmp/samples.png

One row per class, drawn with the file's recorded sampler and guidance weight (chosen on training
images by tools/train_ten_class.py), from a fixed seed, so the image is the same on every run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cvae_lib.data import CLASSES
from cvae_lib.latent import LatentDiffusion
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.plotting import show_images
from cvae_lib.recipes import shipped_recipe
from cvae_lib.weights import load_weights, read_metadata, shipped

ROOT = Path(__file__).resolve().parents[1]
NAME = "ldm_ten_class"


def ten_class_generator() -> tuple[LatentDiffusion, dict]:
    """The shipped generator (first stage + prior + its process) and its recorded metrics."""
    meta = read_metadata(shipped(NAME))["metrics"]
    first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).eval()
    prior = load_weights(shipped(NAME), UNet, UNetConfig).eval()
    process = shipped_recipe(NAME, objective=meta["objective"]).build_process()
    return LatentDiffusion(first, prior, process), meta


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "ten_class_samples.png")
    args = p.parse_args(argv)
    ldm, meta = ten_class_generator()
    y = torch.arange(len(CLASSES)).repeat_interleave(args.per_class)
    x = ldm.sample(y, steps=meta["sampler_steps"], guidance=meta["guidance"],
                   generator=torch.Generator().manual_seed(args.seed), progress=False)
    fig = show_images(x, nrow=args.per_class, row_labels=list(CLASSES), scale=0.55)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"wrote {args.out}: {len(y)} samples ({meta['sampler']}, guidance {meta['guidance']:g}, seed {args.seed})")


if __name__ == "__main__":
    main()
