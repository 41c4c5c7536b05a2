"""Time to quality: how good a model gets in how many minutes of training, on this machine.

    python benchmarks/time_to_quality.py vae --minutes 15     # improved VAE: test bits/dim vs minutes
    python benchmarks/time_to_quality.py ddpm --minutes 20    # DDPM: judge FD and held-out MSE vs minutes
    python benchmarks/time_to_quality.py ldm --minutes 15     # chapter 06's latent diffusion prior
    python benchmarks/time_to_quality.py lfm --minutes 15     # the same prior trained by flow matching (07)
    python benchmarks/time_to_quality.py lfm --classes all --guidance 2 --final-nfe 10,20,50 --minutes 12
                                                              # equal minutes, ten classes, judged at 3 NFE
    python benchmarks/time_to_quality.py peer-ddpm-pytorch --minutes 15   # denoising-diffusion-pytorch
    python benchmarks/time_to_quality.py peer-diffusers --minutes 15      # diffusers UNet2DModel + DDPMScheduler
    python benchmarks/time_to_quality.py summary --minutes 15 --out DIR    # the four diffusion runs in DIR
    python benchmarks/time_to_quality.py vae --minutes 0.2 --quick --out /tmp/ttq   # smoke run

Throughput (bench.py) says how fast a step is; this says what the steps buy. One run of the
course's training loop (`fit`, with the profile's speed settings: bf16 and torch.compile on a
GPU) is stopped every `--eval-steps` steps; the model is then scored on the test split, outside
the timed region, and the run continues. Minutes are training minutes: on a GPU as `fit` times
them (the first interval includes compilation); on a CPU with `--threads 1`, the CPU time of the
process outside scoring, which is what the run takes on an idle core even when other jobs share
the machine (fit's wall time is recorded beside it). Scoring time is reported apart.

- vae: chapter 03's "improved for bits/dim" model (residual blocks, 8x8 spatial latent, mixture
  of logistics, an encoder that sees the label), constant learning rate after a warm-up. Score:
  test bits/dim (an upper bound on -log2 p(x|y), the ELBO). The issue's GPU target: at most
  4.0 bits/dim within 15 minutes.
- ddpm: chapter 04's U-Net and schedule at the profile's width and classes. Scores: the held-out
  noise-prediction MSE (cheap, on test images) and the Frechet distance between the judge's
  features (checkpoints/classifier.safetensors, no download) of `--n-eval` DDIM-50 samples
  (eta 1, EMA weights, equal numbers per class, seed 0) and of the test images. FD at a fixed n
  is biased upwards (chapter 05 shows by how much), so compare points of one curve, not
  numbers measured with another n.
- ldm: chapter 06's latent diffusion: the shipped first stage (trained once; its minutes are
  not counted here, the file records them) and the 6.5M-parameter prior on the latents of the
  same airplane+frog training images (and their mirror images), trained with `fit`. Scores: the
  judge FD and class accuracy of DDIM-50 samples decoded to images, as for ddpm.
- lfm: chapter 07's latent flow matching: the same first stage, latents, U-Net, batch and
  optimiser as ldm, trained with the flow-matching loss instead of the DDPM loss, and sampled
  with Euler steps (20 at the intermediate points) instead of DDIM-50. ldm and lfm are the
  equal-minutes comparison of chapter 07: `--final-nfe 10,20,50` scores the last weights once
  more at each number of network evaluations (ldm: DDIM with eta 0, the DDPM's ODE sampler; lfm:
  Euler, and Heun with about the same NFE), on `--n-final` samples. `--classes all` trains and
  judges on all ten classes; `--guidance w` samples with classifier-free guidance.
- peer-ddpm-pytorch: denoising-diffusion-pytorch's `Unet` (dim 12, 0.25M parameters, about the
  size of ours) inside its own `GaussianDiffusion` with its documented defaults (v-prediction,
  sigmoid schedule, T = 1000) and its Trainer's optimiser defaults (Adam, lr 1e-4, betas (0.9,
  0.99), batch 16, gradient norm 1, flips, EMA 0.995); sampled with its own DDIM (50 steps, its
  default eta 0). Unconditional: FD and KID only.
- peer-diffusers: diffusers' `UNet2DModel` (0.28M) with `DDPMScheduler` (linear, T = 1000,
  epsilon) and the recipe of diffusers' train_unconditional.py example (AdamW lr 1e-4, betas
  (0.95, 0.999), weight decay 1e-6, 500 warm-up steps, batch 16, flips, EMA up to 0.9999: the
  course's EMA with its warm-up stands in for diffusers' EMAModel); sampled with
  `DDIMScheduler`, 50 steps (eta 0, its default). Unconditional: FD and KID only.
Every model is trained by the course's `fit` on the same training images, so the minutes are
measured the same way; only the networks, objectives and optimiser settings differ.

Interrupted? Run the same command again: training resumes from its checkpoint and the points
already measured are kept (`--fresh` starts over). Writes <out>/ttq-<model>-<device>.json, .md
and .png; nothing here is tuned on the test split, which is only scored.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from peers import TRAINING, DiffusersEps, diffusers_sample, diffusers_unet, lucidrains

from cvae_lib.data import load_cifar10
from cvae_lib.diffusion import Diffusion
from cvae_lib.flow import FlowConfig, FlowMatching
from cvae_lib.latent import LatentDiffusion, encode_set
from cvae_lib.metrics import judge_scores
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.cvae import CVAE, cvae_loss
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
from cvae_lib.models.unet import UNet
from cvae_lib.profiles import get_profile
from cvae_lib.recipes import open_ended
from cvae_lib.runtime import describe, pick_device, seed_everything
from cvae_lib.settings import cache_dir
from cvae_lib.train import EMA, evaluate, fit, infer
from cvae_lib.weights import load_weights, read_metadata, shipped

OUT = Path(__file__).resolve().parent / "results"
MODELS = ("vae", "ddpm", "ldm", "lfm", "peer-ddpm-pytorch", "peer-diffusers")


def setup(args, device):
    """(model, loss_fn, train set, TrainConfig, ema or None, score, facts) for args.model.

    score() -> the test-split scores of the model as it is now; facts: what the run's results
    file records about the setting (a resumed run must have the same)."""
    P = get_profile(args.profile)
    gpu = device.type == "cuda"
    if args.model == "vae":
        train = load_cifar10("train").subset()       # class-sorted, as the measured runs had it
        test = load_cifar10("test").subset(None, n_per_class=args.test_per_class, seed=0)
        batch = args.batch_size or (128 if gpu else 32)
        run = open_ended("cvae_improved_bpd", P, steps_per_epoch=args.eval_steps, batch_size=batch,
                         compile=args.compile)
        model, cfg = CVAE(run.model), run.train

        def score():
            return {"test_bpd": evaluate(model, cvae_loss, test, batch_size=500)["bpd"], "n_test": len(test)}
        return model, cvae_loss, train, cfg, None, score, {"model_config": asdict(model.cfg)}

    return DIFFUSION_SETUPS[args.model](args, device, P)


def _judged(args, device, P):
    """The airplane+frog (profile) data, the judge, its test features and the labels to sample."""
    classes = list(P.diffusion.classes) if P.diffusion.classes else None
    if args.classes:
        classes = None if args.classes == "all" else args.classes.split(",")
    train = load_cifar10("train").subset(classes)
    test = load_cifar10("test").subset(classes, n_per_class=args.test_per_class, seed=0)
    judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig).to(device)
    feats_test = infer(judge.features, test.images(), device=device)
    ids = torch.unique(test.y.cpu())                                    # canonical CIFAR-10 ids
    y_gen = ids.repeat_interleave(math.ceil(args.n_eval / len(ids)))[: args.n_eval]
    return classes, train, test, judge, feats_test, y_gen


def _scores(judge, x, y_gen, feats_test, conditional: bool) -> dict:
    s = judge_scores(judge, x.float().cpu().clamp(0, 1), y_gen, feats_test)
    out = {"fd_judge": s["fd"], "kid_judge": s["kid"], "n_samples": len(x)}
    return {**out, "class_acc": s["acc"]} if conditional else out


def _ddpm(args, device, P):
    classes, train, test, judge, feats_test, y_gen = _judged(args, device, P)
    run = open_ended("ddpm", P, steps_per_epoch=args.eval_steps, batch_size=args.batch_size, compile=args.compile)
    diffusion = Diffusion(run.process).to(device)
    model = UNet(run.model)
    ema = EMA(model, decay=args.ema_decay)
    cfg = run.train

    def score():
        net = ema.model.eval()
        g = torch.Generator(device).manual_seed(0)
        x = torch.cat([diffusion.ddim_sample(net, len(yb), yb.to(device), steps=50, eta=1.0, generator=g,
                                             progress=False).float().cpu()
                       for yb in y_gen.split(500)]).clamp(0, 1)
        mse = diffusion.heldout_loss(net, test.images(), test.y, seed=0)
        return {**_scores(judge, x, y_gen, feats_test, True), "heldout_mse": mse, "n_test": len(test)}
    return model, diffusion.train_loss, train, cfg, ema, score, {
        "model_config": asdict(model.cfg), "diffusion": asdict(diffusion.cfg), "classes": classes,
        "ema_decay": args.ema_decay}


def _latent(args, device, P, objective: str):
    """ldm (objective "ddpm") or lfm ("flow"): the same first stage, latents, U-Net and recipe."""
    classes, train, test, judge, feats_test, y_gen = _judged(args, device, P)
    first_file = Path(args.first_stage) if args.first_stage else shipped("ldm_first_stage")
    first = load_weights(first_file, FirstStage, FirstStageConfig).to(device).requires_grad_(False)
    latents = encode_set(first, train, mirror=True)
    run = open_ended("ldm_prior", P, steps_per_epoch=args.eval_steps, batch_size=args.batch_size,
                     compile=args.compile)                    # chapter 06's prior, on this first stage's latents
    if objective == "flow":
        process = FlowMatching(FlowConfig.course(data="latent"))
    else:
        process = Diffusion(run.process).to(device)
    model = UNet(replace(run.model, in_channels=first.cfg.latent_channels))
    ema = EMA(model, decay=args.ema_decay)
    cfg = run.train

    def sample(nfe: int, solver: str = "euler", n: int | None = None):
        y = y_gen if n is None else _labels(y_gen, n)
        return _sample_latents(LatentDiffusion(first, ema.model.eval(), process), y, nfe, solver, args, device), y

    def score():          # in an NFE comparison both at 20 NFE; else each at its chapter's sampler
        x, y = sample(20 if objective == "flow" or args.final_nfe else 50)
        return {**_scores(judge, x, y, feats_test, True), "n_test": len(test)}

    def final(nfe: int, solver: str) -> dict:
        x, y = sample(nfe, solver, args.n_final)
        steps = nfe if solver == "euler" else (nfe + 1) // 2
        used = FlowMatching.nfe(steps, solver) if objective == "flow" else nfe
        name = {"flow": solver, "ddpm": "ddim-eta0"}[objective]
        return {"sampler": name, "nfe": used, **_scores(judge, x, y, feats_test, True)}

    solvers = ("euler", "heun") if objective == "flow" else ("ddim",)
    return model, process.train_loss, latents, cfg, ema, score, {
        "model_config": asdict(model.cfg), "objective": objective,
        "process": asdict(process.cfg), "classes": classes, "guidance": args.guidance,
        "ema_decay": args.ema_decay, "first_stage": first_file.name,
        "first_stage_minutes": read_metadata(first_file)["metrics"]["train_seconds"] / 60,
        "final": lambda: [final(n, s) for n in args.final_nfe for s in solvers]}


def _sample_latents(ldm: LatentDiffusion, y: torch.Tensor, nfe: int, solver: str, args, device) -> torch.Tensor:
    """Images for labels y from `ldm` at `nfe` network evaluations (Heun: 2 x steps - 1), in chunks of
    500, each chunk from its own seeded generator; eta 0 in an NFE sweep (the DDPM's ODE sampler)."""
    steps = nfe if solver == "euler" else (nfe + 1) // 2
    eta = 0.0 if args.final_nfe else 1.0
    return torch.cat([ldm.sample(yb, steps=steps, eta=eta, guidance=args.guidance, solver=solver,
                                 generator=torch.Generator(device).manual_seed(i), progress=False).cpu()
                      for i, yb in enumerate(y.split(500))])


def _labels(y_gen: torch.Tensor, n: int) -> torch.Tensor:
    """n labels with every class of y_gen equally often (n is rounded down to a multiple)."""
    ids = torch.unique(y_gen)
    return ids.repeat_interleave(n // len(ids))


def _ldm(args, device, P):
    return _latent(args, device, P, "ddpm")


def _lfm(args, device, P):
    return _latent(args, device, P, "flow")


def _peer_ddpm_pytorch(args, device, P):
    classes, train, test, judge, feats_test, y_gen = _judged(args, device, P)
    _, model = lucidrains(12, (1, 2, 2), sampling_timesteps=50)        # its defaults otherwise
    cfg, decay = _peer_training("denoising-diffusion-pytorch", args)
    ema = EMA(model, decay=decay)

    def score():
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(0)     # its sampler draws from the global RNG; training's stays untouched
            x = torch.cat([ema.model.eval().sample(batch_size=len(yb)).float().cpu() for yb in y_gen.split(500)])
        return {**_scores(judge, x, y_gen, feats_test, False), "n_test": len(test)}
    return model, (lambda m, x, y: m(x)), train, cfg, ema, score, {
        "peer": "denoising-diffusion-pytorch GaussianDiffusion defaults, Trainer optimiser defaults",
        "classes": classes}


def _peer_training(peer: str, args):
    """The peer's own TrainConfig (peers.TRAINING), open-ended as every curve here, and its EMA decay."""
    cfg, decay = TRAINING[peer]
    return replace(cfg, epochs=10**6, batch_size=args.batch_size or cfg.batch_size, max_steps=args.eval_steps,
                   compile=args.compile, progress=False), decay


def _peer_diffusers(args, device, P):
    from diffusers import DDIMScheduler, DDPMScheduler

    classes, train, test, judge, feats_test, y_gen = _judged(args, device, P)
    model = DiffusersEps(diffusers_unet((16, 32, 32), layers=1), DDPMScheduler(num_train_timesteps=1000,
                                                                                beta_schedule="linear"))
    cfg, decay = _peer_training("diffusers", args)
    ema = EMA(model, decay=decay)

    def score():
        sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        g = torch.Generator(device).manual_seed(0)
        x = torch.cat([diffusers_sample(ema.model.eval().unet, sched, len(yb), 50, device, g).float().cpu()
                       for yb in y_gen.split(500)])
        return {**_scores(judge, x, y_gen, feats_test, False), "n_test": len(test)}
    return model, (lambda m, x, y: m(x)), train, cfg, ema, score, {
        "peer": "diffusers UNet2DModel + DDPMScheduler, train_unconditional.py recipe", "classes": classes}


DIFFUSION_SETUPS = {"ddpm": _ddpm, "ldm": _ldm, "lfm": _lfm, "peer-ddpm-pytorch": _peer_ddpm_pytorch,
                    "peer-diffusers": _peer_diffusers}


def _start(args, device, cfg, facts, model) -> tuple[dict, Path, Path, bool]:
    """The results dict (the points already measured, when resuming the same setting), the result
    and checkpoint paths, and whether minutes are CPU time (one thread on a CPU)."""
    name = f"ttq-{args.model}-{device.type}" + ("-quick" if args.quick else "")
    ckpt = Path(args.run_dir or cache_dir() / "ttq") / f"{name}.pt"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result_path = out / f"{name}.json"
    cpu_clock = device.type == "cpu" and torch.get_num_threads() == 1
    setting = {"model": args.model, "profile": get_profile(args.profile).name, "train_config": asdict(cfg),
               "clock": "cpu" if cpu_clock else "wall", **facts}
    result = {"machine": describe(device), "setting": setting, "points": []}
    if args.fresh:
        ckpt.unlink(missing_ok=True)
    elif result_path.exists() and ckpt.exists():
        old = json.loads(result_path.read_text())
        if old.get("setting") == json.loads(json.dumps(setting)):
            result["points"] = old["points"]           # resume: keep what was measured
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    return result, result_path, ckpt, cpu_clock


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    seed_everything(0)
    model, loss_fn, train, cfg, ema, score, facts = setup(args, device)
    final = facts.pop("final", None)
    result, result_path, ckpt, cpu_clock = _start(args, device, cfg, facts, model)
    print(f"{args.model}: {result['parameters'] / 1e6:.2f}M parameters, {len(train)} training images, batch "
          f"{cfg.batch_size}, scored every {cfg.max_steps} steps, budget {args.minutes} training minutes "
          f"({'CPU time of one thread' if cpu_clock else 'wall time'}), on {device}; checkpoint {ckpt}")
    # One thread on a CPU: the training minutes are the process's CPU time (outside scoring), which
    # is what the run takes on an idle core whatever else the machine runs; elsewhere fit's wall time.
    clock = {"cpu": result["points"][-1].get("cpu_train_minutes", 0) * 60 if result["points"] else 0.0}

    def on_epoch(history) -> bool:
        clock["cpu"] += time.process_time() - clock["mark"]
        t0 = time.perf_counter()
        scores = score()
        model.train()
        minutes = clock["cpu"] / 60 if cpu_clock else history.seconds / 60
        point = {"steps": len(history) * cfg.max_steps, "train_minutes": minutes,
                 "wall_train_minutes": history.seconds / 60, "cpu_train_minutes": clock["cpu"] / 60,
                 "score_seconds": time.perf_counter() - t0, **scores}
        result["points"].append(point)
        result_path.write_text(json.dumps(result, indent=2))
        print("  " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in point.items()),
              flush=True)
        clock["mark"] = time.process_time()
        return minutes >= args.minutes

    t0 = time.perf_counter()
    clock["mark"] = time.process_time()
    fit(model, loss_fn, train, cfg, checkpoint=ckpt, ema=ema, device=device, on_epoch=on_epoch)
    result["wall_minutes_this_call"] = (time.perf_counter() - t0) / 60
    if final is not None and args.final_nfe and not result.get("final"):
        t1 = time.perf_counter()
        result["final"] = final()
        result["final_seconds"] = time.perf_counter() - t1
    return _finish(result, result_path)


def _finish(result: dict, result_path: Path) -> dict:
    """Write the results file, its table (.md) and its curve (.png), and print the table."""
    result_path.write_text(json.dumps(result, indent=2))
    result_path.with_suffix(".md").write_text(markdown(result))
    plot(result, result_path.with_suffix(".png"))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    m, s, pts = result["machine"], result["setting"], result["points"]
    where = m.get("gpu") or f"{m['device']}, {m['cpu_threads']} threads"
    clock = "CPU time of the one training thread" if s.get("clock") == "cpu" else "wall time"
    head = (f"Time to quality, {s['model']} ({s['profile']} profile sizes), on {where}, torch {m['torch']}, "
            f"autocast {m['autocast']}, batch {s['train_config']['batch_size']}; training minutes are {clock}.\n\n")
    if s["model"] == "vae":
        n = pts[-1]["n_test"] if pts else 0
        rows = ["| steps | training minutes | test bits/dim |", "|---|---|---|"]
        rows += [f"| {p['steps']} | {p['train_minutes']:.2f} | {p['test_bpd']:.3f} |" for p in pts]
        return head + "\n".join(rows) + f"\n\nBits/dim on {n} test images (ELBO bound).\n"
    n, nt = (pts[-1]["n_samples"], pts[-1]["n_test"]) if pts else (0, 0)
    cols = [(k, label, fmt) for k, label, fmt in (("fd_judge", "FD (judge)", ".1f"), ("kid_judge", "KID", ".3f"),
                                                  ("class_acc", "class acc", ".1%"),
                                                  ("heldout_mse", "held-out MSE", ".4f"))
            if pts and all(k in p for p in pts)]
    rows = ["| steps | training minutes | " + " | ".join(c[1] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    rows += [f"| {p['steps']} | {p['train_minutes']:.2f} | " + " | ".join(format(p[k], f) for k, _, f in cols) + " |"
             for p in pts]
    sampler = "Euler-20" if s["model"] == "lfm" else ("DDIM-20 (eta 0)" if result.get("final") else "DDIM-50")
    text = head + "\n".join(rows) + (f"\n\nFD and KID between {n} {sampler} samples (EMA weights) and {nt} test "
                                     f"images in the judge's feature space.\n")
    if result.get("final"):
        fin = result["final"]
        rows = ["| sampler | NFE | judge class acc | judge FD | KID |", "|---|---|---|---|---|"]
        rows += [f"| {f['sampler']} | {f['nfe']} | {f['class_acc']:.1%} | {f['fd_judge']:.1f} | {f['kid_judge']:.2f} |"
                 for f in fin]
        text += (f"\nThe last weights, sampled again with {fin[0]['n_samples']} samples (guidance w = "
                 f"{s.get('guidance', 1.0):g}):\n\n" + "\n".join(rows) + "\n")
    return text


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = result["points"]
    key, label = ("test_bpd", "test bits/dim") if result["setting"]["model"] == "vae" else ("fd_judge", "FD (judge)")
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p["train_minutes"] for p in pts], [p[key] for p in pts], marker="o")
    ax.set_xlabel("training minutes"), ax.set_ylabel(label), ax.grid(alpha=0.3)
    m = result["machine"]
    where = m.get("gpu") or f"{m['device']}, {m['cpu_threads']} threads"
    names = {"vae": "improved VAE", "ddpm": "DDPM", "ldm": "latent diffusion", "lfm": "latent flow matching"}
    what = names.get(result["setting"]["model"], result["setting"]["model"])
    ax.set_title(f"{what}: {label} against training time ({where})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


PEERS = ("peer-ddpm-pytorch", "peer-diffusers")
LABELS = {"ddpm": "course pixel DDPM", "ldm": "course latent diffusion", "lfm": "course latent flow matching",
          "peer-ddpm-pytorch": "denoising-diffusion-pytorch (its defaults)",
          "peer-diffusers": "diffusers UNet2DModel + DDPMScheduler (example recipe)"}


def summarize(folder: Path, minutes: float) -> str:
    """summary.md and summary.png of the diffusion runs in `folder`: FD against training minutes,
    and the minutes each needs to reach the best FD that either peer reached in its budget of
    `minutes` (its runs stop at the first scored point past the budget)."""
    runs = {m: json.loads(f.read_text()) for m in LABELS if (f := folder / f"ttq-{m}-cpu.json").exists()}
    if not runs:
        raise SystemExit(f"no ttq-*-cpu.json results of {', '.join(LABELS)} in {folder}")

    # a run stops at its first scored point past the budget, so all its points count
    peer_fd = min((p["fd_judge"] for m in PEERS if m in runs for p in runs[m]["points"]), default=None)
    rows = [f"| model | parameters, batch | judge FD (training minutes) | class acc (last) | minutes to reach "
            f"the best peer's {minutes:g}-minute FD ({peer_fd:.1f}) |" if peer_fd else "| model | ... |",
            "|---|---|---|---|---|"]
    for m, run in runs.items():
        pts, s = run["points"], run["setting"]
        curve = ", ".join(f"{p['fd_judge']:.1f} ({p['train_minutes']:.1f})" for p in pts)
        acc = f"{pts[-1]['class_acc']:.1%}" if pts and "class_acc" in pts[-1] else "n/a (unconditional)"
        reach = next((p["train_minutes"] for p in pts if peer_fd is not None and p["fd_judge"] <= peer_fd), None)
        reach = f"{reach:.1f} (first scored point at or below)" if reach is not None else f"not within {minutes:g}"
        rows.append(f"| {LABELS[m]} | {run.get('parameters', 0) / 1e6:.2f}M, {s['train_config']['batch_size']} | "
                    f"{curve} | {acc} | {reach} |")
    any_run = next(iter(runs.values()))
    n, nt = any_run["points"][-1]["n_samples"], any_run["points"][-1]["n_test"]
    clock = "CPU time of the one training thread" if any_run["setting"].get("clock") == "cpu" else "wall time"
    text = ("\n".join(rows) + f"\n\nSame airplane+frog training images, the course's `fit`, one CPU thread each, "
            f"{minutes:g} training minutes ({clock}, scoring excluded); {n} DDIM-50 samples per point (the course's "
            f"models eta 1 without guidance, the peers their own DDIM), judge FD against the {nt} test images.\n")
    (folder / "summary.md").write_text(text)
    _plot_all(runs, folder / "summary.png", minutes)
    return text


def _plot_all(runs: dict, path: Path, minutes: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m, run in runs.items():
        pts = run["points"]
        ax.plot([p["train_minutes"] for p in pts], [p["fd_judge"] for p in pts], marker="o", label=LABELS[m])
    ax.axvline(minutes, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("training minutes (one CPU thread)"), ax.set_ylabel("judge FD (lower is better)")
    ax.grid(alpha=0.3), ax.legend(fontsize=7)
    ax.set_title("time to quality on airplanes and frogs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=(*MODELS, "summary"),
                   help="a model to train and score, or `summary`: the table and plot of the diffusion runs in --out")
    p.add_argument("--minutes", type=float, default=15.0, help="training-time budget (default 15)")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="steps between scores (default: 390 on a GPU, 400 on a CPU; 2 with --quick)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: 128 on a GPU / 32 (vae), the profile's (ddpm)")
    p.add_argument("--test-per-class", type=int, default=None, help="test images per class (default: all 1,000)")
    p.add_argument("--n-eval", type=int, default=None, help="ddpm: samples per FD (default: the profile's n_eval)")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--classes", default=None,
                   help="ddpm/ldm/lfm: comma-separated class names, or `all` (default: the profile's)")
    p.add_argument("--guidance", type=float, default=1.0, help="ldm/lfm: classifier-free guidance weight w")
    p.add_argument("--final-nfe", default="", help="ldm/lfm: e.g. 10,20,50: score the last weights at each NFE")
    p.add_argument("--n-final", type=int, default=1000, help="samples per --final-nfe score")
    p.add_argument("--first-stage", default=None,
                   help="ldm: a first stage .safetensors file listed in its SHA256SUMS (default: the shipped one)")
    p.add_argument("--profile", default=None, help="sizes from this profile (default: gpu on CUDA, else cpu)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="smoke profile sizes, tiny test subset, 2-step intervals")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="train eagerly (default: torch.compile on CUDA, eager on CPU)")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    p.add_argument("--run-dir", default=None, help="where the resumable checkpoint lives")
    p.add_argument("--out", default=str(OUT))
    return p


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.model == "summary":
        text = summarize(Path(args.out), args.minutes)
        print(text)
        return {"summary": text}
    args.compile = "auto" if args.compile else False
    args.final_nfe = [int(n) for n in args.final_nfe.split(",") if n.strip()]
    gpu = pick_device(args.device).type == "cuda"
    if args.quick:
        args.profile = args.profile or "smoke"
        args.eval_steps = args.eval_steps or 2
        args.test_per_class = args.test_per_class or 5
        args.batch_size = args.batch_size or 16
    args.eval_steps = args.eval_steps or (390 if gpu else 400)
    args.n_eval = args.n_eval or get_profile(args.profile).n_eval
    return run(args)


if __name__ == "__main__":
    main()
