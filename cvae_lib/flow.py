"""Flow matching with the straight (rectified-flow) path (Lipman et al. 2023; Liu et al. 2023),
for any network `model(xt, t, y) -> v_hat`, with the same shape of interface as `diffusion.py`:

    flow = FlowMatching(FlowConfig.course())
    xt = flow.interpolate(x0, eps, t)                  # the path, x_t = (1 - t) x0 + t eps
    loss = flow.loss(model, x0, y)                     # || v_theta(x_t, t, y) - (eps - x0) ||^2
    x = flow.sample(model, 16, y, steps=20)            # Euler from t = 1 (noise) to t = 0 (data)
    x = flow.sample(model, 16, y, steps=10, solver="heun", guidance=2.0)

Conventions: t is a float in [0, 1], t = 0 the data and t = 1 pure noise N(0, I), so that
sampling runs t downwards as the DDPM's samplers do. The network sees `t * t_scale` (1000 by
default), the range of the DDPM's integer timesteps, so the course's U-Net and its sinusoidal
time embedding serve both objectives unchanged. `y` and the null label work as in `diffusion.py`
(the null class of classifier-free guidance is the U-Net's extra label row), and so does
`cfg.data`: "image" maps [0, 1] images to [-1, 1] inside and back, "latent" leaves latents as
they are.

The bridge to chapter 04: the path is a Gaussian one, x_t = a_t x0 + s_t eps with a_t = 1 - t
and s_t = t, so flow matching is a diffusion model with another noise schedule (signal-to-noise
ratio ((1 - t) / t)^2) and another parametrisation: the network predicts the velocity
v = eps - x0 (close to the v-prediction of Salimans & Ho 2022) instead of eps. The two predictions
carry the same information: x0_hat = xt - t v_hat and eps_hat = xt + (1 - t) v_hat. Deterministic
DDIM is also an Euler method for an ODE, on a curved path; here the path is straight for one pair
(x0, eps), which is why few Euler steps already sample well.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .pixels import from_unit, to_unit
from .runtime import eval_mode, unwrap

__all__ = ["FlowConfig", "FlowMatching", "flow_times"]

VelocityModel = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
SOLVERS = ("euler", "heun")


@dataclass
class FlowConfig:
    null_label: int | None = None  # class id meaning "no class"; None: the model is unconditional
    p_uncond: float = 0.1          # training: probability of replacing y by null_label (CFG)
    t_scale: float = 1000.0        # the network sees t * t_scale (the DDPM's timestep range)
    data: str = "image"            # what x0 is: "image" (in [-1, 1] inside) | "latent" (unbounded)

    @classmethod
    def course(cls, data: str = "image") -> FlowConfig:
        """The course's recipe (chapter 07, tools/): the null class 10 dropped in with probability
        0.1, as `DiffusionConfig.course`, so the same class-conditional U-Net learns either."""
        return cls(null_label=10, p_uncond=0.1, data=data)


def flow_times(steps: int) -> torch.Tensor:
    """The `steps + 1` times of a sampler with `steps` steps, from 1 (noise) down to 0 (data),
    evenly spaced (float64): steps=4 -> [1, 0.75, 0.5, 0.25, 0]."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


def _at(t: torch.Tensor) -> torch.Tensor:
    """Times (B,) reshaped to broadcast over images: (B,) -> (B, 1, 1, 1)."""
    return t.view(-1, 1, 1, 1)  # (B,) -> (B, 1, 1, 1)


