"""Scores that need the model: the plug-in Gaussian bits/dim, its sigma, reconstructions, step time."""
import math

import pytest
import torch

from cvae_lib.data import ImageSet
from cvae_lib.evaluation import (
    class_rows,
    output_spread,
    plugin_bpd,
    reconstruction_scores,
    recorded_rows,
    rms_error,
    score_rows,
    seconds_per_step,
)
from cvae_lib.models import likelihoods as L
from cvae_lib.models.cvae import CVAE, CVAEConfig, cvae_loss
from cvae_lib.weights import read_metadata, shipped

SMALL = dict(width=8, hidden=32, latent_dim=4)
NO_EDGE_BINS = dict(low=1, high=255)   # random pixels never in the likelihood's edge bins


class _Exact(torch.nn.Module):
    """A 'model' with q(z|x, y) = p(z) = N(0, 1) (KL 0) whose decoder returns image number y: with
    labels 0..n-1 that is x itself."""

    def __init__(self, data: ImageSet):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.images = data.images()

    def encode(self, x, y):
        return torch.zeros(len(x), 2), torch.zeros(len(x), 2)

    def decode_mean(self, z, y):
        return self.images[y]

    def reconstruct(self, x, y):
        return self.decode_mean(self.encode(x, y)[0], y)


def test_rms_error_is_the_root_mean_square_on_the_minus_one_one_scale(image_set):
    torch.manual_seed(0)
    data = image_set(12, **NO_EDGE_BINS)
    model = CVAE(CVAEConfig(**SMALL)).eval()
    got = rms_error(model, data, seed=3)
    torch.manual_seed(3)
    x, y = data.images(), data.y
    mu, logvar = model.encode(x, y)
    x_mean = model.decode_mean(L.reparameterize(mu, logvar), y)
    assert math.isclose(got, float((2 * (x_mean - x)).pow(2).mean().sqrt()), rel_tol=1e-5)
    assert rms_error(model, data, seed=3, batch_size=5) == pytest.approx(got, rel=1e-5)


def test_plugin_bpd_of_an_exact_decoder_is_the_gaussian_bin_mass_plus_the_kl(image_set):
    """x_hat = x and KL 0: each pixel's bin, of width 2/255 on the [-1, 1] scale and centred on the
    mean, holds P = erf(1 / (255 sigma sqrt 2)), so the bits/dim are -log2 P."""
    data = image_set(10, **NO_EDGE_BINS)
    sigma = 0.01
    expected = -math.log2(math.erf(1 / (255 * sigma * math.sqrt(2))))
    assert plugin_bpd(_Exact(data), data, sigma, batch_size=4) == pytest.approx(expected, rel=1e-4)


def test_plugin_bpd_repeats_with_the_seed_and_grows_away_from_the_best_sigma(image_set):
    torch.manual_seed(0)
    data = image_set(12, **NO_EDGE_BINS)
    model = CVAE(CVAEConfig(**SMALL)).eval()
    sigma = rms_error(model, data)
    assert plugin_bpd(model, data, sigma) == plugin_bpd(model, data, sigma)
    best = plugin_bpd(model, data, sigma)
    assert plugin_bpd(model, data, 0.5 * sigma) > best and plugin_bpd(model, data, 2 * sigma) > best


def test_reconstruction_scores_of_a_perfect_reconstruction(image_set):
    data = image_set(10, **NO_EDGE_BINS)
    p, s = reconstruction_scores(_Exact(data), data, batch_size=4)
    assert p > 100 and math.isclose(s, 1.0, abs_tol=1e-6)


def test_seconds_per_step_leaves_the_model_untouched(image_set):
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(**SMALL))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = image_set(4, **NO_EDGE_BINS).images(), torch.arange(4)
    sec = seconds_per_step(model, cvae_loss, x, y, n=2)
    assert sec > 0
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_output_spread_is_the_std_over_z_of_the_decoder_output_and_restores_the_mode():
    model = CVAE(CVAEConfig(**SMALL)).train()
    torch.manual_seed(5)
    got = output_spread(model, n=6, label=3)
    assert model.training
    torch.manual_seed(5)
    z = torch.randn(6, model.cfg.latent_dim)
    with torch.no_grad():
        out = model.eval().decode(z, torch.full((6,), 3))                 # (6, 3, 32, 32)
    assert got == pytest.approx(float(out.std(0).mean()), rel=1e-6)


def test_output_spread_of_a_decoder_that_ignores_z_is_zero():
    model = CVAE(CVAEConfig(**SMALL))
    model.decode = lambda z, y: torch.ones(len(z), 3, 32, 32) * y.view(-1, 1, 1, 1)   # reads y only
    assert output_spread(model, n=4, label=2) == 0.0


def test_score_rows_formats_the_bpd_given_and_the_reconstruction_scores(image_set):
    data = image_set(10, **NO_EDGE_BINS)
    (row,) = score_rows({"exact": (_Exact(data), 1.23456, 61.6)}, data)
    p, s = reconstruction_scores(_Exact(data), data)
    assert row == {"model": "exact", "test bits/dim": "1.235", "PSNR (dB)": f"{p:.2f}", "SSIM": f"{s:.4f}",
                   "training (s)": "62"}


def test_recorded_rows_read_the_shipped_files_metadata():
    names = ["study_airplane", "study_hundred_per_class"]
    rows = recorded_rows(names)
    assert [r["shipped run"] for r in rows] == names
    for name, row in zip(names, rows):
        m = read_metadata(shipped(name))["metrics"]
        assert row["epochs"] == str(m["epochs"]) and row["training images"] == f"{m['n_train']:,}"
        assert row["KL (nats/image)"] == f"{m['test_kl']:.1f}"
        assert row["test BCE + KL per sub-pixel"] == f"{m['test_loss']:.4f}"                # BCE: no -ELBO
    assert recorded_rows(["study_frog"], {"n": ("n_train", "{}")})[0].keys() == {"shipped run", "n"}


def test_class_rows_put_a_class_test_images_above_each_models_samples_of_it(image_set):
    data = image_set(40)                                               # 4 per class
    torch.manual_seed(0)
    a, b = CVAE(CVAEConfig(**SMALL)).eval(), CVAE(CVAEConfig(**SMALL)).eval()
    rows = class_rows(data, "frog", {"a": a, "b": b}, n=3, seed=5)
    assert list(rows) == ["frogs: test", "frogs: a", "frogs: b"]
    assert torch.equal(rows["frogs: test"], data.subset(["frog"], n_per_class=3).images())
    y = torch.full((3,), 6)                                            # frog is class 6
    assert torch.equal(rows["frogs: a"], a.sample(y, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(rows["frogs: b"], b.sample(y, generator=torch.Generator().manual_seed(5)))
    assert all(r.shape == (3, 3, 32, 32) for r in rows.values())


def test_an_untrained_plain_decoder_hardly_depends_on_z_and_a_residual_one_does():
    """Chapter 03's point about the study's blocks: at PyTorch's default initialisation a signal
    shrinks through the plain convolutions, and residual connections carry it."""
    torch.manual_seed(0)
    plain, residual = (output_spread(CVAE(CVAEConfig(**SMALL, residual=r))) for r in (False, True))
    assert residual > 1e4 * plain
