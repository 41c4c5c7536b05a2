"""The DDPM U-Net of Ho et al. 2020 (Appendix B), an eps-predictor `model(xt, t, y) -> eps_hat`.

    model = UNet(UNetConfig())                          # small: trains in minutes on a CPU
    model = UNet(UNetConfig.paper())                    # the paper's CIFAR-10 net, 35.7M params
    eps_hat = model(xt, t, y)                           # xt (B, 3, 32, 32) in [-1, 1]

Structure (PixelCNN++-style Wide-ResNet U-Net): a 3x3 stem; per resolution `num_res_blocks`
residual blocks (GroupNorm -> SiLU -> conv, the time embedding added in between), self-attention
at the resolutions in `attn_resolutions`, then a stride-2 conv down; a middle of res-attn-res;
the mirror path up with skip connections concatenated (one extra block per level) and
nearest-neighbour upsampling + conv; GroupNorm -> SiLU -> 3x3 conv out. The timestep enters as a
sinusoidal embedding (Vaswani et al. 2017) through a 2-layer MLP; an optional class embedding
(with one extra row for the learned "null" class of classifier-free guidance) is added to it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .inputs import check_image_batch, check_labels

__all__ = ["UNetConfig", "UNet", "timestep_embedding"]


@dataclass
class UNetConfig:
    width: int = 32                           # channels of the first level (Ho et al.'s "ch")
    width_mult: tuple[int, ...] = (1, 2, 2)   # channels per level = width * mult; one level per resolution
    num_res_blocks: int = 1                   # residual blocks per level (down path; up uses one more)
    attn_resolutions: tuple[int, ...] = (16,) # resolutions with self-attention
    dropout: float = 0.0                      # dropout inside residual blocks (paper: 0.1)
    groups: int = 8                           # GroupNorm groups (paper: 32)
    num_classes: int | None = None            # class-conditional if set; label num_classes = null
    in_channels: int = 3
    resolution: int = 32                      # input side in pixels

    _renamed: ClassVar[dict] = {"ch": "width", "ch_mult": "width_mult"}   # files written before the rename

    @classmethod
    def course(cls, width: int = 32, num_classes: int | None = 10) -> UNetConfig:
        """Chapter 04's pixel U-Net (tools/train_ddpm.py ships it; the benchmarks train it):
        levels at 32, 16 and 8 (width, 2 width, 2 width), one block each, attention at 16x16,
        class-conditional with a null row for guidance: 0.28M parameters at width 16."""
        return cls(width=width, width_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(16,),
                   groups=min(8, width // 2), num_classes=num_classes)

    @classmethod
    def paper(cls, num_classes: int | None = None) -> UNetConfig:
        """Ho et al. 2020's CIFAR-10 model: width 128, mults (1, 2, 2, 2), 2 blocks, attention at
        16x16, dropout 0.1, GroupNorm(32): 35.7M parameters unconditional."""
        return cls(width=128, width_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                   dropout=0.1, groups=32, num_classes=num_classes)

    @classmethod
    def latent(cls, in_channels: int = 8, resolution: int = 8, num_classes: int | None = 10,
               width: int = 64) -> UNetConfig:
        """The prior of chapter 06's latent diffusion: an (in_channels, 8, 8) latent grid, three
        levels at 8x8, 4x4 and 2x2 (width, 2 width, 2 width), two blocks each, attention at 4x4: 6.5M
        parameters at width 64, trained at the same images/s on a CPU as chapter 04's 0.28M
        pixel U-Net, because each of its convolutions sees 16x fewer positions."""
        return cls(width=width, width_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(resolution // 2,),
                   groups=8, num_classes=num_classes, in_channels=in_channels, resolution=resolution)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2 - 1))."""
    half = dim // 2
    w = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))  # (dim/2,)
    args = t.float()[:, None] * w[None]                                  # (B, dim/2)
    return torch.cat([args.sin(), args.cos()], dim=1)                    # (B, dim)


class ResBlock(nn.Module):
    """(B, c_in, H, W), temb (B, E) -> (B, c_out, H, W): two GroupNorm-SiLU-conv layers, the
    projected time embedding added after the first, and a 1x1 shortcut when widths differ."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(temb))[:, :, None, None]   # (B, C) -> (B, C, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual: (B, C, H, W) -> same."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # 3 x (B, C, HW)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2))                # (B, HW, C)
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))           # (B, C, H, W)


class Level(nn.Module):
    """The blocks of one resolution: residual blocks, each followed by attention if enabled."""

    def __init__(self, widths: list[tuple[int, int]], emb_dim: int, attn: bool, groups: int,
                 dropout: float):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(i, o, emb_dim, groups, dropout) for i, o in widths)
        self.attn = nn.ModuleList(Attention(o, groups) if attn else nn.Identity() for _, o in widths)


class UNet(nn.Module):
    """eps_theta(xt, t, y): xt (B, C, H, W) in [-1, 1], t (B,) timesteps (int or float),
    y (B,) class ids in 0..num_classes (num_classes = the null class) or None -> (B, C, H, W)."""

    def __init__(self, cfg: UNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or UNetConfig()
        ch, emb_dim, g, p = cfg.width, 4 * cfg.width, cfg.groups, cfg.dropout
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.stem = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)

        # Down path: remember the width of every feature map kept for a skip connection.
        skips, c, res = [ch], ch, cfg.resolution
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in enumerate(cfg.width_mult):
            widths = []
            for _ in range(cfg.num_res_blocks):
                widths.append((c, ch * mult))
                c = ch * mult
                skips.append(c)
            self.down.append(Level(widths, emb_dim, res in cfg.attn_resolutions, g, p))
            last = i == len(cfg.width_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)
                res //= 2
        self.mid1 = ResBlock(c, c, emb_dim, g, p)
        self.mid_attn = Attention(c, g)
        self.mid2 = ResBlock(c, c, emb_dim, g, p)

        # Up path: one more block per level, each eating one skip connection.
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, mult in reversed(list(enumerate(cfg.width_mult))):
            widths = []
            for _ in range(cfg.num_res_blocks + 1):
                widths.append((c + skips.pop(), ch * mult))
                c = ch * mult
            self.up.append(Level(widths, emb_dim, res in cfg.attn_resolutions, g, p))
            self.upsample.append(nn.Identity() if i == 0 else nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
            if i != 0:
                res *= 2
        self.out = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1))

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_image_batch(self, xt, self.cfg.in_channels, self.cfg.resolution, unit_range=False,
                          what="noisy inputs x_t")
        if y is not None and self.class_emb is not None:
            check_labels(self, y, len(xt), self.cfg.num_classes, null_label=True)
        temb = self.time_mlp(timestep_embedding(t, self.cfg.width))      # (B, 4ch)
        if self.class_emb is not None:
            if y is None:
                y = torch.full_like(t, self.cfg.num_classes, dtype=torch.long)  # the null class
            temb = temb + self.class_emb(y)
        h = self.stem(xt)
        hs = [h]
        for level, down in zip(self.down, self.downsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, temb))
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for level, up in zip(self.up, self.upsample):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, hs.pop()], dim=1), temb))  # (B, C + C_skip, H, W)
            h = up(h)
        return self.out(h)
