"""Latent explorers: the static fallback headless, and the widgets' callbacks when interactive.

Run with the lock's ipywidgets 8 (`make test`) and with Colab's 7.7.1 (`make test-widgets7`).
A keyword that the installed ipywidgets does not know (an 8-only trait under 7.7, a typo) is
only a DeprecationWarning in traitlets: here it is an error.
"""
import pytest
import torch

from cvae_lib import widgets
from cvae_lib.models.cvae import CVAE, CVAEConfig

pytestmark = [
    pytest.mark.filterwarnings("error:Passing unrecognized arguments:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The `ipykernel.comm.Comm` class has been deprecated:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def cvae():
    torch.manual_seed(0)
    return CVAE(CVAEConfig(width=8, hidden=32, latent_dim=6, residual=True)).eval()


def test_pca_directions_are_orthonormal_and_ordered_by_spread():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 6, generator=g) * torch.tensor([5.0, 1, 1, 1, 1, 0.1]) + 3
    centre, dirs, std = widgets.pca_directions(mu, 3)
    torch.testing.assert_close(dirs @ dirs.T, torch.eye(3), atol=1e-5, rtol=0)
    assert abs(abs(float(dirs[0, 0])) - 1) < 0.01                   # first direction: the wide axis
    assert std[0] > 4 and (std[:-1] >= std[1:]).all()
    torch.testing.assert_close(centre, mu.mean(0))


def test_static_fallbacks_are_figures(monkeypatch, cvae):
    from matplotlib.figure import Figure
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "1")
    assert not widgets.is_interactive()
    fig = widgets.latent_explorer(cvae.decode_mean, torch.randn(50, 6), class_names=["a", "b"])
    assert isinstance(fig, Figure)
    y0 = torch.zeros(3, dtype=torch.long)
    fig = widgets.interpolation_explorer(lambda x: cvae.encode(x, y0[:len(x)])[0],
                                         lambda z: cvae.decode_mean(z, torch.zeros(len(z), dtype=torch.long)),
                                         torch.rand(3, 3, 32, 32))
    assert isinstance(fig, Figure)


def test_latent_explorer_widget_redraws_on_slider_and_class_change(monkeypatch, cvae):
    monkeypatch.setattr(widgets, "is_interactive", lambda: True)
    box = widgets.latent_explorer(cvae.decode_mean, torch.randn(50, 6), n_directions=2, class_names=["a", "b"])
    controls, image = box.children
    sliders, picker = controls.children[:2], controls.children[2]
    first = image.value
    assert first[:4] == b"\x89PNG"
    sliders[0].value = 2.5
    moved = image.value
    assert moved != first
    picker.value = 1                                  # same z, another class
    assert image.value != moved


def test_interpolation_widget_follows_t(monkeypatch, cvae):
    monkeypatch.setattr(widgets, "is_interactive", lambda: True)
    y0 = torch.zeros(4, dtype=torch.long)
    box = widgets.interpolation_explorer(lambda x: cvae.encode(x, y0[:len(x)])[0],
                                         lambda z: cvae.decode_mean(z, torch.zeros(len(z), dtype=torch.long)),
                                         torch.rand(4, 3, 32, 32))
    t = box.children[1]
    now = box.children[2].children[1].children[1]
    before = now.value
    t.value = 0.0
    assert now.value != before


def _latent_parts():
    from cvae_lib.diffusion import Diffusion, DiffusionConfig
    from cvae_lib.models.first_stage import FirstStage, FirstStageConfig
    from cvae_lib.models.unet import UNet, UNetConfig
    torch.manual_seed(0)
    first = FirstStage(FirstStageConfig(width=8, latent_channels=4, disc_width=8)).eval()
    prior = UNet(UNetConfig.latent(in_channels=4, width=16, num_classes=10)).eval()
    return Diffusion(DiffusionConfig(T=50, null_label=10, data="latent")), prior, first


