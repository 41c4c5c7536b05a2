"""Where `make env` takes torch from: PyTorch's CPU wheels or the lock's default (PyPI).

    python tools/torch_index.py      # prints `cpu` or `pypi`; one line on stderr says why

On Linux x86_64, PyPI's torch is the CUDA build (about 5 GB with its nvidia packages), which a
laptop without an NVIDIA GPU never uses. There `make env` takes the same torch pair from
PyTorch's CPU wheels (a few hundred MB) when no NVIDIA driver is present and
download.pytorch.org answers; otherwise it installs the lock as it is, from PyPI, and says why.
`make env TORCH_INDEX=cpu` or `TORCH_INDEX=pypi` skips this and takes that choice.

Everywhere else the lock's default stands: macOS and Windows get CPU (or MPS) builds from PyPI
anyway, and on Linux aarch64 the CPU index names its wheels without the `+cpu` tag that
`tools/write_environment.py --cpu-requirements` pins, so only `TORCH_INDEX=pypi` is sure to work.

`choose` is the decision; the two probes are arguments, so the tests run both branches offline.
"""
from __future__ import annotations

import os
import platform
import shutil
import sys
import urllib.request
from collections.abc import Callable

CPU_INDEX = "https://download.pytorch.org/whl/cpu/torch/"
HOW = "choose with `make env TORCH_INDEX=cpu` or `TORCH_INDEX=pypi` (in a fresh .venv)"


def nvidia_driver_present() -> bool:
    """True if this Linux machine has an NVIDIA driver (the kernel module, its devices, or nvidia-smi)."""
    marks = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/usr/lib/wsl/lib/nvidia-smi")  # WSL: last
    return any(os.path.exists(p) for p in marks) or shutil.which("nvidia-smi") is not None


def index_reachable(url: str = CPU_INDEX, timeout: float = 5.0) -> bool:
    """True if PyTorch's CPU index answers within `timeout` seconds (offline, DNS fails at once)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
            return r.status < 400
    except (OSError, ValueError):          # URLError, timeouts and refused connections are OSErrors
        return False


def choose(system: str, machine: str, driver: Callable[[], bool],
           reachable: Callable[[], bool]) -> tuple[str, str]:
    """("cpu" or "pypi", the line that says why; empty where the lock's default needs no word).

    system, machine: `platform.system()`, `platform.machine()`. The probes run only when the
    answer depends on them: nothing is probed off Linux x86_64, and no network with a driver.
    """
    if system != "Linux" or machine != "x86_64":
        return "pypi", ""
    if driver():
        return "pypi", f"make env: an NVIDIA driver is present, so torch comes from PyPI (its CUDA build); {HOW}."
    if reachable():
        return "cpu", (f"make env: no NVIDIA driver, so torch comes from PyTorch's CPU wheels "
                       f"({CPU_INDEX.removesuffix('torch/')}), not PyPI's 5 GB CUDA build; {HOW}.")
    return "pypi", (f"make env: no NVIDIA driver, but {CPU_INDEX} did not answer, so torch comes from PyPI "
                    f"(the lock's default, the 5 GB CUDA build); {HOW}.")


def main() -> int:
    index, why = choose(platform.system(), platform.machine(), nvidia_driver_present, index_reachable)
    if why:
        print(why, file=sys.stderr)
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
