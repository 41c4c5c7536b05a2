"""One model-agnostic training loop with checkpoints, exact resume, EMA and early stopping.

    history = fit(model, loss_fn, train_set, TrainConfig(epochs=5), val=val_set,
                  checkpoint="runs/ae.pt")

`loss_fn(model, x, y)` returns a scalar loss, or `(loss, {"name": scalar, ...})` to log more
terms; x is a float batch (B, 3, 32, 32) in [0, 1] and y its (B,) labels. The loop never
names a model: the same `fit` trains the autoencoder, the VAEs and the diffusion U-Net.

Nothing is lost: after every epoch a checkpoint (model config, uncompiled weights, optimizer,
EMA, RNG state, history) is written atomically, and calling `fit` again with the same
checkpoint path continues exactly where it stopped, giving the same weights as an
uninterrupted run. Checkpoints are plain tensors and numbers, loaded with weights_only=True.
"""
from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import torch
from torch import nn

from .data import ImageSet, TensorSet
from .runtime import autocast, maybe_compile, pick_device

__all__ = ["TrainConfig", "History", "EMA", "CheckpointError", "fit", "evaluate", "infer", "run_dir",
           "load_or_train", "load_checkpoint", "load_model", "save_checkpoint", "unwrap"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, dict]"]
_FORMAT = 1
# Train-config fields that may change between a run and its resume. All but `epochs` leave the
# result unchanged; more epochs continue the run (with schedule="cosine" the decay is re-timed).
_RESUMABLE_CHANGES = {"epochs", "early_stopping", "progress", "log_every"}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used with this model or run; the message says why and what to do."""


@dataclass
class TrainConfig:
    epochs: int = 10                  # passes over the training set
    batch_size: int = 128             # images per step
    lr: float = 1e-3                  # peak learning rate
    optimizer: str = "adam"           # "adam" | "adamw" | "radam"
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0             # linear learning-rate warm-up, in steps
    schedule: str = "constant"        # learning rate after warm-up: "constant" | "cosine" (decays to 0)
    grad_clip: float | None = None    # max global gradient norm; None: no clipping
    hflip: bool = False               # random horizontal flips (augmentation)
    translate: int = 0                # random shifts of up to this many pixels (augmentation)
    max_steps: int | None = None      # cap on steps per epoch (smoke runs)
    early_stopping: int | None = None # patience in epochs without a better validation loss
    seed: int = 0                     # batch order, flips and the initial RNG state
    amp: str = "auto"                 # "auto" | "bf16" | "off" (see runtime.amp_dtype)
    compile: bool | str = False       # torch.compile: True, False or "auto" (CUDA only)
    channels_last: bool | str = "auto"  # NHWC memory format; "auto": on CUDA and CPU (1.2-1.5x here)
    log_every: int = 20               # steps between progress-bar updates (host syncs)
    progress: bool = True             # tqdm progress bars


@dataclass
class History:
    """What `fit` measured: one row per epoch, e.g. {"epoch": 1, "train_loss": .., "val_loss": ..,
    "seconds": .., "train_<term>": ..}. `h["train_loss"]` gives a column as a list."""
    rows: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None

    def __getitem__(self, key: str) -> list:
        return [r.get(key, math.nan) for r in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def steps(self) -> int:
        """Optimizer steps taken (all epochs, including resumed ones)."""
        return int(sum(r.get("steps", 0) for r in self.rows))

    @property
    def seconds(self) -> float:
        """Total training time in seconds (all epochs, including resumed ones)."""
        return float(sum(self["seconds"]))

    def to_dict(self) -> dict:
        return {"rows": self.rows, "stopped_early": self.stopped_early, "best_epoch": self.best_epoch}


class EMA:
    """Exponential moving average of a model's weights (Polyak averaging), used for sampling.

    After update n (counting from 0): theta_ema <- d_n theta_ema + (1 - d_n) theta, with the
    warm-up d_n = min(decay, (1 + n) / (10 + n)). Without it, a decay of 0.9999 over a short
    run leaves the average mostly at the random initial weights, and samples are pure noise.
    `ema.model` is a frozen copy in eval mode; buffers are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        src = unwrap(model)
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_p = list(self.model.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in src.parameters()], 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), src.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"weights": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["weights"])
        self.updates = int(state["updates"])


