"""Latent diffusion: the first stage, diffusion on latents (no clamping, no image mapping),
latent data sets for `fit`, and the sampler that puts them together (chapter 06)."""
import functools

import pytest
import torch

from cvae_lib.data import ImageSet, TensorSet
from cvae_lib.diffusion import Diffusion, DiffusionConfig
from cvae_lib.latent import LatentDiffusion, encode_set
from cvae_lib.metrics import frechet_distance, judge_scores
from cvae_lib.models.classifier import Classifier, ClassifierConfig
from cvae_lib.models.first_stage import FirstStage, FirstStageConfig, first_stage_loss
from cvae_lib.models.unet import UNet, UNetConfig
from cvae_lib.train import TrainConfig, fit

TINY = FirstStageConfig(width=8, latent_channels=4, disc_width=8)


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g)


# ----------------------------------------------------------------------------- the first stage

def test_first_stage_shapes_and_ranges():
    m = FirstStage(TINY).eval()
    x = _images()
    mu, logvar = m.posterior(x)
    assert mu.shape == logvar.shape == (6, *TINY.latent_shape) == (6, 4, 8, 8)
    out = m(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert m.decode_latent(m.encode_latent(x)).shape == x.shape


def test_set_scale_gives_unit_variance_latents_and_is_saved():
    m = FirstStage(TINY).eval()
    x = _images(40)
    scale = m.set_scale(x)
    assert scale > 0 and float(m.scale) == pytest.approx(scale)
    assert float(m.encode_latent(x).std()) == pytest.approx(1.0, rel=1e-4)
    assert "scale" in m.state_dict()                                   # travels with the weights
    z = m.encode_latent(x)
    torch.testing.assert_close(m.decode_latent(z), m.decode(m.posterior(x)[0]))


def test_kl_weight_scales_the_kl_term_only():
    torch.manual_seed(0)
    m = FirstStage(TINY)
    x = _images()
    torch.manual_seed(1)
    _, a = first_stage_loss(m, x)
    m.cfg.kl_weight *= 10
    torch.manual_seed(1)
    _, b = first_stage_loss(m, x)
    assert float(b["kl"]) == pytest.approx(10 * float(a["kl"]), rel=1e-5)
    assert float(b["rec"]) == pytest.approx(float(a["rec"]), rel=1e-6)


def _grads(m, loss):
    m.zero_grad()
    loss.backward()
    return {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in m.named_parameters()}


def test_without_adversarial_term_the_discriminator_gets_no_gradient():
    m = FirstStage(TINY)
    loss, terms = first_stage_loss(m, _images())
    g = _grads(m, loss)
    assert not any(v for k, v in g.items() if k.startswith("disc."))
    assert set(terms) == {"rec", "kl", "mse"}


def test_each_gan_player_is_moved_only_by_its_own_loss():
    """The generator's term must not train the discriminator, and the discriminator's hinge
    loss must not reach the autoencoder: one optimizer can then train both."""
    m = FirstStage(TINY)
    x = _images()
    torch.manual_seed(0)
    loss, terms = first_stage_loss(m, x, adversarial=True)
    assert {"g", "d", "lambda"} <= set(terms) and float(terms["lambda"]) >= 0
    # the discriminator's gradients are exactly those of its hinge loss on (x, detached x_hat)
    m.zero_grad()
    loss.backward()
    got = {k: p.grad.clone() for k, p in m.disc.named_parameters()}
    torch.manual_seed(0)                                  # the same z draw as inside the loss
    mu, logvar = m.posterior(x)
    x_hat = m.head(m.decoder(mu + (0.5 * logvar).exp() * torch.randn_like(mu))).detach()
    xs = x * 2 - 1
    d = 0.5 * (torch.relu(1 - m.disc(xs)).mean() + torch.relu(1 + m.disc(x_hat)).mean())
    m.zero_grad()
    d.backward()
    for k, p in m.disc.named_parameters():
        torch.testing.assert_close(got[k], p.grad, rtol=1e-4, atol=1e-7)


def test_adversarial_loss_evaluates_without_gradients():
    m = FirstStage(TINY).eval()
    with torch.no_grad():
        loss, terms = first_stage_loss(m, _images(), adversarial=True)
    assert torch.isfinite(loss) and float(terms["lambda"]) == pytest.approx(TINY.disc_weight)


@pytest.mark.slow
def test_fit_trains_the_first_stage_and_its_gan_phase(image_set):
    data = image_set(16)
    m = FirstStage(TINY)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, progress=False)
    h = fit(m, first_stage_loss, data, cfg, device="cpu")
    assert h["train_rec"][-1] < h["train_rec"][0]
    h2 = fit(m, functools.partial(first_stage_loss, adversarial=True), data,
             TrainConfig(epochs=1, batch_size=8, lr=1e-4, progress=False), device="cpu")
    assert all(k in h2.rows[0] for k in ("train_g", "train_d", "train_lambda"))


