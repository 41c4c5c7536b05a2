"""Interactive explorers for the notebooks, built on ipywidgets, each with a static fallback.

Every function returns an ipywidgets widget when it runs inside a Jupyter kernel, and a
matplotlib Figure with the same content otherwise (plain Python, or `CVAE_STATIC_WIDGETS=1`,
e.g. for a static render on GitHub). nbval runs a real kernel, so under `make test` the widgets
themselves are built; tests/test_browser.py drives them in a browser. Images
are float tensors (B, 3, 32, 32) in [0, 1]; models are passed as functions, so this module
never names a model class.

Core widgets only, with the API that ipywidgets 7.7 and 8.x share: Colab preinstalls 7.7.1,
and upgrading it inside a running session has broken its core widgets, so the course asks for
`ipywidgets>=7.7` and must work with both. Images go to the page as PNG bytes in an `Image`
widget (both versions); no 8-only traits or layout properties. `make test-widgets7` runs
tests/test_widgets.py with 7.7.1, where an unknown keyword is an error.

    latent_explorer(decode, mu)                     # sliders along the PCA directions of mu
    latent_explorer(decode, mu, class_names=CLASSES) # + a class picker: same z, another class
    interpolation_explorer(encode, decode, images)  # walk between two chosen images
    timestep_scrubber(diffusion, eps_model, x0)     # x_t, noise and predictions at a chosen t
    class_draw(draw, CLASSES)                       # n images of a picked class, seed, guidance, steps
"""
from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["is_interactive", "pca_directions", "latent_explorer", "interpolation_explorer",
           "timestep_scrubber", "class_draw"]

Decode = Callable[..., torch.Tensor]   # decode(z) or decode(z, y) -> images (B, 3, 32, 32) in [0, 1]


# The functions that show a live widget in a kernel and a static figure otherwise: the course's
# website (tools/build_site.py) marks their figures as static views of an explorer.
EXPLORERS = ("latent_explorer", "interpolation_explorer", "timestep_scrubber", "class_draw")


