"""benchmarks/time_to_quality.py end to end on a tiny image folder: it scores the model at each
interval outside the timed region, stops at its budget, and a second call resumes the run and
keeps the points already measured."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ttq(image_folder, monkeypatch):
    monkeypatch.setenv("CVAE_DATA_DIR", str(image_folder))
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import time_to_quality
    return time_to_quality


def test_vae_curve_stops_at_budget_and_resumes(ttq, tmp_path):
    args = ["vae", "--quick", "--minutes", "0", "--threads", "1",
            "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")]
    first = ttq.main(args)                        # budget 0: one interval, one score, stop
    assert [p["steps"] for p in first["points"]] == [2]
    second = ttq.main(args)                       # resumes from the checkpoint: one more interval
    assert [p["steps"] for p in second["points"]] == [2, 4]
    assert second["points"][0] == first["points"][0]
    for p in second["points"]:
        assert 0 < p["test_bpd"] < 16 and p["train_minutes"] > 0 and p["n_test"] > 0
    assert second["points"][1]["train_minutes"] > second["points"][0]["train_minutes"]
    saved = json.loads((tmp_path / "out" / "ttq-vae-cpu-quick.json").read_text())
    assert saved["points"] == second["points"] and saved["setting"]["model_config"]["spatial"] is True
    assert "| 4 |" in (tmp_path / "out" / "ttq-vae-cpu-quick.md").read_text()
    assert (tmp_path / "out" / "ttq-vae-cpu-quick.png").stat().st_size > 0
    fresh = ttq.main(args + ["--fresh"])          # starts over
    assert [p["steps"] for p in fresh["points"]] == [2]


def test_ddpm_curve_scores_judge_fd_and_heldout_mse(ttq, tmp_path):
    result = ttq.main(["ddpm", "--quick", "--minutes", "0", "--threads", "1", "--n-eval", "6",
                       "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")])
    (point,) = result["points"]
    assert point["n_samples"] == 6 and math.isfinite(point["fd_judge"]) and point["fd_judge"] > 0
    assert 0 < point["heldout_mse"] < 10
    assert result["setting"]["classes"] == ["airplane", "frog"]
    assert "FD and KID between 6 DDIM-50 samples" in (tmp_path / "out" / "ttq-ddpm-cpu-quick.md").read_text()
    assert 0 <= point["class_acc"] <= 1 and math.isfinite(point["kid_judge"])


@pytest.mark.parametrize("model", ["ldm", "peer-ddpm-pytorch", "peer-diffusers"])
def test_latent_and_peer_curves_score_the_same_protocol(ttq, tmp_path, model):
    args = [model, "--quick", "--minutes", "0", "--threads", "1", "--n-eval", "4",
            "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")]
    first = ttq.main(args)
    (point,) = first["points"]
    assert point["n_samples"] == 4 and math.isfinite(point["fd_judge"]) and point["fd_judge"] > 0
    assert ("class_acc" in point) == (model == "ldm")           # the peers are unconditional
    second = ttq.main(args)                                       # resumes: one more interval
    assert [p["steps"] for p in second["points"]] == [2, 4] and second["points"][0] == point
    md = (tmp_path / "out" / f"ttq-{model}-cpu-quick.md").read_text()
    assert "| 4 |" in md and "KID" in md


def test_summary_finds_the_minutes_each_model_needs_to_reach_the_best_peer_fd(ttq, tmp_path):
    def run(model, curve, acc=None):
        pts = [{"steps": i, "train_minutes": m, "fd_judge": fd, "n_samples": 200, "n_test": 2000,
                **({"class_acc": acc} if acc is not None else {})} for i, (m, fd) in enumerate(curve)]
        (tmp_path / f"ttq-{model}-cpu.json").write_text(json.dumps(
            {"setting": {"train_config": {"batch_size": 16}, "clock": "cpu"}, "parameters": 250_000, "points": pts}))
    run("ldm", [(3, 110.0), (6, 80.0), (15.2, 70.0)], acc=0.4)
    run("ddpm", [(3, 120.0), (15.1, 110.0)], acc=0.3)
    run("peer-ddpm-pytorch", [(5, 140.0), (10, 105.0), (15.5, 130.0)])    # its best, 105, was mid-run
    run("peer-diffusers", [(7, 180.0), (15.3, 150.0)])
    text = ttq.main(["summary", "--minutes", "15", "--out", str(tmp_path)])["summary"]
    assert "best peer's 15-minute FD (105.0)" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| course")}
    assert rows["course latent diffusion"].endswith("| 40.0% | 6.0 (first scored point at or below) |")
    assert rows["course pixel DDPM"].endswith("| not within 15 |")
    assert "CPU time of the one training thread" in text and (tmp_path / "summary.png").stat().st_size > 0


def test_latent_curve_can_train_on_another_first_stage(ttq, tmp_path):
    """--first-stage: the same protocol on latents of another (checksummed) first stage file,
    named in the results, e.g. to compare a new first stage with the shipped one."""
    from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
    from cvae_lib.weights import export_weights

    path = tmp_path / "weights" / "candidate.safetensors"
    export_weights(FirstStage(FirstStageConfig(width=8, latent_channels=4)), path, {"train_seconds": 90.0})
    result = ttq.main(["ldm", "--quick", "--minutes", "0", "--threads", "1", "--n-eval", "4",
                       "--first-stage", str(path), "--out", str(tmp_path / "out"), "--run-dir", str(tmp_path / "runs")])
    assert result["setting"]["first_stage"] == "candidate.safetensors"
    assert result["setting"]["first_stage_minutes"] == 1.5
    assert result["setting"]["model_config"]["in_channels"] == 4          # the prior sees its latents
