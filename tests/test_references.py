"""The library's math against independent references, each test named after what it pins.

References: a NumPy float64 transcription of PixelCNN++'s `discretized_mix_logistic_loss`
(Salimans et al. 2017) written out here, torchmetrics' KID (its `poly_mmd` and its metric class
with an identity feature extractor) and diffusers' DDIM and DDPM schedulers. Tolerances allow
float rounding only (the library computes in float32, the references in float64 or float32).
"""
from __future__ import annotations

import itertools

import diffusers
import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

import cvae_lib.diffusion as diffusion_module
from cvae_lib import metrics
from cvae_lib.diffusion import Diffusion, DiffusionConfig, ddim_timesteps, to_unit
from cvae_lib.models.likelihoods import DiscretizedLogisticMixture

# ----------------------------------------------------------------------------- mixture of discretised logistics


def _log_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    a = a - a.max(axis=axis, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=axis, keepdims=True))


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _softplus(a: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, a)


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _pixelcnnpp_nll(x, logit_probs, means, log_scales, coeffs):
    """PixelCNN++'s `discretized_mix_logistic_loss` (pixel_cnn_pp/nn.py), in NumPy float64.

    x: (B, H, W, 3) on the 256 levels of [-1, 1]; logit_probs: (B, H, W, K); means, log_scales,
    coeffs: (B, H, W, 3, K), already the *effective* values (the original takes
    max(log_scales, -7) and tanh(coeffs) of its raw network output; the callers here pass
    transformed values directly). Returns the nll per image (B,) in nats (the original sums over
    the whole batch; here the sum stops at the image).
    """
    K = logit_probs.shape[-1]
    x = x[..., None] + np.zeros(K)                                    # (B, H, W, 3, K)
    m2 = means[..., 1, :] + coeffs[..., 0, :] * x[..., 0, :]
    m3 = means[..., 2, :] + coeffs[..., 1, :] * x[..., 0, :] + coeffs[..., 2, :] * x[..., 1, :]
    means = np.stack([means[..., 0, :], m2, m3], axis=-2)
    centered_x = x - means
    inv_stdv = np.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1.0 / 255.0)
    cdf_plus = _sigmoid(plus_in)
    min_in = inv_stdv * (centered_x - 1.0 / 255.0)
    cdf_min = _sigmoid(min_in)
    log_cdf_plus = plus_in - _softplus(plus_in)                       # edge case of 0
    log_one_minus_cdf_min = -_softplus(min_in)                        # edge case of 255
    cdf_delta = cdf_plus - cdf_min
    mid_in = inv_stdv * centered_x
    log_pdf_mid = mid_in - log_scales - 2.0 * _softplus(mid_in)
    log_probs = np.where(x < -0.999, log_cdf_plus,
                         np.where(x > 0.999, log_one_minus_cdf_min,
                                  np.where(cdf_delta > 1e-5, np.log(np.maximum(cdf_delta, 1e-12)),
                                           log_pdf_mid - np.log(127.5))))
    log_probs = log_probs.sum(axis=3) + _log_softmax(logit_probs, axis=-1)   # (B, H, W, K)
    interior = (x > -0.999) & (x < 0.999)
    min_delta = cdf_delta[interior].min() if interior.any() else np.inf
    return -_logsumexp(log_probs, axis=-1).sum(axis=(1, 2)), min_delta


def _soft_clamp_np(a: np.ndarray, lo: float = -7.0, hi: float = 5.0) -> np.ndarray:
    """The library's documented soft clamp, written out: mid + half tanh((a - mid) / half)."""
    mid, half = (hi + lo) / 2, (hi - lo) / 2
    return mid + half * np.tanh((a - mid) / half)


K_MIX = 3