def unwrap(model: nn.Module) -> nn.Module:
    """The original module behind a `torch.compile` wrapper (its state_dict has no prefixes)."""
    return getattr(model, "_orig_mod", model)


def _config_of(model: nn.Module) -> dict | None:
    cfg = getattr(unwrap(model), "cfg", None)
    return asdict(cfg) if is_dataclass(cfg) else None


def _normalise(d: dict) -> dict:
    """Tuples and lists compare equal after a checkpoint round trip."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write `state` to `path` atomically: a temporary file, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint as data only (`weights_only=True`: no code in it can run)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({e}); delete it to retrain.") from e
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a cvae_lib checkpoint (format {_FORMAT}); delete it "
                              f"or pass another path.")
    return state


def _check_matches(state: dict, model: nn.Module, path: Path) -> None:
    name, cfg = type(unwrap(model)).__name__, _config_of(model)
    if state["model_class"] != name:
        raise CheckpointError(f"{path} holds a {state['model_class']}, not a {name}: use another "
                              f"checkpoint path or delete the file.")
    if cfg is not None and _normalise(state["model_config"] or {}) != _normalise(cfg):
        diff = {k: (state["model_config"].get(k), v) for k, v in cfg.items()
                if _normalise({k: state["model_config"].get(k)}) != _normalise({k: v})}
        raise CheckpointError(f"{path} was trained with another config; differing fields "
                              f"(checkpoint, this model): {diff}. Use a new checkpoint path for "
                              f"the new config, or delete the old file to retrain.")


def load_model(path: str | os.PathLike, model_cls: type[nn.Module], config_cls: type,
               ema: bool = False) -> nn.Module:
    """Rebuild a model from its checkpoint in one call: config from the file, then its weights.

    ema: load the EMA weights instead of the raw ones (if the run kept an EMA).
    """
    state = load_checkpoint(path)
    if state["model_class"] != model_cls.__name__:
        raise CheckpointError(f"{path} holds a {state['model_class']}, not a {model_cls.__name__}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in state["model_config"].items()}
    model = model_cls(config_cls(**fields))
    weights = state["ema"]["weights"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(weights)
    return model.eval()


# ----------------------------------------------------------------------------- the loop

def _make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'radam', got {cfg.optimizer!r}")


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based): linear warm-up, then constant or
    cosine decay to 0 at `total_steps` (Loshchilov & Hutter, 2017, without restarts)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warm
    if cfg.schedule == "cosine":
        progress = min(1.0, max(0, step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be 'constant' or 'cosine', got {cfg.schedule!r}")


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, {}


def run_dir(profile_name: str) -> Path:
    """Where a profile's checkpoints go: `$CVAE_RUNS_DIR/<profile>` or `~/.cache/cvae_lib/runs/<profile>`.

    Each profile has its own folder, so a smoke run never overwrites a cpu-profile model.
    """
    from .data import cache_dir

    base = os.environ.get("CVAE_RUNS_DIR")
    return (Path(base) if base else cache_dir() / "runs") / profile_name


@torch.no_grad()
def infer(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 500,
          device: torch.device | str | None = None) -> torch.Tensor:
    """`fn` applied to `x` in batches on `device` under no_grad; results concatenated on the CPU.

    x: (N, ...) on any device. Use it to produce outputs (reconstructions, samples, features);
    reduce them to numbers with cvae_lib.metrics afterwards.
    """
    device = torch.device(device) if device is not None else pick_device()
    return torch.cat([fn(xb.to(device)).float().cpu() for xb in x.split(batch_size)])


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, data: ImageSet | TensorSet, batch_size: int = 256,
             amp: str = "auto", seed: int = 0) -> dict[str, float]:
    """Mean loss (and logged terms) over `data`, weighted by batch size; restores train/eval mode.

    The global RNG is seeded with `seed` for the duration and then restored, so stochastic
    losses (a VAE's sampled z, a diffusion model's random t) give the same number every call.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    totals: dict[str, float] = {}
    n = 0
    try:
        for x, y in data.to(device).batches(batch_size, shuffle=False):
            with autocast(device, amp):
                loss, terms = _split_loss(loss_fn(model, x, y))
            b = len(x)
            for k, v in {"loss": loss, **terms}.items():
                totals[k] = totals.get(k, 0.0) + float(v) * b
            n += b
    finally:
        torch.set_rng_state(rng)
        model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


