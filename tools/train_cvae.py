"""Train the CVAEs that the course ships: checkpoints/cvae_cpu.safetensors (chapter 05) and
checkpoints/cvae_ten_class.safetensors (chapter 03).

    python tools/train_cvae.py --threads 1                           # cvae_cpu (its recipe's defaults)
    python tools/train_cvae.py --name cvae_ten_class --threads 1     # the ten-class file
    python tools/train_cvae.py --epochs 1 --max-steps 2 --n-eval 20 --out /tmp/c   # a smoke run

Chapter 05 compares cvae_cpu with the shipped DDPM (tools/train_ddpm.py): the same classes (the
cpu profile's airplanes and frogs), the same machine, tens of CPU minutes each. The recipe,
`shipped_recipe("cvae_cpu")` in cvae_lib/recipes.py, is chapter 03's "improved for samples" CVAE
(residual blocks, vector latent, an encoder that sees the label, Gaussian likelihood, KL warm-up),
trained for longer with a cosine learning-rate decay. The file is stored in float16; its metadata
records the rounded model's test bits/dim, which the tests reproduce on a subset, and chapter
05's judge metrics (`--n-eval` samples at temperature 1, split over its classes, against all
their test images).

`cvae_ten_class` is the recipe on all ten classes at width 24 (to fit the size limit of
`checkpoints/` in float16) and sigma 0.3: chapter 03's latent explorer and class grids use it,
because the airplane+frog file knows two classes. Why sigma 0.3 (with 0.1 and ten classes the
decoder ignored the label, which z already carried) is recorded in docs/results/shipped.json
with the probe's numbers; the choice was made on the judge's verdict on samples, never on test
images.
"""
from __future__ import annotations

import argparse

from shipping import judge_metrics, recipe_changes, recipe_parser, recipe_splits, ship_bpd, start

from cvae_lib.models.cvae import CVAE, cvae_loss
from cvae_lib.recipes import shipped_recipe
from cvae_lib.train import load_or_train

NAMES = ("cvae_cpu", "cvae_ten_class")


def main(argv=None) -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--name", default="cvae_cpu")
    name = pre.parse_known_args(argv)[0].name
    base = shipped_recipe(name if name in NAMES else "cvae_cpu")
    p = recipe_parser(__doc__, base, classes=True)
    p.add_argument("--sigma", type=float, default=base.model.sigma, help="the Gaussian likelihood's pixel noise")
    p.add_argument("--n-eval", type=int, default=2000, help="samples for the judge metrics (0: none)")
    p.add_argument("--float16", action=argparse.BooleanOptionalAction, default=True,
                   help="store in float16, with the rounded model's metrics (default: yes)")
    args = p.parse_args(argv)
    device = start(args)
    run = shipped_recipe(base.name, **recipe_changes(args), sigma=args.sigma)
    train, val, test = recipe_splits(run)
    model = CVAE(run.model)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, cvae_loss, train, run.train, args.out / f"{args.name}-run.pt", val=val,
                            device=device)

    def judge(m) -> dict:      # chapter 05's protocol: z ~ N(0, I) at temperature 1, seed 0
        if not args.n_eval:
            return {}
        return {"judge": judge_metrics(lambda y, g: m.sample(y, generator=g), args.classes, args.n_eval, device),
                "sampler": "z ~ N(0, I), temperature 1, seed 0"}

    ship_bpd(model, cvae_loss, args, history, train, test, args.classes, extra=judge, float16=args.float16)


if __name__ == "__main__":
    main()
