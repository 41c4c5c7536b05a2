"""The DDPM U-Net: the paper's size, shapes, time and class conditioning, trainability, checkpoints."""
import math

import pytest
import torch

from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.models.unet import UNet, UNetConfig, timestep_embedding
from cvae_lib.train import load_model, save_checkpoint


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Convolutions on a busy 2-core machine run many times slower with 2 OpenMP threads than with 1."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = UNetConfig(width=8, width_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), groups=4,
                  resolution=32)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_config_has_the_papers_parameter_count():
    """Ho et al. 2020 report 35.7M parameters for their CIFAR-10 model; the official
    TensorFlow model has exactly 35,746,307."""
    assert n_params(UNet(UNetConfig.paper())) == 35_746_307


def test_class_embedding_adds_one_row_per_class_plus_null():
    base, cond = UNet(UNetConfig()), UNet(UNetConfig(num_classes=10))
    assert n_params(cond) - n_params(base) == 11 * 4 * UNetConfig().width


def test_default_is_small():
    assert n_params(UNet(UNetConfig())) < 2_000_000


@pytest.mark.parametrize("cfg", [TINY, UNetConfig(width=8, groups=4, num_classes=10),
                                 UNetConfig(width=8, width_mult=(1, 2, 2, 2), num_res_blocks=2, groups=4)])
def test_output_shape_matches_input(cfg):
    torch.manual_seed(0)
    model = UNet(cfg)
    x = torch.randn(3, 3, 32, 32)
    t = torch.tensor([0, 500, 999])
    y = torch.tensor([0, 9, 10]) if cfg.num_classes else None
    out = model(x, t, y)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_timestep_embedding_is_the_sinusoid():
    e = timestep_embedding(torch.tensor([0, 7]), 16)              # (2, 16)
    assert e.shape == (2, 16)
    assert torch.equal(e[0, :8], torch.zeros(8)) and torch.equal(e[0, 8:], torch.ones(8))
    w = math.exp(-math.log(10000) * 3 / 7)                        # frequency k = 3 of 8
    assert e[1, 3].item() == pytest.approx(math.sin(7 * w), abs=1e-6)
    assert e[1, 8 + 3].item() == pytest.approx(math.cos(7 * w), abs=1e-6)


def test_output_depends_on_time_and_class_and_none_means_null():
    torch.manual_seed(0)
    model = UNet(UNetConfig(width=8, groups=4, num_classes=10)).eval()
    for p in model.parameters():                                 # the zero-initialised parts too
        p.data.normal_(0, 0.1)
    x = torch.randn(2, 3, 32, 32)
    t = torch.tensor([10, 10])
    base = model(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(base, model(x, torch.tensor([900, 900]), torch.tensor([1, 1])))
    assert not torch.allclose(base, model(x, t, torch.tensor([2, 2])))
    torch.testing.assert_close(model(x, t, None), model(x, t, torch.tensor([10, 10])))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = UNet(UNetConfig(width=8, groups=4, num_classes=10))
    Diffusion(DiffusionConfig(null_label=10, p_uncond=0.5)).train_loss(
        model, torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_one_batch_can_be_overfit():
    """Fixed (xt, t, eps): a tiny U-Net drives the eps-prediction error far below its start."""
    torch.manual_seed(0)
    model = UNet(TINY)
    d = Diffusion(DiffusionConfig(T=1000))
    x0 = torch.rand(4, 3, 32, 32) * 2 - 1
    eps, t = torch.randn_like(x0), torch.tensor([100, 300, 600, 900])
    xt = d.add_noise(x0, t, eps)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(xt, t), eps)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = UNet(UNetConfig(width=8, groups=4, num_classes=10)).eval()
    from dataclasses import asdict
    save_checkpoint(tmp_path / "unet.pt", {"format": 1, "model_class": "UNet",
                                           "model_config": asdict(model.cfg), "model": model.state_dict()})
    again = load_model(tmp_path / "unet.pt", UNet, UNetConfig)
    x, t, y = torch.randn(2, 3, 32, 32), torch.tensor([3, 4]), torch.tensor([5, 10])
    assert again.cfg == model.cfg
    torch.testing.assert_close(again(x, t, y), model(x, t, y))
