"""Shipped weights: trained models stored as safetensors, with their config and metrics inside.

A safetensors file holds tensors and a string-to-string metadata table, nothing executable, so
weights downloaded with the course can be loaded without trusting them. We store:

    metadata["model_class"]   e.g. "Autoencoder"
    metadata["model_config"]  JSON of asdict(cfg), so one call rebuilds the model
    metadata["metrics"]       JSON of what the run measured (e.g. {"test_psnr": 23.1, "n_test": 10000})

and list every file's SHA-256 in `checkpoints/SHA256SUMS`, which `load_weights` verifies.

    export_weights(model, "checkpoints/ae.safetensors", metrics={"test_psnr": 23.1})
    model = load_weights("checkpoints/ae.safetensors", Autoencoder, AEConfig)
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from torch import nn

from .configs import config_from_dict
from .files import atomic_write, sha256
from .runtime import unwrap

__all__ = ["export_weights", "load_weights", "read_metadata", "sha256", "shipped", "verify_shipped",
           "WeightsError", "CHECKPOINTS"]

SUMS = "SHA256SUMS"
# The weights shipped with the course: checkpoints/ of the repository, which a wheel carries as
# the package data cvae_lib/checkpoints/ (pyproject.toml maps the one to the other).
_HERE = Path(__file__).resolve().parent
CHECKPOINTS = next((p for p in (_HERE / "checkpoints", _HERE.parent / "checkpoints") if (p / "SHA256SUMS").exists()),
                   _HERE.parent / "checkpoints")


def shipped(name: str) -> Path:
    """The path of a shipped weights file, e.g. shipped("classifier") -> checkpoints/classifier.safetensors."""
    return CHECKPOINTS / (name if name.endswith(".safetensors") else f"{name}.safetensors")


def verify_shipped(folder: str | os.PathLike | None = None) -> dict[str, str]:
    """Each file listed in `folder`/SHA256SUMS (default: the shipped checkpoints) -> "ok",
    "missing" or "altered" (its SHA-256 differs from the listed one). Chapter 00's check."""
    folder = Path(folder) if folder is not None else CHECKPOINTS
    status = {}
    for name, digest in sorted(_sums(folder).items()):
        path = folder / name
        status[name] = "missing" if not path.exists() else "ok" if sha256(path) == digest else "altered"
    return status


class WeightsError(RuntimeError):
    """Shipped weights are missing, altered, or for another model; the message says what to do."""


def _sums(folder: Path) -> dict[str, str]:
    sums = folder / SUMS
    if not sums.exists():
        return {}
    out = {}
    for n, line in enumerate(sums.read_text().splitlines(), 1):
        parts = line.split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            raise WeightsError(f"{sums}, line {n}, is not '<sha256>  <file name>' ({line.strip()[:80]!r}): restore "
                               f"the file from the repository (git checkout), or fix or delete that line")
        out[parts[1].strip()] = parts[0]
    return out


def export_weights(model: nn.Module, path: str | os.PathLike, metrics: dict | None = None,
                   dtype: torch.dtype | None = None) -> str:
    """Write the model's weights (uncompiled, contiguous, CPU) and metadata; record the checksum.

    dtype: store floating-point tensors in this type (e.g. torch.float16 to halve the file);
    `load_weights` casts them back to the model's own dtype. Measure the metrics you record on
    the model with its weights already rounded, so that the file reproduces them.
    """
    from safetensors.torch import save_file

    model = unwrap(model)
    cfg = getattr(model, "cfg", None)
    if not is_dataclass(cfg):
        raise WeightsError(f"{type(model).__name__} has no config dataclass in .cfg; cannot ship it")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    meta = {"model_class": type(model).__name__, "model_config": json.dumps(asdict(cfg)),
            "metrics": json.dumps(metrics or {}), "storage": str(dtype or "as trained").removeprefix("torch.")}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    sums = _sums(path.parent)
    sums[path.name] = digest = sha256(path)
    (path.parent / SUMS).write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    return digest


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of a shipped file: model_class, model_config (dict), metrics (dict), and
    storage (the dtype its tensors were written in, e.g. "float16", or "as trained")."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {"model_class": meta.get("model_class"),
            "model_config": json.loads(meta.get("model_config", "{}")),
            "metrics": json.loads(meta.get("metrics", "{}")),
            "storage": meta.get("storage", "as trained")}


def load_weights(path: str | os.PathLike, model_cls: type[nn.Module], config_cls: type,
                 verify: bool = True) -> nn.Module:
    """Rebuild a shipped model: check its SHA-256 against SHA256SUMS, then config, then weights."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise WeightsError(f"no shipped weights at {path}; train the model instead (load_or_train).")
    if verify:
        expected = _sums(path.parent).get(path.name)
        if expected is None:
            raise WeightsError(f"{path.name} has no checksum in {path.parent / SUMS}, so it cannot be "
                               f"verified: copy the SHA256SUMS line that export_weights wrote with it, "
                               f"or pass verify=False for a file you trust.")
        if expected != sha256(path):
            raise WeightsError(f"{path} does not match its checksum in {path.parent / SUMS}: the file is "
                               f"corrupt or was replaced. Restore it from the repository (git checkout).")
    meta = read_metadata(path)
    if meta["model_class"] != model_cls.__name__:
        raise WeightsError(f"{path} holds a {meta['model_class']}, not a {model_cls.__name__}")
    model = model_cls(config_from_dict(config_cls, meta["model_config"]))
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as e:          # missing, unexpected or resized tensors
        raise WeightsError(f"{path}: its stored config does not rebuild its stored tensors ({str(e)[:300]}). "
                           f"The file was written by another version of {model_cls.__name__}, or edited: "
                           f"export it again from its training run.") from e
    return model.eval()
