"""Checks at the models' entry points, so a wrong input gets a sentence instead of a deep torch error.

Shapes, dtypes and sizes are checked on every call: that reads tensor metadata only, never the
values, so it costs nothing in training and keeps torch.compile's graphs free of syncs. Values
(pixels in 0..255 instead of [0, 1], class ids out of range) are read only in eval mode on the
CPU, where a student calls a model by hand and the check is cheap; `fit` trains on data sets
whose pixels and labels it built itself.
"""
from __future__ import annotations

import torch

__all__ = ["check_image_batch", "check_labels"]


def _values_checked(model: torch.nn.Module, t: torch.Tensor) -> bool:
    return not model.training and t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_image_batch(model: torch.nn.Module, x, channels: int = 3, size: int = 32, unit_range: bool = True,
                      what: str = "images") -> None:
    """x must be a float tensor (B, channels, size, size); with `unit_range`, in [0, 1]."""
    who = type(model).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} takes a tensor of {what} (B, {channels}, {size}, {size}), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != channels or tuple(x.shape[-2:]) != (size, size):
        hint = " (one image? add a batch axis: x[None])" if x.dim() == 3 else (
            " (channels last? use x.permute(0, 3, 1, 2))" if x.dim() == 4 and x.shape[-1] == channels else "")
        raise ValueError(f"{who} takes {what} of shape (B, {channels}, {size}, {size}), got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{who} takes float {what}, got {x.dtype}"
                        + (" (uint8 pixels: x.float() / 255)" if x.dtype == torch.uint8 else ""))
    if unit_range and _values_checked(model, x) and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -0.01 or hi > 1.01:
            hint = " (pixels in 0..255? divide by 255)" if hi > 2 else ""
            raise ValueError(f"{who} takes {what} in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}")


def check_labels(model: torch.nn.Module, y, batch: int, num_classes: int, null_label: bool = False) -> None:
    """y must be integer class ids (batch,) in 0..num_classes-1 (with `null_label`, num_classes too)."""
    who = type(model).__name__
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"{who} takes integer class ids (torch.long), got {got}")
    if tuple(y.shape) != (batch,):
        raise ValueError(f"{who} takes one class id per image, shape ({batch},), got {tuple(y.shape)}")
    top = num_classes if null_label else num_classes - 1
    if _values_checked(model, y) and y.numel() and (int(y.min()) < 0 or int(y.max()) > top):
        extra = f" ({num_classes} is the null class of guidance)" if null_label else ""
        raise ValueError(f"{who} knows class ids 0..{top}{extra}, got ids in [{int(y.min())}, {int(y.max())}]")
