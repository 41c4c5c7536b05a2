"""Train the in-domain CIFAR-10 classifier and ship it (checkpoints/classifier.safetensors).

    python tools/train_classifier.py --epochs 15           # a GPU takes about a minute
    python tools/train_classifier.py --epochs 1 --max-steps 2 --out /tmp/c   # a smoke run

Trains on the training split with flips, keeps a validation split for early stopping, and
measures the test accuracy on the full test split once, at the end; that number is stored in
the file's metadata (and checked by the tests on a subset) so chapter 05 can quote it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cvae_lib.data import load_cifar10
from cvae_lib.models.classifier import Classifier, ClassifierConfig, classifier_loss
from cvae_lib.runtime import pick_device, seed_everything
from cvae_lib.train import TrainConfig, fit, infer
from cvae_lib.weights import export_weights

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--train-per-class", type=int, default=None, help="subset size (default: all)")
    p.add_argument("--test-per-class", type=int, default=None, help="test subset (default: all 1,000)")
    p.add_argument("--out", type=Path, default=ROOT / "checkpoints")
    args = p.parse_args(argv)

    seed_everything(0)
    device = pick_device()
    train, val = load_cifar10("train").subset(n_per_class=args.train_per_class).split(100 if args.train_per_class is None else 1)
    test = load_cifar10("test").subset(n_per_class=args.test_per_class)
    model = Classifier(ClassifierConfig())
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="adamw",
                      weight_decay=5e-4, hflip=True, warmup_steps=100, max_steps=args.max_steps,
                      early_stopping=3)
    history = fit(model, classifier_loss, train, cfg, val=val, device=device,
                  checkpoint=args.out / "classifier-run.pt")
    logits = infer(model, test.images(), device=device)
    accuracy = float((logits.argmax(1) == test.y).float().mean())
    metrics = {"test_accuracy": round(accuracy, 4), "n_test": len(test), "epochs": len(history),
               "train_seconds": round(history.seconds, 1)}
    export_weights(model, args.out / "classifier.safetensors", metrics)
    print(f"test accuracy {accuracy:.4f} on {len(test)} test images after {len(history)} epochs "
          f"({history.seconds:.0f} s); wrote {args.out / 'classifier.safetensors'}")


if __name__ == "__main__":
    main()
