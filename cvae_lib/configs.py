"""Model configs as dataclasses: to a dict for checkpoints and shipped files, and back.

    d = config_dict(model)                    # {"latent_dim": 128, ...} or None
    cfg = config_from_dict(VAEConfig, d)      # lists back to tuples, renamed fields upgraded

A config class may list fields that were renamed in `_renamed = {"old": "new"}` (a ClassVar),
so that files written before a rename still load; nothing else is ever guessed.
"""
from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass

from torch import nn

from .runtime import unwrap

__all__ = ["config_dict", "config_from_dict", "upgrade_config"]


def config_dict(model: nn.Module) -> dict | None:
    """The model's `.cfg` dataclass as a dict (behind compile/DDP wrappers), or None."""
    cfg = getattr(unwrap(model), "cfg", None)
    return asdict(cfg) if is_dataclass(cfg) else None


def upgrade_config(config_cls: type, d: dict) -> dict:
    """`d` with fields renamed since it was written given their current names, lists as tuples."""
    renamed = getattr(config_cls, "_renamed", {})
    return {renamed.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def config_from_dict(config_cls: type, d: dict):
    """Rebuild a config dataclass from a stored dict; unknown fields raise a TypeError that says
    which ones (a file from a newer or another model)."""
    d = upgrade_config(config_cls, d)
    unknown = set(d) - {f.name for f in fields(config_cls)}
    if unknown:
        raise TypeError(f"{config_cls.__name__} has no field(s) {sorted(unknown)}: the file was written "
                        f"for another model or a newer version of cvae_lib.")
    return config_cls(**d)
