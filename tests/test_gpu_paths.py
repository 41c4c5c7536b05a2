"""The code paths a GPU run takes, run here on the CPU so they cannot rot unseen: torch.compile
(inductor compiles for the CPU too), bf16 autocast, channels_last, the fused optimizer flag, and
the EMA and checkpoint round trip of a compiled model."""
from __future__ import annotations

import pytest
import torch

from cvae_lib.models.ae import AEConfig, Autoencoder, ae_loss
from cvae_lib.runtime import amp_dtype, autocast, optimizer_flags, unwrap
from cvae_lib.train import EMA, TrainConfig, fit, load_model


@pytest.mark.slow
def test_a_compiled_bf16_channels_last_fit_on_the_cpu_checkpoints_the_plain_module(tmp_path, image_set):
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    ema = EMA(model, decay=0.9)
    cfg = TrainConfig(epochs=1, batch_size=16, compile=True, amp="bf16", channels_last=True, progress=False)
    h = fit(model, ae_loss, image_set(32), cfg, checkpoint=tmp_path / "c.pt", ema=ema, device="cpu")
    assert h.steps == 2 and 0 < h["train_loss"][0] < 1
    assert model.encoder.stem.weight.is_contiguous(memory_format=torch.channels_last)
    assert unwrap(torch.compile(model)) is model
    again = load_model(tmp_path / "c.pt", Autoencoder, AEConfig)          # keys without "_orig_mod."
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(again(x), model.eval()(x))
    ema_again = load_model(tmp_path / "c.pt", Autoencoder, AEConfig, ema=True)
    torch.testing.assert_close(ema_again(x), ema.model(x))


def test_cvae_amp_replaces_auto_but_not_an_explicit_mode(monkeypatch):
    monkeypatch.setenv("CVAE_AMP", "off")
    assert amp_dtype("cpu") is None and amp_dtype("cpu", "bf16") is torch.bfloat16
    monkeypatch.setenv("CVAE_AMP", "bf16")
    assert amp_dtype("cpu") is torch.bfloat16 and amp_dtype("cpu", "off") is None
    monkeypatch.setenv("CVAE_AMP", "fp32")
    with pytest.raises(ValueError, match="CVAE_AMP"):
        amp_dtype("cpu")


def test_bf16_autocast_runs_the_models_in_bf16_and_the_losses_in_fp32():
    assert amp_dtype("cpu", "bf16") is torch.bfloat16 and amp_dtype("cpu", "off") is None
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    x = torch.rand(4, 3, 32, 32)
    with autocast("cpu", "bf16"):
        out = model(x)
        loss = ae_loss(model, x)
    assert out.dtype is torch.bfloat16 and loss.dtype is torch.float32


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_the_fused_optimizer_flag_a_gpu_gets_is_accepted_by_torch(name):
    """optimizer_flags('cuda', ...) returns fused=True; torch's fused Adam also runs on the CPU,
    so the flag itself is checked here: one step equals the unfused step."""
    flags = optimizer_flags("cuda", name)
    assert flags == {"fused": True}
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    for p, kw in ((a, flags), (b, {})):
        opt = cls([p], lr=0.1, **kw)
        p.grad = torch.tensor([1.0, -2.0, 3.0])
        opt.step()
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16), ((6, 1), None)])
def test_auto_autocast_takes_fp16_on_a_t4_and_bf16_from_ampere_on(monkeypatch, capability, expected):
    """A T4 (7.5) emulates bf16 slowly, so "auto" gives it fp16 with a gradient scaler; Ampere and
    later (8.0+) get bf16; a Pascal card (6.1) has no tensor cores and stays in fp32."""
    from cvae_lib.runtime import grad_scaler

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert amp_dtype("cuda") is expected
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled: ("scaler", device, enabled))
    assert grad_scaler("cuda") == ("scaler", "cuda", expected is torch.float16)


def test_an_fp16_fit_scales_the_loss_and_resumes_with_the_scale_it_reached(tmp_path, image_set):
    """fp16 autocast (a T4's) with its gradient scaler, run on the CPU: the loss trains, the
    checkpoint keeps the scaler's state, and a resumed run continues from it."""
    torch.manual_seed(0)
    model = Autoencoder(AEConfig(latent_dim=8, width=8))
    cfg = TrainConfig(epochs=1, batch_size=16, amp="fp16", grad_clip=1.0, progress=False)
    h = fit(model, ae_loss, image_set(32), cfg, checkpoint=tmp_path / "c.pt", device="cpu")
    assert h.steps == 2 and 0 < h["train_loss"][0] < 1
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["scaler"]["scale"] > 0 and state["scaler"]["_growth_tracker"] == 2   # two good steps
    again = Autoencoder(AEConfig(latent_dim=8, width=8))
    h2 = fit(again, ae_loss, image_set(32), TrainConfig(**{**cfg.__dict__, "epochs": 2}), checkpoint=tmp_path / "c.pt",
             device="cpu")
    assert h2.steps == 4
    assert torch.load(tmp_path / "c.pt", weights_only=True)["scaler"]["_growth_tracker"] == 4
