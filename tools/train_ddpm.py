"""Train the DDPM that the course ships (checkpoints/ddpm_cpu.safetensors) on a CPU or a GPU.

    python tools/train_ddpm.py --epochs 40 --threads 1       # 2 CPU cores: about 1.5 hours
    python tools/train_ddpm.py --epochs 1 --max-steps 2 --out /tmp/d   # a smoke run

Chapter 04 trains the same U-Net for a few minutes and then loads this longer run, so that a
CPU user sees what the model becomes with more training. The run is chapter 04's cpu-profile
recipe (the profile's classes, U-Net width, T and linear schedule, label drop 0.1 for
classifier-free guidance), with more epochs, a cosine learning-rate decay and a longer EMA.
The EMA weights are shipped; the file's metadata records the run, the diffusion config and
the held-out loss (`Diffusion.heldout_loss` on the test images of its classes, seed 0), which
the tests reproduce on a subset.
"""
from __future__ import annotations

from dataclasses import asdict

from shipping import CHECK_PER_CLASS, check_subset, class_splits, parser, ship, start, steps_per_epoch

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.profiles import get_profile
from cvae_lib.train import EMA, TrainConfig, load_or_train


def chapter04_unet(width: int) -> UNetConfig:
    """The U-Net chapter 04 builds for a profile of this width."""
    return UNetConfig(ch=width, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(16,),
                      groups=min(8, width // 2), num_classes=10)


def main(argv=None) -> None:
    P = get_profile("cpu")
    p = parser(__doc__, epochs=40, batch_size=P.ddpm.batch_size, name="ddpm_cpu", classes=list(P.diffusion.classes))
    p.add_argument("--width", type=int, default=P.ddpm.width)
    p.add_argument("--ema-decay", type=float, default=0.999)
    args = p.parse_args(argv)
    device = start(args)
    train, val, test = class_splits(args.classes, args.train_per_class, P.val_per_class)
    dcfg = DiffusionConfig(T=P.diffusion.T, schedule="linear", null_label=10, p_uncond=0.1)
    diffusion = Diffusion(dcfg).to(device)
    model = UNet(chapter04_unet(args.width))
    ema = EMA(model, decay=args.ema_decay)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=2e-3, warmup_steps=100,
                      schedule="cosine", grad_clip=1.0, hflip=True, max_steps=args.max_steps)
    # trains, resumes an interrupted run, or (run finished) just loads it and exports it again
    history = load_or_train(model, diffusion.train_loss, train, cfg, args.out / f"{args.name}-run.pt",
                            val=val, ema=ema, device=device)
    shipped = ema.model.eval()
    check = check_subset(args.classes)
    heldout = diffusion.heldout_loss(shipped, test.images(), test.y, seed=0)
    metrics = {"heldout_loss": round(heldout, 5), "n_test": len(test), "classes": args.classes,
               "check": {"n_per_class": CHECK_PER_CLASS, "seed": 0,
                         "heldout_loss": diffusion.heldout_loss(shipped, check.images(), check.y, seed=0)},
               "diffusion": asdict(dcfg), "steps": len(history) * steps_per_epoch(train, args),
               "ema_decay": args.ema_decay}
    ship(shipped, args, history, metrics, f"held-out loss {heldout:.4f} on {len(test)} test images")


if __name__ == "__main__":
    main()
