"""Train the VAE that the course ships (checkpoints/vae_cpu.safetensors), for chapter 02.

    python tools/train_vae.py --threads 1                    # the shipped file (its recipe's defaults)
    python tools/train_vae.py --epochs 1 --max-steps 2 --out /tmp/v    # a smoke run

Chapter 02 trains its VAE for a few minutes and then puts the same architecture, trained for
longer on all ten classes, beside it, so that a CPU user sees how much of the blur is the model
and how much the short run. The recipe is `shipped_recipe("vae_cpu")` in cvae_lib/recipes.py:
chapter 02's VAE (vector latent of 64, residual blocks, discretized logistic likelihood, KL
warm-up over the first quarter, horizontal flips) with more epochs and a cosine learning-rate
decay. It is stored in float16; the file's metadata records the rounded model's test bits/dim
(and the float32 one beside it), which the tests reproduce on a subset.
"""
from __future__ import annotations

from shipping import recipe_changes, recipe_parser, recipe_splits, ship_bpd, start

from cvae_lib.models.vae import VAE, vae_loss
from cvae_lib.recipes import shipped_recipe
from cvae_lib.train import load_or_train


def main(argv=None) -> None:
    args = recipe_parser(__doc__, shipped_recipe("vae_cpu")).parse_args(argv)
    device = start(args)
    run = shipped_recipe("vae_cpu", **recipe_changes(args))
    train, val, test = recipe_splits(run)
    model = VAE(run.model)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, vae_loss, train, run.train, args.out / f"{args.name}-run.pt", val=val, device=device)
    ship_bpd(model, vae_loss, args, history, train, test, None, float16=True)


if __name__ == "__main__":
    main()
