"""Train the in-domain CIFAR-10 classifier and ship it (checkpoints/classifier.safetensors).

    python tools/train_classifier.py --epochs 10 --threads 1   # 2 CPU cores: about 1 hour
    python tools/train_classifier.py --epochs 1 --max-steps 2 --out /tmp/c   # a smoke run

Trains on the training split with flips and 2-pixel shifts (AdamW, cosine learning rate,
label smoothing), keeps 100 images per class for validation (early stopping), and measures
the test accuracy on the full test split once, at the end; that number is stored in the
file's metadata (and checked by the tests on a subset) so chapter 05 can quote it.
"""
from __future__ import annotations

from shipping import CHECK_PER_CLASS, check_subset, class_splits, parser, ship, start

from cvae_lib.models.classifier import Classifier, ClassifierConfig, classifier_loss
from cvae_lib.train import TrainConfig, infer, load_or_train


def main(argv=None) -> None:
    p = parser(__doc__, epochs=10, batch_size=256, name="classifier")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test-per-class", type=int, default=None, help="test subset (default: all 1,000)")
    args = p.parse_args(argv)
    device = start(args)
    train, val, test = class_splits(None, args.train_per_class)
    test = test.subset(n_per_class=args.test_per_class)
    model = Classifier(ClassifierConfig())
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="adamw",
                      weight_decay=0.05, hflip=True, translate=2, warmup_steps=200, schedule="cosine",
                      max_steps=args.max_steps, early_stopping=3)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, classifier_loss, train, cfg, args.out / f"{args.name}-run.pt", val=val,
                            device=device)
    model.eval()

    def accuracy(data) -> float:
        return float((infer(model, data.images(), device=device).argmax(1) == data.y).float().mean())

    n_check = min(CHECK_PER_CLASS, args.test_per_class or CHECK_PER_CLASS)
    metrics = {"test_accuracy": round(accuracy(test), 4), "n_test": len(test),
               "check": {"n_per_class": n_check, "seed": 0, "accuracy": accuracy(check_subset(None, n_check))}}
    ship(model, args, history, metrics, f"test accuracy {metrics['test_accuracy']:.4f} on {len(test)} test images")


if __name__ == "__main__":
    main()
