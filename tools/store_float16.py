"""Store a shipped VAE or CVAE (a file written by tools/train_vae.py or train_cvae.py) in float16.

    python tools/store_float16.py vae_cpu cvae_cpu

`checkpoints/` may hold at most 60 MB in all. Halving a file is allowed when its recorded
metrics survive the rounding: this script re-measures the file's test bits/dim and its check
subset's bits/dim on the rounded weights, refuses when the test bits/dim moves by more than
`--tolerance` (relative), and otherwise rewrites the file (float16 tensors, the rounded model's
metrics, the float32 values kept beside them as `float32_test_bpd` and `float32_check_bpd`) and
its SHA256SUMS line. Training facts (epochs, steps, minutes) are kept as they were. A file that
is already float16 is left alone.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from shipping import check_subset, round_to_float16

from cvae_lib.data import load_cifar10
from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.train import evaluate
from cvae_lib.weights import CHECKPOINTS, export_weights, load_weights, read_metadata

KINDS = {"VAE": (VAE, VAEConfig, vae_loss), "CVAE": (CVAE, CVAEConfig, cvae_loss)}


def store_float16(name: str, tolerance: float = 1e-3, folder=CHECKPOINTS) -> dict:
    """Rewrite <folder>/<name>.safetensors in float16; returns {"before", "after"} bits/dim
    ({} if the file already is float16)."""
    path = Path(folder) / f"{name}.safetensors"
    meta = read_metadata(path)
    if meta["storage"] == "float16":
        print(f"{name}: already float16")
        return {}
    model_cls, config_cls, loss = KINDS[meta["model_class"]]
    metrics = meta["metrics"]
    test = load_cifar10("test").subset(metrics["classes"])
    check = check_subset(metrics["classes"], metrics["check"]["n_per_class"])
    if len(test) != metrics["n_test"]:
        raise SystemExit(f"{name}: {len(test)} test images, but the file was measured on {metrics['n_test']}")
    model = load_weights(path, model_cls, config_cls)
    before = {"test": evaluate(model, loss, test)["bpd"], "check": evaluate(model, loss, check)["bpd"]}
    round_to_float16(model)
    after = {"test": evaluate(model, loss, test)["bpd"], "check": evaluate(model, loss, check)["bpd"]}
    change = abs(after["test"] - before["test"]) / before["test"]
    print(f"{name}: test bits/dim {before['test']:.5f} (float32) -> {after['test']:.5f} (float16), "
          f"relative change {change:.1e}; recorded {metrics['test_bpd']}")
    if change > tolerance:
        raise SystemExit(f"{name}: float16 changes the test bits/dim by {change:.1e} > {tolerance}: kept as trained")
    metrics.update(test_bpd=round(after["test"], 4), float32_test_bpd=metrics["test_bpd"],
                   check={**metrics["check"], "bpd": after["check"]},
                   float32_check_bpd=metrics["check"]["bpd"])
    export_weights(model, path, metrics, dtype=torch.float16)
    return {"before": before, "after": after}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+", help="shipped file stems, e.g. vae_cpu cvae_cpu")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest relative change of test bits/dim")
    p.add_argument("--folder", type=Path, default=CHECKPOINTS, help="default: the shipped weights")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.names:
        store_float16(name, args.tolerance, args.folder)


if __name__ == "__main__":
    main()
