"""Fixtures: a small generated ImageFolder, so data tests need neither CIFAR-10 nor the network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvae_lib.data import CLASSES


def make_image_folder(root: Path, per_class: int = 3, size: int = 32, fmt: str = "png") -> Path:
    """Write root/{train,test}/<class>/NNNN.<fmt>: per_class random images per class and split."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k, c in enumerate(CLASSES):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                a[0, 0] = (k, i, 7)  # a marker pixel: class id and index survive PNG exactly
                Image.fromarray(a).save(d / f"{i:04d}.{fmt}")
    return root


@pytest.fixture
def image_folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CVAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CVAE_DATA_DIR", raising=False)
    return make_image_folder(tmp_path / "data")
