"""Check requirements-lock.txt for every platform and Python the README promises.

    python tools/check_lock.py            # offline: markers, pins and the course's requirements
    python tools/check_lock.py --online   # also ask the package index for each pinned wheel

The lock is universal (`make lock`: uv pip compile --universal): one file whose environment
markers select each platform's packages. Offline, this evaluates those markers for each target
and checks that every package is pinned once, that torch and torchvision are the course's pair,
that every requirement of pyproject.toml (base and extras) is met by a pin, and that the CUDA
stack is asked for on Linux only. Online (where PyPI answers, as in CI), it runs
`uv pip install --dry-run --no-deps --only-binary :all: --python-platform ... --python-version ...`
on the lock for each target, so a missing wheel (a package with no macOS arm64 build, say) fails.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
PINS = ROOT / "requirements-pins.txt"
PYTHONS = ("3.11", "3.12", "3.13")
CUDA_ONLY = ("nvidia-", "cuda-", "triton")


@dataclass(frozen=True)
class Target:
    name: str
    sys_platform: str
    platform_system: str
    platform_machine: str
    os_name: str
    uv_platform: str                   # `uv pip --python-platform` of this target

    def environment(self, python: str) -> dict:
        env = default_environment()
        env.update(sys_platform=self.sys_platform, platform_system=self.platform_system,
                   platform_machine=self.platform_machine, os_name=self.os_name,
                   python_version=python, python_full_version=f"{python}.0",
                   implementation_name="cpython", platform_python_implementation="CPython")
        return env


TARGETS = (        # macOS 14: torch 2.15's macOS wheels need it
    Target("Linux x86_64", "linux", "Linux", "x86_64", "posix", "x86_64-manylinux_2_28"),
    Target("Linux aarch64", "linux", "Linux", "aarch64", "posix", "aarch64-manylinux_2_28"),
    Target("macOS 14+ arm64", "darwin", "Darwin", "arm64", "posix", "aarch64-apple-darwin"),
    Target("Windows x86_64", "win32", "Windows", "AMD64", "nt", "x86_64-pc-windows-msvc"),
)


def lock_lines(path: Path | None = None) -> list[Requirement]:
    """The pins of a uv/pip requirements file (default: the lock; comments and options skipped)."""
    reqs = []
    for line in (path or LOCK).read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            reqs.append(Requirement(line))
    return reqs


def selected(reqs: list[Requirement], env: dict) -> dict[str, str]:
    """{package: pinned version} for one target environment; raises on a package pinned twice."""
    out: dict[str, str] = {}
    for r in reqs:
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        name = canonicalize_name(r.name)
        (spec,) = r.specifier
        if spec.operator != "==":
            raise ValueError(f"{r}: the lock must pin with ==")
        if name in out:
            raise ValueError(f"{name} is pinned twice for one environment ({out[name]} and {spec.version})")
        out[name] = spec.version
    return out


def course_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [Requirement(r) for r in project["dependencies"] + [r for group in extras.values() for r in group]]


def check_offline(target: Target, python: str) -> list[str]:
    """Problems of the lock for one target and Python, in words (empty: none)."""
    env = target.environment(python)
    try:
        pins = selected(lock_lines(), env)
    except ValueError as e:
        return [str(e)]
    problems = []
    for r in [*course_requirements(), *lock_lines(PINS)]:
        if r.marker is not None and not r.marker.evaluate({**env, "extra": ""}):
            continue
        version = pins.get(canonicalize_name(r.name))
        if version is None:
            problems.append(f"{r.name} is required but not pinned")
        elif not r.specifier.contains(version, prereleases=True):
            problems.append(f"{r.name}=={version} does not meet {r}")
    cuda = sorted(n for n in pins if n.startswith(CUDA_ONLY))
    if cuda and target.sys_platform != "linux":
        problems.append(f"CUDA packages outside Linux: {cuda}")
    return problems


def check_online(target: Target, python: str) -> list[str]:
    """Ask the index for a wheel of every pin this target selects (uv evaluates the markers for
    the target itself; nothing is installed, no dependency is added)."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        return ["uv is not installed: `pip install uv` (make check-lock does it)"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [uv, "pip", "install", "--dry-run", "--quiet", "--no-deps", "--only-binary", ":all:",
               "--python-platform", target.uv_platform, "--python-version", python, "--target", tmp,
               "-r", str(LOCK)]
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"})
    if r.returncode == 0:
        return []
    lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
    return [next((ln for ln in lines if ln.startswith("cause:")), lines[-1] if lines else "uv failed")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--online", action="store_true", help="also ask the package index for every wheel")
    args = p.parse_args(argv)
    combos = [(t, py) for t in TARGETS for py in PYTHONS]
    online: dict = {}
    if args.online:                           # network-bound: ask for all twelve at once
        with ThreadPoolExecutor(max_workers=6) as pool:
            online = dict(zip(combos, pool.map(lambda c: check_online(*c), combos)))
    bad = 0
    for target, python in combos:
        problems = check_offline(target, python) + online.get((target, python), [])
        print(f"{target.name:15} Python {python}: {'ok' if not problems else '; '.join(problems)}")
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
