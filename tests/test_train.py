"""The training loop: a short fit, checkpoints, exact resume, clear errors, early stopping, EMA."""
from __future__ import annotations

import pytest
import torch

from cvae_lib.data import ImageSet
from cvae_lib.models.ae import AEConfig, Autoencoder, ae_loss
from cvae_lib.train import EMA, CheckpointError, TrainConfig, fit, load_checkpoint, load_model, load_or_train

CFG = AEConfig(latent_dim=8, width=8)


def tcfg(**kw):
    base = dict(epochs=2, batch_size=16, progress=False, seed=0, hflip=True)
    base.update(kw)
    return TrainConfig(**base)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_two_step_fit_changes_weights_and_logs(image_set):
    torch.manual_seed(0)
    model = Autoencoder(CFG)
    before = weights(model)
    h = fit(model, ae_loss, image_set(), tcfg(epochs=1, max_steps=2), val=image_set(20, 1), device="cpu")
    assert len(h) == 1 and h.rows[0]["epoch"] == 1
    assert h["train_loss"][0] > 0 and h["val_loss"][0] > 0 and h.seconds > 0
    assert not same_weights(before, model.state_dict())
    assert not model.training  # fit hands the model back in eval mode


def test_logged_terms_are_averaged(image_set):
    def loss_with_terms(model, x, y):
        loss = ae_loss(model, x, y)
        return loss, {"double": 2 * loss}
    h = fit(Autoencoder(CFG), loss_with_terms, image_set(), tcfg(epochs=1), val=image_set(20, 1), device="cpu")
    row = h.rows[0]
    assert row["train_double"] == pytest.approx(2 * row["train_loss"], rel=1e-5)
    assert row["val_double"] == pytest.approx(2 * row["val_loss"], rel=1e-5)


def test_checkpoint_round_trip(tmp_path, image_set):
    torch.manual_seed(0)
    model = Autoencoder(CFG)
    fit(model, ae_loss, image_set(), tcfg(epochs=1), checkpoint=tmp_path / "m.pt", device="cpu")
    state = load_checkpoint(tmp_path / "m.pt")
    assert state["model_config"] == {"latent_dim": 8, "width": 8, "residual": True, "n_stages": 3}
    assert state["epoch"] == 1 and state["done"] and not any(k.startswith("_orig_mod") for k in state["model"])
    rebuilt = load_model(tmp_path / "m.pt", Autoencoder, AEConfig)
    assert rebuilt.cfg == CFG and same_weights(weights(model), rebuilt.state_dict())
    x = image_set(4).images()
    with torch.no_grad():
        assert torch.allclose(model(x), rebuilt(x), atol=1e-6)  # model is channels_last: other kernels


def test_resume_after_interrupt_equals_uninterrupted(tmp_path, image_set):
    """Crash in the middle of epoch 3, run again: same weights as a run that never stopped."""
    data, cfg = image_set(), tcfg(epochs=3)
    torch.manual_seed(0)
    reference = Autoencoder(CFG)
    ema_ref = EMA(reference, 0.9)
    fit(reference, ae_loss, data, cfg, checkpoint=tmp_path / "ref.pt", ema=ema_ref, device="cpu")

    calls = {"n": 0}
    def crashing_loss(model, x, y):
        calls["n"] += 1
        if calls["n"] == 7:  # 3 steps per epoch: the first step of epoch 3
            raise KeyboardInterrupt
        return ae_loss(model, x, y)

    torch.manual_seed(0)
    model = Autoencoder(CFG)
    ema = EMA(model, 0.9)
    with pytest.raises(KeyboardInterrupt):
        fit(model, crashing_loss, data, cfg, checkpoint=tmp_path / "run.pt", ema=ema, device="cpu")
    assert load_checkpoint(tmp_path / "run.pt")["epoch"] == 2

    torch.manual_seed(123)  # a different global RNG state must not matter: it is restored
    resumed = Autoencoder(CFG)
    ema2 = EMA(resumed, 0.9)
    h = fit(resumed, ae_loss, data, cfg, checkpoint=tmp_path / "run.pt", ema=ema2, device="cpu")
    assert [r["epoch"] for r in h.rows] == [1, 2, 3]
    assert same_weights(weights(reference), resumed.state_dict())
    assert same_weights(ema_ref.model.state_dict(), ema2.model.state_dict()) and ema_ref.updates == ema2.updates == 9


