"""Train the ten-class latent generator that the course ships (chapter 07's "draw any class").

    python tools/train_ten_class.py --objective flow --threads 1       # about 2.5 CPU-hours, then judging
    python tools/train_ten_class.py --epochs 1 --max-steps 2 --n-eval 20 --n-select 20 \
        --fid-reference 0 --out /tmp/t                                  # a smoke run

1. **Prior**: the course's class-conditional latent U-Net (`UNetConfig.latent`, chapter 06's
   network) on the scaled latents of the shipped first stage (`ldm_first_stage`), all ten
   classes, every training image and its mirror image, trained by `fit` with `--objective`:
   `flow` (chapter 07's flow matching, sampled with `--steps` Euler steps) or `ddpm` (chapter
   06's noise prediction, sampled with DDIM-50 and eta 1). An EMA of the weights is shipped, in
   float16; every metric below is measured on the rounded weights. `load_or_train` makes an
   interrupted run resume where it stopped and a finished one only export again.
2. **Guidance weight**: each weight of `--guidance-grid` draws `--n-select` samples (equal per
   class); the one whose judge FD against *training* images is lowest is shipped as the default.
   The test split only reports.
3. **Protocol** (`--n-eval` samples, equal per class, against all 10,000 test images): the
   judge's class accuracy overall and per class, judge FD and KID, and FID with the offline
   Inception network next to the real-data floor at the same N (as many training images against
   the same test images). `--compare NAME` scores another shipped generator on the same protocol
   (`ddpm_ten_class`, the pixel DDPM, at its recorded guidance), and everything measured is also
   written to `--results` as JSON and Markdown.

Training and judging minutes are recorded in the file's metadata beside the metrics.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from shipping import CHECK_PER_CLASS, ROOT, check_subset, parser, recipe_splits, round_to_float16, ship, start

from cvae_lib.data import CLASSES, cache_dir
from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.latent import LatentDiffusion, encode_set
from cvae_lib.metrics import cached_inception_features, frechet_distance, inception_features, judge_scores
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.recipes import Run, shipped_recipe
from cvae_lib.train import EMA, infer, load_or_train
from cvae_lib.weights import load_weights, read_metadata, shipped


def balanced_labels(n: int) -> torch.Tensor:
    """n class ids, n / 10 of each of the ten classes, class by class."""
    return torch.arange(len(CLASSES)).repeat_interleave(n // len(CLASSES))


def draw(sample, n: int, device, seed: int = 0, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (n, 3, 32, 32) in [0, 1], labels (n,)) from sample(y, generator), one seeded generator."""
    y = balanced_labels(n)
    g = torch.Generator(device).manual_seed(seed)
    return torch.cat([sample(yb, g).float().cpu().clamp(0, 1) for yb in y.split(chunk)]), y


