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


def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="run the tests that drive JupyterLab in Chromium (tests/test_browser.py); "
                          "`make test-browser` sets it, and CI runs that")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in Chromium; runs only with --browser")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--browser"):
        return
    skip = pytest.mark.skip(reason="JupyterLab in Chromium: run with `pytest --browser` (`make test-browser`)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)
