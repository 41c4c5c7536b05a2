"""Packaging: pyproject, the lock file and environment.yml agree; the library imports headless."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def test_environment_yml_is_valid_yaml_for_conda_with_a_pip_section():
    """Its content is generated from the lock and compared pin by pin in tests/test_lock.py."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "python=3.11" in env["dependencies"] and "conda-forge" in env["channels"]
    assert "torch==2.15.0+cpu" in pip and "torchvision==0.29.2+cpu" in pip


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


@pytest.mark.slow
def test_a_wheel_install_loads_a_shipped_model_without_the_repository(tmp_path):
    """Build the wheel from the package's own files, install it into a fresh virtual environment
    and load a shipped model from a folder outside the repository: the weights and checksums are
    package data. The notebooks and solutions are not (solutions must not reach students)."""
    import shutil
    import textwrap
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(ROOT / "cvae_lib", src / "cvae_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "checkpoints", src / "checkpoints", ignore=shutil.ignore_patterns("*-run.pt"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(src)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("cvae_course-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(p.name for p in (ROOT / "checkpoints").glob("*.safetensors")) + ["SHA256SUMS"]
    assert all(f"cvae_lib/checkpoints/{n}" in names for n in shipped), "the wheel lacks shipped weights"
    assert not [n for n in names if n.split("/")[0] in ("notebooks", "solutions", "exercises", "tests", "tools")]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(py), "install", "--no-deps", "--no-index", str(wheel)], check=True)
    # the fresh environment borrows this one's dependencies (torch, safetensors), not its cvae_lib
    deps = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    here = [p for p in sys.path if p.endswith("site-packages")]
    Path(deps, "borrowed-deps.pth").write_text("\n".join(here) + "\n")
    code = textwrap.dedent("""
        import cvae_lib, torch
        from cvae_lib.models.classifier import Classifier, ClassifierConfig
        from cvae_lib.weights import load_weights, shipped
        assert "venv" in cvae_lib.__file__, cvae_lib.__file__          # the installed copy
        judge = load_weights(shipped("classifier"), Classifier, ClassifierConfig)   # checksum verified
        assert judge(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        from cvae_lib.files import course_root
        try:
            course_root(need="solutions")
        except FileNotFoundError as e:
            assert "clone" in str(e)
        else:
            raise AssertionError("a wheel install found solutions/")
        print("ok")
    """)
    out = subprocess.run([str(py), "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr
