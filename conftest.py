"""Test-wide settings, applied before any notebook kernel starts (kernels inherit os.environ).

Notebooks run in the smoke profile, headless, with checkpoints in a fresh temporary folder so a
test never loads a model trained by an earlier run; nothing may use the network.
"""
import os
import tempfile

os.environ.setdefault("CVAE_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["CVAE_RUNS_DIR"] = tempfile.mkdtemp(prefix="cvae-runs-")
os.environ.setdefault("CVAE_DEVICE", "cpu")