def test_latent_scrubber_decodes_what_the_prior_predicts(monkeypatch):
    diffusion, prior, first = _latent_parts()
    x0 = torch.rand(2, 3, 32, 32)
    tiles, mse = widgets._scrub_rows(diffusion, prior, x0, 30, torch.tensor([0, 6]), 0, first)
    assert tiles.shape == (8, 3, 32, 32) and tiles.min() >= 0 and tiles.max() <= 1 and mse > 0
    # columns 1 and 4: z_t and the predicted z0, both through the decoder (same noise, same seed)
    z0 = first.encode_latent(x0)
    out = diffusion.denoise_at(prior, z0, 30, torch.tensor([0, 6]),
                               eps=torch.randn(z0.shape, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(tiles[0], first.decode_latent(out["xt"])[0])
    torch.testing.assert_close(tiles[3], first.decode_latent(out["x0_hat"])[0])
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "1")
    from matplotlib.figure import Figure
    fig = widgets.timestep_scrubber(diffusion, prior, x0, torch.tensor([0, 6]), first_stage=first)
    assert isinstance(fig, Figure)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == widgets.LATENT_COLUMNS


def test_latent_scrubber_widget_redraws_on_t(monkeypatch):
    diffusion, prior, first = _latent_parts()
    monkeypatch.setattr(widgets, "is_interactive", lambda: True)
    box = widgets.timestep_scrubber(diffusion, prior, torch.rand(2, 3, 32, 32), torch.tensor([0, 6]),
                                    first_stage=first)
    slider, info, header, image = box.children[:4]
    before = image.value
    slider.value = 3
    assert image.value != before and "alpha_bar" in info.value
    assert [h.value for h in header.children] == [f"<b>{c}</b>" for c in widgets.LATENT_COLUMNS]   # labelled columns


def test_the_scrubbers_columns_have_gaps_and_fit_a_laptop_screen():
    import io

    from PIL import Image

    png = widgets._png(torch.zeros(4, 3, 32, 32), scale=widgets.SCRUB_SCALE, gap=widgets.SCRUB_GAP)
    im = Image.open(io.BytesIO(png))
    assert im.size == (4 * 32 * widgets.SCRUB_SCALE + 3 * widgets.SCRUB_GAP, 32 * widgets.SCRUB_SCALE)
    assert im.size[0] <= 500                                   # beside a 500-pixel slider
    assert im.getpixel((32 * widgets.SCRUB_SCALE + 1, 5)) == (255, 255, 255)   # a white gap


def _interactive_explorers(cvae):
    y0 = torch.zeros(4, dtype=torch.long)
    diffusion, prior, first = _latent_parts()
    return {
        "latent": lambda: widgets.latent_explorer(cvae.decode_mean, torch.randn(50, 6), n_directions=2,
                                                  class_names=["a", "b"]),
        "interpolation": lambda: widgets.interpolation_explorer(
            lambda x: cvae.encode(x, y0[:len(x)])[0],
            lambda z: cvae.decode_mean(z, torch.zeros(len(z), dtype=torch.long)), torch.rand(4, 3, 32, 32)),
        "scrubber": lambda: widgets.timestep_scrubber(diffusion, prior, torch.rand(2, 3, 32, 32),
                                                      torch.tensor([0, 6]), first_stage=first),
        "class draw": lambda: widgets.class_draw(_draw, ["a", "b", "c"], n=3),
    }


def _draw(y, seed=0, guidance=1.0, steps=1):
    """A stand-in generator: class y as a grey level, the seed as noise, guidance as contrast."""
    g = torch.Generator().manual_seed(seed)
    base = (y.float() / 3)[:, None, None, None].expand(-1, 3, 32, 32)
    return (base + 0.05 * guidance * torch.rand(len(y), 3, 32, 32, generator=g) / steps).clamp(0, 1)


def test_class_draw_redraws_on_class_seed_guidance_and_steps(monkeypatch):
    monkeypatch.setattr(widgets, "is_interactive", lambda: True)
    box = widgets.class_draw(_draw, ["a", "b", "c"], n=3)
    (picker, seed), (weight, steps) = box.children[0].children, box.children[1].children
    image, info = box.children[2], box.children[3]
    seen = [image.value]
    for control, value in ((picker, 2), (seed, 7), (weight, 4.0), (steps, 3)):
        control.value = value
        assert image.value != seen[-1], control.description
        seen.append(image.value)
    assert seen[0][:4] == b"\x89PNG" and "3 images in" in info.value


def test_class_draw_static_view_shows_a_row_per_class(monkeypatch):
    from matplotlib.figure import Figure
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "1")
    fig = widgets.class_draw(_draw, ["a", "b", "c"], n=4)
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a", "b", "c"]