def is_interactive() -> bool:
    """True inside a Jupyter kernel (where widgets can render) unless CVAE_STATIC_WIDGETS is set."""
    from .settings import current

    if current().static_widgets:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def pca_directions(mu: torch.Tensor, k: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k main directions of a cloud of posterior means.

    mu: (N, Z) (or (N, ...), flattened). Returns (centre (Z,), directions (k, Z) orthonormal,
    std (k,) spread of the data along each direction), from the SVD of the centred means.
    """
    m = mu.detach().float().cpu().flatten(1)                      # (N, ...) -> (N, Z)
    centre = m.mean(0)
    _, s, vh = torch.linalg.svd(m - centre, full_matrices=False)  # vh: (min(N, Z), Z)
    k = min(k, vh.shape[0])
    return centre, vh[:k], s[:k] / max(len(m) - 1, 1) ** 0.5


def _decode(decode: Decode, z: torch.Tensor, y: int | None) -> torch.Tensor:
    """Call decode with or without labels; z (B, Z) -> images (B, 3, 32, 32) on the CPU."""
    with torch.no_grad():
        if y is None:
            return decode(z).detach().float().cpu().clamp(0, 1)
        return decode(z, torch.full((len(z),), y, dtype=torch.long)).detach().float().cpu().clamp(0, 1)


def _png(x: torch.Tensor, scale: int = 4, gap: int = 0) -> bytes:
    """Images (B, 3, H, W) in [0, 1] side by side as one PNG, each pixel `scale` x `scale`, with
    `gap` white pixels between neighbouring images."""
    from PIL import Image

    B, _, H, W = x.shape
    im = Image.new("RGB", (B * W * scale + (B - 1) * gap, H * scale), "white")
    for i, tile in enumerate(x):
        a = (tile.permute(1, 2, 0) * 255).round().byte().numpy()  # (H, W, 3)
        im.paste(Image.fromarray(a).resize((W * scale, H * scale), Image.NEAREST), (i * (W * scale + gap), 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def latent_explorer(decode: Decode, mu: torch.Tensor, n_directions: int = 4,
                    class_names: Sequence[str] | None = None, z_shape: Sequence[int] | None = None,
                    span: float = 3.0, steps: int = 7):
    """Sliders that move z along the main (PCA) directions of the posterior means `mu` (N, Z).

    Each slider is in units of the data's standard deviation along its direction, so +-2 stays
    where real images' codes live. With `class_names` (a CVAE), a dropdown decodes the same z
    as another class and `decode` is called as decode(z, y). z_shape: the model's latent shape
    if it is not flat (z is reshaped to (B, *z_shape) before decoding).

    Static fallback: a Figure, one row per direction, z = centre + t * std * direction for t
    in [-span, span] (a latent traversal); with classes, decoded as the first class, and below
    it the codes along the first direction decoded as every class (the class picker's view).
    """
    centre, dirs, std = pca_directions(mu, n_directions)
    shape = tuple(z_shape) if z_shape is not None else (centre.numel(),)

    def render(ts: Sequence[float], y: int | None) -> torch.Tensor:
        z = centre + (torch.tensor(ts, dtype=torch.float32) * std) @ dirs   # (Z,)
        return _decode(decode, z.view(1, *shape), y)                        # (1, 3, 32, 32)

    if not is_interactive():
        from .plotting import release, show_images, show_panels

        t = torch.linspace(-span, span, steps)
        z = centre + (t[None, :, None] * std[:, None, None]) * dirs[:, None, :]  # (k, steps, Z)
        x = _decode(decode, z.reshape(-1, *shape), 0 if class_names else None)   # (k*steps, 3, 32, 32)
        traversal = {"images": x, "nrow": steps, "row_labels": [f"PC {i + 1}" for i in range(len(dirs))],
                     "col_labels": [f"{v:+.1f} sd" for v in t.tolist()]}
        if not class_names:
            return release(show_images(x, nrow=steps, row_labels=traversal["row_labels"],
                                       col_labels=traversal["col_labels"],
                                       title="latent traversal along the main directions"))
        by_class = torch.cat([_decode(decode, z[0].reshape(-1, *shape), k)      # (K*steps, 3, 32, 32)
                              for k in range(len(class_names))])
        return release(show_panels([
            {**traversal, "title": f"latent traversal along the main directions, as {class_names[0]}"},
            {"images": by_class, "nrow": steps, "row_labels": list(class_names),
             "title": "the same codes along PC 1, decoded as each class"}]))

    import ipywidgets as W

    sliders = [W.FloatSlider(value=0.0, min=-span, max=span, step=0.1, description=f"PC {i + 1}",
                             continuous_update=True) for i in range(len(dirs))]
    picker = (W.Dropdown(options=[(name, k) for k, name in enumerate(class_names)], description="class")
              if class_names else None)
    reset = W.Button(description="reset to the mean")
    image = W.Image(format="png", width=160, height=160)

    def update(*_):
        image.value = _png(render([s.value for s in sliders], picker.value if picker else None))

    def on_reset(_):
        for s in sliders:
            s.value = 0.0

    for w in sliders + ([picker] if picker else []):
        w.observe(update, names="value")
    reset.on_click(on_reset)
    update()
    controls = W.VBox(sliders + ([picker] if picker else []) + [reset])
    return W.HBox([controls, image])


def interpolation_explorer(encode: Callable[[torch.Tensor], torch.Tensor],
                           decode: Callable[[torch.Tensor], torch.Tensor],
                           images: torch.Tensor, steps: int = 8):
    """Pick two of `images` (N, 3, 32, 32) and slide from one's code to the other's.

    encode: images -> z (B, ...), e.g. the posterior mean; decode: z -> images in [0, 1].
    z_t = (1 - t) z_a + t z_b. Static fallback: a Figure with the paths from image 0 to 1, 2 to
    3 and 4 to 5 (as many pairs as there are images, up to three) in `steps` points each, the
    two originals at the ends.
    """
    with torch.no_grad():
        codes = encode(images).detach().float().cpu()             # (N, ...)

    def path(a: int, b: int, ts: torch.Tensor) -> torch.Tensor:
        w = ts.view(-1, *[1] * (codes.dim() - 1))                 # (T, 1, ...)
        return _decode(decode, (1 - w) * codes[a] + w * codes[b], None)

    if not is_interactive():
        from .plotting import release, show_images

        ts = torch.linspace(0, 1, steps)
        pairs = [(a, a + 1) for a in range(0, min(len(images), 6) - 1, 2)]     # (0, 1), (2, 3), (4, 5)
        rows = [torch.cat([images[a:a + 1].float().cpu(), path(a, b, ts), images[b:b + 1].float().cpu()])
                for a, b in pairs]                                             # each (steps + 2, 3, 32, 32)
        return release(show_images(torch.cat(rows), nrow=steps + 2, row_labels=[f"{a} -> {b}" for a, b in pairs],
                                   col_labels=["A"] + [f"t={v:.2f}" for v in ts.tolist()] + ["B"],
                                   title="original A, decoded path A -> B, original B"))

    import ipywidgets as W

    n = len(images)
    a = W.BoundedIntText(value=0, min=0, max=n - 1, description="image A")
    b = W.BoundedIntText(value=min(1, n - 1), min=0, max=n - 1, description="image B")
    t = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="t")
    ends = W.Image(format="png", width=320, height=160)
    now = W.Image(format="png", width=160, height=160)

    def update(*_):
        ends.value = _png(torch.stack([images[a.value], images[b.value]]).float().cpu())
        now.value = _png(path(a.value, b.value, torch.tensor([t.value])))

    for w in (a, b, t):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([a, b]), t, W.HBox([W.VBox([W.Label("A and B"), ends]),
                                              W.VBox([W.Label("decoded z_t"), now])])])


# ----------------------------------------------------------------------------- diffusion

def _noise_image(eps: torch.Tensor) -> torch.Tensor:
    """Noise (B, 3, H, W) ~ N(0, 1) shown as an image: -2 sd -> 0, +2 sd -> 1."""
    return (eps.detach().float().cpu() / 4 + 0.5).clamp(0, 1)


def _scrub_rows(diffusion, model: Callable, x0: torch.Tensor, t: int, y: torch.Tensor | None,
                seed: int, first_stage=None) -> tuple[torch.Tensor, float]:
    """For images x0 (B, 3, H, W) in [0, 1] at timestep t: x_t, eps, eps_hat and x0_hat side
    by side, (4B, 3, H, W) in [0, 1] (image-major), and the MSE of eps_hat per pixel.

    With a `first_stage` (latent diffusion) the process runs on its scaled latents: x_t and
    x0_hat are shown decoded, and the noise as its first three latent channels, enlarged."""
    from .diffusion import from_unit, to_unit

    dev = next(model.parameters()).device if isinstance(model, torch.nn.Module) else x0.device
    if first_stage is None:
        z0, show = from_unit(x0).to(dev), lambda z: to_unit(z).cpu()
    else:
        z0, show = first_stage.encode_latent(x0.to(dev)), lambda z: first_stage.decode_latent(z).float().cpu()
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(z0.shape, generator=g)              # the same noise for every t
    out = diffusion.denoise_at(model, z0, t, None if y is None else y.to(dev), eps=eps.to(dev))

    def noise(e: torch.Tensor) -> torch.Tensor:           # (B, C, h, w) -> (B, 3, H, W)
        return _noise_image(F.interpolate(e[:, :3].float().cpu(), size=x0.shape[-2:], mode="nearest"))

    tiles = [show(out["xt"]), noise(out["eps"]), noise(out["eps_hat"]), show(out["x0_hat"])]  # 4 x (B, 3, H, W)
    mse = (out["eps_hat"].float().cpu() - eps).pow(2).mean().item()
    return torch.stack(tiles, 1).flatten(0, 1), mse        # (B, 4, 3, H, W) -> (4B, 3, H, W)


SCRUB_COLUMNS = ["x_t", "true noise", "predicted noise", "predicted x0"]
SCRUB_SCALE, SCRUB_GAP = 3, 12   # 96-pixel images, 12-pixel gaps: four columns in 420 pixels
LATENT_COLUMNS = ["decoded z_t", "true noise (3 ch)", "predicted noise", "decoded predicted z0"]


def timestep_scrubber(diffusion, model: Callable, x0: torch.Tensor, y: torch.Tensor | None = None,
                      ts: Sequence[int] | None = None, seed: int = 0, first_stage=None):
    """Slide t from 0 to T-1 and see what the denoiser sees and predicts at that step.

    diffusion: a `cvae_lib.diffusion.Diffusion`; model: eps_theta(xt, t, y), e.g. the EMA U-Net;
    x0: a few images (B, 3, 32, 32) in [0, 1]; y: their labels (B,) or None. For each image:
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, the noise eps, the prediction
    eps_hat and the implied x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t).
    The noise eps is drawn once (seeded) and reused for every t. first_stage: for latent
    diffusion (chapter 06), the `FirstStage` whose latents the model denoises; z_t and the
    predicted z0 are then shown through its decoder.

    Static fallback: a Figure with one row per t in `ts` for the first image (default: seven
    steps from 0 to T-1, e.g. 0, 50, 200, 400, 600, 800, 999 for T = 1000).
    """
    x0 = x0.detach().float().cpu()
    columns = SCRUB_COLUMNS if first_stage is None else LATENT_COLUMNS
    if ts is None:
        ts = sorted({min(round(f * diffusion.T), diffusion.T - 1) for f in (0, 0.05, 0.2, 0.4, 0.6, 0.8, 1)})
    if not is_interactive():
        from .plotting import release, show_images

        rows, labels = [], []
        for t in ts:
            tiles, mse = _scrub_rows(diffusion, model, x0[:1], int(t), None if y is None else y[:1], seed,
                                     first_stage)
            rows.append(tiles)
            labels.append(f"t={t} (mse {mse:.2f})")
        return release(show_images(torch.cat(rows), nrow=4, row_labels=labels, col_labels=columns,
                                   scale=1.0, title="what the denoiser sees (x_t) and predicts"))

    import ipywidgets as W

    slider = W.IntSlider(value=diffusion.T // 2, min=0, max=diffusion.T - 1, step=1,
                         description="t", continuous_update=False, layout=W.Layout(width="500px"))
    info = W.Label()
    image = W.Image(format="png")

    def update(*_):
        tiles, mse = _scrub_rows(diffusion, model, x0, slider.value, y, seed, first_stage)
        ab = float(diffusion.alpha_bar[slider.value])
        info.value = (f"alpha_bar = {ab:.4f}, signal-to-noise = {ab / (1 - ab):.3g}, "
                      f"mse(eps_hat, eps) = {mse:.3f}")
        rows = [_png(tiles[4 * i:4 * i + 4], scale=SCRUB_SCALE, gap=SCRUB_GAP) for i in range(len(x0))]
        image.value = rows[0]
        extra.children = [W.Image(value=r, format="png") for r in rows[1:]]

    extra = W.VBox()
    tile = x0.shape[-1] * SCRUB_SCALE                      # one image's width on screen, in pixels
    header = W.HBox([W.HTML(f"<b>{c}</b>", layout=W.Layout(width=f"{tile}px", margin=f"0 {SCRUB_GAP}px 0 0"))
                     for c in columns])                   # a label over each column
    slider.observe(update, names="value")
    update()
    return W.VBox([slider, info, header, image, extra])


Draw = Callable[..., torch.Tensor]   # draw(y, seed=, guidance=, steps=) -> images (B, 3, 32, 32) in [0, 1]


def class_draw(draw: Draw, class_names: Sequence[str], n: int = 8, guidance: float = 2.0, steps: int = 20,
               max_steps: int = 50, static_classes: Sequence[int] | None = None):
    """Pick a class, a seed, the guidance weight and the number of sampling steps, and see `n`
    images of that class drawn by a class-conditional generator.

    draw(y, seed=..., guidance=..., steps=...) -> (B, 3, 32, 32) in [0, 1] for class ids y (B,),
    e.g. a lambda around `LatentDiffusion.sample` with a seeded generator.

    Static fallback: a Figure with one row of `n` images per class in `static_classes`
    (default: every class) at seed 0 and the given guidance and steps.
    """
    def render(k: int, seed: int, w: float, s: int) -> torch.Tensor:
        return draw(torch.full((n,), k, dtype=torch.long), seed=seed, guidance=w, steps=s).float().cpu()

    if not is_interactive():
        from .plotting import release, show_images

        ks = list(static_classes) if static_classes is not None else list(range(len(class_names)))
        x = torch.cat([render(k, 0, guidance, steps) for k in ks])
        return release(show_images(x, nrow=n, row_labels=[class_names[k] for k in ks],
                                   title=f"{n} draws per class (seed 0, guidance {guidance:g}, {steps} steps)"))

    import ipywidgets as W

    picker = W.Dropdown(options=[(name, k) for k, name in enumerate(class_names)], description="class")
    seed = W.IntText(value=0, description="seed")
    weight = W.FloatSlider(value=guidance, min=0.0, max=6.0, step=0.5, description="guidance",
                           continuous_update=False)
    n_steps = W.IntSlider(value=steps, min=1, max=max_steps, step=1, description="steps", continuous_update=False)
    info = W.Label()
    image = W.Image(format="png")

    def update(*_):
        import time
        t0 = time.perf_counter()
        image.value = _png(render(picker.value, seed.value, weight.value, n_steps.value), scale=3, gap=4)
        info.value = f"{n} images in {time.perf_counter() - t0:.1f} s"

    for w in (picker, seed, weight, n_steps):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([picker, seed]), W.HBox([weight, n_steps]), image, info])