class Protocol:
    """The judge's and Inception's reference features, computed once, and the scores of a generator."""

    def __init__(self, judge, train, test, device, fid_reference: bool):
        self.judge, self.device = judge, device
        self.ref_train = infer(judge.features, train.subset(None, n_per_class=1000, seed=0).images(), device=device)
        self.ref_test = infer(judge.features, test.images(), device=device)
        self.real_acc = judge_scores(judge, test.images(), test.y, self.ref_test)["acc"]
        self.fid_test = (cached_inception_features(test.images(), cache_dir() / "inception")
                         if fid_reference else None)
        self.train, self.fid_floor = train, None

    def judge_test(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        s = judge_scores(self.judge, x, y, self.ref_test)
        pred = infer(self.judge, x, device=self.device).argmax(1).cpu()
        per_class = {c: round(float((pred[y == k] == k).float().mean()), 4) for k, c in enumerate(CLASSES)}
        return {**{k: round(v, 4) for k, v in s.items()}, "per_class": per_class}

    def fid(self, x: torch.Tensor) -> dict:
        """FID of x against the test images, and of as many real training images (the floor)."""
        if self.fid_test is None:
            return {}
        if self.fid_floor is None:
            real = self.train.subset(None, n_per_class=len(x) // len(CLASSES), seed=0).images()
            self.fid_floor = frechet_distance(inception_features(real), self.fid_test)
        return {"fid": round(frechet_distance(inception_features(x), self.fid_test), 2),
                "fid_real": round(self.fid_floor, 2), "fid_reference": len(self.fid_test)}


def choose_guidance(sample_at, protocol: Protocol, grid: list[float], n: int) -> tuple[float, dict]:
    """The weight of `grid` whose samples come closest (judge FD) to training images."""
    fds = {}
    for w in grid:
        x, y = draw(lambda yb, g, w=w: sample_at(yb, g, w), n, protocol.device, seed=1)
        fds[w] = round(judge_scores(protocol.judge, x, y, protocol.ref_train)["fd"], 2)
        print(f"guidance {w:g}: judge FD against training images {fds[w]:.1f} ({n} samples)", flush=True)
    return min(grid, key=fds.get), {str(w): v for w, v in fds.items()}


def score(sample_at, w: float, protocol: Protocol, n: int) -> dict:
    """The full protocol at guidance w: judge (overall and per class) and FID, with the seconds it took."""
    t0 = time.perf_counter()
    x, y = draw(lambda yb, g: sample_at(yb, g, w), n, protocol.device)
    out = {"guidance": w, "n_eval": len(y), **protocol.judge_test(x, y), **protocol.fid(x)}
    return {**out, "seconds": round(time.perf_counter() - t0, 1)}


def ten_class_recipe(args, latent_channels: int) -> Run:
    return shipped_recipe("ldm_ten_class", epochs=args.epochs, batch_size=args.batch_size, max_steps=args.max_steps,
                          width=args.width, per_class=args.train_per_class, lr=args.lr, ema_decay=args.ema_decay,
                          latent_channels=latent_channels, objective=args.objective)


def train_prior(args, device, first: FirstStage):
    run = ten_class_recipe(args, first.cfg.latent_channels)
    train, val, _ = recipe_splits(run)
    latents, val_latents = encode_set(first, train, mirror=run.data.mirror), encode_set(first, val)
    process = run.build_process().to(device)
    prior = run.build()
    ema = EMA(prior, decay=run.ema_decay)
    history = load_or_train(prior, process.train_loss, latents, run.train, args.run_dir / f"{args.name}-run.pt",
                            val=val_latents, ema=ema, device=device)
    return round_to_float16(ema.model.to(device).eval()), process, history


def main(argv=None) -> None:
    run = shipped_recipe("ldm_ten_class")
    p = parser(__doc__, epochs=run.train.epochs, batch_size=run.train.batch_size, name="ldm_ten_class")
    p.add_argument("--objective", choices=["flow", "ddpm"], default="flow")
    p.add_argument("--lr", type=float, default=run.train.lr)
    p.add_argument("--width", type=int, default=run.model.width, help="U-Net channels at 8x8")
    p.add_argument("--ema-decay", type=float, default=run.ema_decay)
    p.add_argument("--steps", type=int, default=20, help="flow: Euler steps of the shipped sampler")
    p.add_argument("--guidance-grid", default="1,1.5,2,3,4")
    p.add_argument("--n-select", type=int, default=1000, help="samples per guidance weight, for the choice")
    p.add_argument("--n-eval", type=int, default=2000, help="samples of the protocol (equal per class)")
    p.add_argument("--fid-reference", type=int, default=1, help="0: skip FID (smoke runs)")
    p.add_argument("--compare", nargs="*", default=["ddpm_ten_class"], help="shipped generators to score too")
    p.add_argument("--train-threads", type=int, default=None,
                   help="the threads the training ran on, if a finished run is judged with other --threads")
    p.add_argument("--run-dir", type=Path, default=cache_dir() / "runs" / "ten_class")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "ten-class-protocol")
    args = p.parse_args(argv)
    device = start(args)
    first = load_weights(shipped("ldm_first_stage"), FirstStage, FirstStageConfig).to(device).requires_grad_(False)
    prior, process, history = train_prior(args, device, first)
    ldm = LatentDiffusion(first, prior, process)
    steps, sampler = (args.steps, f"Euler-{args.steps}") if args.objective == "flow" else (50, "DDIM-50, eta 1")

    def sample_at(y, g, w):
        return ldm.sample(y.to(device), steps=steps, eta=1.0, guidance=w, generator=g, progress=False)

    t0 = time.perf_counter()
    train, _, test = recipe_splits(shipped_recipe("ldm_ten_class"))
    judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).to(device)
    protocol = Protocol(judge, train, test, device, bool(args.fid_reference))
    grid = [float(w) for w in args.guidance_grid.split(",")]
    w, select = choose_guidance(sample_at, protocol, grid, args.n_select)
    result = score(sample_at, w, protocol, args.n_eval)
    check = check_subset(None)
    metrics = {
        "objective": args.objective, "process": asdict(process.cfg),
        "classes": list(CLASSES), "steps": history.steps, "train_minutes": round(history.seconds / 60, 1),
        "curve": {k: [round(v, 5) for v in history[k]] for k in ("train_loss", "val_loss", "seconds")},
        "ema_decay": args.ema_decay, "sampler": sampler, "sampler_steps": steps, "guidance": w,
        "guidance_selection": {"n": args.n_select, "judge_fd_train_reference": select},
        "judge": {str(w): {k: result[k] for k in ("acc", "fd", "kid")}},
        "judge_per_class": {str(w): result["per_class"]}, "n_eval": result["n_eval"],
        "n_reference": len(test), "real_judge_accuracy": round(protocol.real_acc, 4),
        **{k: result[k] for k in ("fid", "fid_real", "fid_reference") if k in result},
        "judge_minutes": round((time.perf_counter() - t0) / 60, 1), "first_stage": "ldm_first_stage.safetensors",
        "threads": args.train_threads or torch.get_num_threads(), "judge_threads": torch.get_num_threads(),
        "check": {"n_per_class": CHECK_PER_CLASS, "seed": 0,
                  "heldout_loss": process.heldout_loss(prior, encode_set(first, check).x, check.y, seed=0)},
    }
    ship(prior, args, history, metrics, f"{args.objective}: guidance {w:g} (chosen on training images), judge "
         f"accuracy {result['acc']:.1%}, FD {result['fd']:.1f} on {result['n_eval']} samples", dtype=torch.float16)
    rows = {args.name: {**result, "sampler": sampler, "train_minutes": metrics["train_minutes"]}}
    for name in args.compare:
        rows[name] = compare(name, protocol, args.n_eval, device)
    write_results(args.results, rows, protocol, args)


