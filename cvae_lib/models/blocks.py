"""Layers shared by the course's image models.

`Bottleneck` is the four-convolution block of Very Deep VAEs (Child, 2021, Fig. 3):
GELU -> 1x1 -> GELU -> 3x3 -> GELU -> 3x3 -> GELU -> 1x1, with the residual connection
optional (the study used it *without*). `ConvEncoder`/`ConvDecoder` stack one block per
resolution, halving/doubling the spatial size after/before each block, as in the study:
32x32 -> 16x16 -> 8x8 -> 4x4 and back.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bottleneck", "ConvEncoder", "ConvDecoder", "stage_widths", "mlp"]


def stage_widths(width: int, n_stages: int = 3) -> tuple[int, ...]:
    """Channels per stage: the first is `width`, each next one doubles it, e.g. (32, 64, 128)."""
    return tuple(width * 2**i for i in range(n_stages))


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    """Linear -> GELU -> Linear: (B, n_in) -> (B, n_out); the VAEs' latent heads and label MLP."""
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_out))


class Bottleneck(nn.Module):
    """VDVAE bottleneck block: (B, c_in, H, W) -> (B, c_out, H, W).

    The middle convolutions run at `c_in // 4` channels (at least 8); `residual` adds the input
    back (requires c_in == c_out), which is what makes deep stacks of these blocks trainable.
    """

    def __init__(self, c_in: int, c_out: int, residual: bool = False):
        super().__init__()
        if residual and c_in != c_out:
            raise ValueError(f"a residual block needs c_in == c_out, got {c_in} -> {c_out}")
        c_mid = max(c_in // 4, 8)
        self.residual = residual
        self.c1 = nn.Conv2d(c_in, c_mid, 1)
        self.c2 = nn.Conv2d(c_mid, c_mid, 3, padding=1)
        self.c3 = nn.Conv2d(c_mid, c_mid, 3, padding=1)
        self.c4 = nn.Conv2d(c_mid, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.gelu(x))
        h = self.c2(F.gelu(h))
        h = self.c3(F.gelu(h))
        h = self.c4(F.gelu(h))
        return x + h if self.residual else h


class ConvEncoder(nn.Module):
    """Images (B, 3, 32, 32) -> features (B, widths[-1], 32 / 2**S, 32 / 2**S), S = len(widths).

    A 3x3 stem, then per stage: widen with a 1x1 conv, a Bottleneck, and 2x average pooling.
    """

    def __init__(self, widths: tuple[int, ...], residual: bool = False, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        stages, c = [], widths[0]
        for w in widths:
            stages += [nn.Conv2d(c, w, 1) if c != w else nn.Identity(),
                       Bottleneck(w, w, residual), nn.AvgPool2d(2)]
            c = w
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class ConvDecoder(nn.Module):
    """Features (B, widths[-1], h, w) -> logits (B, out_channels, h * 2**S, w * 2**S).

    Mirrors ConvEncoder: per stage, 2x nearest upsampling, a Bottleneck, and a 1x1 conv to the
    next (narrower) width; a final GELU + 3x3 conv maps to `out_channels` (unbounded logits).
    """

    def __init__(self, widths: tuple[int, ...], residual: bool = False, out_channels: int = 3):
        super().__init__()
        rev = tuple(reversed(widths))
        stages = []
        for i, w in enumerate(rev):
            nxt = rev[i + 1] if i + 1 < len(rev) else w
            stages += [nn.Upsample(scale_factor=2, mode="nearest"), Bottleneck(w, w, residual),
                       nn.Conv2d(w, nxt, 1) if nxt != w else nn.Identity()]
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(rev[-1], out_channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(F.gelu(self.stages(h)))