# ----------------------------------------------------------------------------- diffusion on latents

def test_latent_diffusion_config_never_clips_and_maps_nothing():
    d = Diffusion(DiffusionConfig(T=100, data="latent"))
    assert not d.clips and Diffusion(DiffusionConfig(T=100)).clips        # images clip by default
    z = torch.randn(3, 4, 8, 8) * 5
    assert torch.equal(d.to_process(z), z) and torch.equal(d.from_process(z), z)
    with pytest.raises(ValueError, match="latents"):
        Diffusion(DiffusionConfig(data="latent", clip_x0=True))
    with pytest.raises(ValueError, match="data must be"):
        Diffusion(DiffusionConfig(data="pixels"))


def test_latent_samples_are_not_clamped_or_mapped_to_unit_range():
    """An oracle that predicts eps for x0 = 3 (outside [-1, 1]) must yield latents near 3; an
    image diffusion would clamp x0 to 1 and map the result to [0, 1]."""
    d = Diffusion(DiffusionConfig(T=50, data="latent"))
    ab = d.alpha_bar

    def oracle(xt, t, y=None):
        a = ab[t].view(-1, 1, 1, 1)
        return (xt - a.sqrt() * 3.0) / (1 - a).sqrt()

    z = d.ddim_sample(oracle, 2, None, steps=10, shape=(4, 8, 8), progress=False)
    assert z.shape == (2, 4, 8, 8)
    torch.testing.assert_close(z, torch.full_like(z, 3.0), atol=1e-3, rtol=0)
    x = Diffusion(DiffusionConfig(T=50)).ddim_sample(oracle, 2, None, steps=10, shape=(4, 8, 8), progress=False)
    assert x.max() <= 1.0                                                  # images: clamped and mapped


def test_train_loss_uses_latents_as_they_are():
    d = Diffusion(DiffusionConfig(T=100, data="latent"))
    z = torch.randn(4, 4, 8, 8) * 3
    seen = {}

    def spy(xt, t, y):
        seen["xt"], seen["t"] = xt, t
        return torch.zeros_like(xt)

    torch.manual_seed(0)
    d.train_loss(spy, z, None)
    torch.manual_seed(0)
    t = torch.randint(0, 100, (4,))
    eps = torch.randn_like(z)
    torch.testing.assert_close(seen["xt"], d.add_noise(z, t, eps))


def test_unet_latent_config_maps_latent_grids_to_themselves():
    cfg = UNetConfig.latent(in_channels=4, resolution=8, num_classes=10, width=16)
    net = UNet(cfg)
    z = torch.randn(2, 4, 8, 8)
    assert net(z, torch.tensor([0, 999]), torch.tensor([3, 10])).shape == z.shape
    assert 4 in cfg.attn_resolutions


# ----------------------------------------------------------------------------- latent data sets

