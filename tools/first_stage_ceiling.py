"""The ceiling of a latent generator, per class: the judge's accuracy on the real test images and
on the shipped first stage's reconstructions of them (all 10,000 test images).

    python tools/first_stage_ceiling.py             # benchmarks/results/first-stage-ceiling.json, about 2 CPU-minutes
    python tools/first_stage_ceiling.py --fid 2000  # and the FID of 2,000 reconstructions, about 10 more

A prior can only draw latents that the first stage decodes. Where the judge does not recognise
the decoder's reconstructions of real images of a class, samples of that class have a low
ceiling too (guidance can push some above it, towards what is typical of the class).
docs/results.md sets these numbers beside the ten-class generator's. `--fid N` adds the FID
(offline Inception network) of the first stage's reconstructions of N training images (N / 10 per
class, seed 0) against all test images, beside that of the same N real images: a generator that
decodes through this first stage is unlikely to score below the reconstructions.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cvae_lib.data import CLASSES, cache_dir, load_cifar10
from cvae_lib.metrics import cached_inception_features, frechet_distance, inception_features
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


def fid_of_reconstructions(first, train, test_images: torch.Tensor, n: int) -> dict:
    """FID against the test images of n real training images and of their reconstructions."""
    real = train.subset(None, n_per_class=n // len(CLASSES), seed=0).images()
    reconstructed = infer(first, real, device="cpu").float().clamp(0, 1)
    ref = cached_inception_features(test_images, cache_dir() / "inception")
    return {"n": len(real), "n_reference": len(ref),
            "real": round(frechet_distance(inception_features(real), ref), 2),
            "reconstructed": round(frechet_distance(inception_features(reconstructed), ref), 2)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fid", type=int, default=0, help="N training images to reconstruct for FID (0: none)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    test = load_cifar10("test").subset(None)
    x, y = test.images(), test.y
    judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).eval()
    first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).eval()
    reconstructed = infer(first, x, device="cpu").float().clamp(0, 1)
    out = {"n_test": len(y), "first_stage": "ldm_first_stage.safetensors",
           "real": accuracies(judge, x, y), "reconstructed": accuracies(judge, reconstructed, y)}
    if args.fid:
        out["fid"] = fid_of_reconstructions(first, load_cifar10("train"), x, args.fid)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
