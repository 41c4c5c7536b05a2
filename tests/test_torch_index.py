"""Where `make env` takes torch from (tools/torch_index.py), with both probes injected: offline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import torch_index  # noqa: E402


def probe(answer: bool, calls: list[str], name: str):
    """A probe that records that it ran and answers `answer`."""
    return lambda: calls.append(name) or answer


def choose(system="Linux", machine="x86_64", driver=False, reachable=True):
    calls: list[str] = []
    index, why = torch_index.choose(system, machine, probe(driver, calls, "driver"),
                                    probe(reachable, calls, "reachable"))
    return index, why, calls


def test_a_linux_laptop_without_a_driver_gets_the_cpu_wheels_when_the_index_answers():
    index, why, calls = choose(driver=False, reachable=True)
    assert index == "cpu" and calls == ["driver", "reachable"]
    assert "no NVIDIA driver" in why and "TORCH_INDEX=pypi" in why


def test_it_falls_back_to_pypi_with_one_line_saying_why_and_how_to_choose():
    index, why, _ = choose(driver=False, reachable=False)
    assert index == "pypi"
    assert "\n" not in why and "did not answer" in why
    assert "make env TORCH_INDEX=cpu" in why and "TORCH_INDEX=pypi" in why


def test_a_machine_with_an_nvidia_driver_keeps_pypi_without_asking_the_network():
    index, why, calls = choose(driver=True, reachable=True)
    assert index == "pypi" and calls == ["driver"] and "NVIDIA driver is present" in why


@pytest.mark.parametrize("system, machine", [("Darwin", "arm64"), ("Windows", "AMD64"), ("Linux", "aarch64")])
def test_elsewhere_the_lock_default_stands_and_nothing_is_probed(system, machine):
    assert choose(system, machine) == ("pypi", "", [])


def test_an_index_that_does_not_answer_is_unreachable_at_once():
    assert torch_index.index_reachable("http://127.0.0.1:9/", timeout=2) is False   # port 9: discard, closed
    assert torch_index.index_reachable("not a url") is False


def test_the_script_prints_only_the_choice_on_stdout():
    """What the Makefile reads: one word on stdout; the reason, if any, on stderr."""
    code = ("import sys, torch_index as t; t.nvidia_driver_present = lambda: False; "
            "t.index_reachable = lambda: False; sys.exit(t.main())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT / "tools")
    assert out.stdout == "pypi\n" and out.stderr.count("\n") <= 1


def make_env_dry_run(venv: Path, torch_index: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "env", f"VENV={venv}", f"TORCH_INDEX={torch_index}"], cwd=ROOT,
                          capture_output=True, text=True)


def test_make_env_refuses_an_unknown_choice(tmp_path):
    out = make_env_dry_run(tmp_path / "venv", "cuda")
    assert out.returncode != 0 and "set it to cpu or pypi" in out.stderr


def test_make_env_will_not_switch_an_installed_environment_silently(tmp_path):
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / ".installed-stamp").write_text("cpu\n")
    out = make_env_dry_run(tmp_path / "venv", "pypi")
    assert out.returncode != 0 and "holds torch from 'cpu'" in out.stderr and "rm -rf" in out.stderr
    assert make_env_dry_run(tmp_path / "venv", "cpu").returncode == 0


def test_ci_installs_torch_from_pypi():
    """CI reaches PyPI, not download.pytorch.org: its `make env` must not depend on the probe."""
    assert "TORCH_INDEX=pypi" in (ROOT / ".ci" / "run").read_text()