def test_on_epoch_sees_each_epoch_and_can_stop_a_run_that_resumes_exactly(tmp_path, image_set):
    data, cfg = image_set(), tcfg(epochs=3)
    torch.manual_seed(0)
    reference = Autoencoder(CFG)
    fit(reference, ae_loss, data, cfg, device="cpu")

    seen = []
    def stop_after_first(history):
        seen.append([r["epoch"] for r in history.rows])
        return len(history) == 1
    torch.manual_seed(0)
    model = Autoencoder(CFG)
    h = fit(model, ae_loss, data, cfg, checkpoint=tmp_path / "run.pt", device="cpu", on_epoch=stop_after_first)
    assert seen == [[1]] and len(h) == 1 and not model.training
    assert load_checkpoint(tmp_path / "run.pt")["epoch"] == 1 and not load_checkpoint(tmp_path / "run.pt")["done"]
    h = fit(model, ae_loss, data, cfg, checkpoint=tmp_path / "run.pt", device="cpu", on_epoch=seen.append)
    assert len(h) == 3 and len(seen) == 3       # None from the callback: keep going
    assert same_weights(weights(reference), model.state_dict())


def test_checkpoint_from_other_config_is_refused(tmp_path, image_set):
    fit(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=1), checkpoint=tmp_path / "m.pt", device="cpu")
    other = Autoencoder(AEConfig(latent_dim=16, width=8))
    with pytest.raises(CheckpointError, match=r"another config.*latent_dim.*new checkpoint path"):
        load_or_train(other, ae_loss, image_set(), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    with pytest.raises(CheckpointError, match="other settings \\(lr\\)"):
        fit(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=2, lr=0.1), checkpoint=tmp_path / "m.pt", device="cpu")


