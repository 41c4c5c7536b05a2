"""One model-agnostic training loop with checkpoints, exact resume, EMA and early stopping.

    history = fit(model, loss_fn, train_set, TrainConfig(epochs=5), val=val_set,
                  checkpoint="runs/ae.pt")

`loss_fn(model, x, y)` returns a scalar loss, or `(loss, {"name": scalar, ...})` to log more
terms; x is a float batch (B, 3, 32, 32) in [0, 1] and y its (B,) labels. The loop never
names a model: the same `fit` trains the autoencoder, the VAEs and the diffusion U-Net.

Nothing is lost: after every epoch a checkpoint (model config, uncompiled weights, optimizer,
EMA, RNG state, history) is written atomically, and calling `fit` again with the same
checkpoint path continues exactly where it stopped, giving the same weights as an
uninterrupted run. Checkpoints are plain tensors and numbers, loaded with weights_only=True;
their layout and the checks that keep one run's file from being read as another's are in
cvae_lib/checkpoint.py.

Under `torchrun --nproc_per_node N` (after `runtime.init_distributed()`), the same `fit` trains
with DistributedDataParallel: every rank builds the same global batch of `batch_size` items
and takes its 1/N slice, the logged losses are all-reduced, progress bars come from rank 0,
only rank 0 writes the checkpoint, and the checkpoint keeps every rank's RNG state, so a
resumed N-process run matches an uninterrupted one.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import (
    CheckpointError,
    check_resumable,
    load_checkpoint,
    load_model,
    restore,
    rng_state,
    save_checkpoint,
    training_state,
)
from .data import ImageSet, TensorSet, fingerprint
from .files import WriteError
from .runtime import (
    autocast,
    distributed,
    eval_mode,
    grad_scaler,
    maybe_compile,
    optimizer_flags,
    pick_device,
    unwrap,
    use_channels_last,
)
from .settings import runs_dir as run_dir

__all__ = ["TrainConfig", "History", "EMA", "CheckpointError", "fit", "evaluate", "infer", "run_dir",
           "load_or_train", "load_checkpoint", "load_model", "save_checkpoint", "unwrap"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, dict]"]


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
    amp: str = "auto"                 # "auto" | "bf16" | "fp16" | "off" (see runtime.amp_dtype)
    compile: bool | str = False       # torch.compile: True, False or "auto" (CUDA only)
    channels_last: bool | str = "auto"  # NHWC memory format; "auto": on CUDA and CPU (1.2-1.5x here)
    log_every: int = 20               # steps between progress-bar updates (host syncs)
    progress: bool = True             # tqdm progress bars

    def steps_per_epoch(self, n_items: int) -> int:
        """Optimizer steps of one epoch over n_items training items (the last batch may be
        smaller), capped by max_steps: the one formula fit and every caller use."""
        steps = math.ceil(n_items / self.batch_size)
        return min(steps, self.max_steps) if self.max_steps is not None else steps

    def total_steps(self, n_items: int) -> int:
        """Optimizer steps of the whole run (all epochs), e.g. to size a KL warm-up."""
        return self.epochs * self.steps_per_epoch(n_items)


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


# ----------------------------------------------------------------------------- the loop

def _make_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = optimizer_flags(device, cfg.optimizer)
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
    device = next(model.parameters()).device
    rng = torch.get_rng_state()
    torch.manual_seed(seed)
    totals: dict[str, float] = {}
    n = 0
    try:
        with eval_mode(model):
            for x, y in data.to(device).batches(batch_size, shuffle=False):
                with autocast(device, amp):
                    loss, terms = _split_loss(loss_fn(model, x, y))
                b = len(x)
                for k, v in {"loss": loss, **terms}.items():
                    totals[k] = totals.get(k, 0.0) + float(v) * b
                n += b
    finally:
        torch.set_rng_state(rng)
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

    A loss function with a `step` parameter gets the 0-based optimizer step (the VAEs' KL
    warm-up reads it); evaluation calls it without one.
    """
    cfg = cfg or TrainConfig()
    for name, d in (("data", data), ("val", val)):
        if d is not None and len(d) == 0:
            raise ValueError(f"fit's {name} set holds no images: check the split or the subset that built it")
    run = _Run.start(model, loss_fn, data, cfg, ema, device, checkpoint)
    if run.finished:
        model.eval()
        return run.history
    if run.path is not None:
        _check_writable(run.path)
    from tqdm.auto import tqdm

    epochs = tqdm(range(run.epoch, cfg.epochs), desc="epochs", initial=run.epoch, total=cfg.epochs,
                  disable=not cfg.progress or run.rank > 0)
    for epoch in epochs:
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, **run.train_epoch(epoch)}
        if val is not None:
            scores = evaluate(model, loss_fn, val, max(cfg.batch_size, 256), cfg.amp, cfg.seed)
            row["val_loss"] = scores.pop("loss")
            row.update({f"val_{k}": v for k, v in scores.items()})
        row["seconds"] = time.perf_counter() - t0
        run.history.rows.append(row)
        epochs.set_postfix({k: f"{row[k]:.4g}" for k in ("train_loss", "val_loss") if k in row})
        run.end_epoch(epoch, row, epochs.write)
        if run.history.stopped_early or (on_epoch is not None and on_epoch(run.history)):
            break
    epochs.close()
    model.eval()
    return run.history