def _mixture_case(seed: int = 0, B: int = 3, H: int = 4, W: int = 5):
    """Raw decoder output params (B, 10K, H, W) float32, images x (B, 3, H, W) on the 256 levels of
    [0, 1] with edge pixels (0 and 1) in every channel, the same pixels on [-1, 1] in PixelCNN++'s
    (B, H, W, 3) layout, and the *effective* parameters in its (B, H, W, 3, K) layout, float64.

    Layout of params, as `DiscretizedLogisticMixture._split` reads it: channels 0..K-1 are the
    mixture logits, then channel K + kind * 3K + c * K + k holds, for kind 0, the mean mu of colour
    c (R, G, B) and component k; kind 1: its raw log-scale; kind 2: the raw coupling coefficient
    c_c (c_0, c_1, c_2 of mean_G = mu_G + c_0 x_R, mean_B = mu_B + c_1 x_R + c_2 x_G).
    The library applies soft_clamp(., -7, 1) to log-scales and tanh to coefficients; the test
    applies the same transforms explicitly, in NumPy (neither is the identity on the raw values
    chosen: leaving out either changes the nll by 0.7% or more, far beyond the tolerance).

    The means are those of a decoder that fits the data: coupled means within about 0.1 of the
    pixels, scales not tiny (effective log-scale in [-3, -1.15], s in [0.05, 0.32]), so every
    interior bin has probability > 1e-5 (the caller checks): there PixelCNN++ (density fallback
    below 1e-5) and the library (fallback below 1e-10) take the same branch.
    """
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (B, 3, H, W), generator=g)
    levels[:, :, 0, 0], levels[:, :, 0, 1] = 0, 255                   # the two edge bins
    levels[0, 0, 1, :2] = torch.tensor([0, 255])                      # edges mixed with interiors
    x = levels.float() / 255.0                                        # the library's input
    xs = (levels.double() * 2 / 255 - 1).unsqueeze(2)                 # (B, 3, 1, H, W), exact levels

    f32 = lambda t: t.float().double()                                # noqa: E731  values as the library stores them
    shape = (B, 3, K_MIX, H, W)
    logits = f32(torch.randn(B, K_MIX, H, W, generator=g, dtype=torch.float64))
    raw_log_s = f32(torch.rand(*shape, generator=g, dtype=torch.float64) * 2.0 - 3.0)
    base = torch.tensor([0.9, -0.6, 0.35], dtype=torch.float64).view(1, 3, 1, 1, 1)
    raw_coef = f32(base + 0.2 * torch.randn(*shape, generator=g, dtype=torch.float64))
    c = torch.tanh(raw_coef)
    shift = 0.1 * torch.randn(*shape, generator=g, dtype=torch.float64)
    mu = torch.stack([xs[:, 0].expand(-1, K_MIX, -1, -1), xs[:, 1] - c[:, 0] * xs[:, 0],
                      xs[:, 2] - c[:, 1] * xs[:, 0] - c[:, 2] * xs[:, 1]], dim=1) + shift
    mu = f32(mu)
    params = torch.cat([logits, torch.stack([mu, raw_log_s, raw_coef], dim=1).reshape(B, 9 * K_MIX, H, W)], 1)
    params = params.float()

    to_pcnn = lambda t: np.moveaxis(t.numpy(), (1, 2), (3, 4))          # noqa: E731  (B, 3, K, H, W) -> (B, H, W, 3, K)
    eff = {"logit_probs": np.moveaxis(logits.numpy(), 1, 3),
           "means": to_pcnn(mu),
           "log_scales": to_pcnn(torch.from_numpy(_soft_clamp_np(raw_log_s.numpy(), -7.0, 1.0))),
           "coeffs": to_pcnn(torch.from_numpy(np.tanh(raw_coef.numpy())))}
    x_ref = np.moveaxis(xs.squeeze(2).numpy(), 1, 3)                  # (B, H, W, 3)
    return params, x, x_ref, eff


def test_mixture_nll_equals_pixelcnnpp_discretized_mix_logistic_loss():
    lik = DiscretizedLogisticMixture(n_mix=K_MIX)
    for seed in (0, 1):
        params, x, x_ref, eff = _mixture_case(seed)
        ref, min_delta = _pixelcnnpp_nll(x_ref, **eff)
        assert min_delta > 1e-5            # above both density-fallback thresholds (1e-5, 1e-10)
        ours = lik.nll(params, x).double().numpy()
        np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=0)


def test_mixture_edge_bins_are_open_ended_like_pixelcnnpp():
    """Images entirely at 0 or entirely at 1: only the edge-bin branches (log CDF and log
    survival function) are used."""
    lik = DiscretizedLogisticMixture(n_mix=K_MIX)
    params, _, _, eff = _mixture_case(2)
    B, _, H, W = params.shape
    for level in (0, 255):
        x = torch.full((B, 3, H, W), level / 255.0)
        x_ref = np.full((B, H, W, 3), level * 2 / 255 - 1)
        ref, _ = _pixelcnnpp_nll(x_ref, **eff)
        np.testing.assert_allclose(lik.nll(params, x).double().numpy(), ref, rtol=2e-6, atol=0)