class FlowMatching(nn.Module):
    """The linear probability path, its regression loss and ODE samplers (Euler, Heun)."""

    def __init__(self, cfg: FlowConfig | None = None):
        super().__init__()
        cfg = cfg or FlowConfig()
        if cfg.data not in ("image", "latent"):
            raise ValueError(f"data must be 'image' or 'latent', got {cfg.data!r}")
        if not 0 <= cfg.p_uncond < 1:
            raise ValueError(f"p_uncond is a probability in [0, 1), got {cfg.p_uncond}")
        self.cfg = cfg

    def to_process(self, x: torch.Tensor) -> torch.Tensor:
        """Data as `fit` gives it -> x0 of the path: images [0, 1] -> [-1, 1]; latents unchanged."""
        return from_unit(x) if self.cfg.data == "image" else x

    def from_process(self, x: torch.Tensor) -> torch.Tensor:
        """x0 of the path -> data: images [-1, 1] -> [0, 1] (clamped); latents unchanged."""
        return to_unit(x) if self.cfg.data == "image" else x

    # ------------------------------------------------------------------ the path

    @staticmethod
    def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A point of the straight path: x_t = (1 - t) x0 + t eps.

        x0, eps: (B, C, H, W); t: (B,) floats in [0, 1]. Returns x_t (B, C, H, W).
        """
        return (1 - _at(t)) * x0 + _at(t) * eps

    @staticmethod
    def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The conditional velocity u_t = d x_t / dt = eps - x0, the same at every t of the path."""
        return eps - x0

    def net(self, model: VelocityModel, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The network's velocity v_theta(x_t, t, y), with t (B,) in [0, 1] shown as t * t_scale."""
        return model(xt, t * self.cfg.t_scale, y)

    # ------------------------------------------------------------------ training

    def drop_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """Replace each label by `null_label` with probability `p_uncond` (CFG training)."""
        if y is None or self.cfg.null_label is None or self.cfg.p_uncond <= 0:
            return y
        drop = torch.rand(y.shape, device=y.device) < self.cfg.p_uncond
        return torch.where(drop, torch.full_like(y, self.cfg.null_label), y)

    def loss(self, model: VelocityModel, x0: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Conditional flow matching (Lipman et al. 2023, Eq. 9 with the optimal-transport path):
        E_{t ~ U(0, 1), eps ~ N(0, I)} || v_theta(x_t, t, y) - (eps - x0) ||^2, per element.

        x0: (B, C, H, W) inside the path (images in [-1, 1]); y: (B,) class ids or None.
        """
        self.check_model(model)
        t = torch.rand(x0.shape[0], device=x0.device)
        eps = torch.randn_like(x0)
        xt = self.interpolate(x0, eps, t)
        return F.mse_loss(self.net(model, xt, t, self.drop_labels(y)).float(), self.velocity_target(x0, eps))

    def train_loss(self, model: VelocityModel, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """`loss` for `train.fit`: images x (B, 3, H, W) in [0, 1] are mapped to [-1, 1] first."""
        if self.cfg.null_label is None:
            y = None
        return self.loss(model, self.to_process(x), y)

    def check_model(self, model: VelocityModel) -> None:
        """The null label must be the U-Net's extra class row (its `num_classes`)."""
        n = getattr(getattr(unwrap(model), "cfg", None), "num_classes", None) if isinstance(model, nn.Module) else None
        if n is not None and self.cfg.null_label is not None and self.cfg.null_label != n:
            raise ValueError(f"FlowConfig(null_label={self.cfg.null_label}) does not match the model's "
                             f"num_classes={n}: the null class must be the extra label row {n}. "
                             f"Set null_label={n} (FlowConfig.course() uses 10).")

    @torch.no_grad()
    def heldout_loss(self, model: VelocityModel, x: torch.Tensor, y: torch.Tensor | None = None, *,
                     seed: int = 0, batch_size: int = 250) -> float:
        """The flow-matching loss on held-out data with t and eps from a fixed seed (no label drop).

        x: (N, C, H, W) data as `fit` gives it; y: (N,) or None. Returns the MSE per element.
        """
        g = torch.Generator().manual_seed(seed)
        t = torch.rand(x.shape[0], generator=g)
        eps = torch.randn(x.shape, generator=g)
        device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
        total = 0.0
        with eval_mode(model):
            for i in range(0, x.shape[0], batch_size):
                sl = slice(i, i + batch_size)
                x0, ee, tt = self.to_process(x[sl].to(device)), eps[sl].to(device), t[sl].to(device)
                yy = None if (y is None or self.cfg.null_label is None) else y[sl].to(device)
                v = self.net(model, self.interpolate(x0, ee, tt), tt, yy).float()
                total += F.mse_loss(v, self.velocity_target(x0, ee), reduction="sum").item()
        return total / x.numel()

    # ------------------------------------------------------------------ sampling

    def guided_velocity(self, model: VelocityModel, xt: torch.Tensor, t: torch.Tensor,
                        y: torch.Tensor | None = None, guidance: float = 1.0) -> torch.Tensor:
        """The velocity with classifier-free guidance, as `Diffusion.guided_eps` does for the noise:

            v = v_theta(x_t, t, null) + w (v_theta(x_t, t, y) - v_theta(x_t, t, null))

        w = 1 is the conditional model, 0 the unconditional one; both from one doubled batch.
        """
        if not guidance >= 0:
            raise ValueError(f"the guidance weight w must be a number >= 0 (1: no guidance), got {guidance}")
        if y is None or guidance == 1.0:
            return self.net(model, xt, t, y)
        if self.cfg.null_label is None:
            raise ValueError("guidance needs a model trained with null_label (classifier-free guidance)")
        null = torch.full_like(y, self.cfg.null_label)
        if guidance == 0.0:
            return self.net(model, xt, t, null)
        v_c, v_u = self.net(model, torch.cat([xt, xt]), torch.cat([t, t]),
                            torch.cat([y, null])).chunk(2)      # (2B, C, H, W) -> 2 x (B, C, H, W)
        return v_u + guidance * (v_c - v_u)

    @staticmethod
    def euler_step(v: torch.Tensor, t: float, t_next: float, xt: torch.Tensor) -> torch.Tensor:
        """One Euler step of dx/dt = v from t to t_next (< t): x_{t_next} = x_t + (t_next - t) v."""
        return xt + (t_next - t) * v

    @torch.no_grad()
    def sample(self, model: VelocityModel, n: int, y: torch.Tensor | None = None, *, steps: int = 20,
               solver: str = "euler", guidance: float = 1.0, shape: tuple[int, int, int] = (3, 32, 32),
               generator: torch.Generator | None = None, device: torch.device | str | None = None,
               progress: bool = True) -> torch.Tensor:
        """n samples by solving the ODE from x_1 ~ N(0, I) at t = 1 to t = 0 in `steps` steps:
        (n, *shape) in [0, 1] for images (latents as the path ends).

        solver "euler": `steps` network evaluations (NFE); "heun": Heun's second-order method
        (the Euler slope, then the slope at the Euler point, averaged), 2 * steps - 1 NFE, the
        last step plain Euler because the slope at t = 0 is not needed. With guidance every NFE
        is one call on a doubled batch.
        """
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        from tqdm.auto import tqdm

        if device is None:
            device = next(model.parameters()).device if isinstance(model, nn.Module) else "cpu"
        if y is not None:
            self.check_model(model)
        times = flow_times(steps).tolist()
        with eval_mode(model):
            x = torch.randn((n, *shape), generator=generator, device=device)      # x_1 ~ N(0, I)
            y = y.to(device) if y is not None else None

            def velocity(x, t):
                return self.guided_velocity(model, x, torch.full((n,), t, device=device), y, guidance).float()

            for t, t_next in tqdm(list(zip(times[:-1], times[1:])), desc=f"{solver}-{steps}", leave=False,
                                  disable=not progress):
                v = velocity(x, t)
                x_euler = self.euler_step(v, t, t_next, x)
                if solver == "heun" and t_next > 0:
                    x = self.euler_step((v + velocity(x_euler, t_next)) / 2, t, t_next, x)
                else:
                    x = x_euler
        return self.from_process(x)

    @staticmethod
    def nfe(steps: int, solver: str = "euler") -> int:
        """Network evaluations of `sample(steps=steps, solver=solver)`."""
        return steps if solver == "euler" else 2 * steps - 1