def _check_writable(path: Path) -> None:
    """Fail before training, not after the first epoch, when the checkpoint cannot be written."""
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise WriteError(path, e) from e


@dataclass
class _Run:
    """One call of `fit`: the model on its device, its optimizer, the resumed state, and the
    steps of an epoch. Each method is one named step of the loop."""
    model: nn.Module
    step_model: nn.Module            # what the loss calls: the model, or its compiled wrapper
    loss_fn: LossFn
    train_set: ImageSet | TensorSet
    cfg: TrainConfig
    ema: EMA | None
    device: torch.device
    path: Path | None
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler     # on only for fp16 autocast (see runtime.grad_scaler)
    channels_last: bool
    steps_per_epoch: int
    pass_step: bool                  # loss_fn takes the optimizer step as `step=`
    data: str = ""                   # fingerprint of the training set, saved with the checkpoint
    rank: int = 0                    # this process in a torchrun group (0 alone)
    world: int = 1                   # processes in the group
    history: History = field(default_factory=History)
    best: dict = field(default_factory=lambda: {"loss": math.inf, "weights": None})
    epoch: int = 0                   # epochs already done (resumed from the checkpoint)
    finished: bool = False

    @classmethod
    def start(cls, model, loss_fn, data, cfg, ema, device, checkpoint) -> _Run:
        """Place the model (device, memory format), build the optimizer, resume if a checkpoint exists."""
        device = torch.device(device) if device is not None else pick_device()
        model.to(device)
        if ema is not None:
            ema.model.to(device)
        channels_last = use_channels_last(device, cfg.channels_last)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        train_set = data.to(device)
        run = cls(model=model, step_model=model, loss_fn=loss_fn, train_set=train_set, cfg=cfg, ema=ema,
                  device=device, path=Path(checkpoint) if checkpoint is not None else None,
                  opt=_make_optimizer(model.parameters(), cfg, device), scaler=grad_scaler(device, cfg.amp),
                  channels_last=channels_last,
                  steps_per_epoch=cfg.steps_per_epoch(len(train_set)),
                  pass_step=_takes_step(loss_fn), data=fingerprint(data))
        run.rank, run.world = distributed()
        if run.path is not None and run.path.exists():
            run.resume(load_checkpoint(run.path))
        else:
            torch.manual_seed(cfg.seed + run.rank)   # each rank draws its own noise (t, eps, z)
        if not run.finished:
            wrapped = model
            if run.world > 1:
                from torch.nn.parallel import DistributedDataParallel

                wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
            run.step_model = maybe_compile(wrapped, cfg.compile)
        return run

    def resume(self, state: dict) -> None:
        """Restore weights, optimizer, EMA, RNG and history from a checkpoint of the same run."""
        check_resumable(state, self.model, self.cfg, self.path, self.data)
        ranks = state["rng"].get("ranks") or [state["rng"]]
        if len(ranks) != self.world:
            raise CheckpointError(f"{self.path} was written by a run of {len(ranks)} process(es), and this "
                                  f"one has {self.world}: resume with the same torchrun --nproc_per_node, "
                                  f"or use a new checkpoint path.")
        restore({**state, "rng": ranks[self.rank]}, self.model, self.ema, self.device, self.opt)
        if state.get("scaler"):                      # fp16 runs: the loss scale it had reached
            self.scaler.load_state_dict(state["scaler"])
        h = state["history"]
        self.history = History(h["rows"], h["stopped_early"], h["best_epoch"])
        self.best = {"loss": state["best"]["loss"], "weights": state["best"]["weights"]}
        self.epoch = state["epoch"]
        self.finished = self.history.stopped_early or self.epoch >= self.cfg.epochs

    def train_epoch(self, epoch: int) -> dict:
        """One pass over the training batches: {"train_loss", "train_<term>", "steps"}."""
        from tqdm.auto import tqdm

        cfg, n = self.cfg, self.steps_per_epoch
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        n_seen = 0
        bar = tqdm(total=n, desc=f"epoch {epoch + 1}", leave=False, disable=not cfg.progress or self.rank > 0)
        batches = self.train_set.batches(cfg.batch_size, seed=cfg.seed, epoch=epoch, hflip=cfg.hflip,
                                         translate=cfg.translate)
        for i, (x, y) in enumerate(batches):
            if i >= n:
                break
            loss, terms = self.train_step(x, y, epoch * n + i)
            for k, v in {"loss": loss, **terms}.items():  # accumulate on the device: no sync
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(x)
            n_seen += len(x)
            if (i + 1) % cfg.log_every == 0 or i + 1 == n:
                running = self.global_means(sums, n_seen)["loss"]  # one host sync every log_every steps
                _check_finite(running, epoch, i, cfg, self.path)
                bar.set_postfix(loss=f"{running:.4g}")
                bar.update(i + 1 - bar.n)
        bar.close()
        means = self.global_means(sums, n_seen)
        row = {"train_loss": means.pop("loss"), "steps": n}
        _check_finite(row["train_loss"], epoch, n, cfg, self.path)
        row.update({f"train_{k}": v for k, v in means.items()})
        return row

    def global_means(self, sums: dict[str, torch.Tensor], n_seen: int) -> dict[str, float]:
        """Sums of loss terms over this rank's items -> means over every rank's items."""
        if self.world == 1:
            return {k: float(v) / n_seen for k, v in sums.items()}
        import torch.distributed as dist

        t = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=self.device) for v in sums.values()]
                        + [torch.tensor(float(n_seen), device=self.device)])
        dist.all_reduce(t)
        return {k: float(v) / float(t[-1]) for k, v in zip(sums, t[:-1])}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """One optimizer step at global step `step` (0-based): learning rate, loss, backward,
        clipping, update, EMA. Returns the loss and its logged terms (on the device)."""
        cfg = self.cfg
        if self.world > 1:                            # this rank's slice of the global batch
            x, y = x.tensor_split(self.world)[self.rank], y.tensor_split(self.world)[self.rank]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if cfg.warmup_steps or cfg.schedule != "constant":
            lr = learning_rate(cfg, step, cfg.epochs * self.steps_per_epoch)
            for group in self.opt.param_groups:
                group["lr"] = lr
        with autocast(self.device, cfg.amp):
            out = self.loss_fn(self.step_model, x, y, step=step) if self.pass_step else \
                self.loss_fn(self.step_model, x, y)
            loss, terms = _split_loss(out)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()           # fp16: a scaled loss; otherwise loss.backward()
        if cfg.grad_clip is not None:
            self.scaler.unscale_(self.opt)           # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.opt)                   # skips the step if fp16 gradients overflowed
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss, terms

    def end_epoch(self, epoch: int, row: dict, say: Callable[[str], None]) -> None:
        """Early stopping (keep the best weights; restore them on stopping), then the checkpoint."""
        cfg, h = self.cfg, self.history
        if "val_loss" in row and cfg.early_stopping is not None:
            if row["val_loss"] < self.best["loss"]:
                self.best = {"loss": row["val_loss"], "weights": {k: v.detach().cpu().clone()
                                                                  for k, v in unwrap(self.model).state_dict().items()}}
                h.best_epoch = epoch + 1
            elif epoch + 1 - h.best_epoch >= cfg.early_stopping:
                h.stopped_early = True
                unwrap(self.model).load_state_dict(self.best["weights"])
        if self.path is not None:
            rng = rng_state()
            if self.world > 1:                        # every rank's RNG, gathered for rank 0 to save
                import torch.distributed as dist

                ranks = [None] * self.world
                dist.all_gather_object(ranks, rng)
                rng = {**rng, "ranks": ranks}
            if self.rank == 0:
                state = training_state(self.model, self.opt, self.ema, cfg, epoch + 1, h, self.best, rng,
                                       self.data, self.scaler)
                save_checkpoint(self.path, state)
        if h.stopped_early and self.rank == 0:
            say(f"early stopping after epoch {epoch + 1}: validation loss has not improved for "
                f"{cfg.early_stopping} epochs; restored the weights of epoch {h.best_epoch}")


