"""Train the DDPMs that the course ships (checkpoints/ddpm_cpu.safetensors, ddpm_ten_class) on a
CPU or a GPU, and the profiles' longer runs.

    python tools/train_ddpm.py --threads 1                           # ddpm_cpu (its recipe's defaults)
    python tools/train_ddpm.py --name ddpm_ten_class --threads 1     # the same recipe on all ten classes
    python tools/train_ddpm.py --epochs 1 --max-steps 2 --n-eval 20 --out /tmp/d   # a smoke run
    torchrun --nproc_per_node 8 tools/train_ddpm.py --profile full   # Ho et al.'s run, 8 GPUs

Under torchrun `--batch-size` is the global batch (each of the N processes takes 1/N of it).

Chapter 04 trains the same U-Net for a few minutes and then loads this longer run, so that a
CPU user sees what the model becomes with more training. The recipes are `shipped_recipe(name)`
in cvae_lib/recipes.py: chapter 04's cpu-profile recipe (its classes, U-Net width, T and linear
schedule, label drop 0.1 for classifier-free guidance) with more epochs, a cosine learning-rate
decay and a longer EMA; `--profile gpu|full` trains the `ddpm_gpu` / `ddpm_full` recipes, the
profile's own sizes (full: Ho et al.'s 35.7M U-Net, optimiser and run length). The EMA weights
are shipped; the file's metadata records the run, the diffusion config and the held-out loss
(`Diffusion.heldout_loss` on the test images of its classes, seed 0), which the tests reproduce
on a subset, and chapter 05's judge metrics for its classes (`--n-eval` samples, DDIM-50 with
eta 1, seed 0, unguided and with guidance w = 2 as chapter 05 samples; `--judge-guidance` picks
the weights).
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

from shipping import (
    CHECK_PER_CLASS,
    check_subset,
    judge_metrics,
    recipe_changes,
    recipe_parser,
    recipe_splits,
    ship,
    start,
)

from cvae_lib.diffusion import Diffusion
from cvae_lib.models.unet import UNet
from cvae_lib.recipes import shipped_recipe
from cvae_lib.train import EMA, load_or_train

NAMES = ("ddpm_cpu", "ddpm_ten_class")      # the shipped files; other names train the --profile's recipe


def main(argv=None) -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", default="cpu", choices=["cpu", "gpu", "full"])
    pre.add_argument("--name", default=None)
    known = pre.parse_known_args(argv)[0]
    recipe_name = known.name if known.name in NAMES else f"ddpm_{known.profile}"
    base = shipped_recipe(recipe_name)
    p = recipe_parser(__doc__, base, classes=True)
    p.add_argument("--profile", default="cpu", choices=["cpu", "gpu", "full"],
                   help="run sizes (cpu: the shipped runs; full: Ho et al.'s 35.7M U-Net and run length)")
    p.add_argument("--ema-decay", type=float, default=base.ema_decay)
    p.add_argument("--n-eval", type=int, default=2000, help="samples for the judge metrics (0: none)")
    p.add_argument("--judge-guidance", type=float, nargs="+", default=[1.0, 2.0],
                   help="guidance weights to judge at (chapter 05: 1 and 2)")
    args = p.parse_args(argv)
    device = start(args)
    run = shipped_recipe(recipe_name, **recipe_changes(args), ema_decay=args.ema_decay)
    train, val, test = recipe_splits(run)
    diffusion = Diffusion(run.process).to(device)
    model = UNet(run.model)
    ema = EMA(model, decay=run.ema_decay)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, diffusion.train_loss, train, run.train, args.out / f"{args.name}-run.pt",
                            val=val, ema=ema, device=device)
    shipped = ema.model.eval()
    check = check_subset(args.classes)
    heldout = diffusion.heldout_loss(shipped, test.images(), test.y, seed=0)
    metrics = {"heldout_loss": round(heldout, 5), "n_test": len(test), "classes": args.classes,
               "check": {"n_per_class": CHECK_PER_CLASS, "seed": 0,
                         "heldout_loss": diffusion.heldout_loss(shipped, check.images(), check.y, seed=0)},
               "diffusion": asdict(run.process), "steps": history.steps, "ema_decay": run.ema_decay}
    if args.n_eval:   # chapter 05's protocol, unguided and with its guidance weight
        metrics |= judge(shipped, diffusion, args, device)
    ship(shipped, args, history, metrics, f"held-out loss {heldout:.4f} on {len(test)} test images")


def judge(model: UNet, diffusion: Diffusion, args, device) -> dict:
    """{"judge": {str(w): chapter 05's judge scores at guidance w}, "sampler": ...} on args.n_eval
    samples of args.classes for each w in args.judge_guidance."""
    return {"judge": {str(w): judge_metrics(
        lambda y, g, w=w: diffusion.ddim_sample(model, len(y), y, steps=50, eta=1.0, guidance=w, generator=g),
        args.classes, args.n_eval, device) for w in args.judge_guidance},
        "sampler": "DDIM-50, eta 1, seed 0"}


if __name__ == "__main__":
    main()
