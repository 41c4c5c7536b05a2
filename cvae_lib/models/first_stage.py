"""The first stage of latent diffusion: an autoencoder with a lightly KL-regularised latent grid
and a patch discriminator (Rombach et al. 2022, Sec. 3.1 and App. G; Esser et al. 2021, VQGAN).

    model = FirstStage(FirstStageConfig())            # 32x32x3 images <-> 8x8x8 latent grids
    z = model.encode_latent(x)                        # x (B, 3, 32, 32) in [0, 1] -> (B, 8, 8, 8), ~unit variance
    x_hat = model.decode_latent(z)                    # -> (B, 3, 32, 32) in [0, 1]
    loss, terms = first_stage_loss(model, x, y)                   # reconstruction + KL
    loss, terms = first_stage_loss(model, x, y, adversarial=True)  # + the patch GAN, both players

Why each piece:
- **A spatial latent with room** (8x8 positions x 8 channels = 512 numbers, 6x fewer than the
  image) keeps edges that a 64-number vector cannot; the diffusion prior then works on 8x8
  grids, 16x fewer positions than 32x32 pixels.
- **KL weight 1e-6** (latent diffusion's choice) on the summed KL per image, against the
  reconstruction error summed per image: just enough to stop the posterior variance from
  vanishing and the latent scale from drifting, far too little to blur anything. This is not a
  generative VAE (its prior would be a poor sampler); the diffusion model becomes the prior.
- **L1 reconstruction plus an adversarial term**: a pixel loss alone rewards the blurry mean of
  the plausible images, which costs edges; a discriminator that judges 8x8 overlapping patches
  (receptive field 22 px) punishes blur. LPIPS, the third term of latent diffusion's first
  stage, needs downloaded VGG weights, so the course leaves it out. The adversarial weight is
  VQGAN's adaptive one (Esser et al. 2021, Eq. 7): lambda = ||grad rec|| / ||grad adv|| at the
  decoder's last layer, times `disc_weight`.

Both players live in one module and one optimizer: the generator's adversarial term calls the
discriminator with *detached* parameters and the discriminator sees a detached x_hat, so each
loss only moves its own player's weights and the course's single `fit` trains a GAN unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..pixels import from_unit, to_unit
from ..runtime import unwrap
from .inputs import check_image_batch

__all__ = ["FirstStageConfig", "FirstStage", "PatchDiscriminator", "first_stage_loss"]


@dataclass
class FirstStageConfig:
    width: int = 32                 # channels at 32x32; each downsampling doubles them
    n_down: int = 2                 # 32 -> 16 -> 8: the latent grid is 32 / 2**n_down on a side
    blocks: int = 1                 # residual blocks per resolution (the decoder has one more)
    latent_channels: int = 8        # C of the latent grid
    kl_weight: float = 1e-6         # weight of the summed KL per image (latent diffusion: 1e-6)
    disc_width: int = 32            # channels of the discriminator's first layer
    disc_weight: float = 0.5        # scale of VQGAN's adaptive adversarial weight

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = 32 // 2**self.n_down
        return (self.latent_channels, side, side)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c // 4), c)


class ResBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H, W): two GroupNorm-SiLU-3x3 conv layers, residual."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1),
                                  _norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class PatchDiscriminator(nn.Module):
    """Images (B, 3, 32, 32) in [-1, 1] -> real/fake logits per patch (B, 1, 8, 8) (PatchGAN,
    Isola et al. 2017): two stride-2 4x4 convs, a 3x3 conv, a 3x3 conv to one logit."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), _norm(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), _norm(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FirstStage(nn.Module):
    """KL-regularised convolutional autoencoder with a patch discriminator beside it.

    Images are (B, 3, 32, 32) in [0, 1]; latent grids (B, C, h, w) = (B, *cfg.latent_shape).
    `scale` (a buffer, saved with the weights) is 1 / std of the training latents, measured by
    `set_scale` after training, so that `encode_latent` gives the diffusion prior unit-variance
    inputs (Rombach et al. 2022, Sec. 4.3.2).
    """

    def __init__(self, cfg: FirstStageConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FirstStageConfig()
        widths = [cfg.width * 2**i for i in range(cfg.n_down + 1)]     # e.g. (32, 64, 128)
        enc: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        for i, w in enumerate(widths):
            c = widths[max(i - 1, 0)]
            enc += [ResBlock(c if b == 0 else w, w) for b in range(cfg.blocks)]
            if i < cfg.n_down:
                enc.append(nn.Conv2d(w, w, 3, stride=2, padding=1))   # halve H and W
        enc += [_norm(widths[-1]), nn.SiLU(), nn.Conv2d(widths[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, widths[-1], 3, padding=1)]
        for i, w in reversed(list(enumerate(widths))):
            nxt = widths[max(i - 1, 0)]
            dec += [ResBlock(w, w) for _ in range(cfg.blocks)] + [ResBlock(w, nxt)]
            if i > 0:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nxt, nxt, 3, padding=1)]
        dec += [_norm(widths[0]), nn.SiLU()]
        self.decoder = nn.Sequential(*dec)
        self.head = nn.Conv2d(widths[0], 3, 3, padding=1)                # the decoder's last layer
        self.disc = PatchDiscriminator(cfg.disc_width)
        self.register_buffer("scale", torch.ones(()))

    # ------------------------------------------------------------------ the autoencoder

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): images (B, 3, 32, 32) in [0, 1] -> (mu, logvar), each (B, C, h, w), unscaled."""
        check_image_batch(self, x)
        mu, logvar = self.encoder(from_unit(x)).chunk(2, dim=1)       # (B, 2C, h, w) -> 2 x (B, C, h, w)
        return mu, logvar.clamp(-30, 20)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled z (B, C, h, w) -> images in [-1, 1] before clamping, (B, 3, 32, 32)."""
        return self.head(self.decoder(z))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Unscaled z (B, C, h, w) -> images (B, 3, 32, 32) in [0, 1]."""
        return to_unit(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct from the posterior mean: (B, 3, 32, 32) in [0, 1] -> same."""
        return self.decode(self.posterior(x)[0])

    # ------------------------------------------------------------------ the latent space of the prior

    @torch.no_grad()
    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, 32, 32) in [0, 1] -> scaled latents mu * scale (B, C, h, w), ~unit variance."""
        return self.posterior(x)[0] * self.scale

    @torch.no_grad()
    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) -> images (B, 3, 32, 32) in [0, 1]."""
        return self.decode(z / self.scale)

    @torch.no_grad()
    def set_scale(self, x: torch.Tensor, batch_size: int = 500) -> float:
        """Measure scale = 1 / std of the posterior means of the training images x (N, 3, 32, 32)
        in [0, 1] and store it; returns it."""
        device = self.scale.device
        mu = torch.cat([self.posterior(b.to(device))[0].float().cpu() for b in x.split(batch_size)])
        self.scale.fill_(1.0 / float(mu.std()))
        return float(self.scale)


