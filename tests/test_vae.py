"""The VAE and the study's CVAE: shapes, gradients, conditioning, the loss and its schedule."""
import math

import pytest
import torch

from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.models.vae import VAE, VAEConfig, vae_loss
from cvae_lib.train import TrainConfig, fit, load_model

SMALL = dict(width=8, hidden=32, latent_dim=4)


def _batch(b=6, seed=0):
    """Smooth random images on the 256 levels (B, 3, 32, 32) in [0, 1], labels 0, 1, 2, ..."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=32, mode="bilinear", align_corners=False)
    return torch.round(x * 255) / 255, torch.arange(b) % 10


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic_mixture"])
def test_vae_shapes_and_image_ranges(spatial, likelihood):
    torch.manual_seed(0)
    model = VAE(VAEConfig(spatial=spatial, likelihood=likelihood, n_mix=2, **SMALL))
    x, _ = _batch()
    params, mu, logvar = model(x)
    z_shape = (4, 4, 4) if spatial else (4,)
    assert params.shape == (6, model.likelihood.out_channels, 32, 32)
    assert mu.shape == logvar.shape == (6, *z_shape)
    for img in (model.reconstruct(x), model.sample(3)):
        assert img.shape[1:] == (3, 32, 32) and 0 <= img.min() and img.max() <= 1


def test_gradients_flow_through_the_reparameterisation_to_the_encoder():
    torch.manual_seed(0)
    model = VAE(VAEConfig(likelihood="logistic", **SMALL))
    x, _ = _batch()
    params, mu, logvar = model(x)
    model.likelihood.nll(params, x).mean().backward()   # reconstruction term only, no KL
    for p in list(model.mu_head.parameters()) + list(model.logvar_head.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_default_cvae_config_is_the_studys_model():
    cfg = CVAEConfig()
    assert (cfg.n_stages, cfg.residual, cfg.likelihood, cfg.spatial, cfg.condition_encoder) == \
        (3, False, "bernoulli", False, False)
    model = CVAE(cfg)
    assert not any(m.residual for m in model.modules() if hasattr(m, "residual"))


def test_cvae_output_changes_with_the_label_for_the_same_z():
    """Residual blocks here: without them the untrained decoder's output barely depends on its
    input at all (the signal shrinks ~1e-8 through the study's plain stack at PyTorch's init)."""
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(residual=True, **SMALL)).eval()
    z = torch.randn(1, 4).repeat(10, 1)                  # the same z for all ten classes
    x = model.sample(torch.arange(10), z=z)
    diffs = (x[1:] - x[:1]).abs().flatten(1).amax(1)     # each class against class 0
    assert (diffs > 1e-3).all(), diffs
    torch.testing.assert_close(x, model.sample(torch.arange(10), z=z))  # deterministic given z, y
    model.cfg.label_weight = 0.0                         # cut the label path: classes look alike
    x = model.sample(torch.arange(10), z=z)
    torch.testing.assert_close(x[1:], x[:1].expand(9, -1, -1, -1))


def test_cvae_encoder_sees_the_label_only_when_asked():
    torch.manual_seed(0)
    x, _ = _batch(2)
    y0, y1 = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    plain, cond = CVAE(CVAEConfig(**SMALL)), CVAE(CVAEConfig(condition_encoder=True, **SMALL))
    torch.testing.assert_close(plain.encode(x, y0)[0], plain.encode(x, y1)[0])
    assert not torch.allclose(cond.encode(x, y0)[0], cond.encode(x, y1)[0])


def test_uniform_noise_is_off_the_prior_and_normal_noise_is_on_it():
    model = CVAE(CVAEConfig(**SMALL))
    g = torch.Generator().manual_seed(0)
    u, n = model.prior_noise(20_000, "uniform", g), model.prior_noise(20_000, "normal", g)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - math.sqrt(1 / 12)) < 0.01 and u.min() >= 0
    assert abs(n.mean()) < 0.01 and abs(n.std() - 1) < 0.01


def test_sample_grid_shares_z_along_a_row_and_walks_the_labels():
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(residual=True, **SMALL)).eval()
    grid = model.sample_grid(3, generator=torch.Generator().manual_seed(0))              # (30, 3, 32, 32)
    z = model.prior_noise(3, generator=torch.Generator().manual_seed(0))                 # the rows' z
    for r in range(3):
        row = model.sample(torch.arange(10), z=z[r].expand(10, -1))
        torch.testing.assert_close(grid[10 * r:10 * (r + 1)], row)
    g = torch.Generator().manual_seed(0)
    uniform = model.sample_grid(2, "uniform", g)
    torch.testing.assert_close(uniform[:10], model.sample(torch.arange(10), z=torch.rand(
        1, 4, generator=torch.Generator().manual_seed(0)).expand(10, -1)))


def test_kl_warmup_ramps_beta_with_the_step_that_fit_passes():
    torch.manual_seed(0)
    model = VAE(VAEConfig(kl_warmup_steps=4, beta=2.0, **SMALL))
    x, _ = _batch(2)
    betas = [float(vae_loss(model, x, step=s)[1]["beta"]) for s in range(6)]
    assert betas == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert float(vae_loss(model, x)[1]["beta"]) == 2.0        # no step (evaluation): beta itself


def test_fit_passes_the_optimizer_step_to_the_kl_warmup(tmp_path, image_set):
    """Four steps per epoch, two epochs with a resume between them: the warm-up sees 0..7."""
    seen = []

    def spy(model, x, y, step):
        seen.append(step)
        return vae_loss(model, x, y, step=step)

    data = image_set(16)
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False, channels_last=False)
    model = VAE(VAEConfig(kl_warmup_steps=8, **SMALL))
    fit(model, spy, data, cfg, checkpoint=tmp_path / "v.pt", device="cpu")
    fit(model, spy, data, TrainConfig(**{**cfg.__dict__, "epochs": 2}), checkpoint=tmp_path / "v.pt", device="cpu")
    assert seen == list(range(8))


def test_shipped_files_with_the_old_update_counter_still_load():
    """Files written before the step came from fit hold an `n_updates` buffer: it is ignored."""
    model = VAE(VAEConfig(**SMALL))
    state = {**model.state_dict(), "n_updates": torch.tensor(7)}
    VAE(VAEConfig(**SMALL)).load_state_dict(state)            # strict: no unexpected-key error


def test_loss_is_negative_elbo_per_dimension_and_bpd_only_for_discrete_likelihoods():
    torch.manual_seed(0)
    x, y = _batch()
    model = CVAE(CVAEConfig(likelihood="logistic", **SMALL)).eval()
    loss, terms = cvae_loss(model, x, y)
    torch.testing.assert_close(loss, (terms["rec"] + terms["kl"]) / 3072)
    torch.testing.assert_close(terms["bpd"], loss / math.log(2))
    assert "bpd" not in cvae_loss(CVAE(CVAEConfig(**SMALL)), x, y)[1]


@pytest.mark.parametrize("model_cls,cfg_cls,loss_fn", [(VAE, VAEConfig, vae_loss), (CVAE, CVAEConfig, cvae_loss)])
def test_overfitting_one_batch_drives_the_loss_down(model_cls, cfg_cls, loss_fn):
    torch.manual_seed(0)
    model = model_cls(cfg_cls(likelihood="gaussian", sigma=0.1, residual=True, **SMALL))
    x, y = _batch(4)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        loss, _ = loss_fn(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, (losses[:5], losses[-5:])


def test_checkpoint_round_trip_rebuilds_the_same_cvae(tmp_path, image_set):
    torch.manual_seed(0)
    data = image_set(8)
    cfg = CVAEConfig(spatial=True, likelihood="logistic_mixture", n_mix=2, kl_warmup_steps=3, **SMALL)
    model = CVAE(cfg)
    fit(model, cvae_loss, data, TrainConfig(epochs=1, batch_size=4, progress=False, channels_last=False),
        checkpoint=tmp_path / "c.pt", device="cpu")
    again = load_model(tmp_path / "c.pt", CVAE, CVAEConfig)
    assert again.cfg == cfg
    z, y = torch.randn(2, 4, 4, 4), torch.tensor([3, 7])
    torch.testing.assert_close(again.sample(y, z=z), model.sample(y, z=z))