def fit(model: nn.Module, loss_fn: LossFn, data: ImageSet | TensorSet, cfg: TrainConfig | None = None, *,
        val: ImageSet | TensorSet | None = None, checkpoint: str | os.PathLike | None = None,
        ema: EMA | None = None, device: torch.device | str | None = None,
        on_epoch: Callable[[History], bool | None] | None = None) -> History:
    """Train `model` on `data` for `cfg.epochs` epochs; return the per-epoch History.

    val: a validation set, evaluated after every epoch (needed for `cfg.early_stopping`, which
    restores the best weights when it stops). checkpoint: a file written after every epoch; if
    it exists, training resumes from it (a finished run returns at once). ema: an EMA of the
    weights, updated after each step and saved with the checkpoint. on_epoch: called with the
    History after each epoch is checkpointed (outside the timed `seconds`); returning True stops
    training there, and calling `fit` again with the checkpoint resumes (benchmarks use this to
    measure quality against wall-clock time).
    """
    cfg = cfg or TrainConfig()
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    if ema is not None:
        ema.model.to(device)
    channels_last = (cfg.channels_last == "auto" and device.type in ("cuda", "cpu")) or cfg.channels_last is True
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model.parameters(), cfg, device)
    history, best = History(), {"loss": math.inf, "weights": None}
    path = Path(checkpoint) if checkpoint is not None else None

    # 1. Resume from the checkpoint, if there is one.
    start = 0
    if path is not None and path.exists():
        state = load_checkpoint(path)
        _check_matches(state, model, path)
        changed = {k for k, v in _normalise(asdict(cfg)).items()
                   if _normalise(state["train_config"]).get(k) != v} - _RESUMABLE_CHANGES
        if changed:
            raise CheckpointError(f"{path} was trained with other settings ({', '.join(sorted(changed))}); "
                                  f"resuming would not reproduce the run. Use a new checkpoint path "
                                  f"or delete the file.")
        unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        h = state["history"]
        history = History(h["rows"], h["stopped_early"], h["best_epoch"])
        best = {"loss": state["best"]["loss"], "weights": state["best"]["weights"]}
        start = state["epoch"]
        if history.stopped_early or start >= cfg.epochs:
            model.eval()
            return history
    else:
        torch.manual_seed(cfg.seed)

    # 2. Train epoch by epoch; each finished epoch is checkpointed before the next begins.
    from tqdm.auto import tqdm

    step_model = maybe_compile(model, cfg.compile)
    train_set = data.to(device)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    if cfg.max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    epochs = tqdm(range(start, cfg.epochs), desc="epochs", initial=start, total=cfg.epochs,
                  disable=not cfg.progress)
    for epoch in epochs:
        t0 = time.perf_counter()
        model.train()
        sums: dict[str, torch.Tensor] = {}
        n_seen = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}", leave=False,
                   disable=not cfg.progress)
        batches = train_set.batches(cfg.batch_size, seed=cfg.seed, epoch=epoch, hflip=cfg.hflip,
                                        translate=cfg.translate)
        for step, (x, y) in enumerate(batches):
            if step >= steps_per_epoch:
                break
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            global_step = epoch * steps_per_epoch + step
            if cfg.warmup_steps or cfg.schedule != "constant":
                lr = learning_rate(cfg, global_step, cfg.epochs * steps_per_epoch)
                for group in opt.param_groups:
                    group["lr"] = lr
            with autocast(device, cfg.amp):
                loss, terms = _split_loss(loss_fn(step_model, x, y))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if ema is not None:
                ema.update(model)
            for k, v in {"loss": loss, **terms}.items():  # accumulate on the device: no sync
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
            n_seen += len(x)
            if (step + 1) % cfg.log_every == 0 or step + 1 == steps_per_epoch:
                running = float(sums["loss"]) / n_seen  # one host sync every log_every steps
                _check_finite(running, epoch, step, cfg, path)
                bar.set_postfix(loss=f"{running:.4g}")
                bar.update(step + 1 - bar.n)
        bar.close()

        # 3. Measure, decide on early stopping, checkpoint.
        row = {"epoch": epoch + 1, "train_loss": float(sums["loss"]) / n_seen, "steps": steps_per_epoch}
        _check_finite(row["train_loss"], epoch, steps_per_epoch, cfg, path)
        row.update({f"train_{k}": float(v) / n_seen for k, v in sums.items() if k != "loss"})
        if val is not None:
            scores = evaluate(model, loss_fn, val, max(cfg.batch_size, 256), cfg.amp, cfg.seed)
            row["val_loss"] = scores.pop("loss")
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["seconds"] = time.perf_counter() - t0
        history.rows.append(row)
        epochs.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "val_loss") if k in row})

        if val is not None and cfg.early_stopping is not None:
            if row["val_loss"] < best["loss"]:
                best = {"loss": row["val_loss"],
                        "weights": {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}}
                history.best_epoch = epoch + 1
            elif epoch + 1 - history.best_epoch >= cfg.early_stopping:
                history.stopped_early = True
                unwrap(model).load_state_dict(best["weights"])
        if path is not None:
            save_checkpoint(path, _state(model, opt, ema, cfg, epoch + 1, history, best))
        if history.stopped_early:
            epochs.write(f"early stopping after epoch {epoch + 1}: validation loss has not improved "
                         f"for {cfg.early_stopping} epochs; restored the weights of epoch {history.best_epoch}")
            break
        if on_epoch is not None and on_epoch(history):
            break
    epochs.close()
    model.eval()
    return history