def test_garbage_checkpoint_is_refused(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")


def test_load_or_train_loads_without_training(tmp_path, monkeypatch, image_set):
    torch.manual_seed(0)
    trained = Autoencoder(CFG)
    load_or_train(trained, ae_loss, image_set(), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    import cvae_lib.train as train_mod
    monkeypatch.setattr(train_mod, "fit", lambda *a, **k: pytest.fail("trained again"))
    fresh = Autoencoder(CFG)
    h = load_or_train(fresh, ae_loss, image_set(), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    assert len(h) == 1 and same_weights(weights(trained), fresh.state_dict())


def test_load_or_train_refuses_a_finished_run_with_other_settings(tmp_path, image_set):
    """A finished run is loaded only if it is the run asked for: another learning rate is not;
    more epochs are (they continue it)."""
    load_or_train(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    with pytest.raises(CheckpointError, match=r"other settings \(batch_size, lr\).*new checkpoint path"):
        load_or_train(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=1, lr=0.5, batch_size=8),
                      tmp_path / "m.pt", device="cpu")
    h = load_or_train(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=2), tmp_path / "m.pt", device="cpu")
    assert len(h) == 2


def test_a_finished_run_on_other_data_is_not_reused(tmp_path, image_set):
    """Another subset (here: other images, same size and labels) is another run."""
    load_or_train(Autoencoder(CFG), ae_loss, image_set(seed=0), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    with pytest.raises(CheckpointError, match="other data.*new checkpoint path"):
        load_or_train(Autoencoder(CFG), ae_loss, image_set(seed=1), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")
    with pytest.raises(CheckpointError, match="other data"):               # a resume, too
        fit(Autoencoder(CFG), ae_loss, image_set(seed=1), tcfg(epochs=2), checkpoint=tmp_path / "m.pt", device="cpu")
    load_or_train(Autoencoder(CFG), ae_loss, image_set(seed=0), tcfg(epochs=1), tmp_path / "m.pt", device="cpu")


def test_step_counts_come_from_one_formula_and_history_records_them(image_set):
    cfg = tcfg(epochs=3, batch_size=16)
    assert cfg.steps_per_epoch(40) == 3 and cfg.total_steps(40) == 9          # 16 + 16 + 8
    assert tcfg(max_steps=2).steps_per_epoch(40) == 2 and tcfg(max_steps=9).steps_per_epoch(40) == 3
    h = fit(Autoencoder(CFG), ae_loss, image_set(), tcfg(epochs=2, max_steps=2), device="cpu")
    assert h.steps == tcfg(epochs=2, max_steps=2).total_steps(40) == 4


def test_nan_loss_is_explained(tmp_path, image_set):
    def nan_loss(model, x, y):
        return ae_loss(model, x, y) * float("nan")
    with pytest.raises(FloatingPointError, match="became nan.*lower learning rate"):
        fit(Autoencoder(CFG), nan_loss, image_set(), tcfg(epochs=1, log_every=1), device="cpu")


def test_early_stopping_restores_best_weights(image_set):
    """With a huge learning rate the validation loss rises; training stops and keeps epoch 1."""
    def spy_loss(model, x, y):
        return ae_loss(model, x, y)
    torch.manual_seed(0)
    model = Autoencoder(CFG)
    val = image_set(20, 1)
    h = fit(model, spy_loss, image_set(), tcfg(epochs=10, lr=0.5, early_stopping=2), val=val, device="cpu")
    best = min(range(len(h)), key=lambda i: h["val_loss"][i])
    assert h.stopped_early and h.best_epoch == best + 1 and len(h) == h.best_epoch + 2
    from cvae_lib.train import evaluate
    assert evaluate(model, ae_loss, val)["loss"] == pytest.approx(h["val_loss"][best], rel=1e-5)


def test_ema_tracks_weights_with_warmup():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.99)
    start = ema.model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first update: d_0 = min(0.99, 1/10) = 0.1, so 90% of the way
    assert torch.allclose(ema.model.weight, start + 0.9)
    for _ in range(5000):
        ema.update(model)
    assert torch.allclose(ema.model.weight, model.weight, atol=1e-4)
    ema.updates = 10_000  # late in training the decay is the configured one
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.model.weight.clone()
    ema.update(model)
    assert torch.allclose(ema.model.weight, before + 0.01)
    assert not ema.model.weight.requires_grad


def test_learning_rate_schedules():
    from cvae_lib.train import learning_rate
    cos = TrainConfig(lr=1.0, warmup_steps=10, schedule="cosine")
    assert learning_rate(cos, 0, 110) == pytest.approx(0.1)           # warm-up starts low
    assert learning_rate(cos, 9, 110) == pytest.approx(1.0)           # peak after warm-up
    assert learning_rate(cos, 60, 110) == pytest.approx(0.5, abs=0.02)  # half-way: half
    assert learning_rate(cos, 109, 110) < 0.01                        # ends near 0
    assert learning_rate(TrainConfig(lr=0.3), 500, 1000) == 0.3       # constant
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(TrainConfig(schedule="step"), 0, 10)


@pytest.mark.slow
def test_a_run_killed_again_and_again_resumes_to_the_uninterrupted_weights(tmp_path):
    """Fault injection: SIGKILL a training process at random moments (during imports, steps or
    checkpoint writes), restart it each time, and compare with a run that was never stopped."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CVAE_DEVICE": "cpu"}
    env.pop("WORLD_SIZE", None)

    def launch(out, ckpt):
        out.mkdir(exist_ok=True)
        return subprocess.Popen([sys.executable, str(worker), str(out), "vae", "6", str(ckpt)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    (tmp_path / "whole").mkdir()
    subprocess.run([sys.executable, str(worker), str(tmp_path / "whole"), "vae", "6", str(tmp_path / "w.pt")],
                   env=env, check=True, timeout=120)
    rng, kills = random.Random(0), 0
    while kills < 5:
        p = launch(tmp_path / "part", tmp_path / "p.pt")
        time.sleep(rng.uniform(1.0, 4.0))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
    assert launch(tmp_path / "part", tmp_path / "p.pt").wait(timeout=120) == 0
    whole = torch.load(tmp_path / "whole" / "result.pt", weights_only=True)
    part = torch.load(tmp_path / "part" / "result.pt", weights_only=True)
    assert all(torch.equal(part["weights"][k], v) for k, v in whole["weights"].items())
    assert kills > 0 and not list(tmp_path.glob(".p.pt.*.tmp"))          # stale temp files were swept
    assert [r["train_loss"] for r in part["rows"]] == [r["train_loss"] for r in whole["rows"]]


def test_an_unwritable_checkpoint_fails_before_training(monkeypatch):
    """A checkpoint that cannot be written is a WriteError before the first step, not a raw
    OSError after a whole epoch (/proc refuses new files, for root too)."""
    from cvae_lib.files import WriteError
    from cvae_lib.train import _Run

    data = ImageSet(torch.zeros(32, 3, 32, 32, dtype=torch.uint8), torch.arange(32) % 10)
    monkeypatch.setattr(_Run, "train_epoch", lambda *a, **k: pytest.fail("trained before checking the checkpoint"))
    with pytest.raises(WriteError, match="could not write"):
        fit(Autoencoder(CFG), ae_loss, data, tcfg(epochs=1), checkpoint="/proc/cvae-no-such-dir/run.pt", device="cpu")


def test_an_empty_set_is_refused_by_name():
    data = ImageSet(torch.zeros(32, 3, 32, 32, dtype=torch.uint8), torch.arange(32) % 10)
    empty = ImageSet(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="data set holds no images"):
        fit(Autoencoder(CFG), ae_loss, empty, tcfg(epochs=1), device="cpu")
    with pytest.raises(ValueError, match="val set holds no images"):
        fit(Autoencoder(CFG), ae_loss, data, tcfg(epochs=1), val=empty, device="cpu")
