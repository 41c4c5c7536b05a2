"""Denoising diffusion (Ho et al. 2020), DDIM sampling (Song et al. 2020) and classifier-free
guidance (Ho & Salimans 2022), for any denoiser `model(xt, t, y) -> eps_hat`.

The noise schedule is an object apart from the network, as in diffusers:

    diffusion = Diffusion(DiffusionConfig(T=1000, schedule="linear", null_label=10))
    xt = diffusion.add_noise(x0, t, eps)               # forward process, Eq. 4
    loss = diffusion.loss(model, x0, y)                 # Algorithm 1 (eps-prediction MSE)
    x = diffusion.ddpm_sample(model, 16, y)             # Algorithm 2, T steps; images in [0, 1]
    x = diffusion.ddim_sample(model, 16, y, steps=50)   # DDIM, Song et al. Eq. 12

Conventions: `t` is an int64 tensor (B,) of timesteps in 0..T-1 (paper's t = 1..T shifted by
one); `y` is (B,) int64 class ids, where `null_label` means "no class" (the learned null class of
classifier-free guidance). What x0 is depends on `cfg.data`:

- "image" (default): images, [0, 1] outside the process like every image in the course and
  [-1, 1] inside it (`x0, xt`); `train_loss` maps its inputs there, the samplers map back to
  [0, 1], and the predicted x0 is clipped to [-1, 1] while sampling (`clip_x0`);
- "latent": latent grids of a first stage (chapter 06), any range, ideally unit variance; they
  enter and leave the process unchanged, and nothing is clipped (a latent has no bounds).

The schedule is computed in float64 and stored as float32 buffers, so `diffusion.to(device)`
moves it.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .pixels import from_unit, to_unit  # the image-range helpers, re-exported for chapter 04
from .runtime import eval_mode, unwrap, use_channels_last

__all__ = ["DiffusionConfig", "Diffusion", "beta_schedule", "ddim_timesteps", "to_unit",
           "from_unit"]

Denoiser = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _number_in(value, low: float, high: float) -> bool:
    """True if `value` is a number (a float, an int, a one-element tensor) in [low, high], not NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        return False
    return math.isfinite(v) and low <= v <= high


@dataclass
class DiffusionConfig:
    T: int = 1000                  # number of diffusion steps
    schedule: str = "linear"       # "linear" (Ho et al. 2020) | "cosine" (Nichol & Dhariwal 2021)
    beta_start: float = 1e-4       # linear schedule: beta_1 (for T = 1000)
    beta_end: float = 0.02         # linear schedule: beta_T (for T = 1000)
    variance: str = "beta_tilde"   # sigma_t^2 of the reverse step: "beta_tilde" (posterior) | "beta"
    null_label: int | None = None  # class id meaning "no class"; None: the model is unconditional
    p_uncond: float = 0.1          # training: probability of replacing y by null_label (CFG)
    clip_x0: bool | None = None    # sampling: clamp the predicted x0 to [-1, 1]; None: for images only
    data: str = "image"            # what x0 is: "image" (in [-1, 1] inside) | "latent" (unbounded)

    @classmethod
    def course(cls, T: int = 1000, data: str = "image") -> DiffusionConfig:
        """The course's recipe (chapters 04-06, tools/, benchmarks/): Ho et al.'s linear schedule
        over T steps, classifier-free guidance with the null class 10 (the U-Net's extra label
        row for CIFAR-10's ten classes) dropped in with probability 0.1."""
        return cls(T=T, schedule="linear", null_label=10, p_uncond=0.1, data=data)


def beta_schedule(kind: str, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """The variances beta_1..beta_T as a float64 tensor (T,).

    linear: evenly spaced from beta_start to beta_end, rescaled by 1000 / T so that other T
            keep the same total noise (Ho et al. 2020, Sec. 4: 1e-4 .. 0.02 for T = 1000).
    cosine: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) * pi/2), s = 0.008,
            beta_t = 1 - alpha_bar(t) / alpha_bar(t-1) clipped to 0.999
            (Nichol & Dhariwal 2021, Eq. 17).
    """
    if kind == "linear":
        scale = 1000 / T
        if scale * beta_end >= 1:
            raise ValueError(f"T={T} is too small for the linear schedule: beta_T = {scale * beta_end} >= 1")
        return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        alpha_bar = f / f[0]                                  # (T + 1,), alpha_bar(0) = 1
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"schedule must be 'linear' or 'cosine', got {kind!r}")