def test_mixture_coupling_coefficients_are_in_pixelcnnpp_order():
    """c_0 couples G to R, c_1 B to R, c_2 B to G: the reference agrees with the library only for
    that order, and swapping c_0 and c_1 in the library's input changes its nll."""
    lik = DiscretizedLogisticMixture(n_mix=K_MIX)
    params, x, x_ref, eff = _mixture_case(3)
    ours = lik.nll(params, x).double().numpy()
    for perm in itertools.permutations(range(3)):
        ref, _ = _pixelcnnpp_nll(x_ref, **{**eff, "coeffs": eff["coeffs"][..., list(perm), :]})
        if perm == (0, 1, 2):
            np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=0)
        else:
            assert np.abs(ours - ref).min() > 1.0, perm                # nats per image
    swapped = params.clone()
    c0 = slice(K_MIX + 6 * K_MIX, K_MIX + 7 * K_MIX)
    c1 = slice(K_MIX + 7 * K_MIX, K_MIX + 8 * K_MIX)
    swapped[:, c0], swapped[:, c1] = params[:, c1], params[:, c0]
    assert np.abs(lik.nll(swapped, x).double().numpy() - ours).min() > 1.0


# ----------------------------------------------------------------------------- KID


def _kid_features(seed: int = 0, n: int = 60, d: int = 12):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = 1.3 * torch.randn(n, d, generator=g, dtype=torch.float64) + 0.4
    return a, b


def _library_subsets(a, b, subsets, subset_size, seed):
    """The subsets `metrics.kid` draws: per subset one randperm of a, then one of b, from one
    torch.Generator seeded with `seed`."""
    g = torch.Generator().manual_seed(seed)
    m = min(subset_size, len(a), len(b))
    for _ in range(subsets):
        yield a[torch.randperm(len(a), generator=g)[:m]], b[torch.randperm(len(b), generator=g)[:m]]


def test_kid_equals_torchmetrics_poly_mmd_on_the_same_subsets():
    """Raw MMD^2 (no x1000 scaling), cubic kernel (x.y / D + 1)^3; std over subsets with
    Bessel's correction (torch.std). A degree-2 kernel gives a clearly different value.
    rel=1e-6: the library rounds its per-subset values to float32 (torch.tensor of floats)."""
    a, b = _kid_features()
    subsets, size = 6, 40
    mean, std = metrics.kid(a, b, subsets=subsets, subset_size=size, seed=3)
    cubic = torch.stack([poly_mmd(x, y, degree=3) for x, y in _library_subsets(a, b, subsets, size, 3)])
    assert mean == pytest.approx(float(cubic.mean()), rel=1e-6)
    assert std == pytest.approx(float(cubic.std(unbiased=True)), rel=1e-6)
    quadratic = torch.stack([poly_mmd(x, y, degree=2) for x, y in _library_subsets(a, b, subsets, size, 3)])
    assert abs(mean - float(quadratic.mean())) > 0.2 * abs(mean)


def test_kid_mean_equals_torchmetrics_kernel_inception_distance():
    """torchmetrics' metric class fed the features through an identity "feature extractor"; its
    randperms use the global RNG, seeded here like the library's generator, so both draw the
    same subsets. torchmetrics reports the std without Bessel's correction, the library with."""
    a, b = _kid_features(1)
    subsets, size, seed = 5, 30, 0
    with pytest.warns(UserWarning, match="save all extracted features"):
        ref = KernelInceptionDistance(feature=nn.Identity(), subsets=subsets, subset_size=size)
    ref.update(a, real=True)
    ref.update(b, real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        ref_mean, ref_std = ref.compute()
    mean, std = metrics.kid(a, b, subsets=subsets, subset_size=size, seed=seed)
    assert mean == pytest.approx(float(ref_mean), rel=1e-6)
    assert std * ((subsets - 1) / subsets) ** 0.5 == pytest.approx(float(ref_std), rel=1e-6)
    assert mean > 0.01                                                 # a real difference, not noise


# ----------------------------------------------------------------------------- DDIM


def _ties(T: int, steps: int) -> np.ndarray:
    """True where (T - 1) k / (steps - 1) is exactly a half-integer (a rounding tie)."""
    k = np.arange(steps - 1, -1, -1)
    return (2 * (T - 1) * k) % (2 * (steps - 1)) == steps - 1


@pytest.mark.parametrize("T,steps", [(1000, 10), (1000, 20), (1000, 50), (1000, 100), (1000, 250),
                                     (1000, 999), (1000, 1000), (100, 7), (50, 50), (250, 55), (1000, 25)])
def test_ddim_timesteps_are_diffusers_linspace_spacing(T, steps):
    """round(linspace(T - 1, 0, steps)) = diffusers' timestep_spacing="linspace", value by value,
    except at exact half-integer ties, where the two float evaluations may round to different
    neighbours (e.g. T=250, steps=55: 207.5 -> 208 here, 207 in diffusers)."""
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing="linspace")
    ref.set_timesteps(steps)
    ours = ddim_timesteps(T, steps)
    assert ours.dtype == torch.int64 and ours.shape == (steps,)
    tie = torch.from_numpy(_ties(T, steps))
    assert torch.equal(ours[~tie], ref.timesteps[~tie])
    assert ((ours[tie] - ref.timesteps[tie]).abs() <= 1).all()


