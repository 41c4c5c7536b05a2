"""Train the study's experiments at the study's own length, for chapter 03 (shipped in float16).

    python tools/train_study.py airplane --threads 1        # checkpoints/study_airplane.safetensors
    python tools/train_study.py frog --threads 1
    python tools/train_study.py hundred_per_class --threads 1
    python tools/train_study.py one_per_class --threads 1   # ~2,000 steps: a few minutes, not shipped
    python tools/train_study.py airplane --epochs 1 --max-steps 2 --out /tmp/s   # a smoke run

The recipe is the study's, unchanged (`shipped_recipe("study_<experiment>")` in
cvae_lib/recipes.py): its CVAE (`CVAEConfig()`: plain blocks, a 128-d vector latent, the label
embedding added to z), BCE + KL, Adam at 1e-3, batch 46, 200 epochs, no augmentation, no early
stopping. The images are the ones chapter 03 trains on: its training split (100 images per class
held out for validation, seed 0), then one class (4,900 images), 1 image per class (repeated 46
times, so one epoch is 10 steps, as in chapter 03), or 100 per class. The file records the
float16-rounded model's test -ELBO per dimension (BCE, the study's loss: not a bits/dim, since
BCE is no distribution over pixel levels) and KL on the test images of its classes, and the same
on a check subset that tests/test_shipped.py repeats.
"""
from __future__ import annotations

import torch
from shipping import CHECK_PER_CLASS, check_subset, parser, round_to_float16, ship, start

from cvae_lib.data import CLASSES, ImageSet, load_cifar10
from cvae_lib.models.cvae import CVAE, cvae_loss
from cvae_lib.recipes import shipped_recipe
from cvae_lib.train import evaluate, load_or_train

EXPERIMENTS = ("airplane", "frog", "one_per_class", "hundred_per_class")


def main(argv=None) -> None:
    base = shipped_recipe("study_airplane")
    p = parser(__doc__, epochs=base.train.epochs, batch_size=base.train.batch_size, name="")
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--val-per-class", type=int, default=base.data.val_per_class,
                   help=f"images per class held out as chapter 03 holds them out (default {base.data.val_per_class})")
    args = p.parse_args(argv)
    args.name = args.name or f"study_{args.experiment}"
    device = start(args)
    run = shipped_recipe(f"study_{args.experiment}", epochs=args.epochs, batch_size=args.batch_size,
                         max_steps=args.max_steps, per_class=args.train_per_class, val_per_class=args.val_per_class)
    train, _ = run.data.select(load_cifar10("train"))
    model = CVAE(run.model)
    history = load_or_train(model, cvae_loss, train, run.train, args.out / f"{args.name}-run.pt", device=device)
    model.eval()
    round_to_float16(model)
    classes = list(run.data.classes) if run.data.classes else None
    test = load_cifar10("test").subset(classes)
    metrics = {"experiment": args.experiment, "classes": classes or list(CLASSES), "n_train": len(train),
               "steps": history.steps, **_scores(model, test, "test"), "n_test": len(test),
               "final_train_loss": history.rows[-1]["train_loss"],
               "check": {"n_per_class": CHECK_PER_CLASS, "seed": 0, **_scores(model, check_subset(classes))}}
    ship(model, args, history, metrics, f"{args.experiment}: test -ELBO {metrics['test_loss']:.4f} per dimension "
         f"(BCE), KL {metrics['test_kl']:.1f} nats per image, on {len(test)} test images", dtype=torch.float16)


def _scores(model: CVAE, data: ImageSet, prefix: str = "") -> dict:
    """-ELBO per dimension (BCE: the study's loss, not a bits/dim) and KL in nats per image."""
    s = evaluate(model, cvae_loss, data)
    pre = f"{prefix}_" if prefix else ""
    return {f"{pre}loss": round(s["loss"], 5), f"{pre}kl": round(s["kl"], 3)}


if __name__ == "__main__":
    main()
