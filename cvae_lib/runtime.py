"""Where the code runs: device choice, seeding, mixed precision and compilation.

Everything hardware-dependent is decided here, once, so models and the training loop stay
device-agnostic. Nothing is probed at import time: call the functions.

    device = pick_device()                  # cuda, then mps, then cpu
    seed_everything(0)
    with autocast(device):                  # bf16 on GPUs, and on CPUs with AMX; else a no-op
        loss = model(x)
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import random

import torch

from . import settings

__all__ = ["pick_device", "seed_everything", "cpu_has_amx", "amp_dtype", "grad_scaler", "autocast",
           "maybe_compile", "unwrap", "use_channels_last", "optimizer_flags", "eval_mode", "init_distributed",
           "distributed", "describe"]


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device: `prefer` (or env `CVAE_DEVICE`), else cuda, then mps, then cpu."""
    source = "pick_device's argument" if prefer else "the environment variable CVAE_DEVICE"
    prefer = prefer or settings.current().device
    if prefer:
        try:
            device = torch.device(prefer)
        except RuntimeError as e:
            raise RuntimeError(f"device {prefer!r} from {source} is not a device name ({e}); use cpu, cuda, "
                               f"cuda:1 or mps") from None
        count = {"cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                 "mps": int(getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available())}
        if device.type in count and (device.index or 0) >= count[device.type]:
            raise RuntimeError(f"device {prefer!r} from {source} is not available on this machine (it has "
                               f"{count[device.type]} {device.type} device(s)): "
                               + ("unset CVAE_DEVICE or set it to cpu" if source.startswith("the environment")
                                  else "pick another device, or leave it out to choose automatically"))
        return device
    if torch.cuda.is_available():          # under torchrun, each process its own GPU
        local = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(local)) if local is not None else torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, torch (CPU and CUDA) and, if present, numpy; return a seeded CPU generator."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    try:
        import numpy as np
        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency, but the core does not need it
        pass
    return torch.Generator().manual_seed(seed)


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """True if this CPU has AMX bf16 tile units (Intel Sapphire Rapids and newer).

    Only there is bf16 autocast on the CPU faster than fp32 (about 3x for our small convnets);
    on AVX2-only laptops it is several times *slower*, so we detect rather than assume.
    """
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:  # macOS, Windows: no AMX there anyway
        return False


def amp_dtype(device: torch.device | str, mode: str = "auto") -> torch.dtype | None:
    """The autocast dtype to use on `device`, or None for plain fp32.

    mode: "auto", "bf16" or "fp16" (force), "off". "auto" picks bf16 on GPUs with native bf16
    (compute capability 8.0 and later: A100, L4, H100, RTX 30xx on) and on AMX CPUs; fp16 on the
    older tensor-core GPUs (7.x: V100, T4, RTX 20xx), where bf16 is only emulated and slow; fp32
    elsewhere. `fit` pairs fp16 with a gradient scaler (`grad_scaler`), which bf16 does not need.
    The environment variable `CVAE_AMP` (same values) replaces "auto" everywhere: `CVAE_AMP=off`
    on an AMX CPU trains in fp32, as the course's printed numbers were measured.
    """
    device = torch.device(device)
    if mode == "auto" and settings.current().amp != "auto":
        mode = settings.current().amp
        if mode not in ("bf16", "fp16", "off"):
            raise ValueError(f"CVAE_AMP must be 'auto', 'bf16', 'fp16' or 'off', got {mode!r}")
    if mode == "off":
        return None
    if mode in ("bf16", "fp16"):
        return torch.bfloat16 if mode == "bf16" else torch.float16
    if mode != "auto":
        raise ValueError(f"amp mode must be 'auto', 'bf16', 'fp16' or 'off', got {mode!r}")
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return torch.bfloat16 if major >= 8 else torch.float16 if major >= 7 else None
    if device.type == "cpu" and cpu_has_amx():
        return torch.bfloat16
    return None


def grad_scaler(device: torch.device | str, mode: str = "auto") -> torch.amp.GradScaler:
    """A gradient scaler that is on exactly when autocast runs in fp16 (small fp16 gradients
    underflow to zero unless the loss is scaled up first); a no-op otherwise."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device, mode) == torch.float16)


def autocast(device: torch.device | str, mode: str = "auto"):
    """A context manager: bf16 or fp16 autocast where it helps (see `amp_dtype`), else a no-op."""
    device = torch.device(device)
    dtype = amp_dtype(device, mode)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def maybe_compile(model: torch.nn.Module, enabled: bool | str = "auto") -> torch.nn.Module:
    """`torch.compile(model)` on CUDA when enabled; the model unchanged otherwise.

    Compilation pays off on GPUs for runs longer than a minute; on a laptop CPU the compile
    time (tens of seconds) usually exceeds the gain, so "auto" compiles on CUDA only.
    Save `model.state_dict()` of the *uncompiled* module (see train.unwrap).
    """
    if enabled == "auto":
        enabled = next(model.parameters()).is_cuda
    return torch.compile(model) if enabled else model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module behind `torch.compile`'s and DistributedDataParallel's wrappers (in any nesting);
    its state_dict has no "_orig_mod." or "module." prefixes."""
    while True:
        if hasattr(model, "_orig_mod"):                  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        else:
            return model


def use_channels_last(device: torch.device | str, setting: bool | str = "auto") -> bool:
    """Whether to train in NHWC memory format. "auto": on CUDA and on CPUs (1.2-1.5x for the
    course's convnets on the 2-core development CPU), not on MPS, where it is untested."""
    if setting == "auto":
        return torch.device(device).type in ("cuda", "cpu")
    if not isinstance(setting, bool):
        raise ValueError(f"channels_last must be True, False or 'auto', got {setting!r}")
    return setting


def optimizer_flags(device: torch.device | str, optimizer: str) -> dict:
    """Keyword arguments for torch.optim constructors: the fused CUDA kernel for Adam/AdamW on a
    GPU (one kernel per step instead of several per tensor); nothing elsewhere."""
    if torch.device(device).type == "cuda" and optimizer in ("adam", "adamw"):
        return {"fused": True}
    return {}


@contextlib.contextmanager
def eval_mode(*models):
    """Put modules (anything with .training; others are passed over) in eval mode for the block,
    then restore each one's train/eval mode, also when the block raises."""
    modes = [(m, m.training) for m in models if isinstance(getattr(m, "training", None), bool)]
    for m, _ in modes:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.train(was_training)


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes (env WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
    MASTER_PORT), once: NCCL when each process has a GPU, gloo on CPUs. Returns (rank, world);
    (0, 1) outside torchrun, where nothing is initialised. On CUDA each process takes the GPU
    cuda:LOCAL_RANK, which `pick_device` then returns."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and (settings.current().device or "cuda").startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_leave_distributed)
    return dist.get_rank(), dist.get_world_size()


def _leave_distributed() -> None:
    """Tear the process group down before the interpreter exits: a gloo group left to static
    destructors can abort a finished rank ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def describe(device: torch.device | str | None = None) -> dict:
    """A small dict describing the runtime, for the setup notebook and benchmark reports."""
    device = torch.device(device) if device is not None else pick_device()
    info = {
        "torch": torch.__version__,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "cpu_amx": cpu_has_amx(),
        "autocast": str(amp_dtype(device)),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
