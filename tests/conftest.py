"""Fixtures: a small generated ImageFolder and random image sets, so data tests need neither
CIFAR-10 nor the network; free TCP ports; and the `slow` lane (see pytest_collection_modifyitems)."""
from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae_lib.data import CLASSES, ImageSet


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


def make_image_set(n: int = 40, seed: int = 0, *, low: int = 0, high: int = 256) -> ImageSet:
    """n random uint8 images (n, 3, 32, 32) in [low, high), drawn from a generator seeded with
    `seed` (the global RNG is left alone), labelled 0, 1, ..., 9, 0, 1, ...; n = 10k gives k per class."""
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(low, high, (n, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(n) % 10)


@pytest.fixture(scope="session")
def image_set() -> Callable[..., ImageSet]:
    """The builder `make_image_set(n=40, seed=0, *, low=0, high=256)`: the same seed, the same set."""
    return make_image_set


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Call it for a fresh free port each time a server or a torchrun rendezvous starts."""
    return _free_port


def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="run the tests that drive JupyterLab in Chromium (tests/test_browser.py); "
                          "`make test-browser` sets it, and CI runs that")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in Chromium; runs only with --browser")


# Files whose every test is an integration test, marked `slow` here by file name (so the lanes
# live in one place and those files need no edit); a single slow test in an otherwise quick file
# carries @pytest.mark.slow itself. `make test-fast` deselects both (-m "not slow").
SLOW_FILES = {
    "test_browser.py": "JupyterLab in Chromium",
    "test_distributed.py": "torchrun launches",
    "test_exercises.py": "every solution and stub run through its checks",
    "test_fid_real_vs_real.py": "a benchmark script end to end",
    "test_grade*.py": "grading in bubblewrap",
    "test_sandbox_env.py": "grading in bubblewrap",
    "test_nbgrader.py": "nbgrader's generate and autograde",
    "test_shipping_scripts.py": "training scripts end to end",
    "test_time_to_quality.py": "time-to-quality runs",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.parent.name == "tests" and any(item.path.match(name) for name in SLOW_FILES):
            item.add_marker(pytest.mark.slow)
    if config.getoption("--browser"):
        return
    skip = pytest.mark.skip(reason="JupyterLab in Chromium: run with `pytest --browser` (`make test-browser`)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)
