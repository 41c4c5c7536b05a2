"""tools/train_ddpm.py, train_cvae.py, train_vae.py, train_study.py and train_latent_diffusion.py end to end on
a tiny image folder: each trains its recipe (cvae_lib.recipes), ships safetensors with a re-checkable metric, and
re-exports a finished run without training."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.cvae import CVAE, CVAEConfig
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.models.vae import VAE, VAEConfig
from cvae_lib.weights import load_weights, read_metadata

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--max-steps", "1", "--batch-size", "4", "--width", "8", "--train-per-class", "3"]


@pytest.fixture
def tools(image_folder, monkeypatch):
    """The tools/ scripts, importable, reading the tiny image folder."""
    monkeypatch.setenv("CVAE_DATA_DIR", str(image_folder))
    monkeypatch.syspath_prepend(str(ROOT / "tools"))


def test_training_script_ships_ema_weights_with_a_reproducible_check(tools, tmp_path):
    import train_ddpm
    args = [*TINY, "--n-eval", "4", "--out", str(tmp_path)]
    train_ddpm.main(args)
    meta = read_metadata(tmp_path / "ddpm_cpu.safetensors")["metrics"]
    assert meta["classes"] == ["airplane", "frog"] and meta["n_test"] == 6 and meta["steps"] == 1
    # chapter 05's judge metrics, unguided and at w = 2, on 4 samples against the 6 test images
    assert set(meta["judge"]) == {"1.0", "2.0"} and meta["sampler"] == "DDIM-50, eta 1, seed 0"
    for scores in meta["judge"].values():
        assert scores["n_eval"] == 4 and scores["n_reference"] == 6
        assert 0 <= scores["acc"] <= 1 and scores["fd"] > 0
    model = load_weights(tmp_path / "ddpm_cpu.safetensors", UNet, UNetConfig)
    assert model.cfg.width == 8 and model.cfg.num_classes == 10
    d = Diffusion(DiffusionConfig(**meta["diffusion"]))
    x = torch.rand(2, 3, 32, 32)
    assert d.ddim_sample(model, 2, torch.tensor([0, 6]), steps=2, progress=False).shape == x.shape
    train_ddpm.main(args)                 # finished run: loads it and exports the same weights
    assert read_metadata(tmp_path / "ddpm_cpu.safetensors")["metrics"] == meta
    again = load_weights(tmp_path / "ddpm_cpu.safetensors", UNet, UNetConfig).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in model.state_dict().items())


def test_cvae_script_ships_weights_with_bits_per_dim(tools, tmp_path):
    import train_cvae
    args = [*TINY, "--n-eval", "0", "--out", str(tmp_path)]
    train_cvae.main(args)
    meta = read_metadata(tmp_path / "cvae_cpu.safetensors")["metrics"]
    assert meta["classes"] == ["airplane", "frog"] and meta["n_test"] == 6 and meta["test_bpd"] > 0
    assert "judge" not in meta                     # --n-eval 0: no samples judged
    model = load_weights(tmp_path / "cvae_cpu.safetensors", CVAE, CVAEConfig)
    assert model.sample(torch.tensor([0, 6])).shape == (2, 3, 32, 32)
    train_cvae.main(args)                 # finished run: loads it and exports it again
    again = read_metadata(tmp_path / "cvae_cpu.safetensors")["metrics"]
    assert again["steps"] == meta["steps"] and again["check"]["bpd"] == pytest.approx(meta["check"]["bpd"], rel=1e-5)


def test_cvae_script_ships_ten_classes_in_float16_with_judge_metrics(tools, tmp_path):
    import train_cvae

    from cvae_lib.data import CLASSES
    train_cvae.main([*TINY, "--float16", "--n-eval", "20", "--classes", *CLASSES, "--name", "ten",
                     "--out", str(tmp_path)])
    meta = read_metadata(tmp_path / "ten.safetensors")
    m = meta["metrics"]
    assert meta["storage"] == "float16" and m["classes"] == list(CLASSES) and m["n_test"] == 30
    assert m["test_bpd"] == pytest.approx(m["float32_test_bpd"], rel=1e-2)     # rounding moves it little
    assert m["judge"]["n_eval"] == 20 and m["judge"]["n_reference"] == 30     # 2 samples per class
    model = load_weights(tmp_path / "ten.safetensors", CVAE, CVAEConfig)
    assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())


def test_vae_script_ships_chapter02_vae_on_all_classes_in_float16(tools, tmp_path):
    import train_vae
    train_vae.main([*TINY, "--out", str(tmp_path)])
    assert read_metadata(tmp_path / "vae_cpu.safetensors")["storage"] == "float16"
    meta = read_metadata(tmp_path / "vae_cpu.safetensors")["metrics"]
    assert meta["classes"] is None and meta["n_test"] == 30 and meta["test_bpd"] > 0
    assert meta["test_bpd"] == pytest.approx(meta["float32_test_bpd"], rel=1e-2)     # rounding moves it little
    assert meta["check"]["bpd"] > 0 and meta["steps"] == 1
    model = load_weights(tmp_path / "vae_cpu.safetensors", VAE, VAEConfig)
    assert model.cfg.latent_dim == 64 and model.cfg.likelihood == "logistic" and model.cfg.residual
    assert model.sample(3).shape == (3, 3, 32, 32)


def test_latent_diffusion_script_ships_both_stages(tools, tmp_path):
    import train_latent_diffusion

    from cvae_lib.latent import LatentDiffusion
    from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
    args = ["--rec-epochs", "1", "--gan-epochs", "2", "--prior-epochs", "1", "--max-steps", "1",
            "--batch-size", "4", "--prior-batch-size", "2", "--train-per-class", "3", "--width", "8",
            "--latent-channels", "4", "--prior-width", "16", "--n-eval", "4", "--out", str(tmp_path)]
    train_latent_diffusion.main(args)
    first_meta = read_metadata(tmp_path / "ldm_first_stage.safetensors")["metrics"]
    accuracy = first_meta["val_judge_accuracy"]                 # every GAN epoch was judged
    assert list(accuracy) == ["rec", "gan1", "gan2"] and first_meta["n_test"] == 30
    assert accuracy[first_meta["chosen"]] == max(accuracy.values())   # the best is shipped
    assert first_meta["epochs"] == 3                                  # the cost: every epoch trained
    first = load_weights(tmp_path / "ldm_first_stage.safetensors", FirstStage, FirstStageConfig)
    assert first.cfg.latent_shape == (4, 8, 8) and float(first.scale) == pytest.approx(first_meta["scale"])
    meta = read_metadata(tmp_path / "ldm_prior.safetensors")
    assert meta["storage"] == "float16" and meta["metrics"]["diffusion"]["data"] == "latent"
    assert meta["metrics"]["guidance"] in train_latent_diffusion.GUIDANCE and meta["metrics"]["n_eval"] == 4
    assert meta["metrics"]["batch_size"] == 2 and first_meta["batch_size"] == 4   # each stage's own batch
    prior = load_weights(tmp_path / "ldm_prior.safetensors", UNet, UNetConfig)
    ldm = LatentDiffusion(first, prior, Diffusion(DiffusionConfig(**meta["metrics"]["diffusion"])))
    assert ldm.sample(torch.tensor([0, 6]), steps=2, progress=False).shape == (2, 3, 32, 32)
    train_latent_diffusion.main(args)     # finished runs: loaded and exported again, same weights
    again = load_weights(tmp_path / "ldm_prior.safetensors", UNet, UNetConfig).state_dict()
    assert all(torch.equal(v, again[k]) for k, v in prior.state_dict().items())


def test_the_full_profile_trains_the_papers_unet_with_its_optimiser(tools, tmp_path):
    """--profile full: Ho et al.'s 35.7M U-Net on all ten classes, Adam 2e-4 with 5,000 warm-up
    steps (one tiny step here: the recipe, not the run length)."""
    import train_ddpm
    train_ddpm.main(["--profile", "full", "--epochs", "1", "--max-steps", "1", "--batch-size", "2",
                     "--train-per-class", "2", "--n-eval", "0", "--out", str(tmp_path)])
    meta = read_metadata(tmp_path / "ddpm_full.safetensors")
    assert meta["model_config"]["width"] == 128 and meta["model_config"]["width_mult"] == [1, 2, 2, 2]
    assert len(meta["metrics"]["classes"]) == 10 and meta["metrics"]["ema_decay"] == 0.9999
    run = torch.load(tmp_path / "ddpm_full-run.pt", weights_only=True)
    assert run["train_config"]["lr"] == 2e-4 and run["train_config"]["warmup_steps"] == 5000


@pytest.mark.parametrize("experiment, n_train", [("frog", 2), ("one_per_class", 10 * 46)])
def test_study_script_ships_the_studys_model_in_float16_with_its_own_loss(tools, tmp_path, experiment, n_train):
    """The study's CVAE (BCE + KL, Adam 1e-3, batch 46) on the images chapter 03 uses; the file is
    float16 and its recorded losses are those of the float16 weights, so loading reproduces them."""
    import train_study
    from shipping import check_subset

    from cvae_lib.models.cvae import cvae_loss
    from cvae_lib.train import evaluate

    extra = ["--train-per-class", "2"] if experiment == "frog" else []
    train_study.main([experiment, "--epochs", "1", "--max-steps", "1", "--val-per-class", "1", *extra,
                      "--out", str(tmp_path)])
    path = tmp_path / f"study_{experiment}.safetensors"
    meta = read_metadata(path)
    assert meta["storage"] == "float16" and meta["model_config"]["likelihood"] == "bernoulli"
    m = meta["metrics"]
    assert m["experiment"] == experiment and m["n_train"] == n_train and m["steps"] == 1 and m["batch_size"] == 46
    model = load_weights(path, CVAE, CVAEConfig)
    assert model.cfg == CVAEConfig()                                  # the study's architecture, unchanged
    classes = ["frog"] if experiment == "frog" else None
    assert evaluate(model, cvae_loss, check_subset(classes))["loss"] == pytest.approx(m["check"]["loss"], abs=1e-5)


def test_latent_first_stage_ships_the_epoch_the_validation_judge_preferred(tools, tmp_path, monkeypatch):
    """When the reconstruction phase beats every GAN epoch on validation, exactly its weights
    are shipped, not the GAN's last ones (a state_dict without a copy would follow training)."""
    import train_latent_diffusion

    from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
    from cvae_lib.train import load_checkpoint
    accuracies = iter([0.9, 0.5, 0.7])                        # rec, GAN epoch 1, GAN epoch 2
    monkeypatch.setattr(train_latent_diffusion, "judge_accuracy",
                        lambda *a: next(accuracies, 0.1))     # later calls: the test-split reports
    train_latent_diffusion.main(["--stage", "first", "--rec-epochs", "1", "--gan-epochs", "2", "--max-steps", "2",
                                 "--batch-size", "4", "--train-per-class", "3", "--width", "8",
                                 "--latent-channels", "4", "--out", str(tmp_path)])
    meta = read_metadata(tmp_path / "ldm_first_stage.safetensors")["metrics"]
    assert meta["chosen"] == "rec" and meta["val_judge_accuracy"] == {"rec": 0.9, "gan1": 0.5, "gan2": 0.7}
    assert meta["epochs"] == 3                                # the cost counts the GAN epochs too
    shipped = load_weights(tmp_path / "ldm_first_stage.safetensors", FirstStage, FirstStageConfig).state_dict()
    rec = load_checkpoint(tmp_path / "ldm_first_stage-rec-run.pt")["model"]
    gan = load_checkpoint(tmp_path / "ldm_first_stage-gan-run.pt")["model"]
    stored = {k: v.half().float() for k, v in rec.items()}                # the file holds float16
    assert all(torch.equal(shipped[k], v) for k, v in stored.items() if k != "scale")
    assert not all(torch.equal(shipped[k], v.half().float()) for k, v in gan.items() if k != "scale")
    assert read_metadata(tmp_path / "ldm_first_stage.safetensors")["storage"] == "float16"
