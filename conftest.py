"""Test-wide settings, applied before any notebook kernel starts (kernels inherit os.environ).

Notebooks run in the smoke profile, headless, with checkpoints in a fresh temporary folder so a
test never loads a model trained by an earlier run; nothing may use the network.

Under pytest-xdist (`make test`) every worker process imports this file: each has its own
checkpoint folder (so two workers never write one file), and its torch and notebook kernels use
its share of the cores, not all of them each.

The lanes: notebooks and solutions under nbval are `slow`, except FAST_NOTEBOOK, the one smoke
notebook `make test-fast` keeps (tests/conftest.py marks the slow tests).
"""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("CVAE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["CVAE_RUNS_DIR"] = tempfile.mkdtemp(prefix="cvae-runs-")
os.environ.setdefault("CVAE_DEVICE", "cpu")
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):         # set by xdist before a worker reads this file
    share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share)))

FAST_NOTEBOOK = Path(__file__).resolve().parent / "notebooks" / "01_autoencoder.ipynb"
# pytest-timeout for one notebook cell: longer than nbval's own cell timeout (pyproject.toml), which
# interrupts the kernel first; this one also covers the kernel's start in a notebook's first cell.
NOTEBOOK_CELL_TIMEOUT = 1500


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.timeout(NOTEBOOK_CELL_TIMEOUT))
            if item.path != FAST_NOTEBOOK:
                item.add_marker(pytest.mark.slow)
