"""What the scripts that train the shipped weights share: arguments, start-up, data, export.

Every script also runs under torchrun (`torchrun --nproc_per_node 8 tools/train_ddpm.py ...`):
`start` joins the process group, `fit` trains with DistributedDataParallel on the global batch
`--batch-size`, and only rank 0 writes checkpoints and the shipped file.

Each script (train_classifier.py, train_ddpm.py, train_cvae.py, train_vae.py, train_study.py,
train_latent_diffusion.py) trains the recipe of its file in cvae_lib.recipes (`shipped_recipe`),
whose numbers are the defaults of its options; it trains through `load_or_train`, so an
interrupted run resumes and a finished run is only exported again, and records in the file's
metadata a metric on a fixed test subset (`check`) that tests/test_shipped.py repeats.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cvae_lib.data import CLASSES, ImageSet, load_cifar10
from cvae_lib.recipes import Run
from cvae_lib.runtime import distributed, init_distributed, pick_device, seed_everything
from cvae_lib.train import History, evaluate
from cvae_lib.weights import CHECKPOINTS, export_weights

ROOT = Path(__file__).resolve().parents[1]
CHECK_PER_CLASS = 50   # test images per class that the tests use to re-check a shipped file


def parser(doc: str, *, epochs: int, batch_size: int, name: str,
           classes: list[str] | None = None) -> argparse.ArgumentParser:
    """The common options; `classes` given: a --classes option with that default."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--train-per-class", type=int, default=None, help="subset size (default: all)")
    if classes is not None:
        p.add_argument("--classes", nargs="*", default=classes, help=f"default: {' '.join(classes)}")
    p.add_argument("--out", type=Path, default=CHECKPOINTS, help="default: the package's shipped weights")
    p.add_argument("--name", default=name, help="file name stem of the shipped weights")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    return p


def recipe_parser(doc: str, run: Run, *, classes: bool = False, width: bool = True) -> argparse.ArgumentParser:
    """`parser` with `run`'s numbers as the defaults (epochs, batch size, file name; its classes
    with `classes`), and --width (the model's) with `width`."""
    p = parser(doc, epochs=run.train.epochs, batch_size=run.train.batch_size, name=run.checkpoint,
               classes=list(run.data.classes or CLASSES) if classes else None)
    if width:
        p.add_argument("--width", type=int, default=run.size.width, help=f"default: {run.size.width}")
    return p


def recipe_changes(args) -> dict:
    """What the common options change in a recipe (cvae_lib.recipes.shipped_recipe's keywords)."""
    changes = {"epochs": args.epochs, "batch_size": args.batch_size, "max_steps": args.max_steps,
               "per_class": args.train_per_class, "width": getattr(args, "width", None)}
    if getattr(args, "classes", None) is not None:
        changes["classes"] = tuple(args.classes)
    return changes


def recipe_splits(run: Run) -> tuple[ImageSet, ImageSet, ImageSet]:
    """(train, validation, test) of `run`: its images (cvae_lib.recipes.Data) and the test images
    of its classes."""
    train, val = run.data.select(load_cifar10("train"))
    return train, val, load_cifar10("test").subset(list(run.data.classes) if run.data.classes else None)


