"""The diffusion math: schedules, the forward process, the loss, DDPM/DDIM steps and guidance.

Reference values come from closed forms computed here in float64 and from diffusers'
schedulers (a test-only dependency), never from the code under test.
"""
import math

import pytest
import torch

from cvae_lib.diffusion import Diffusion, DiffusionConfig, beta_schedule, ddim_timesteps, from_unit, to_unit


def _dummy_eps(xt, t, y=None):
    """A deterministic stand-in denoiser: depends on xt, t and (if given) y."""
    out = 0.1 * xt + 1e-4 * t.float().view(-1, 1, 1, 1)
    if y is not None:
        out = out + 0.05 * (y.float().view(-1, 1, 1, 1) - 5)
    return out


# ----------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("T", [1000, 50])
def test_alpha_bar_strictly_decreasing_in_open_unit_interval(schedule, T):
    d = Diffusion(DiffusionConfig(T=T, schedule=schedule))
    ab = d.alpha_bar.double()
    assert ab.dtype == torch.float64 and d.alpha_bar.dtype == torch.float32
    assert ab.shape == (T,)
    assert (ab > 0).all() and (ab < 1).all()
    assert (ab[1:] < ab[:-1]).all()
    assert (d.beta > 0).all() and (d.beta < 1).all()


def test_linear_schedule_matches_ho_et_al():
    beta = beta_schedule("linear", 1000)
    assert beta.dtype == torch.float64
    assert beta[0].item() == pytest.approx(1e-4) and beta[-1].item() == pytest.approx(0.02)
    # alpha_bar_T for the paper's schedule is ~4e-5: x_T is almost pure noise
    ab_T = torch.prod(1 - beta).item()
    assert 3e-5 < ab_T < 5e-5


def test_cosine_schedule_matches_nichol_dhariwal_closed_form():
    T, s = 1000, 0.008
    d = Diffusion(DiffusionConfig(T=T, schedule="cosine"))
    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    for t in [1, 10, 500, 900]:  # paper t = index + 1; far from the 0.999 clip
        assert d.alpha_bar[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-5)


def test_schedule_buffers_are_float64_computed():
    """The cumulative product is taken in float64 and only then rounded to float32."""
    d = Diffusion(DiffusionConfig(T=1000))
    exact = torch.cumprod(1 - beta_schedule("linear", 1000), 0).float()
    assert torch.equal(d.alpha_bar, exact)


def test_snr_and_posterior_variance():
    d = Diffusion(DiffusionConfig(T=100))
    ab = d.alpha_bar.double()
    torch.testing.assert_close(d.snr().double(), ab / (1 - ab), rtol=1e-5, atol=0)
    # beta_tilde_1 = 0 (x0 is known exactly after one step back), then 0 < beta_tilde_t < beta_t
    assert d.beta_tilde[0].item() == 0
    assert (d.beta_tilde[1:] > 0).all() and (d.beta_tilde[1:] < d.beta[1:]).all()


def test_linear_schedule_rejects_too_few_steps():
    with pytest.raises(ValueError, match="too small"):
        beta_schedule("linear", 20)                    # beta_T would be 0.02 * 1000 / 20 = 1


def test_ddim_timesteps():
    ts = ddim_timesteps(1000, 10)
    assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 10
    assert (ts[1:] < ts[:-1]).all()
    assert torch.equal(ddim_timesteps(20, 20), torch.arange(19, -1, -1))
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)


# ----------------------------------------------------------------------------- forward process

def test_add_noise_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    d = Diffusion(DiffusionConfig(T=1000))
    x0 = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    beta = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    for i, ti in enumerate(t.tolist()):
        ab = math.prod(1 - b for b in beta[:ti + 1])
        expected = math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * eps[i]
        torch.testing.assert_close(d.add_noise(x0, t, eps)[i], expected, rtol=1e-5, atol=1e-5)


def test_add_noise_preserves_unit_variance_and_inverts():
    g = torch.Generator().manual_seed(1)
    d = Diffusion(DiffusionConfig(T=1000))
    x0 = torch.randn(2000, 1, 4, 4, generator=g)       # unit-variance "data"
    eps = torch.randn(2000, 1, 4, 4, generator=g)
    t = torch.full((2000,), 300)
    xt = d.add_noise(x0, t, eps)
    assert xt.var().item() == pytest.approx(1.0, abs=0.05)        # variance preserving
    torch.testing.assert_close(d.predict_x0(xt, t, eps), x0, rtol=1e-4, atol=1e-4)


def test_unit_range_maps():
    x = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(from_unit(x), torch.tensor([-1.0, -0.5, 1.0]))
    torch.testing.assert_close(to_unit(from_unit(x)), x)
    assert to_unit(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]


# ----------------------------------------------------------------------------- the loss

def test_loss_is_zero_for_an_oracle_and_one_for_zero_prediction():
    torch.manual_seed(0)
    d = Diffusion(DiffusionConfig(T=1000))
    x = torch.rand(64, 3, 8, 8)                        # images in [0, 1], as fit passes them
    x0 = x * 2 - 1

    def oracle(xt, t, y):                              # knows x0, so recovers eps exactly
        ab = d.alpha_bar[t].view(-1, 1, 1, 1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert d.train_loss(oracle, x, None).item() < 1e-6
    zero = d.train_loss(lambda xt, t, y: torch.zeros_like(xt), x, None).item()
    assert zero == pytest.approx(1.0, abs=0.05)        # E[eps^2] = 1


def test_label_drop_rate_and_null_label():
    torch.manual_seed(0)
    d = Diffusion(DiffusionConfig(null_label=10, p_uncond=0.2))
    y = torch.randint(0, 10, (20000,))
    dropped = d.drop_labels(y)
    is_null = dropped == 10
    assert is_null.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.equal(dropped[~is_null], y[~is_null])
    assert torch.equal(Diffusion(DiffusionConfig(null_label=None)).drop_labels(y), y)


def test_train_loss_passes_labels_only_to_conditional_models():
    seen = []

    def spy(xt, t, y):
        seen.append(y)
        return torch.zeros_like(xt)

    x, y = torch.rand(2, 3, 4, 4), torch.tensor([1, 2])
    Diffusion(DiffusionConfig(null_label=None)).train_loss(spy, x, y)
    Diffusion(DiffusionConfig(null_label=10, p_uncond=0.0)).train_loss(spy, x, y)
    assert seen[0] is None and torch.equal(seen[1], y)


# ----------------------------------------------------------------------------- reverse steps

def test_ddpm_step_without_clipping_is_eq_11():
    g = torch.Generator().manual_seed(0)
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=False))
    xt, eps, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    for t in [999, 500, 1]:
        b, a, ab = d.beta[t].double(), d.alpha[t].double(), d.alpha_bar[t].double()
        mu = (xt.double() - b / (1 - ab).sqrt() * eps.double()) / a.sqrt()
        expected = mu + d.beta_tilde[t].double().sqrt() * z.double()
        torch.testing.assert_close(d.step(eps, t, xt, noise=z).double(), expected, rtol=1e-4, atol=1e-5)
    # the last step adds no noise
    torch.testing.assert_close(d.step(eps, 0, xt, noise=z), d.step(eps, 0, xt, noise=torch.zeros_like(z)))


def test_ddim_with_eta_one_and_all_steps_is_ddpm():
    """DDIM's sigma at eta=1 is the DDPM posterior variance, so the whole step coincides."""
    g = torch.Generator().manual_seed(0)
    for clip in (False, True):
        d = Diffusion(DiffusionConfig(T=100, clip_x0=clip))
        xt, eps, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
        for t in [99, 50, 1, 0]:
            torch.testing.assert_close(d.ddim_step(eps, t, t - 1, xt, eta=1.0, noise=z),
                                       d.step(eps, t, xt, noise=z), rtol=1e-4, atol=1e-5)


def test_ddim_eta_zero_is_deterministic_and_exact_for_exact_eps():
    """With the true noise, one DDIM jump lands exactly on add_noise(x0, t_prev, eps)."""
    g = torch.Generator().manual_seed(0)
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=False))
    x0 = torch.rand(2, 3, 4, 4, generator=g) * 2 - 1
    eps = torch.randn(2, 3, 4, 4, generator=g)
    xt = d.add_noise(x0, torch.tensor([800, 800]), eps)
    x_prev = d.ddim_step(eps, 800, 300, xt, eta=0.0)
    torch.testing.assert_close(x_prev, d.add_noise(x0, torch.tensor([300, 300]), eps), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d.ddim_step(eps, 800, -1, xt), x0, rtol=1e-4, atol=1e-5)


def _gaussian_denoiser(T, s):
    """The exact eps-predictor for data x0 ~ N(0, s^2 I) under the linear schedule:
    E[eps | xt] = sqrt(1 - ab) xt / (ab s^2 + 1 - ab). Sampling with it must give N(0, s^2)."""
    ab = torch.cumprod(1 - beta_schedule("linear", T), 0)

    def eps_hat(xt, t, y=None):
        a = ab[t].view(-1, 1, 1, 1)
        return ((1 - a).sqrt() * xt.double() / (a * s**2 + 1 - a)).to(xt.dtype)
    return eps_hat


def _golden_loop(T, n, seed, model):
    """Algorithm 2 written out in float64 with Eq. 11 and sigma^2 = beta_tilde (no clipping)."""
    beta = beta_schedule("linear", T)
    alpha, ab = 1 - beta, torch.cumprod(1 - beta, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 4, 4, generator=g).double()
    for t in range(T - 1, -1, -1):
        eps = model(x, torch.full((n,), t))
        x = (x - beta[t] / (1 - ab[t]).sqrt() * eps) / alpha[t].sqrt()
        if t > 0:
            z = torch.randn(n, 3, 4, 4, generator=g).double()
            x = x + ((1 - ab_prev[t]) / (1 - ab[t]) * beta[t]).sqrt() * z
    return x


GOLDEN_MEAN, GOLDEN_ROW = 0.5001, [0.6697, 0.2296, 0.3288, 0.5538]


def test_ddpm_sampling_loop_golden_numbers():
    model = _gaussian_denoiser(50, 0.3)
    d = Diffusion(DiffusionConfig(T=50, clip_x0=False))
    x = d.ddpm_sample(model, 3, shape=(3, 4, 4), generator=torch.Generator().manual_seed(0),
                      progress=False)
    expected = to_unit(_golden_loop(50, 3, 0, model)).float()
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-5)
    # golden numbers, so that a silent change in the loop or its use of the RNG shows up
    assert x.mean().item() == pytest.approx(GOLDEN_MEAN, abs=1e-4)
    assert x[0, 0, 0].tolist() == pytest.approx(GOLDEN_ROW, abs=1e-4)


def _sampled_std(T, s, ts, eta):
    """Closed-form std of samples of N(0, s^2) data with the exact denoiser, stepping through
    timesteps `ts` (descending) with the DDIM update at `eta` (eta = 1, all steps: DDPM).

    Each step is linear in xt: x_prev = c xt + sigma z with
    c = (sqrt(ab_prev ab) s^2 + sqrt(1 - ab_prev - sigma^2) sqrt(1 - ab)) / (ab s^2 + 1 - ab),
    so Var(x_prev) = c^2 Var(xt) + sigma^2, starting from Var(x_T) = 1.
    """
    ab_all = torch.cumprod(1 - beta_schedule("linear", T), 0).tolist()
    var = 1.0
    for i, t in enumerate(ts):
        ab = ab_all[t]
        ab_prev = ab_all[ts[i + 1]] if i + 1 < len(ts) else 1.0
        sigma2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
        c = ((math.sqrt(ab_prev * ab) * s**2 + math.sqrt(1 - ab_prev - sigma2) * math.sqrt(1 - ab))
             / (ab * s**2 + 1 - ab))
        var = c**2 * var + sigma2
    return math.sqrt(var)


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", 100, 1.0), ("ddim", 20, 0.0),
                                               ("ddim", 20, 1.0), ("ddim", 10, 0.5)])
def test_sampler_variance_matches_closed_form(sampler, steps, eta):
    """Sample N(0, 0.3^2) "data" with its exact denoiser; the spread of the samples must follow
    the closed form above (coarse DDIM steps shrink it: one reason few-step samples look smooth)."""
    T, s, n = 100, 0.3, 2000
    d = Diffusion(DiffusionConfig(T=T, clip_x0=False))
    kw = dict(shape=(1, 2, 2), generator=torch.Generator().manual_seed(0), progress=False)
    model = _gaussian_denoiser(T, s)
    if sampler == "ddpm":
        x = d.ddpm_sample(model, n, **kw)
    else:
        x = d.ddim_sample(model, n, steps=steps, eta=eta, **kw)
    x = from_unit(x)                                   # back to [-1, 1]; |x| > 1 is very rare
    expected = _sampled_std(T, s, ddim_timesteps(T, steps).tolist(), eta)
    assert x.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x.std().item() == pytest.approx(expected, rel=0.03)
    assert expected < s                                # discrete steps lose a little variance


def test_samplers_are_seeded_and_in_unit_range():
    d = Diffusion(DiffusionConfig(T=50))
    for sample in (lambda g: d.ddpm_sample(_dummy_eps, 2, shape=(3, 4, 4), generator=g, progress=False),
                   lambda g: d.ddim_sample(_dummy_eps, 2, steps=5, eta=0.5, shape=(3, 4, 4),
                                           generator=g, progress=False)):
        a, b = sample(torch.Generator().manual_seed(3)), sample(torch.Generator().manual_seed(3))
        assert a.shape == (2, 3, 4, 4) and torch.equal(a, b)
        assert a.min() >= 0 and a.max() <= 1


def test_samplers_feed_images_nhwc_and_latents_nchw_with_the_same_samples(monkeypatch):
    """The samplers hand image batches to the denoiser in channels_last (faster convolutions on
    CPUs and GPUs), latents as they are; the layout changes the samples only by float rounding."""
    from cvae_lib.models.unet import UNet, UNetConfig

    seen = []
    y = torch.tensor([0, 1, 1])
    for data, shape, nhwc in (("image", (3, 8, 8), True), ("latent", (4, 8, 8), False)):
        torch.manual_seed(0)
        unet = UNet(UNetConfig(width=8, width_mult=(1, 2), attn_resolutions=(), num_classes=2,
                               in_channels=shape[0], resolution=shape[1])).eval()

        def denoiser(xt, t, y=None, unet=unet):
            seen.append(xt.is_contiguous(memory_format=torch.channels_last) and not xt.is_contiguous())
            return unet(xt, t, y)

        d = Diffusion(DiffusionConfig(T=50, data=data))
        assert d.samples_nhwc(shape, "cpu") is nhwc and not d.samples_nhwc(shape, "mps")
        seen.clear()
        fast = d.ddim_sample(denoiser, 3, y, steps=4, eta=1.0, shape=shape, device="cpu",
                             generator=torch.Generator().manual_seed(1), progress=False)
        assert seen == [nhwc] * 4
        monkeypatch.setattr(Diffusion, "samples_nhwc", lambda self, shape, device: False)
        seen.clear()
        plain = d.ddim_sample(denoiser, 3, y, steps=4, eta=1.0, shape=shape, device="cpu",
                              generator=torch.Generator().manual_seed(1), progress=False)
        monkeypatch.undo()
        assert seen == [False] * 4
        torch.testing.assert_close(fast, plain, atol=1e-4, rtol=0)   # 1/255 is 4e-3


# ----------------------------------------------------------------------------- guidance

def test_guidance_scale_one_is_conditional_and_zero_is_unconditional():
    d = Diffusion(DiffusionConfig(null_label=10))
    xt = torch.randn(3, 3, 4, 4)
    t, y = torch.tensor([5, 50, 500]), torch.tensor([0, 3, 7])
    null = torch.full_like(y, 10)
    eps_c, eps_u = _dummy_eps(xt, t, y), _dummy_eps(xt, t, null)
    torch.testing.assert_close(d.guided_eps(_dummy_eps, xt, t, y, guidance=1.0), eps_c)
    torch.testing.assert_close(d.guided_eps(_dummy_eps, xt, t, y, guidance=0.0), eps_u)
    torch.testing.assert_close(d.guided_eps(_dummy_eps, xt, t, y, guidance=3.0),
                               eps_u + 3.0 * (eps_c - eps_u))
    assert not torch.allclose(eps_c, eps_u)           # the dummy really depends on y


def test_guidance_needs_a_null_label():
    d = Diffusion(DiffusionConfig(null_label=None))
    with pytest.raises(ValueError, match="null_label"):
        d.guided_eps(_dummy_eps, torch.zeros(1, 3, 4, 4), torch.tensor([1]), torch.tensor([0]), 2.0)


# ----------------------------------------------------------------------------- reference: diffusers

# diffusers is the independent reference, a test-only dependency (the `test` extra); a missing
# install fails these tests instead of skipping them.
import diffusers  # noqa: E402


@pytest.mark.parametrize("schedule,name", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_schedule_and_add_noise_agree_with_diffusers(schedule, name):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=name)
    d = Diffusion(DiffusionConfig(T=1000, schedule=schedule))
    torch.testing.assert_close(d.beta, ref.betas, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(d.alpha_bar, ref.alphas_cumprod, rtol=1e-4, atol=1e-7)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 3, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(5, 3, 8, 8, generator=g)
    t = torch.tensor([0, 1, 250, 700, 999])
    torch.testing.assert_close(d.add_noise(x0, t, eps), ref.add_noise(x0, eps, t), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_step_agrees_with_diffusers(clip):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                                  variance_type="fixed_small", clip_sample=clip)
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=clip))
    g = torch.Generator().manual_seed(0)
    xt = torch.randn(2, 3, 8, 8, generator=g) * 1.5
    eps = torch.randn(2, 3, 8, 8, generator=g)
    for t in [999, 600, 10, 1, 0]:
        expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(t)).prev_sample
        z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(t))  # diffusers' draw
        torch.testing.assert_close(d.step(eps, t, xt, noise=z), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_agrees_with_diffusers(eta):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    ref.set_timesteps(50)                               # its steps are t -> t - 20
    d = Diffusion(DiffusionConfig(T=1000, clip_x0=True))
    g = torch.Generator().manual_seed(0)
    xt, eps, z = (torch.randn(2, 3, 8, 8, generator=g) for _ in range(3))
    for t in [980, 500, 20]:
        expected = ref.step(eps, t, xt, eta=eta, use_clipped_model_output=True,
                            variance_noise=z).prev_sample
        torch.testing.assert_close(d.ddim_step(eps, t, t - 20, xt, eta, noise=z), expected,
                                   rtol=1e-4, atol=1e-5)


def test_heldout_loss_is_seeded_and_equals_the_written_out_loss():
    d = Diffusion(DiffusionConfig(T=50, null_label=10))
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(7, 3, 4, 4, generator=g), torch.randint(0, 10, (7,), generator=g)
    a = d.heldout_loss(_dummy_eps, x, y, seed=3, batch_size=3)
    assert a == pytest.approx(d.heldout_loss(_dummy_eps, x, y, seed=3, batch_size=7), rel=1e-6)  # batching
    gen = torch.Generator().manual_seed(3)
    t = torch.randint(0, 50, (7,), generator=gen)
    eps = torch.randn(x.shape, generator=gen)
    ab = d.alpha_bar.double()[t].view(-1, 1, 1, 1)
    xt = (ab.sqrt() * (2 * x.double() - 1) + (1 - ab).sqrt() * eps.double()).float()
    expected = float(((_dummy_eps(xt, t, y) - eps) ** 2).mean())
    assert a == pytest.approx(expected, rel=1e-5)
    zero = d.heldout_loss(lambda xt, t, y: eps * 0 + 0 * xt, x, y, seed=3)
    assert zero == pytest.approx(float((eps ** 2).mean()), rel=1e-6)


def test_settings_out_of_range_are_refused_by_name():
    """T = 0, a negative or NaN guidance weight and an eta outside [0, 1] each raise a ValueError
    that names the setting, instead of ZeroDivisionError or a silently wrong sample."""
    with pytest.raises(ValueError, match="T is the number of diffusion steps"):
        Diffusion(DiffusionConfig(T=0))
    d = Diffusion(DiffusionConfig(T=100, null_label=10))
    x, t, y = torch.zeros(2, 3, 4, 4), torch.tensor([5, 5]), torch.tensor([1, 2])
    model = lambda xt, tt, yy: torch.zeros_like(xt)  # noqa: E731
    for w in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="guidance is the weight"):
            d.guided_eps(model, x, t, y, w)
    for eta in (-0.5, 2.0, float("nan")):
        with pytest.raises(ValueError, match="eta sets the DDIM step's noise"):
            d.ddim_step(torch.zeros_like(x), 5, 3, x, eta=eta)
    assert d.guided_eps(model, x, t, y, torch.tensor(2.0)).shape == x.shape   # a 0-d tensor weight still works
