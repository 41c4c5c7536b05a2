"""The lock, offline: requirements-lock.txt serves every platform and Python docs/install.md names,
environment.yml is generated from it, and the checker catches a broken lock.

`make check-lock` (in CI, where the package index answers) also asks the index for every
platform's wheels; this file needs no network."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import check_lock  # noqa: E402
import write_environment  # noqa: E402

COMBOS = [(t, py) for t in check_lock.TARGETS for py in check_lock.PYTHONS]


@pytest.mark.parametrize("target, python", COMBOS, ids=[f"{t.name}-{py}" for t, py in COMBOS])
def test_the_lock_serves_every_platform_and_python(target, python):
    assert check_lock.check_offline(target, python) == []
    pins = check_lock.selected(check_lock.lock_lines(), target.environment(python))
    assert pins["torch"] == "2.15.0" and pins["torchvision"] == "0.29.2"
    assert any(n.startswith("nvidia-") for n in pins) == (target.sys_platform == "linux")


def test_the_install_page_names_the_pythons_and_platforms_the_lock_is_checked_for():
    page = (ROOT / "docs" / "install.md").read_text()
    assert "Python 3.11 to 3.13" in page and "Python 3.11 to 3.13" in (ROOT / "README.md").read_text()
    for name in ("Linux x86_64", "Linux aarch64", "macOS 14+ arm64", "Windows x86_64"):
        assert name in page, name


def test_environment_yml_is_generated_from_the_lock_and_matches_it():
    assert write_environment.main(["--check"]) == 0, "run python tools/write_environment.py"
    env_pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.strip()
        if line.startswith("- ") and "==" in line:
            name, version = line[2:].split("==")
            env_pins[name] = version.removesuffix("+cpu")
    linux = check_lock.TARGETS[0]
    lock = check_lock.selected(check_lock.lock_lines(), linux.environment("3.11"))
    lock = {n: v for n, v in lock.items() if not n.startswith(check_lock.CUDA_ONLY)}
    assert {n: env_pins[n] for n in lock} == lock                       # every lock pin, same version
    assert not any(n.startswith(check_lock.CUDA_ONLY) for n in env_pins)  # Binder: no CUDA stack
    for extra in write_environment.EXTRA:                               # and what make test adds
        for r in check_lock.lock_lines(extra):
            assert env_pins[r.name.lower().replace("_", "-")] == next(iter(r.specifier)).version, r


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace("torchvision==0.29.2", "torchvision==0.28.0"), "torchvision==0.28.0 does not meet"),
    (lambda t: t + "numpy==1.26.4\n", "numpy is pinned twice"),
    (lambda t: t.replace("\ntqdm==", "\ntqdm-removed=="), "tqdm is required but not pinned"),
    (lambda t: t.replace("nvidia-nccl-cu13==2.30.7 ; sys_platform == 'linux'", "nvidia-nccl-cu13==2.30.7"),
     "CUDA packages outside Linux"),
])
def test_the_checker_catches_a_broken_lock(tmp_path, monkeypatch, edit, problem):
    broken = tmp_path / "lock.txt"
    broken.write_text(edit(check_lock.LOCK.read_text()))
    monkeypatch.setattr(check_lock, "LOCK", broken)
    found = [p for t in check_lock.TARGETS for p in check_lock.check_offline(t, "3.12")]
    assert any(problem in p for p in found), found
