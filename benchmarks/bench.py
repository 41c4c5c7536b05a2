"""Throughput of the course's models against the libraries a student would use instead.

    python benchmarks/bench.py                 # everything, sizes chosen for the device
    python benchmarks/bench.py --quick         # fewer iterations (a smoke run of the script)

Measures on one machine, in one run: training images/s of the course's VAE and of its U-Net
at two sizes (the small default and Ho et al.'s 35.7M CIFAR-10 network), sampling images/s
(DDPM-1000, DDIM-50), and the same for `denoising-diffusion-pytorch` (Unet + GaussianDiffusion)
and diffusers (UNet2DModel + DDPMScheduler/DDIMScheduler) at about the same parameter count,
with the ratio ours/peer. Timing: warm-up steps first, then `iters` steps, with device
synchronisation around the timed region. Peak memory: CUDA's allocator peak on GPUs; on CPUs
the process's peak resident set size (coarser: it includes everything loaded before).
FLOPs: one training step counted by torch.utils.flop_counter (matmuls, convolutions and
attention, forward and backward: the usual convention, elementwise work left out), per image;
model FLOP utilisation (MFU) = FLOPs/image x images/s / the device's peak. Peaks: the dense
bf16 tensor-core figure of known GPUs (the peers run in fp32 unless --peer-amp, so their MFU
is against a peak they cannot reach), and for CPUs an estimate, cores x base clock x FLOPs per
cycle (32 with AVX2 FMA, 64 with AVX-512), stated as such; --peak-tflops overrides it. On a
GPU the course's U-Nets are also timed under torch.compile.
Writes benchmarks/results/<device>.json and .md. Needs the extra packages in
requirements-test.txt (the peers); CI does not run it.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch
from peers import DiffusersEps, diffusers_sample, diffusers_unet, lucidrains, lucidrains_ddim

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.runtime import autocast, describe, pick_device

OUT = Path(__file__).resolve().parent / "results"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# Dense bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets (no sparsity).
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                   "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}


def peak_tflops(device: torch.device, override: float | None = None) -> tuple[float | None, str]:
    """(peak TFLOP/s, where the figure comes from) for MFU; None when unknown."""
    if override:
        return override, "given with --peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tf in GPU_PEAK_TFLOPS.items():     # most specific names first
            if key in name:
                return tf, f"{key} dense bf16 data-sheet peak"
        return None, f"unknown GPU {name!r}: pass --peak-tflops"
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, "no /proc/cpuinfo: pass --peak-tflops"
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    per_cycle = 64 if "avx512f" in flags else 32 if ("avx2" in flags and "fma" in flags) else 8
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.lower().startswith("bogomips")]
    if not mhz:
        return None, "clock unknown: pass --peak-tflops"
    ghz = mhz[0] / 2 / 1000                         # BogoMIPS is about twice the base clock on x86
    cores = torch.get_num_threads()
    return cores * ghz * per_cycle / 1000, (f"estimate: {cores} cores x {ghz:.2f} GHz x {per_cycle} fp32 "
                                            f"FLOPs/cycle")


def train_flops_per_image(model, loss_of_batch, x, y) -> float | None:
    """FLOPs of one forward+backward pass per image (torch.utils.flop_counter), or None."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            loss = loss_of_batch(model, x, y)
            (loss[0] if isinstance(loss, tuple) else loss).backward()
    except Exception:       # an op the counter cannot trace: report no MFU rather than a wrong one
        return None
    finally:
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(x)


def time_train(model, loss_of_batch, batch_size, device, warmup, iters, amp=True, channels_last=True,
               compile=False) -> dict:
    """Images per second of full training steps (forward, backward, Adam), and FLOPs per image."""
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, **({"fused": True} if device.type == "cuda" else {}))
    x = torch.rand(batch_size, 3, 32, 32, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    flops = train_flops_per_image(model, loss_of_batch, x, y)
    step_model = torch.compile(model) if compile else model
    reset_memory(device)
    for i in range(warmup + iters):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        with autocast(device, "auto" if amp else "off"):
            loss = loss_of_batch(step_model, x, y)
        if isinstance(loss, tuple):          # (loss, logged terms), as the course's losses return
            loss = loss[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": batch_size * iters / seconds, "batch": batch_size, "params_M": n_params(model) / 1e6,
            "peak_mem_MB": peak_memory_mb(device), "gflops_per_image": flops / 1e9 if flops else None}


@torch.no_grad()
def time_sample(sample_fn, n, device, amp=True) -> dict:
    sample_fn(min(n, 2))  # warm-up (also compiles kernels)
    sync(device)
    reset_memory(device)
    t0 = time.perf_counter()
    with autocast(device, "auto" if amp else "off"):
        sample_fn(n)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"images_per_s": n / seconds, "n": n, "peak_mem_MB": peak_memory_mb(device)}