def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    """`steps` timesteps from T-1 down to 0, evenly spaced (int64, descending), e.g. T=1000,
    steps=4 -> [999, 666, 333, 0]. steps == T gives every timestep.

    The spacing is round(linspace(T - 1, 0, steps)): diffusers' timestep_spacing="linspace",
    value for value, except at exact half-integer ties (e.g. T=250, steps=55: 207.5 -> 208
    here, 207 there; float rounding picks the neighbour) and for steps=1 ([T - 1] here, [0]
    there). The gaps, about (T - 1) / (steps - 1), need not be equal nor equal to T // steps;
    the samplers step from each listed timestep to the next one (see `ddim_step`).
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in 1..{T}, got {steps}")
    if steps == 1:
        return torch.tensor([T - 1])
    return torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long()


def _at(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """a[t] reshaped to broadcast over images: (T,), (B,) -> (B, 1, 1, 1)."""
    return a.to(t.device)[t].view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


class Diffusion(nn.Module):
    """The Gaussian diffusion process: the schedule as buffers, the loss and the samplers.

    Buffers (all (T,) float32, index t = 0..T-1 for the paper's t = 1..T):
    beta, alpha = 1 - beta, alpha_bar = prod_{s<=t} alpha_s, alpha_bar_prev (alpha_bar_{t-1},
    with alpha_bar_0 = 1), beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
    (posterior variance, Eq. 7), and the posterior-mean coefficients of x0 and xt (Eq. 7).
    """

    def __init__(self, cfg: DiffusionConfig | None = None):
        super().__init__()
        cfg = cfg or DiffusionConfig()
        if isinstance(cfg.T, bool) or not isinstance(cfg.T, int) or cfg.T < 1:
            raise ValueError(f"T is the number of diffusion steps, a whole number of at least 1 (the course uses "
                             f"1000), got {cfg.T!r}")
        if cfg.variance not in ("beta_tilde", "beta"):
            raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {cfg.variance!r}")
        if cfg.data not in ("image", "latent"):
            raise ValueError(f"data must be 'image' or 'latent', got {cfg.data!r}")
        if cfg.data == "latent" and cfg.clip_x0:
            raise ValueError("clip_x0 clamps the predicted x0 to [-1, 1], the range of images; latents "
                             "have no such range: leave clip_x0 unset (None) or False for data='latent'")
        self.cfg = cfg
        beta = beta_schedule(cfg.schedule, cfg.T, cfg.beta_start, cfg.beta_end)  # float64
        alpha = 1 - beta
        alpha_bar = torch.cumprod(alpha, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
        buffers = {
            "beta": beta, "alpha": alpha, "alpha_bar": alpha_bar, "alpha_bar_prev": alpha_bar_prev,
            "beta_tilde": beta_tilde,
            "mean_coef_x0": alpha_bar_prev.sqrt() * beta / (1 - alpha_bar),     # Eq. 7
            "mean_coef_xt": alpha.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def T(self) -> int:
        return self.cfg.T

    @property
    def clips(self) -> bool:
        """Whether sampling clamps the predicted x0 to [-1, 1]: `cfg.clip_x0`, or for images if unset."""
        return self.cfg.data == "image" if self.cfg.clip_x0 is None else self.cfg.clip_x0

    def to_process(self, x: torch.Tensor) -> torch.Tensor:
        """Data as `fit` gives it -> x0 of the process: images [0, 1] -> [-1, 1]; latents unchanged."""
        return from_unit(x) if self.cfg.data == "image" else x

    def from_process(self, x: torch.Tensor) -> torch.Tensor:
        """x0 of the process -> data: images [-1, 1] -> [0, 1] (clamped); latents unchanged."""
        return to_unit(x) if self.cfg.data == "image" else x

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio of xt, alpha_bar / (1 - alpha_bar), (T,)."""
        return self.alpha_bar / (1 - self.alpha_bar)

    # ------------------------------------------------------------------ forward process

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Sample q(xt | x0) (Eq. 4): xt = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

        x0: (B, C, H, W) in [-1, 1]; t: (B,) int64 in 0..T-1; eps: (B, C, H, W) ~ N(0, I).
        """
        ab = _at(self.alpha_bar, t)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert Eq. 4 for x0 given the (predicted) noise: (xt - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)."""
        ab = _at(self.alpha_bar, t)
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    # ------------------------------------------------------------------ training

    def drop_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """Replace each label by `null_label` with probability `p_uncond` (CFG training)."""
        if y is None or self.cfg.null_label is None or self.cfg.p_uncond <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device) < self.cfg.p_uncond
        return torch.where(drop, torch.full_like(y, self.cfg.null_label), y)

    def loss(self, model: Denoiser, x0: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The simplified DDPM loss (Algorithm 1, Eq. 14): E_{t, eps} || eps - eps_theta(xt, t) ||^2.

        x0: (B, C, H, W) in [-1, 1]; y: (B,) class ids or None. t ~ Uniform{0..T-1}.
        Returns the mean squared error per pixel (a scalar).
        """
        self.check_denoiser(model)
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        xt = self.add_noise(x0, t, eps)
        return F.mse_loss(model(xt, t, self.drop_labels(y)).float(), eps)

    def check_denoiser(self, model: Denoiser) -> None:
        """Where the schedule meets the U-Net: the null label of classifier-free guidance must be
        the U-Net's extra class row (its `num_classes`), or "no class" would be a real class."""
        n = getattr(getattr(unwrap(model), "cfg", None), "num_classes", None) if isinstance(model, nn.Module) else None
        if n is not None and self.cfg.null_label is not None and self.cfg.null_label != n:
            raise ValueError(f"DiffusionConfig(null_label={self.cfg.null_label}) does not match the "
                             f"model's num_classes={n}: the null class must be the extra label row "
                             f"{n}. Set null_label={n} (DiffusionConfig.course() uses 10).")

    def train_loss(self, model: Denoiser, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """`loss` for `train.fit`: images x (B, 3, H, W) in [0, 1] are mapped to [-1, 1] first
        (latents, `cfg.data == "latent"`, are used as they are)."""
        if self.cfg.null_label is None:
            y = None
        return self.loss(model, self.to_process(x), y)

    # ------------------------------------------------------------------ the reverse process

    def guided_eps(self, model: Denoiser, xt: torch.Tensor, t: torch.Tensor,
                   y: torch.Tensor | None = None, guidance: float = 1.0) -> torch.Tensor:
        """The noise prediction, with classifier-free guidance (Ho & Salimans 2022, Eq. 6):

            eps = eps_theta(xt, t, null) + w * (eps_theta(xt, t, y) - eps_theta(xt, t, null))

        w = guidance: 1 is the plain conditional model, 0 the unconditional one, w > 1 pushes
        samples towards the class. Our w is Ho & Salimans' w plus one (their Eq. 6 reads
        (1 + w) eps_cond - w eps_uncond), and equals diffusers' guidance_scale. Both predictions
        come from one forward pass of a doubled batch.
        """
        if not _number_in(guidance, 0, math.inf):
            raise ValueError(f"guidance is the weight w >= 0 of classifier-free guidance (0: unconditional, 1: "
                             f"the plain conditional model, above 1: stronger), got {guidance!r}")
        if y is not None:
            self.check_denoiser(model)
        if y is None or guidance == 1.0:
            return model(xt, t, y)
        if self.cfg.null_label is None:
            raise ValueError("guidance needs a model trained with null_label (classifier-free guidance)")
        null = torch.full_like(y, self.cfg.null_label)
        if guidance == 0.0:
            return model(xt, t, null)
        eps_c, eps_u = model(torch.cat([xt, xt]), torch.cat([t, t]),
                             torch.cat([y, null])).chunk(2)     # (2B, C, H, W) -> 2 x (B, C, H, W)
        return eps_u + guidance * (eps_c - eps_u)

    def step(self, eps: torch.Tensor, t: int, xt: torch.Tensor,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t-1} of DDPM (Algorithm 2), at timestep index t (an int).

        1. predict x0 from the noise (Eq. 4 inverted), clamped to [-1, 1] if `self.clips`;
        2. the posterior mean mu = c0 x0 + ct xt of q(x_{t-1} | xt, x0) (Eq. 7); without clamping
           this equals Eq. 11, mu = (xt - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t);
        3. add sigma_t z, sigma_t^2 = beta_tilde_t or beta_t; no noise at the last step (t = 0).
        noise: the z to use (B, C, H, W); default fresh N(0, I) from `generator`.
        """
        tt = torch.full((xt.shape[0],), t, device=xt.device, dtype=torch.long)
        x0 = self.predict_x0(xt, tt, eps)
        if self.clips:
            x0 = x0.clamp(-1, 1)
        mu = _at(self.mean_coef_x0, tt) * x0 + _at(self.mean_coef_xt, tt) * xt
        if t == 0:
            return mu
        var = self.beta_tilde if self.cfg.variance == "beta_tilde" else self.beta
        if noise is None:
            noise = torch.randn(xt.shape, generator=generator, device=xt.device)
        return mu + _at(var, tt).sqrt() * noise

    def ddim_step(self, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor, eta: float = 0.0,
                  noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """One DDIM step x_t -> x_{t_prev} (Song et al. 2020, Eq. 12); t_prev = -1 means x0.

            x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
            sigma  = eta * sqrt((1 - ab_prev) / (1 - ab)) * sqrt(1 - ab / ab_prev)   (Eq. 16)

        eta = 0 is the deterministic DDIM; eta = 1 with every step is DDPM with beta_tilde.

        The samplers pass t_prev = the next timestep of `ddim_timesteps` (-1 after the last):
        DDIM is defined on any sub-sequence of timesteps (Song et al., Sec. 4.2), and stepping
        to the next listed one leaves x at exactly the noise level of the timestep the model is
        asked about next, whatever the gaps. diffusers' DDIMScheduler.step assumes even gaps:
        it goes to t - T // steps, the next listed timestep only on its "leading" and "trailing"
        lists; on the "linspace" list (T=1000, 10 steps: 999, 888, ...) it goes 999 -> 899 and
        then asks the model about 888. Where the gaps are even the two trajectories coincide.
        """
        if not _number_in(eta, 0, 1):
            raise ValueError(f"eta sets the DDIM step's noise, from 0 (deterministic DDIM) to 1 (DDPM's variance); "
                             f"got {eta!r}")
        tt = torch.full((xt.shape[0],), t, device=xt.device, dtype=torch.long)
        ab = _at(self.alpha_bar, tt)
        ab_prev = _at(self.alpha_bar, torch.full_like(tt, t_prev)) if t_prev >= 0 else torch.ones_like(ab)
        x0 = self.predict_x0(xt, tt, eps)
        if self.clips:
            x0 = x0.clamp(-1, 1)
            eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()  # the noise consistent with the clamped x0
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()
        x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
        if eta > 0 and t_prev >= 0:
            if noise is None:
                noise = torch.randn(xt.shape, generator=generator, device=xt.device)
            x_prev = x_prev + sigma * noise
        return x_prev

    @torch.no_grad()
    def ddpm_sample(self, model: Denoiser, n: int, y: torch.Tensor | None = None, *,
                    guidance: float = 1.0, shape: tuple[int, int, int] = (3, 32, 32),
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    progress: bool = True) -> torch.Tensor:
        """n images by ancestral sampling (Algorithm 2, T network calls): (n, *shape) in [0, 1]
        (latents, `cfg.data == "latent"`: (n, *shape) as the process ends, unclamped).

        y: (n,) class ids (or None); guidance: see `guided_eps`; generator: a torch.Generator on
        `device` for reproducible samples; shape: one sample's (C, H, W), e.g. (8, 8, 8) for latents.
        """
        ts = list(range(self.T - 1, -1, -1))
        return self._sample(model, n, y, ts, guidance, shape, generator, device, progress,
                            lambda eps, t, t_prev, x: self.step(eps, t, x, generator=generator),
                            desc="DDPM")

    @torch.no_grad()
    def ddim_sample(self, model: Denoiser, n: int, y: torch.Tensor | None = None, *, steps: int = 50,
                    eta: float = 0.0, guidance: float = 1.0, shape: tuple[int, int, int] = (3, 32, 32),
                    generator: torch.Generator | None = None, device: torch.device | str | None = None,
                    progress: bool = True) -> torch.Tensor:
        """n samples with `steps` DDIM steps (eta = 0: deterministic), returned as `ddpm_sample` does."""
        ts = ddim_timesteps(self.T, steps).tolist()
        return self._sample(model, n, y, ts, guidance, shape, generator, device, progress,
                            lambda eps, t, t_prev, x: self.ddim_step(eps, t, t_prev, x, eta,
                                                                     generator=generator),
                            desc=f"DDIM-{steps}")

    def samples_nhwc(self, shape: tuple[int, ...], device: torch.device | str) -> bool:
        """Whether the samplers feed the denoiser NHWC (channels_last) tensors: for images on CPUs
        and GPUs, the layout `fit` trains in (1.7-2.2x faster DDIM in fp32 on the 2-core CPU, the
        same samples up to float rounding); not for latents, where the 8x8 grids gain nothing.
        Measured by benchmarks/sampling_layout.py."""
        return self.cfg.data == "image" and len(shape) == 3 and use_channels_last(device)

    def _sample(self, model, n, y, ts, guidance, shape, generator, device, progress, update, desc):
        from tqdm.auto import tqdm

        if device is None:
            device = next(model.parameters()).device if isinstance(model, nn.Module) else "cpu"
        fmt = torch.channels_last if self.samples_nhwc(shape, device) else torch.contiguous_format
        with eval_mode(model):
            x = torch.randn((n, *shape), generator=generator, device=device)  # x_T ~ N(0, I)
            y = y.to(device) if y is not None else None
            for i, t in enumerate(tqdm(ts, desc=desc, leave=False, disable=not progress)):
                t_prev = ts[i + 1] if i + 1 < len(ts) else -1
                tt = torch.full((n,), t, device=device, dtype=torch.long)
                eps = self.guided_eps(model, x.contiguous(memory_format=fmt), tt, y, guidance)
                x = update(eps, t, t_prev, x)
        return self.from_process(x)

    @torch.no_grad()
    def denoise_at(self, model: Denoiser, x0: torch.Tensor, t: int, y: torch.Tensor | None = None,
                   eps: torch.Tensor | None = None, guidance: float = 1.0) -> dict[str, torch.Tensor]:
        """What the model sees and predicts at one timestep, for the timestep scrubber.

        x0: (B, C, H, W) inside the process (images in [-1, 1], or latents).
        Returns {"xt", "eps", "eps_hat", "x0_hat"}, all (B, C, H, W):
        xt = add_noise(x0, t, eps), the model's eps_hat and the implied x0_hat (unclamped).
        """
        tt = torch.full((x0.shape[0],), t, device=x0.device, dtype=torch.long)
        eps = torch.randn_like(x0) if eps is None else eps
        xt = self.add_noise(x0, tt, eps)
        with eval_mode(model):
            eps_hat = self.guided_eps(model, xt, tt, y, guidance)
        return {"xt": xt, "eps": eps, "eps_hat": eps_hat, "x0_hat": self.predict_x0(xt, tt, eps_hat)}

    @torch.no_grad()
    def heldout_loss(self, model: Denoiser, x: torch.Tensor, y: torch.Tensor | None = None, *,
                     seed: int = 0, batch_size: int = 250) -> float:
        """The loss of Algorithm 1 on held-out images, with t and eps drawn from a fixed seed.

        x: (N, 3, H, W) in [0, 1] (e.g. test images), or latents (N, C, h, w) for data="latent";
        y: (N,) class ids or None (no label drop).
        Returns the mean squared error per pixel; the same model and images give the same number
        on any machine up to float rounding, so shipped weights can be checked against it.
        """
        g = torch.Generator().manual_seed(seed)
        t = torch.randint(0, self.T, (x.shape[0],), generator=g)
        eps = torch.randn(x.shape, generator=g)
        device = self.beta.device
        total = 0.0
        with eval_mode(model):
            for i in range(0, x.shape[0], batch_size):
                sl = slice(i, i + batch_size)
                tt, ee = t[sl].to(device), eps[sl].to(device)
                xt = self.add_noise(self.to_process(x[sl].to(device)), tt, ee)
                yy = None if (y is None or self.cfg.null_label is None) else y[sl].to(device)
                total += F.mse_loss(model(xt, tt, yy).float(), ee, reduction="sum").item()
        return total / x.numel()
