"""`fit` under torchrun: 2 CPU processes with gloo on 127.0.0.1 give the weights of 1 process
with the same global batch, resume exactly, and only rank 0 writes checkpoints.

Each run is a real `torchrun --nproc_per_node 2` launch of tests/ddp_worker.py with a hard
timeout; nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT = 240    # seconds per launch: a hung rendezvous fails the test instead of the CI run


def run(out: Path, model: str, epochs: int, checkpoint: Path | None = None, procs: int = 2,
        stop_after: int | None = None, port: int | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CVAE_DEVICE": "cpu", "GLOO_SOCKET_IFNAME": "lo"}
    args = [str(WORKER), str(out), model, str(epochs)] + ([str(checkpoint)] if checkpoint else [])
    args += [str(stop_after)] if stop_after else []
    if procs == 1:
        cmd = [sys.executable, *args]
        env.pop("WORLD_SIZE", None)
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={port}", *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return torch.load(out / "result.pt", weights_only=True)


def test_two_processes_train_the_weights_of_one_with_the_same_global_batch(tmp_path, free_port):
    """Each rank takes half of every batch of 16 and DDP averages the gradients: the same update
    as one process on the whole batch, up to float rounding of the sums. Adam divides by the
    root of the squared gradients, so for the near-zero components that rounding is amplified up
    to the learning rate (max differences of ~1e-4 after 8 steps, varying by CPU). So the weights
    are compared by how far the two runs ended apart relative to how far they moved: under 1%
    per tensor (measured: 0.4% at worst). Without the gradient all-reduce each rank would follow
    its own half batch, and the two runs would differ by a large part of the distance moved."""
    from cvae_lib.models.ae import AEConfig, Autoencoder

    one = run(tmp_path / "one", "ae", 2, procs=1)
    two = run(tmp_path / "two", "ae", 2, procs=2, port=free_port())
    assert two["world"] == 2 and one["world"] == 1
    torch.manual_seed(0)                                           # the workers' initial weights
    start = Autoencoder(AEConfig(latent_dim=8, width=8)).state_dict()
    for k, v in one["weights"].items():
        if v.is_floating_point() and (v - start[k]).norm() > 0:
            apart, moved = (two["weights"][k] - v).norm(), (v - start[k]).norm()
            assert apart / moved < 0.01, f"{k}: the runs ended {apart / moved:.1%} of the distance moved apart"
    assert [r["train_loss"] for r in two["rows"]] == pytest.approx([r["train_loss"] for r in one["rows"]], rel=1e-5)
    assert [r["steps"] for r in two["rows"]] == [4, 4]        # global steps, not per rank


def test_a_stopped_and_resumed_two_process_run_matches_an_uninterrupted_one(tmp_path, free_port):
    """A VAE samples z on every rank, so an exact resume needs every rank's RNG state back. The
    first launch stops after epoch 1 (as a killed job would, after its checkpoint); the second
    launch resumes it with the same settings."""
    whole = run(tmp_path / "whole", "vae", 2, tmp_path / "whole.pt", port=free_port())
    run(tmp_path / "part", "vae", 2, tmp_path / "part.pt", stop_after=1, port=free_port())
    resumed = run(tmp_path / "part", "vae", 2, tmp_path / "part.pt", port=free_port())
    for k, v in whole["weights"].items():
        assert torch.equal(resumed["weights"][k], v), k
    writes = {r: json.loads((tmp_path / "whole" / f"writes-rank{r}.json").read_text()) for r in (0, 1)}
    assert writes[0] == [str(tmp_path / "whole.pt")] * 2 and writes[1] == []    # only rank 0 writes
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["part.pt", "whole.pt"]   # no temp files


def test_a_shipping_script_runs_under_torchrun_and_only_rank_0_ships(image_folder, tmp_path, free_port):
    """tools/train_ddpm.py launched by torchrun with 2 CPU processes: one shipped file, with
    the global step count, loadable like a one-process run's."""
    from cvae_lib.models.unet import UNet, UNetConfig
    from cvae_lib.weights import load_weights, read_metadata

    env = {**os.environ, "OMP_NUM_THREADS": "1", "CVAE_DEVICE": "cpu", "GLOO_SOCKET_IFNAME": "lo",
           "CVAE_DATA_DIR": str(image_folder)}
    tool = Path(__file__).resolve().parents[1] / "tools" / "train_ddpm.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(tool), "--epochs", "1",
           "--max-steps", "1", "--batch-size", "4", "--width", "8", "--train-per-class", "3", "--n-eval", "0",
           "--out", str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("wrote ") == 1                       # rank 0 only
    meta = read_metadata(tmp_path / "ddpm_cpu.safetensors")["metrics"]
    assert meta["steps"] == 1 and meta["batch_size"] == 4      # one step of the global batch of 4
    assert load_weights(tmp_path / "ddpm_cpu.safetensors", UNet, UNetConfig).cfg.width == 8
