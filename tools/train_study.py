"""Train the study's experiments at the study's own budget, for chapter 03 (shipped in float16).

    python tools/train_study.py airplane --threads 1        # checkpoints/study_airplane.safetensors
    python tools/train_study.py frog --threads 1
    python tools/train_study.py hundred_per_class --threads 1
    python tools/train_study.py one_per_class --threads 1   # ~2,000 steps: a few minutes, not shipped
    python tools/train_study.py airplane --epochs 1 --max-steps 2 --out /tmp/s   # a smoke run

The recipe is the study's, unchanged: its CVAE (`CVAEConfig()`: plain blocks, a 128-d vector
latent, the label embedding added to z), BCE + KL, Adam at 1e-3, batch 46, **200 epochs**, no
augmentation, no early stopping. The images are the ones chapter 03 trains on: its training
split (100 images per class held out for validation, seed 0), then one class (4,900 images),
1 image per class (repeated 46 times, so one epoch is 10 steps, as in chapter 03), or 100 per
class. The file records the float16-rounded model's test -ELBO per dimension (BCE, the study's
loss: not a bits/dim, since BCE is no distribution over pixel levels) and KL on the test images
of its classes, and the same on a check subset that tests/test_shipped.py repeats.
"""
from __future__ import annotations

import torch
from shipping import CHECK_PER_CLASS, check_subset, parser, round_to_float16, ship, start

from cvae_lib.data import CLASSES, ImageSet, load_cifar10
from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.train import TrainConfig, evaluate, load_or_train

EXPERIMENTS = {          # name: (classes, images per class); None: all
    "airplane": (["airplane"], None),
    "frog": (["frog"], None),
    "one_per_class": (None, 1),
    "hundred_per_class": (None, 100),
}
VAL_PER_CLASS = 100      # chapter 03's cpu and gpu profiles


def study_images(experiment: str, val_per_class: int = VAL_PER_CLASS) -> ImageSet:
    """The training images of `experiment`, drawn as chapter 03 draws them."""
    classes, per_class = EXPERIMENTS[experiment]
    train_all, _ = load_cifar10("train").split(n_val_per_class=val_per_class, seed=0)
    data = train_all.subset(classes=classes, n_per_class=per_class, seed=0)
    if experiment == "one_per_class":                 # 10 images x 46 copies: 10 batches per epoch
        data = ImageSet(data.x.repeat(46, 1, 1, 1), data.y.repeat(46))
    return data


def main(argv=None) -> None:
    p = parser(__doc__, epochs=200, batch_size=46, name="")
    p.add_argument("experiment", choices=list(EXPERIMENTS))
    p.add_argument("--val-per-class", type=int, default=VAL_PER_CLASS,
                   help=f"images per class held out as chapter 03 holds them out (default {VAL_PER_CLASS})")
    args = p.parse_args(argv)
    args.name = args.name or f"study_{args.experiment}"
    device = start(args)
    train = study_images(args.experiment, args.val_per_class)
    if args.train_per_class:                          # smoke runs: a smaller subset
        train = train.subset(EXPERIMENTS[args.experiment][0], n_per_class=args.train_per_class, seed=0)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, optimizer="adam",
                      max_steps=args.max_steps)
    model = CVAE(CVAEConfig())
    history = load_or_train(model, cvae_loss, train, cfg, args.out / f"{args.name}-run.pt", device=device)
    model.eval()
    round_to_float16(model)
    classes = EXPERIMENTS[args.experiment][0]
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
