"""The ceiling of a latent generator, per class: the judge's accuracy on the real test images and
on the shipped first stage's reconstructions of them (all 10,000 test images).

    python tools/first_stage_ceiling.py     # benchmarks/results/first-stage-ceiling.json, about 2 CPU-minutes

A prior can only draw latents that the first stage decodes. Where the judge does not recognise
the decoder's reconstructions of real images of a class, samples of that class have a low
ceiling too (guidance can push some above it, towards what is typical of the class).
docs/results.md sets these numbers beside the ten-class generator's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cvae_lib.data import CLASSES, load_cifar10
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.train import infer
from cvae_lib.weights import load_weights, shipped

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "first-stage-ceiling.json"


def accuracies(judge, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The judge's accuracy on images x (N, 3, 32, 32) in [0, 1] with labels y, overall and per class."""
    pred = infer(judge, x, device="cpu").argmax(1).cpu()
    return {"overall": round(float((pred == y).float().mean()), 4),
            "per_class": {c: round(float((pred[y == k] == k).float().mean()), 4) for k, c in enumerate(CLASSES)}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    test = load_cifar10("test").subset(None)
    x, y = test.images(), test.y
    judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).eval()
    first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).eval()
    reconstructed = infer(first, x, device="cpu").float().clamp(0, 1)
    out = {"n_test": len(y), "first_stage": "ldm_first_stage.safetensors",
           "real": accuracies(judge, x, y), "reconstructed": accuracies(judge, reconstructed, y)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