# ----------------------------------------------------------------------------- the contenders

def ours_unet(cfg: UNetConfig):
    model, diffusion = UNet(cfg), Diffusion(DiffusionConfig())
    return model, (lambda m, x, y: diffusion.train_loss(m, x, y)), diffusion


def peer_lucidrains(dim: int, mults: tuple[int, ...]):
    """denoising-diffusion-pytorch with our objective and schedule (epsilon, linear, T = 1000): speed only."""
    return lucidrains(dim, mults, timesteps=1000, objective="pred_noise", beta_schedule="linear")


def peer_diffusers(channels: tuple[int, ...], layers: int):
    from diffusers import DDIMScheduler, DDPMScheduler

    return diffusers_unet(channels, layers), DDPMScheduler(num_train_timesteps=1000), \
        DDIMScheduler(num_train_timesteps=1000)


def record(table: dict, name: str, fn) -> None:
    """table[name] = fn(), or the error that stopped it: a missing peer package must not hide our numbers."""
    print(f"  {name} ...", end=" ", flush=True)
    try:
        table[name] = fn()
        print(f"{table[name]['images_per_s']:.1f} img/s")
    except Exception as e:
        table[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
        print("skipped:", table[name]["error"])


def _ratio(table: dict, ours: str, peer: str, **extra) -> None:
    a, b = table.get(ours, {}), table.get(peer, {})
    if "images_per_s" in a and "images_per_s" in b:
        b.update(ours_over_peer=a["images_per_s"] / b["images_per_s"], **extra)


def train_rows(R: dict, args, device, sizes: dict) -> None:
    """Training throughput: the study's VAE, then ours against both peers at each U-Net size
    (and, on a GPU, ours compiled against ours eager)."""
    warm, iters = sizes["warm"], sizes["iters"]
    record(R, "ours VAE (study config)", lambda: time_train(VAE(VAEConfig()), vae_loss, sizes["bs"], device, warm,
                                                            iters))
    for label, cfg, b in (("small", UNetConfig(), sizes["bs"]), ("paper 35.7M", UNetConfig.paper(), sizes["bs_big"])):
        model, loss, _ = ours_unet(cfg)
        record(R, f"ours U-Net {label}", lambda: time_train(model, loss, b, device, warm, iters))
        if device.type == "cuda" and not args.no_compile:   # TrainConfig(compile=True): a long GPU run's choice
            model_c, loss_c, _ = ours_unet(cfg)
            record(R, f"ours U-Net {label}, compiled",
                   lambda: time_train(model_c, loss_c, b, device, warm + 3, iters, compile=True))
            compiled, eager = R[f"ours U-Net {label}, compiled"], R[f"ours U-Net {label}"]
            if "images_per_s" in compiled and "images_per_s" in eager:
                compiled["over_eager"] = compiled["images_per_s"] / eager["images_per_s"]
        unet, wrapper = peer_lucidrains(cfg.width, cfg.width_mult)
        record(R, f"denoising-diffusion-pytorch {label}",
               lambda: {**time_train(wrapper, lambda m, x, y: m(x), b, device, warm, iters, amp=args.peer_amp,
                                     channels_last=False), "params_M": n_params(unet) / 1e6})
        unet_d, ddpm_s, _ = peer_diffusers(tuple(cfg.width * m for m in cfg.width_mult), cfg.num_res_blocks)
        record(R, f"diffusers {label}", lambda: {**time_train(DiffusersEps(unet_d, ddpm_s), lambda m, x, y: m(x), b,
                                                              device, warm, iters, amp=args.peer_amp,
                                                              channels_last=False),
                                                 "params_M": n_params(unet_d) / 1e6})
        for peer in ("denoising-diffusion-pytorch", "diffusers"):
            _ratio(R, f"ours U-Net {label}", f"{peer} {label}", ours_params_M=n_params(model) / 1e6)


def sample_rows(S: dict, args, device, sizes: dict) -> None:
    """Sampling throughput of the small untrained U-Nets (speed only): DDPM-1000 and DDIM-50."""
    small, n_ddpm, n_ddim, amp = UNetConfig(), sizes["n_ddpm"], sizes["n_ddim"], args.peer_amp
    model, _, diffusion = ours_unet(small)
    model.to(device).eval()
    diffusion.to(device)
    record(S, "ours DDPM-1000", lambda: time_sample(
        lambda n: diffusion.ddpm_sample(model, n, device=device, progress=False), n_ddpm, device))
    record(S, "ours DDIM-50", lambda: time_sample(
        lambda n: diffusion.ddim_sample(model, n, steps=50, device=device, progress=False), n_ddim, device))
    _, wrapper = peer_lucidrains(small.width, small.width_mult)
    wrapper.to(device).eval()
    record(S, "denoising-diffusion-pytorch DDPM-1000", lambda: time_sample(
        lambda n: wrapper.p_sample_loop((n, 3, 32, 32)), n_ddpm, device, amp=amp))
    record(S, "denoising-diffusion-pytorch DDIM-50", lambda: time_sample(
        lambda n: lucidrains_ddim(wrapper, n), n_ddim, device, amp=amp))
    unet_d, ddpm_s, ddim_s = peer_diffusers(tuple(small.width * m for m in small.width_mult), small.num_res_blocks)
    unet_d.to(device).eval()
    record(S, "diffusers DDPM-1000", lambda: time_sample(lambda n: diffusers_sample(unet_d, ddpm_s, n, 1000, device),
                                                        n_ddpm, device, amp=amp))
    record(S, "diffusers DDIM-50", lambda: time_sample(lambda n: diffusers_sample(unet_d, ddim_s, n, 50, device),
                                                      n_ddim, device, amp=amp))
    for kind in ("DDPM-1000", "DDIM-50"):
        for peer in ("denoising-diffusion-pytorch", "diffusers"):
            _ratio(S, f"ours {kind}", f"{peer} {kind}")


def run(args) -> dict:
    device = pick_device(args.device)
    torch.manual_seed(0)
    gpu = device.type == "cuda"
    warm, iters = (2, 3) if args.quick else ((10, 30) if gpu else (2, 6))
    sizes = {"warm": warm, "iters": iters, "bs": 128 if gpu else 32, "bs_big": 128 if gpu else 8,
             "n_ddpm": 2 if args.quick else 64 if gpu else 4, "n_ddim": 4 if args.quick else 256 if gpu else 16}
    results: dict = {"machine": {**describe(device), "python": platform.python_version(),
                                 "processor": platform.processor() or platform.machine()},
                     "train": {}, "sample": {}}
    print(f"training throughput on {device} ...")
    train_rows(results["train"], args, device, sizes)
    peak, source = peak_tflops(device, args.peak_tflops)
    results["machine"].update(peak_tflops=peak, peak_source=source)
    for r in results["train"].values():
        if peak and r.get("gflops_per_image"):
            r["mfu"] = r["gflops_per_image"] * r["images_per_s"] / (peak * 1e3)
    print("sampling throughput (small U-Nets, untrained: speed only) ...")
    sample_rows(results["sample"], args, device, sizes)
    return results


def markdown(results: dict) -> str:
    m = results["machine"]
    where = f" ({m['gpu']})" if "gpu" in m else f" ({m['processor']}, {m['cpu_threads']} threads)"
    lines = [f"Machine: {m['device']}" + where
             + f", torch {m['torch']}, autocast {m['autocast']}.",
             f"MFU against a peak of {m['peak_tflops']:.3g} TFLOP/s ({m['peak_source']})." if m.get("peak_tflops")
             else f"No MFU: {m.get('peak_source', 'peak unknown')}.", "",
             "| training | params (M) | batch | images/s | ours/peer | GFLOP/image | MFU | peak memory (MB) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results["train"].items():
        if "error" in r:
            lines.append(f"| {name} | | | not run: {r['error'][:80]} | | | | |")
            continue
        ratio = (f"{r['ours_over_peer']:.2f}x" if "ours_over_peer" in r
                 else f"{r['over_eager']:.2f}x eager" if "over_eager" in r else "")
        gf = f"{r['gflops_per_image']:.2f}" if r.get("gflops_per_image") else ""
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else ""
        lines.append(f"| {name} | {r['params_M']:.1f} | {r['batch']} | {r['images_per_s']:.1f} | {ratio} | {gf} | "
                     f"{mfu} | {r['peak_mem_MB']:.0f} |")
    lines += ["", "| sampling | images | images/s | ours/peer |", "|---|---|---|---|"]
    for name, r in results["sample"].items():
        if "error" in r:
            lines.append(f"| {name} | | not run: {r['error'][:80]} | |")
            continue
        ratio = f"{r['ours_over_peer']:.2f}x" if "ours_over_peer" in r else ""
        lines.append(f"| {name} | {r['n']} | {r['images_per_s']:.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda / cpu (default: best available)")
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for MFU")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows on a GPU")
    parser.add_argument("--peer-amp", action="store_true",
                        help="give the peers the same bf16 autocast as ours (default: their fp32 defaults)")
    args = parser.parse_args()
    results = run(args)
    OUT.mkdir(exist_ok=True)
    name = (results["machine"]["device"].split(":")[0] + ("-peer-amp" if args.peer_amp else "")
            + ("-quick" if args.quick else ""))
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2))
    (OUT / f"{name}.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