def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(0, I)) summed over the latent, per image: (B, C, h, w) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)


def first_stage_loss(model: FirstStage, x: torch.Tensor, y: torch.Tensor | None = None, *,
                     adversarial: bool = False):
    """The first stage's objective on images x (B, 3, 32, 32) in [0, 1]; the label is unused.

    rec  = mean |x - x_hat| over pixels (images in [-1, 1]), z ~ q(z | x) by reparameterisation;
    kl   = kl_weight * KL per image / pixels per image (the same per-pixel normalisation as rec);
    adversarial: adds the generator term lambda * -D(x_hat) (D frozen, lambda adaptive, Esser et
    al. 2021 Eq. 7) and the discriminator's hinge loss on (x, detached x_hat).
    Returns (loss, {"rec", "kl", "mse", and with adversarial "g", "d", "lambda"}).
    """
    if isinstance(getattr(model, "_orig_mod", model), torch.nn.parallel.DistributedDataParallel):
        raise ValueError("first_stage_loss calls the encoder, decoder and discriminator directly, which "
                         "DistributedDataParallel cannot synchronise: train the first stage in one process")
    model = unwrap(model)                                             # behind compile wrappers
    cfg = model.cfg
    mu, logvar = model.posterior(x)
    x = from_unit(x)                                                  # [0, 1] -> [-1, 1], as x_hat
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)              # reparameterisation
    feats = model.decoder(z)
    x_hat = model.head(feats)                                         # (B, 3, 32, 32), unclamped
    n_pix = x[0].numel()
    rec = (x_hat.float() - x).abs().mean()
    kl = cfg.kl_weight * _kl(mu.float(), logvar.float()).mean() / n_pix
    terms = {"rec": rec.detach(), "kl": kl.detach(), "mse": F.mse_loss(x_hat.detach().float(), x) / 4}
    loss = rec + kl
    if not adversarial:
        return loss, terms
    frozen = {k: p.detach() for k, p in model.disc.named_parameters()}
    g = -functional_call(model.disc, frozen, (x_hat,)).float().mean()  # moves the generator only
    if torch.is_grad_enabled():
        last = model.head.weight
        g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
        g_adv = torch.autograd.grad(g, last, retain_graph=True)[0]
        lam = (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, 1e4).detach() * cfg.disc_weight
    else:                                                             # evaluation: no gradients to compare
        lam = torch.tensor(cfg.disc_weight, device=x.device)
    d_real, d_fake = model.disc(x), model.disc(x_hat.detach())       # moves the discriminator only
    d = 0.5 * (F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean())  # hinge loss
    terms.update({"g": g.detach(), "d": d.detach(), "lambda": lam})
    return loss + lam * g + d, terms