def _takes_step(loss_fn: Callable) -> bool:
    """Whether loss_fn has a `step` parameter (also through functools.partial)."""
    try:
        return "step" in inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):   # a builtin or C callable: no signature to read
        return False


def _check_finite(value: float, epoch: int, step: int, cfg: TrainConfig, path: Path | None) -> None:
    if math.isfinite(value):
        return
    kept = f"the checkpoint {path} keeps the last good epoch" if path and path.exists() else "nothing was saved"
    raise FloatingPointError(
        f"the training loss became {value} in epoch {epoch + 1} (around step {step + 1}); {kept}. "
        f"Try a lower learning rate (now {cfg.lr}), gradient clipping (grad_clip=1.0), a KL warm-up "
        f"for VAEs, or check that inputs are finite and in [0, 1].")


def load_or_train(model: nn.Module, loss_fn: LossFn, data: ImageSet | TensorSet, cfg: TrainConfig,
                  checkpoint: str | os.PathLike, *, val: ImageSet | TensorSet | None = None,
                  ema: EMA | None = None, device: torch.device | str | None = None) -> History:
    """Load the finished run at `checkpoint` into `model` if there is one, else train (or resume).

    The notebooks call this, so re-running a cell (or a whole notebook) does not retrain. A
    checkpoint of another model config, or of a run with other training settings (learning
    rate, batch size, ...; more epochs continue the run), raises CheckpointError instead of
    loading silently.
    """
    path = Path(checkpoint)
    if path.exists():
        state = load_checkpoint(path)
        check_resumable(state, model, cfg, path, fingerprint(data))
        h = state["history"]
        if h["stopped_early"] or state["epoch"] >= cfg.epochs:  # finished: load, do not train
            device = torch.device(device) if device is not None else pick_device()
            restore(state, model.to(device), ema, device)
            model.eval()
            return History(h["rows"], h["stopped_early"], h["best_epoch"])
    return fit(model, loss_fn, data, cfg, val=val, checkpoint=path, ema=ema, device=device)
