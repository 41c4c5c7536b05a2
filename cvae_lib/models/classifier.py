"""A small CIFAR-10 classifier: the course's in-domain judge of generated images.

It gives (a) the class accuracy of conditional samples (does a sample drawn for "ship" look
like a ship to a model trained on real ships?) and (b) features for a Frechet distance that
needs no download. Architecture after cifar10-airbench (Jordan, 2024): conv groups with
max-pooling and BatchNorm, global max pooling, a linear head.

    model = Classifier(ClassifierConfig())
    logits = model(x)            # x (B, 3, 32, 32) in [0, 1] -> (B, 10)
    feats = model.features(x)    # (B, widths[-1]) pooled features
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import unwrap
from .inputs import check_image_batch

__all__ = ["ClassifierConfig", "Classifier", "classifier_loss"]

# Per-channel mean and std of the CIFAR-10 training images, in [0, 1].
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class ClassifierConfig:
    widths: tuple[int, ...] = (64, 128, 256)  # channels of the three conv groups (32 -> 16 -> 8 -> 4)
    stem: int = 32                            # channels of the first 3x3 conv
    num_classes: int = 10
    label_smoothing: float = 0.2              # for training only

    _renamed: ClassVar[dict] = {"n_classes": "num_classes"}   # files written before the rename


def _group(c_in: int, c_out: int) -> nn.Sequential:
    """conv -> 2x max-pool -> BN -> GELU -> conv -> BN -> GELU: (B, c_in, H, W) -> (B, c_out, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU())


class Classifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ClassifierConfig()          # a fresh default: instances never share a config
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)
        layers, c = [nn.Conv2d(3, cfg.stem, 3, padding=1, bias=False), nn.BatchNorm2d(cfg.stem), nn.GELU()], cfg.stem
        for w in cfg.widths:
            layers.append(_group(c, w))
            c = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c, cfg.num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, 32, 32) in [0, 1] -> pooled features (B, widths[-1])."""
        check_image_batch(self, x)
        h = self.body((x - self.mean) / self.std)
        return h.amax(dim=(2, 3))                     # global max pool: (B, C, h, w) -> (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))            # (B, num_classes) logits


def classifier_loss(model: Classifier, x: torch.Tensor, y: torch.Tensor):
    """Cross-entropy with label smoothing; logs the batch accuracy."""
    logits = model(x)
    smoothing = unwrap(model).cfg.label_smoothing          # also behind compile/DDP wrappers
    loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
    return loss, {"accuracy": (logits.argmax(1) == y).float().mean()}
