"""Train the in-domain CIFAR-10 classifier and ship it (checkpoints/classifier.safetensors).

    python tools/train_classifier.py --threads 1   # 2 CPU cores: about 1 hour
    python tools/train_classifier.py --epochs 1 --max-steps 2 --out /tmp/c   # a smoke run

The recipe is `shipped_recipe("classifier")` in cvae_lib/recipes.py: the training split with
flips and 2-pixel shifts (AdamW, cosine learning rate, label smoothing), 100 images per class
kept for validation (early stopping). The test accuracy is measured on the full test split once,
at the end; that number is stored in the file's metadata (and checked by the tests on a subset)
so chapter 05 can quote it.
"""
from __future__ import annotations

from shipping import CHECK_PER_CLASS, check_subset, recipe_changes, recipe_parser, recipe_splits, ship, start

from cvae_lib.models.classifier import Classifier, classifier_loss
from cvae_lib.recipes import shipped_recipe
from cvae_lib.train import infer, load_or_train


def main(argv=None) -> None:
    base = shipped_recipe("classifier")
    p = recipe_parser(__doc__, base, width=False)
    p.add_argument("--lr", type=float, default=base.train.lr)
    p.add_argument("--test-per-class", type=int, default=None, help="test subset (default: all 1,000)")
    args = p.parse_args(argv)
    device = start(args)
    run = shipped_recipe("classifier", **recipe_changes(args), lr=args.lr)
    train, val, test = recipe_splits(run)
    test = test.subset(n_per_class=args.test_per_class)
    model = Classifier(run.model)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, classifier_loss, train, run.train, args.out / f"{args.name}-run.pt", val=val,
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
