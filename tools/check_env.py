"""Fail loudly if the installed torch/torchvision pair is not the pinned, working one.

Run by `make env` after installing: a later install step that silently swapped torch (for
example for a build whose torchvision ops do not load) is caught here, not in a notebook.
"""
import re
import sys
from pathlib import Path

lock = (Path(__file__).resolve().parents[1] / "requirements-lock.txt").read_text()
want = dict(re.findall(r"^(torch|torchvision)==(\S+)$", lock, flags=re.M))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.ops import nms  # noqa: E402  (fails if torchvision's compiled ops do not match torch)

have = {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0]}
boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
nms(boxes, torch.tensor([1.0]), 0.5)
if any(have[k] != want.get(k, have[k]) for k in have):
    sys.exit(f"torch/torchvision are {have}, but requirements-lock.txt pins {want}: "
             f"reinstall with `pip install -r requirements-lock.txt`.")
print(f"ok: torch {torch.__version__}, torchvision {torchvision.__version__} (compiled ops load)")