def test_ddim_timesteps_agree_with_diffusers_linspace_except_at_ties():
    """All step counts 2..T for two T: mismatches only at rounding ties, and by one."""
    for T in (100, 1000):
        ref = diffusers.DDIMScheduler(num_train_timesteps=T, timestep_spacing="linspace")
        for steps in range(2, T + 1):
            ref.set_timesteps(steps)
            diff = ddim_timesteps(T, steps) - ref.timesteps
            tie = torch.from_numpy(_ties(T, steps))
            assert not diff[~tie].any() and (diff.abs() <= 1).all(), (T, steps)


def test_ddim_timesteps_one_step_starts_at_T_minus_1():
    """A deviation from diffusers: one step goes from T - 1 straight to x0 (diffusers' linspace
    gives [0], a step that starts from almost clean data)."""
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="linspace")
    ref.set_timesteps(1)
    assert ref.timesteps.tolist() == [0] and ddim_timesteps(1000, 1).tolist() == [999]


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_last_step_lands_on_x0_like_diffusers(clip, eta):
    """t_prev = -1 means alpha_bar_prev = 1 (diffusers: set_alpha_to_one=True): the last step
    returns the (clipped) predicted x0 and adds no noise, at any eta."""
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=clip,
                                  set_alpha_to_one=True)
    ref.set_timesteps(50)                               # its steps are t -> t - 20; t < 20 -> x0
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=clip))
    g = torch.Generator().manual_seed(0)
    xt, eps, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    for t in (0, 7, 19):
        expected = ref.step(eps, t, xt, eta=eta, use_clipped_model_output=True, variance_noise=z)
        ours = d.ddim_step(eps, t, -1, xt, eta, noise=z)
        torch.testing.assert_close(ours, expected.prev_sample, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours, expected.pred_original_sample, rtol=1e-4, atol=1e-5)


def _toy_eps(calls):
    """A fixed deterministic eps-model, eps = 0.95 x + t / 5000, recording every input x (it keeps
    the unclipped trajectory of order 1, so that clipping at the end of it bites only in part)."""
    def model(x, t, y=None):
        calls.append(x.clone())
        return 0.95 * x + t.float().view(-1, 1, 1, 1) / 5000
    return model


