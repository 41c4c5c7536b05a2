"""Packaging: pyproject, the lock file and environment.yml agree; the library imports headless."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch-cpu"}  # conda-forge names that differ from PyPI's


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_environment_yml_names_every_runtime_dependency():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    missing = [d for d in deps if CONDA_NAMES.get(_name(d), _name(d)) not in conda]
    assert not missing, f"environment.yml lacks {missing}"
    assert "conda-forge" in env["channels"]


def test_lock_pins_the_working_torch_pair():
    lock = (ROOT / "requirements-lock.txt").read_text()
    assert re.search(r"^torch==2\.15\.0$", lock, re.M) and re.search(r"^torchvision==0\.29\.2$", lock, re.M)
    pins = {_name(line) for line in lock.splitlines() if "==" in line}
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = deps["dependencies"] + [d for extra in deps["optional-dependencies"].values() for d in extra]
    assert not [d for d in wanted if _name(d) not in pins], "pyproject names packages the lock does not pin"


def test_core_imports_without_matplotlib_or_side_effects():
    code = ("import sys, cvae_lib.data, cvae_lib.train, cvae_lib.metrics, cvae_lib.models.ae, cvae_lib.profiles;"
            "bad = [m for m in ('matplotlib', 'ipywidgets') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_layers():
    """import-linter contracts in pyproject.toml: layers import downward only, core is headless."""
    r = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