def start(args) -> torch.device:
    """Threads, the torchrun process group if launched by torchrun, seed 0, device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    init_distributed()                 # (rank, world) = (0, 1) outside torchrun
    seed_everything(0)
    return pick_device()


def class_splits(names: list[str] | None, train_per_class: int | None,
                 val_per_class: int = 100) -> tuple[ImageSet, ImageSet, ImageSet]:
    """(train, validation, test) of the classes `names` (None: all ten); validation comes from train."""
    full = load_cifar10("train").subset(names, n_per_class=train_per_class)
    train, val = full.split(val_per_class if train_per_class is None else 1)
    return train, val, load_cifar10("test").subset(names)


def check_subset(names: list[str] | None, n_per_class: int = CHECK_PER_CLASS) -> ImageSet:
    """The fixed test subset whose metric a shipped file records under "check"; tests/test_shipped.py
    draws it with the same call: load_cifar10("test").subset(classes, n_per_class, seed=0)."""
    return load_cifar10("test").subset(names, n_per_class=n_per_class, seed=0)


def judge_metrics(sample, classes: list[str] | None, n_eval: int, device, chunk: int = 500) -> dict:
    """Chapter 05's judge protocol on a shipped generator: `n_eval` samples split evenly over
    `classes` (None: all ten), in chunks of `chunk`, each chunk drawn by `sample(y, generator)`
    -> (len(y), 3, 32, 32) in [0, 1] with one generator seeded 0, then scored by the shipped
    judge against the judge's features of *all* test images of those classes.

    Returns {"fd", "kid", "acc", "n_eval", "n_reference"} (cvae_lib.metrics.judge_scores).
    """
    from cvae_lib.metrics import judge_scores
    from cvae_lib.models.classifier import Classifier, ClassifierConfig
    from cvae_lib.train import infer
    from cvae_lib.weights import load_weights, shipped

    judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).to(device)
    test = load_cifar10("test").subset(classes)
    ref = infer(judge.features, test.images(), device=device)
    ids = [CLASSES.index(c) for c in (classes or CLASSES)]
    y = torch.tensor(ids).repeat_interleave(n_eval // len(ids))
    g = torch.Generator(device).manual_seed(0)
    x = torch.cat([sample(yb.to(device), g).float().cpu() for yb in y.split(chunk)])
    scores = judge_scores(judge, x, y, ref)
    return {k: round(v, 4) for k, v in scores.items()} | {"n_eval": len(y), "n_reference": len(test)}


def round_to_float16(model: torch.nn.Module) -> torch.nn.Module:
    """Round every floating-point tensor of `model` to float16 and back, in place, as a file
    shipped in float16 stores it: measure the recorded metrics after this call."""
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model


def ship(model: torch.nn.Module, args, history: History, metrics: dict, summary: str,
         dtype: torch.dtype | None = None) -> None:
    """Export `model` with `metrics` plus the run's facts (stored in `dtype` if given), and say
    what was written."""
    metrics = {**metrics, "epochs": len(history), "batch_size": args.batch_size,
               "train_seconds": round(history.seconds, 1), "device": str(next(model.parameters()).device),
               "threads": metrics.get("threads") or torch.get_num_threads()}   # a script that judged with more may say
    path = args.out / f"{args.name}.safetensors"
    if distributed()[0] != 0:          # under torchrun only rank 0 writes the shipped file
        return
    export_weights(model, path, metrics, dtype=dtype)
    print(f"{summary} after {len(history)} epochs ({history.seconds / 60:.1f} min); wrote {path}")


def ship_bpd(model: torch.nn.Module, loss_fn, args, history: History, train: ImageSet, test: ImageSet,
             classes: list[str] | None, extra=None, float16: bool = False) -> None:
    """Export a VAE-type model with its test bits/dim, the bits/dim on the check subset and the
    metrics `extra(model) -> dict` adds. float16: store it rounded to float16, with the rounded
    model's metrics (the float32 bits/dim kept as float32_test_bpd and float32_check_bpd)."""
    model.eval()

    def bpd(data):
        return evaluate(model, loss_fn, data)["bpd"]

    check = check_subset(classes)
    before = {"float32_test_bpd": round(bpd(test), 4), "float32_check_bpd": bpd(check)} if float16 else {}
    if float16:
        round_to_float16(model)
    metrics = {"test_bpd": round(bpd(test), 4), "n_test": len(test), "classes": classes, "steps": history.steps,
               "check": {"n_per_class": CHECK_PER_CLASS, "seed": 0, "bpd": bpd(check)},
               **(extra(model) if extra else {}), **before}
    ship(model, args, history, metrics, f"test bits/dim {metrics['test_bpd']:.4f} on {len(test)} test images",
         dtype=torch.float16 if float16 else None)


__all__ = ["CLASSES", "CHECK_PER_CLASS", "ROOT", "parser", "recipe_parser", "recipe_changes", "recipe_splits",
           "start", "class_splits", "check_subset", "judge_metrics", "round_to_float16", "ship", "ship_bpd"]
