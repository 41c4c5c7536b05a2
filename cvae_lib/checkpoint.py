"""The checkpoint file format: what a training run writes after every epoch, and how it is read.

    save_checkpoint(path, state)            # atomically: a temporary file, fsync, rename
    state = load_checkpoint(path)           # data only (weights_only=True): nothing in it can run
    model = load_model(path, VAE, VAEConfig, ema=True)   # config from the file, then its weights

A checkpoint is a dict of plain tensors and numbers (format `FORMAT`):

    format, model_class, model_config (asdict of the model's config), train_config (asdict of
    the TrainConfig), data (fingerprint of the training set), model (uncompiled state_dict), ema
    ({"weights", "updates"} or None), optimizer, scaler ({} unless fp16), epoch (epochs done),
    rng ({"cpu", "cuda"}, and under torchrun "ranks": one such dict per process), history
    (History.to_dict()), best ({"loss", "weights"} of early stopping), done

`cvae_lib.train` writes and resumes it; this module knows the layout and the checks that keep
a file from being read as another run (another model, config, training settings or data).
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .configs import config_dict, config_from_dict, upgrade_config
from .files import atomic_write
from .runtime import unwrap

__all__ = ["FORMAT", "RESUMABLE_CHANGES", "CheckpointError", "save_checkpoint", "load_checkpoint", "load_model",
           "check_matches", "check_resumable", "restore", "rng_state", "training_state"]

FORMAT = 1
# Train-config fields that may change between a run and its resume. All but `epochs` leave the
# result unchanged; more epochs continue the run (with schedule="cosine" the decay is re-timed).
RESUMABLE_CHANGES = {"epochs", "early_stopping", "progress", "log_every"}


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used with this model or run; the message says why and what to do."""


def _normalise(d: dict) -> dict:
    """Tuples and lists compare equal after a checkpoint round trip."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write `state` to `path` atomically: a temporary file, fsync, then rename over the target."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint as data only (`weights_only=True`: no code in it can run)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({e}); delete it to retrain.") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a cvae_lib checkpoint (format {FORMAT}); delete it "
                              f"or pass another path.")
    return state


def load_model(path: str | os.PathLike, model_cls: type[nn.Module], config_cls: type,
               ema: bool = False) -> nn.Module:
    """Rebuild a model from its checkpoint in one call: config from the file, then its weights.

    ema: load the EMA weights instead of the raw ones (if the run kept an EMA).
    """
    state = load_checkpoint(path)
    if state["model_class"] != model_cls.__name__:
        raise CheckpointError(f"{path} holds a {state['model_class']}, not a {model_cls.__name__}")
    model = model_cls(config_from_dict(config_cls, state["model_config"]))
    weights = state["ema"]["weights"] if ema and state.get("ema") is not None else state["model"]
    model.load_state_dict(weights)
    return model.eval()


def check_matches(state: dict, model: nn.Module, path: Path) -> None:
    """The checkpoint holds this model: the same class and the same config."""
    name, cfg = type(unwrap(model)).__name__, config_dict(model)
    if state["model_class"] != name:
        raise CheckpointError(f"{path} holds a {state['model_class']}, not a {name}: use another "
                              f"checkpoint path or delete the file.")
    stored = upgrade_config(type(unwrap(model).cfg), state["model_config"] or {}) if cfg is not None else {}
    if cfg is not None and _normalise(stored) != _normalise(cfg):
        diff = {k: (stored.get(k), v) for k, v in cfg.items()
                if _normalise({k: stored.get(k)}) != _normalise({k: v})}
        raise CheckpointError(f"{path} was trained with another config; differing fields "
                              f"(checkpoint, this model): {diff}. Use a new checkpoint path for "
                              f"the new config, or delete the old file to retrain.")


def check_resumable(state: dict, model: nn.Module, cfg, path: Path, data: str) -> None:
    """The checkpoint holds this model (class and config), this run's settings `cfg` (a
    TrainConfig), up to the fields that may change between a run and its resume
    (RESUMABLE_CHANGES), and was trained on this data (checkpoints from before the fingerprint
    was kept are not checked for it)."""
    check_matches(state, model, path)
    if state.get("data") and state["data"] != data:
        raise CheckpointError(f"{path} was trained on other data (another subset, split or class "
                              f"choice): reusing it would report that run as this one. Use a new "
                              f"checkpoint path for this data, or delete the file to retrain.")
    changed = {k for k, v in _normalise(asdict(cfg)).items()
               if _normalise(state["train_config"]).get(k) != v} - RESUMABLE_CHANGES
    if changed:
        raise CheckpointError(f"{path} was trained with other settings ({', '.join(sorted(changed))}); "
                              f"resuming or loading it would not reproduce this run. Use a new checkpoint "
                              f"path or delete the file.")


def restore(state: dict, model: nn.Module, ema, device: torch.device,
            opt: torch.optim.Optimizer | None = None) -> None:
    """Load a checkpoint's weights (and EMA, and with an optimizer its state and the RNG) in place.
    ema: a train.EMA or None."""
    unwrap(model).load_state_dict(state["model"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
        ema.model.to(device)
    if opt is not None:
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)


def rng_state() -> dict:
    """This process's RNG state, as a checkpoint stores it."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None}


def training_state(model, opt, ema, cfg, epoch: int, history, best: dict, rng: dict, data: str,
                   scaler=None) -> dict:
    """The checkpoint of a run after `epoch` epochs (see the module docstring for the layout).
    cfg: its TrainConfig; history: its train.History; ema: a train.EMA or None."""
    return {
        "data": data,
        "format": FORMAT,
        "model_class": type(unwrap(model)).__name__,
        "model_config": config_dict(model),
        "train_config": asdict(cfg),
        "model": unwrap(model).state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},   # {} unless fp16
        "epoch": epoch,
        "rng": rng,
        "history": history.to_dict(),
        "best": best,
        "done": history.stopped_early or epoch >= cfg.epochs,
    }
