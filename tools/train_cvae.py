"""Train the CVAE that the course ships (checkpoints/cvae_cpu.safetensors), for chapter 05.

    python tools/train_cvae.py --epochs 25 --threads 1       # what the shipped file got
    python tools/train_cvae.py --epochs 1 --max-steps 2 --out /tmp/c   # a smoke run

Chapter 05 compares it with the shipped DDPM (tools/train_ddpm.py): the same classes (the cpu
profile's airplanes and frogs), the same machine, tens of CPU minutes each. The recipe is
chapter 03's "improved for samples" CVAE (residual blocks, vector latent, an encoder that sees
the label, Gaussian likelihood with sigma 0.1, KL warm-up), trained for longer with a cosine
learning-rate decay. The file's metadata records its test bits/dim, which the tests reproduce
on a subset.
"""
from __future__ import annotations

from shipping import class_splits, parser, ship_bpd, start

from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.profiles import get_profile
from cvae_lib.train import TrainConfig, load_or_train


def main(argv=None) -> None:
    P = get_profile("cpu")
    p = parser(__doc__, epochs=25, batch_size=P.cvae.batch_size, name="cvae_cpu", classes=list(P.diffusion.classes))
    p.add_argument("--width", type=int, default=P.cvae.width)
    args = p.parse_args(argv)
    device = start(args)
    train, val, test = class_splits(args.classes, args.train_per_class, P.val_per_class)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, warmup_steps=100,
                      schedule="cosine", hflip=True, grad_clip=100.0, max_steps=args.max_steps)
    total_steps = cfg.total_steps(len(train))
    model = CVAE(CVAEConfig(width=args.width, residual=True, condition_encoder=True, likelihood="gaussian",
                            sigma=0.1, kl_warmup_steps=max(1, total_steps // 8)))
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, cvae_loss, train, cfg, args.out / f"{args.name}-run.pt", val=val, device=device)
    ship_bpd(model, cvae_loss, args, history, train, test, args.classes)


if __name__ == "__main__":
    main()