def compare(name: str, protocol: Protocol, n: int, device) -> dict:
    """Another shipped generator (a pixel DDPM) on the same protocol, at its recorded guidance."""
    meta = read_metadata(shipped(name))["metrics"]
    net = load_weights(shipped(name), UNet, UNetConfig).to(device).eval()
    diffusion = Diffusion(DiffusionConfig(**meta["diffusion"])).to(device)
    w = float(meta.get("guidance", max(meta["judge"], key=lambda k: meta["judge"][k]["acc"])))

    def sample_at(y, g, w):
        return diffusion.ddim_sample(net, len(y), y.to(device), steps=50, eta=1.0, guidance=w, generator=g,
                                     device=device, progress=False)
    return {**score(sample_at, w, protocol, n), "sampler": "DDIM-50, eta 1",
            "train_minutes": round(meta["train_seconds"] / 60, 1)}


def write_results(path: Path, rows: dict, protocol: Protocol, args) -> None:
    """<path>.json (every number) and <path>.md (the table and the per-class accuracies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"n_eval": args.n_eval, "rows": rows,
                                                     "real_judge_accuracy": protocol.real_acc}, indent=2))
    head = "| model | sampler | guidance | training (CPU min) | judge acc | judge FD | KID | FID | FID floor |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['sampler']} | {r['guidance']:g} | {r['train_minutes']:.0f} | {r['acc']:.1%} | "
                     f"{r['fd']:.1f} | {r['kid']:.2f} | {r.get('fid', float('nan')):.1f} | "
                     f"{r.get('fid_real', float('nan')):.1f} |")
    cls = ["| class | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    cls += [f"| {c} | " + " | ".join(f"{r['per_class'][c]:.1%}" for r in rows.values()) + " |" for c in CLASSES]
    note = (f"\n{args.n_eval} samples per model ({args.n_eval // 10} per class) against all 10,000 test images; "
            f"the judge recognises {protocol.real_acc:.1%} of the real test images. FID with the offline "
            f"Inception network; its floor is {args.n_eval} real training images against the same test images.\n")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n" + note + "\nJudge accuracy per class:\n\n"
                                       + "\n".join(cls) + "\n")
    print(path.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