def test_tensor_set_batches_like_an_image_set_and_refuses_image_augmentation():
    x = torch.randn(10, 4, 8, 8)
    y = torch.arange(10) % 2
    s = TensorSet(x, y)
    seen = torch.cat([b for b, _ in s.batches(3, seed=1, epoch=2)])
    assert sorted(seen[:, 0, 0, 0].tolist()) == sorted(x[:, 0, 0, 0].tolist())
    again = torch.cat([b for b, _ in s.batches(3, seed=1, epoch=2)])
    assert torch.equal(seen, again)
    imgs = ImageSet(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), y)
    order_img = torch.cat([yy for _, yy in imgs.take(torch.arange(10)).batches(3, seed=1, epoch=2)])
    order_lat = torch.cat([yy for _, yy in s.batches(3, seed=1, epoch=2)])
    assert torch.equal(order_img, order_lat)                               # the same permutation
    with pytest.raises(ValueError, match="latents"):
        next(s.batches(3, hflip=True))
    with pytest.raises(ValueError, match="float"):
        TensorSet(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))


def test_encode_set_mirrors_on_the_images(image_set):
    m = FirstStage(TINY).eval()
    data = image_set(5)
    lat = encode_set(m, data, mirror=True, batch_size=2)
    assert lat.x.shape == (10, 4, 8, 8) and lat.y.tolist() == [0, 1, 2, 3, 4] * 2
    torch.testing.assert_close(lat.x[5:], m.encode_latent(data.images().flip(3)))
    assert m.training is False


def test_fit_trains_a_prior_on_latents():
    d = Diffusion(DiffusionConfig(T=100, null_label=10, data="latent"))
    g = torch.Generator().manual_seed(0)
    lat = TensorSet(torch.randn(32, 4, 8, 8, generator=g) * 0.1 + 1.0, torch.arange(32) % 10)
    net = UNet(UNetConfig.latent(in_channels=4, width=16))
    h = fit(net, d.train_loss, lat, TrainConfig(epochs=4, batch_size=16, lr=2e-3, progress=False), device="cpu")
    assert h["train_loss"][-1] < h["train_loss"][0]
    assert h.steps == 8


# ----------------------------------------------------------------------------- the sampler

def test_latent_diffusion_samples_images_and_checks_its_parts():
    first = FirstStage(TINY).eval()
    prior = UNet(UNetConfig.latent(in_channels=4, width=16, num_classes=10)).eval()
    ldm = LatentDiffusion(first, prior, Diffusion(DiffusionConfig(T=50, null_label=10, data="latent")))
    x = ldm.sample(torch.tensor([0, 6, 6]), steps=4, guidance=2.0,
                   generator=torch.Generator().manual_seed(0), progress=False)
    assert x.shape == (3, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    again = ldm.sample(torch.tensor([0, 6, 6]), steps=4, guidance=2.0,
                       generator=torch.Generator().manual_seed(0), progress=False)
    assert torch.equal(x, again)
    with pytest.raises(ValueError, match="data='latent'"):
        LatentDiffusion(first, prior, Diffusion(DiffusionConfig(T=50, null_label=10)))
    with pytest.raises(ValueError, match="null class"):
        LatentDiffusion(first, prior, Diffusion(DiffusionConfig(T=50, null_label=3, data="latent")))


def test_judge_scores_match_their_definitions():
    judge = Classifier(ClassifierConfig()).eval()
    x, ref = _images(30, 0), _images(40, 1)
    y = torch.arange(30) % 10
    with torch.no_grad():
        fr = judge.features(ref)
        f = judge.features(x)
        acc = float((judge.head(f).argmax(1) == y).float().mean())
    s = judge_scores(judge, x, y, fr, batch_size=7)
    assert s["fd"] == pytest.approx(frechet_distance(f, fr), rel=1e-5)
    assert s["acc"] == pytest.approx(acc)
    assert set(s) == {"fd", "kid", "acc"}