def _diffusers_ddim_loop(ref, x, model):
    """diffusers' own deterministic sampling loop (as in its DDIMPipeline)."""
    for t in ref.timesteps:
        eps = model(x, torch.full((x.shape[0],), int(t)))
        x = ref.step(eps, t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    return x


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ddim_sample_trajectory_equals_diffusers_where_gaps_are_even(spacing, clip, monkeypatch):
    """A 10-step eta = 0 trajectory of `ddim_sample` with a toy eps-model, step by step, against
    diffusers' set_timesteps + step loop on a timestep list with even gaps of T // steps (the
    gap diffusers' step assumes): trailing [999, 899, ..., 99] and leading [900, 800, ..., 0].
    The library's loop is run on diffusers' list (ddim_timesteps patched); it steps to the next
    listed timestep and then to x0 (t_prev = -1), as diffusers does on such a list. Unclipped,
    the process runs on "latents" so that the result is compared before any clamping."""
    T, steps, n = 1000, 10, 2
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=clip,
                                  set_alpha_to_one=True, timestep_spacing=spacing)
    ref.set_timesteps(steps)
    assert (-ref.timesteps.diff() == T // steps).all()
    monkeypatch.setattr(diffusion_module, "ddim_timesteps", lambda T_, steps_: ref.timesteps.clone())
    d = Diffusion(DiffusionConfig(T=T, clip_x0=True) if clip else DiffusionConfig(T=T, data="latent"))
    ours_calls, ref_calls = [], []
    out = d.ddim_sample(_toy_eps(ours_calls), n, steps=steps, shape=(3, 4, 4),
                        generator=torch.Generator().manual_seed(0), progress=False)
    x_T = torch.randn((n, 3, 4, 4), generator=torch.Generator().manual_seed(0))  # ddim_sample's draw
    x0 = _diffusers_ddim_loop(ref, x_T, _toy_eps(ref_calls))
    assert len(ours_calls) == len(ref_calls) == steps
    for i, (a, b) in enumerate(zip(ours_calls, ref_calls)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"x before step {i}")
    torch.testing.assert_close(out, to_unit(x0) if clip else x0, rtol=1e-4, atol=1e-5)


def test_ddim_sample_on_linspace_steps_to_the_next_listed_timestep_unlike_diffusers():
    """The course's own list for T=1000, 10 steps is [999, 888, ..., 111, 0] (gaps 111, not
    T // steps = 100). `ddim_sample` steps from each listed timestep to the next; diffusers'
    step (timestep_spacing="linspace") goes to t - 100 instead (999 -> 899) and then evaluates
    the model at 888 on a sample noised for 899, so the trajectories differ. Setting diffusers'
    num_inference_steps to 9 makes its stride 1000 // 9 = 111, i.e. the listed gaps: then they
    coincide, which pins that the library steps to the next listed timestep."""
    T, steps, n = 1000, 10, 2
    ours_calls = []
    d = Diffusion(DiffusionConfig(T=T, data="latent"))           # no clipping, no clamping at the end
    out = d.ddim_sample(_toy_eps(ours_calls), n, steps=steps, shape=(3, 4, 4),
                        generator=torch.Generator().manual_seed(1), progress=False)
    x_T = torch.randn((n, 3, 4, 4), generator=torch.Generator().manual_seed(1))
    ref = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False,
                                  timestep_spacing="linspace")
    ref.set_timesteps(steps)
    assert torch.equal(ref.timesteps, ddim_timesteps(T, steps))
    naive_calls = []
    _diffusers_ddim_loop(ref, x_T, _toy_eps(naive_calls))
    assert (naive_calls[1] - ours_calls[1]).abs().max() > 1e-2       # diffusers stepped to 899
    ref.num_inference_steps = 9                                       # stride 111 = the listed gap
    ref_calls = []
    x0 = _diffusers_ddim_loop(ref, x_T, _toy_eps(ref_calls))
    for i, (a, b) in enumerate(zip(ours_calls, ref_calls)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"x before step {i}")
    torch.testing.assert_close(out, x0, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- DDPM, variance "beta"


@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_step_with_variance_beta_equals_diffusers_fixed_large(clip):
    """sigma_t^2 = beta_t at every t >= 1, no noise at t = 0, as diffusers' "fixed_large"
    (which uses 1 - alpha_bar_t / alpha_bar_{t-1}, the same beta_t up to float32 rounding, at
    every t >= 1, and adds no noise at t = 0 either). The default "beta_tilde" differs."""
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                  variance_type="fixed_large", clip_sample=clip)
    # its schedule in float64 (by its own formulas): in float32, 1 - alpha_bar_t / alpha_bar_{t-1}
    # loses ~1e-4 relative at small t, more than the library's rounding (its buffers are float64-made)
    ref.betas = ref.betas.double()
    ref.alphas = 1.0 - ref.betas
    ref.alphas_cumprod = torch.cumprod(ref.alphas, 0)
    ref.one = torch.tensor(1.0, dtype=torch.float64)
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=clip, variance="beta"))
    d_tilde = Diffusion(DiffusionConfig(T=1000, clip_x0=clip))
    g = torch.Generator().manual_seed(0)
    xt = torch.randn(2, 3, 8, 8, generator=g) * 1.5
    eps = torch.randn(2, 3, 8, 8, generator=g)
    for t in [999, 600, 10, 2, 1, 0]:
        expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(t)).prev_sample
        z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(t))  # diffusers' draw
        torch.testing.assert_close(d.step(eps, t, xt, noise=z), expected, rtol=1e-5, atol=1e-5)
        if t in (1, 2, 10):                           # where beta_tilde is clearly below beta
            assert (d_tilde.step(eps, t, xt, noise=z) - expected).abs().max() > 1e-3
