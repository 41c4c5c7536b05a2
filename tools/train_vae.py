"""Train the VAE that the course ships (checkpoints/vae_cpu.safetensors), for chapter 02.

    python tools/train_vae.py --epochs 12 --threads 2        # what the shipped file got
    python tools/train_vae.py --epochs 1 --max-steps 2 --out /tmp/v    # a smoke run

Chapter 02 trains its VAE for a few minutes (300 steps in the cpu profile) and then puts the
same architecture, trained for longer on all ten classes, beside it, so that a CPU user sees
how much of the blur is the model and how much the short run. The recipe is chapter 02's
(vector latent of 64, residual blocks, discretized logistic likelihood, KL warm-up over the
first quarter, horizontal flips) with more epochs and a cosine learning-rate decay. The file's
metadata records its test bits/dim, which the tests reproduce on a subset.
"""
from __future__ import annotations

from shipping import class_splits, parser, ship_bpd, start

from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.profiles import get_profile
from cvae_lib.train import TrainConfig, load_or_train


def chapter02_vae(width: int, total_steps: int) -> VAEConfig:
    """The VAE chapter 02 builds for a profile of this width and run length."""
    return VAEConfig(latent_dim=64, width=width, residual=True, likelihood="logistic",
                     kl_warmup_steps=max(1, total_steps // 4))


def main(argv=None) -> None:
    P = get_profile("cpu")
    p = parser(__doc__, epochs=12, batch_size=P.vae.batch_size, name="vae_cpu")
    p.add_argument("--width", type=int, default=P.vae.width)
    args = p.parse_args(argv)
    device = start(args)
    train, val, test = class_splits(None, args.train_per_class, P.val_per_class)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=2e-3, warmup_steps=100,
                      schedule="cosine", hflip=True, grad_clip=100.0, max_steps=args.max_steps)
    total_steps = cfg.total_steps(len(train))
    model = VAE(chapter02_vae(args.width, total_steps))
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, vae_loss, train, cfg, args.out / f"{args.name}-run.pt", val=val, device=device)
    ship_bpd(model, vae_loss, args, history, train, test, None)


if __name__ == "__main__":
    main()