def test_explorers_are_core_widgets_that_serialise_in_ipywidgets_7_and_8(monkeypatch, cvae):
    """What the front end receives: only @jupyter-widgets core models (Colab renders no others),
    images as PNG bytes. `make test-widgets7` runs this file with Colab's ipywidgets 7.7.1 too."""
    import base64

    import ipywidgets
    from ipywidgets.embed import embed_data

    monkeypatch.setattr(widgets, "is_interactive", lambda: True)
    for name, build in _interactive_explorers(cvae).items():
        state = embed_data(views=[build()], drop_defaults=False)["manager_state"]["state"]
        modules = {s["model_module"] for s in state.values()}
        assert modules <= {"@jupyter-widgets/base", "@jupyter-widgets/controls"}, (name, ipywidgets.__version__)
        images = [s for s in state.values() if s["model_name"] == "ImageModel"]
        assert images and all(s["state"]["format"] == "png" for s in images), name
        pngs = [base64.b64decode(b["data"]) for s in images for b in s.get("buffers", []) if b["path"] == ["value"]]
        assert pngs and all(png[:4] == b"\x89PNG" for png in pngs), name


# ----------------------------------------------------------------------------- static views

def test_static_views_show_each_explorer_at_a_few_settings(monkeypatch, cvae):
    """The figures a course run puts where the widgets would be (the website shows them): the
    latent sliders at seven values per direction and the class picker at every class; three
    pairs for the interpolation; seven steps for the scrubber."""
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "1")
    labels = lambda ax, axis: [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]  # noqa: E731
    traversal, by_class = widgets.latent_explorer(cvae.decode_mean, torch.randn(50, 6), n_directions=2,
                                                  class_names=["plane", "car", "bird"]).axes
    assert labels(traversal, "y") == ["PC 1", "PC 2"] and len(labels(traversal, "x")) == 7
    assert labels(by_class, "y") == ["plane", "car", "bird"] and "plane" in traversal.get_title()
    as_plane = lambda z: cvae.decode_mean(z, torch.zeros(len(z), dtype=torch.long))  # noqa: E731
    assert len(widgets.latent_explorer(as_plane, torch.randn(50, 6)).axes) == 1     # no classes: one grid
    y0 = torch.zeros(6, dtype=torch.long)
    fig = widgets.interpolation_explorer(lambda x: cvae.encode(x, y0[:len(x)])[0],
                                         lambda z: cvae.decode_mean(z, torch.zeros(len(z), dtype=torch.long)),
                                         torch.rand(6, 3, 32, 32), steps=4)
    assert labels(fig.axes[0], "y") == ["0 -> 1", "2 -> 3", "4 -> 5"]
    assert labels(fig.axes[0], "x") == ["A", "t=0.00", "t=0.33", "t=0.67", "t=1.00", "B"]
    diffusion, prior, first = _latent_parts()
    fig = widgets.timestep_scrubber(diffusion, prior, torch.rand(2, 3, 32, 32), torch.tensor([0, 6]),
                                    first_stage=first)
    assert [t.split()[0] for t in labels(fig.axes[0], "y")] == ["t=0", "t=2", "t=10", "t=20", "t=30", "t=40", "t=49"]


def test_static_views_are_closed_in_pyplot(monkeypatch, cvae):
    """An explorer's figure is the cell's result: closed in pyplot, a kernel shows it once (the
    inline backend would otherwise draw every open figure a second time at the end of the cell)."""
    import matplotlib.pyplot as plt
    monkeypatch.setenv("CVAE_STATIC_WIDGETS", "1")
    fig = widgets.latent_explorer(cvae.decode_mean, torch.randn(50, 6), class_names=["a", "b"])
    assert fig.number not in plt.get_fignums()
    assert {"latent_explorer", "interpolation_explorer", "timestep_scrubber"} <= set(widgets.EXPLORERS)


def test_an_executed_copy_shows_a_static_view_once(tmp_path):
    """As `make course` runs a chapter: a kernel with the inline backend and CVAE_STATIC_WIDGETS=1.
    The explorer's cell ends with exactly one image (its static view) and no widget."""
    import os

    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import torch\nfrom cvae_lib.widgets import latent_explorer\n"
        "decode = lambda z: torch.sigmoid(z[:, :1, None, None].expand(-1, 3, 32, 32))\n"
        "latent_explorer(decode, torch.randn(40, 4), n_directions=2)")])
    env = {"CVAE_STATIC_WIDGETS": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs if "image/png" in o.get("data", {})] == ["execute_result"]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
