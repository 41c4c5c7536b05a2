"""What the VAE (chapter 02) and the CVAE (chapter 03) share: latent config fields, the
encoder/decoder with Gaussian latent heads, the KL warm-up and the -ELBO objective.

    class VAE(GaussianLatentVAE): ...         # builds with _build_coder() and _build_heads()
    loss, terms = elbo_objective(model, params, mu, logvar, x, step=step)

The objective is a function of what it is given: the model's likelihood and config, and the
optimizer step that `fit` passes to a loss with a `step` parameter (None outside training).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..runtime import unwrap
from .blocks import ConvDecoder, ConvEncoder, mlp, stage_widths
from .likelihoods import kl_normal, make_likelihood, negative_elbo, soft_clamp

__all__ = ["LatentConfig", "GaussianLatentVAE", "kl_weight", "elbo_objective"]


@dataclass
class LatentConfig:
    """The fields of VAEConfig and CVAEConfig: latent, coder, likelihood and KL settings."""
    latent_dim: int = 128          # Z: size of z (vector) or channels per latent position (spatial)
    spatial: bool = False          # False: z (B, Z) from MLP heads; True: z (B, Z, s, s) from 1x1 convs
    width: int = 32                # channels of the first stage; stages use (w, 2w, 4w, ...)
    n_stages: int = 3              # downsamplings: 32x32 -> 4x4 with 3 (s = 32 / 2**n_stages)
    residual: bool = False         # VDVAE residual bottlenecks (the study used False)
    hidden: int = 512              # width of the MLPs (latent heads; the CVAE's label MLP)
    likelihood: str = "bernoulli"  # see likelihoods.LIKELIHOODS; the study used BCE
    sigma: float = 0.1             # fixed sigma of the "gaussian" likelihood, on the [-1, 1] scale
    n_mix: int = 5                 # components of "logistic_mixture"
    beta: float = 1.0              # KL weight (1: the ELBO; Higgins et al. 2017 use > 1)
    kl_warmup_steps: int = 0       # the KL weight ramps linearly 0 -> beta over this many steps
    free_bits: float = 0.0         # nats per latent element the KL may use for free (0: off)


def kl_weight(cfg: LatentConfig, step: int | None) -> float:
    """beta at optimizer step `step` (0-based), ramped linearly from 0 over `kl_warmup_steps`
    (Bowman et al. 2016); None (evaluation) gives beta itself."""
    if step is None or cfg.kl_warmup_steps <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, step / cfg.kl_warmup_steps)


def elbo_objective(model: nn.Module, params: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   x: torch.Tensor, step: int | None = None) -> tuple[torch.Tensor, dict]:
    """The loss `fit` minimises for the VAE and the CVAE: -ELBO per dimension, and its terms.

    params: the decoder's output; mu, logvar: (B, *z_shape); x: (B, 3, 32, 32) in [0, 1].
    step: the optimizer step during training: the KL weight follows the warm-up and free bits
    apply. None (evaluation, or a call by hand) gives the plain beta-weighted objective.
    Works on a compiled or DDP-wrapped model (its attributes are read from the module behind).
    Returns (loss, {"rec", "kl" in nats/image, "bpd" for discrete likelihoods, "beta"}).
    """
    m = unwrap(model)
    nll = m.likelihood.nll(params, x)                      # (B,) nats per image
    kl = kl_normal(mu.float(), logvar.float())             # (B, *z_shape) nats
    beta = kl_weight(m.cfg, step)
    free_bits = m.cfg.free_bits if step is not None else 0.0
    loss, terms = negative_elbo(nll, kl, beta=beta, free_bits=free_bits, discrete=m.likelihood.discrete)
    terms["beta"] = torch.tensor(beta)
    return loss, terms


class GaussianLatentVAE(nn.Module):
    """The shared body of the VAE and the CVAE; subclasses call `_build_coder`, add their own
    layers, then `_build_heads` (this order keeps the parameters' initialisation order, and so
    every seeded run, as it was before the two were merged)."""

    # `n_updates` counted loss calls in checkpoints and shipped files written before the step came
    # from `fit`; it is ignored when they load.
    _legacy_keys = ("n_updates",)

    def _build_coder(self, cfg: LatentConfig) -> None:
        self.likelihood = make_likelihood(cfg.likelihood, cfg.sigma, cfg.n_mix)
        self.widths = widths = stage_widths(cfg.width, cfg.n_stages)
        side = 32 // 2**cfg.n_stages
        self.feat_shape = (widths[-1], side, side)                       # (C, s, s)
        self.z_shape = (cfg.latent_dim, side, side) if cfg.spatial else (cfg.latent_dim,)
        self.encoder = ConvEncoder(widths, cfg.residual)
        self.decoder = ConvDecoder(widths, cfg.residual, out_channels=self.likelihood.out_channels)

    def _build_heads(self, cfg: LatentConfig) -> None:
        c = self.widths[-1]
        if cfg.spatial:
            self.to_stats = nn.Conv2d(c, 2 * cfg.latent_dim, 1)         # -> (mu, logvar)
            self.from_z = nn.Conv2d(cfg.latent_dim, c, 1)
        else:
            n_feat = c * self.feat_shape[1] * self.feat_shape[2]
            self.mu_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.logvar_head = mlp(n_feat, cfg.hidden, cfg.latent_dim)
            self.from_z = mlp(cfg.latent_dim, cfg.hidden, n_feat)

    def _stats(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features (B, C, s, s) -> mu, logvar (B, *z_shape), logvar kept in (-10, 5)."""
        if self.cfg.spatial:
            mu, logvar = self.to_stats(h).chunk(2, dim=1)   # (B, 2Z, s, s) -> 2 x (B, Z, s, s)
        else:
            h = h.flatten(1)                                # (B, C, s, s) -> (B, C*s*s)
            mu, logvar = self.mu_head(h), self.logvar_head(h)
        return mu, soft_clamp(logvar)

    def _decode_features(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, *z_shape) (already shifted by a label code, in the CVAE) -> likelihood params."""
        h = self.from_z(z)
        if not self.cfg.spatial:
            h = h.view(-1, *self.feat_shape)                # (B, C*s*s) -> (B, C, s, s)
        return self.decoder(h)

    def kl_weight(self, step: int | None = None) -> float:
        """beta at optimizer step `step` (see `kl_weight`)."""
        return kl_weight(self.cfg, step)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in self._legacy_keys:
            state_dict.pop(prefix + key, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