def _check_finite(value: float, epoch: int, step: int, cfg: TrainConfig, path: Path | None) -> None:
    if math.isfinite(value):
        return
    kept = f"the checkpoint {path} keeps the last good epoch" if path and path.exists() else "nothing was saved"
    raise FloatingPointError(
        f"the training loss became {value} in epoch {epoch + 1} (around step {step + 1}); {kept}. "
        f"Try a lower learning rate (now {cfg.lr}), gradient clipping (grad_clip=1.0), a KL warm-up "
        f"for VAEs, or check that inputs are finite and in [0, 1].")


def _state(model, opt, ema, cfg, epoch, history, best) -> dict:
    return {
        "format": _FORMAT,
        "model_class": type(unwrap(model)).__name__,
        "model_config": _config_of(model),
        "train_config": asdict(cfg),
        "model": unwrap(model).state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": opt.state_dict(),
        "epoch": epoch,
        "rng": {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None},
        "history": history.to_dict(),
        "best": best,
        "done": history.stopped_early or epoch >= cfg.epochs,
    }


def load_or_train(model: nn.Module, loss_fn: LossFn, data: ImageSet | TensorSet, cfg: TrainConfig,
                  checkpoint: str | os.PathLike, *, val: ImageSet | TensorSet | None = None,
                  ema: EMA | None = None, device: torch.device | str | None = None) -> History:
    """Load the finished run at `checkpoint` into `model` if there is one, else train (or resume).

    The notebooks call this, so re-running a cell (or a whole notebook) does not retrain. A
    checkpoint from another model config raises CheckpointError instead of loading silently.
    """
    path = Path(checkpoint)
    if path.exists():
        state = load_checkpoint(path)
        _check_matches(state, model, path)
        h = state["history"]
        if h["stopped_early"] or state["epoch"] >= cfg.epochs:  # finished: load, do not train
            device = torch.device(device) if device is not None else pick_device()
            unwrap(model).load_state_dict(state["model"])
            model.to(device).eval()
            if ema is not None and state.get("ema") is not None:
                ema.load_state_dict(state["ema"])
                ema.model.to(device)
            return History(h["rows"], h["stopped_early"], h["best_epoch"])
    return fit(model, loss_fn, data, cfg, val=val, checkpoint=path, ema=ema, device=device)
