"""Train the DDPM that the course ships (checkpoints/ddpm_cpu.safetensors) on a CPU or a GPU.

    python tools/train_ddpm.py --epochs 40 --threads 1       # 2 CPU cores: about 1.5 hours
    python tools/train_ddpm.py --epochs 10 --threads 1 --name ddpm_ten_class \
        --classes airplane automobile bird cat deer dog frog horse ship truck    # the ten-class file
    python tools/train_ddpm.py --epochs 1 --max-steps 2 --n-eval 20 --out /tmp/d   # a smoke run
    python tools/train_ddpm.py --name ddpm_ten_class --judge-shipped --n-eval 2000   # judge a shipped file again
    torchrun --nproc_per_node 8 tools/train_ddpm.py --profile full      # Ho et al.'s run, 8 GPUs

Under torchrun `--batch-size` is the global batch (each of the N processes takes 1/N of it).

Chapter 04 trains the same U-Net for a few minutes and then loads this longer run, so that a
CPU user sees what the model becomes with more training. The run is chapter 04's cpu-profile
recipe (the profile's classes, U-Net width, T and linear schedule, label drop 0.1 for
classifier-free guidance), with more epochs, a cosine learning-rate decay and a longer EMA.
The EMA weights are shipped; the file's metadata records the run, the diffusion config and
the held-out loss (`Diffusion.heldout_loss` on the test images of its classes, seed 0), which
the tests reproduce on a subset, and chapter 05's judge metrics for its classes (`--n-eval`
samples, DDIM-50 with eta 1, seed 0, unguided and with guidance w = 2 as chapter 05 samples;
`--judge-guidance` picks the weights). `--judge-shipped` trains nothing: it judges the shipped
file `<out>/<name>.safetensors` again (its stored diffusion config, its classes) and rewrites
only its judge metrics, keeping its tensors and every other recorded fact, for a file whose
training run is gone (the ten-class file, first judged on 1,000 samples at w = 2 only, was judged
again so on 2,000 samples at w = 1 and 2: 27.9 minutes on two threads).
`checkpoints/ddpm_ten_class.safetensors` is the same recipe on all ten classes, trained for as
many steps (10 epochs of 49,000 images); chapter 04 shows its samples of every class.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict

from shipping import CHECK_PER_CLASS, CLASSES, check_subset, class_splits, judge_metrics, parser, ship, start

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.profiles import get_profile
from cvae_lib.train import EMA, TrainConfig, load_or_train


def main(argv=None) -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--profile", default="cpu", choices=["cpu", "gpu", "full"])
    P = get_profile(pre.parse_known_args(argv)[0].profile)
    paper = P.diffusion.unet == "paper"
    p = parser(__doc__, epochs=P.ddpm.epochs if P.name != "cpu" else 40, batch_size=P.ddpm.batch_size,
               name=f"ddpm_{P.name}", classes=list(P.diffusion.classes or CLASSES))
    p.add_argument("--profile", default="cpu", choices=["cpu", "gpu", "full"],
                   help="run sizes (cpu: the shipped run; full: Ho et al.'s 35.7M U-Net and run length)")
    p.add_argument("--width", type=int, default=P.ddpm.width, help="U-Net width (the course's U-Net only)")
    p.add_argument("--ema-decay", type=float, default=0.9999 if paper else 0.999)
    p.add_argument("--n-eval", type=int, default=2000, help="samples for the judge metrics (0: none)")
    p.add_argument("--judge-guidance", type=float, nargs="+", default=[1.0, 2.0],
                   help="guidance weights to judge at (chapter 05: 1 and 2)")
    p.add_argument("--judge-shipped", action="store_true",
                   help="train nothing: judge <out>/<name>.safetensors again and rewrite its judge metrics")
    args = p.parse_args(argv)
    device = start(args)
    if args.judge_shipped:
        return judge_shipped(args, device)
    train, val, test = class_splits(args.classes, args.train_per_class, P.val_per_class)
    dcfg = DiffusionConfig.course(P.diffusion.T)
    diffusion = Diffusion(dcfg).to(device)
    model = UNet(UNetConfig.paper(num_classes=10) if paper else UNetConfig.course(args.width))
    ema = EMA(model, decay=args.ema_decay)
    if paper:   # Ho et al.: Adam 2e-4, 5,000 warm-up steps, then constant; clip 1; flips
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=2e-4, warmup_steps=5000,
                          grad_clip=1.0, hflip=True, max_steps=args.max_steps, compile="auto")
    else:
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
               "diffusion": asdict(dcfg), "steps": history.steps,
               "ema_decay": args.ema_decay}
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


def judge_shipped(args, device) -> None:
    """Judge the shipped file <out>/<name>.safetensors again, on its own classes and diffusion
    config, and rewrite it with the new judge metrics (tensors, storage and other facts unchanged)."""
    import time

    import torch

    from cvae_lib.weights import export_weights, load_weights, read_metadata

    if not args.n_eval:
        raise SystemExit("--judge-shipped needs --n-eval > 0 samples to judge")
    path = args.out / f"{args.name}.safetensors"
    model = load_weights(path, UNet, UNetConfig).to(device)       # checksum-verified; names a missing file
    meta = read_metadata(path)
    metrics = meta["metrics"]
    args.classes = metrics["classes"]
    diffusion = Diffusion(DiffusionConfig(**metrics["diffusion"])).to(device)
    start_time = time.perf_counter()
    new = judge(model, diffusion, args, device)
    metrics |= new | {"judge_seconds": round(time.perf_counter() - start_time, 1),
                      "judge_threads": torch.get_num_threads()}
    stored = None if meta["storage"] == "as trained" else getattr(torch, meta["storage"])   # e.g. float16
    export_weights(model, path, metrics, dtype=stored)
    for w, s in new["judge"].items():
        print(f"w = {w}: class accuracy {s['acc']:.3f}, FD {s['fd']:.1f}, KID {s['kid']:.2f} on {s['n_eval']} samples")
    print(f"judged in {metrics['judge_seconds'] / 60:.1f} min; rewrote {path}")


if __name__ == "__main__":
    main()
