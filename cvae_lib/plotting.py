"""Figures for the notebooks. Every function returns a matplotlib Figure and never calls show().

Images are float tensors (B, 3, H, W) in [0, 1] (clipped for display) or uint8 in [0, 255].
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

__all__ = ["image_grid", "show_images", "reconstructions", "loss_curves", "save_figure",
           "schedule_curves", "markdown_table", "show_table", "save_table", "toy_paths", "toy_samples", "metric_curves"]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().cpu()
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float().clamp(0, 1)


def image_grid(x: torch.Tensor, nrow: int = 10, pad: int = 1) -> torch.Tensor:
    """Tile images (B, 3, H, W) into one (H', W', 3) array, `nrow` images per row, white gaps."""
    x = _as_float(x)
    b, c, h, w = x.shape
    ncol = min(nrow, b)
    rows = math.ceil(b / ncol)
    grid = torch.ones(c, rows * (h + pad) - pad, ncol * (w + pad) - pad)
    for i in range(b):
        r, k = divmod(i, ncol)
        grid[:, r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = x[i]
    return grid.permute(1, 2, 0)  # (C, H', W') -> (H', W', C) for imshow


def show_images(x: torch.Tensor, nrow: int = 10, title: str | None = None,
                row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
                scale: float = 0.6) -> Figure:
    """One figure with the images in a grid; optional labels on the left of rows / above columns."""
    ncol = min(nrow, len(x))
    nrows = math.ceil(len(x) / ncol)
    fig, ax = plt.subplots(figsize=(max(2.0, ncol * scale), max(1.0, nrows * scale) + 0.4))
    _grid_on(ax, x, nrow, title, row_labels, col_labels)
    fig.tight_layout()
    return fig


def _grid_on(ax, x: torch.Tensor, nrow: int, title: str | None, row_labels: Sequence[str] | None,
             col_labels: Sequence[str] | None) -> None:
    """Draw images (B, 3, H, W) as a grid on `ax`, labels left of the rows and above the columns."""
    ax.imshow(image_grid(x, nrow).numpy(), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    side = x.shape[-1] + 1
    if row_labels is not None:
        ax.set_yticks([side * i + side / 2 - 1 for i in range(len(row_labels))], list(row_labels))
    if col_labels is not None:
        ax.set_xticks([side * i + side / 2 - 1 for i in range(len(col_labels))], list(col_labels),
                      rotation=45, ha="left")
        ax.xaxis.tick_top()
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title)


def show_panels(panels: Sequence[dict], scale: float = 0.6) -> Figure:
    """Image grids stacked in one figure, each with its own title and labels, e.g. an explorer's
    static view at a few settings. Each panel is a dict of `show_images`' arguments: "images"
    (B, 3, H, W) in [0, 1] and "nrow", optional "title", "row_labels" and "col_labels"."""
    shapes = [(min(p["nrow"], len(p["images"])), math.ceil(len(p["images"]) / min(p["nrow"], len(p["images"]))))
              for p in panels]                                              # (columns, rows) per panel
    heights = [rows * scale + 0.9 for _, rows in shapes]                    # + title and column labels
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                             figsize=(max(2.0, max(c for c, _ in shapes) * scale) + 1.0, sum(heights)))
    for ax, p in zip(axes[:, 0], panels):
        _grid_on(ax, p["images"], p["nrow"], p.get("title"), p.get("row_labels"), p.get("col_labels"))
    fig.tight_layout()
    return fig


def release(fig: Figure) -> Figure:
    """`fig`, closed in pyplot, for a function whose result is the figure to show: a kernel then
    displays it once, as the cell's result (left open, the inline backend draws it a second time)."""
    plt.close(fig)
    return fig


def show_rows(rows: dict[str, torch.Tensor], title: str | None = None,
              col_labels: Sequence[str] | None = None, scale: float = 0.6) -> Figure:
    """One labelled row per entry: {label: images (n, 3, H, W) in [0, 1]}, every row of the same
    length n, on any device."""
    x = torch.cat([r.detach().cpu() for r in rows.values()])
    return show_images(x, nrow=len(next(iter(rows.values()))), title=title, row_labels=list(rows),
                       col_labels=col_labels, scale=scale)


def reconstructions(x: torch.Tensor, x_hat: torch.Tensor, n: int = 10,
                    title: str | None = None) -> Figure:
    """Originals (top row) above their reconstructions (bottom row), `n` pairs."""
    both = torch.cat([_as_float(x[:n]), _as_float(x_hat[:n])])
    return show_images(both, nrow=min(n, len(x)), title=title,
                       row_labels=["original", "reconstruction"])


def loss_curves(history, keys: Sequence[str] | None = None, title: str = "training",
                logy: bool = False) -> Figure:
    """Per-epoch curves of a `train.History` (or dict of lists), e.g. train and validation loss."""
    rows = history.rows if hasattr(history, "rows") else [dict(zip(history, v)) for v in zip(*history.values())]
    keys = keys or [k for k in ("train_loss", "val_loss") if any(k in r for r in rows)]
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for k in keys:
        ax.plot(epochs, [r.get(k, math.nan) for r in rows], marker="o", ms=3, label=k)
    ax.set_xlabel("epoch"), ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, name: str, folder: str | None = None) -> str | None:
    """Save `fig` as PNG under `$CVAE_FIGURES_DIR` (set by `make course`) or `folder`; else do nothing.

    Returns the path written, or None.
    """
    import os

    from .settings import current

    folder = folder or current().figures_dir
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def markdown_table(rows: list[dict]) -> str:
    """A list of dicts with the same keys -> a markdown table (floats as given, None as "n/a")."""
    if not rows:
        return ""
    keys = list(rows[0])
    cell = lambda v: "n/a" if v is None else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def show_table(rows: list[dict], note: str = ""):
    """`rows` as a Markdown table, then `note`, for a notebook to display: an IPython `Markdown`
    object (a cell's last expression, or `display(...)`)."""
    from IPython.display import Markdown

    return Markdown(markdown_table(rows) + (f"\n{note}\n" if note else ""))


def save_table(rows: list[dict], name: str, note: str = "", folder: str | None = None) -> str | None:
    """Write rows as `name`.md (a markdown table, then `note`) and as `name`.json (the rows and the
    note as data, for tools/write_results.py) under `$CVAE_TABLES_DIR` (set by `make course`) or
    `folder`; else do nothing. Returns the path of the .md written, or None."""
    import json
    import os

    from .settings import current

    folder = folder or current().tables_dir
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.md")
    with open(path, "w") as f:
        f.write(markdown_table(rows) + ("\n" + note + "\n" if note else ""))
    with open(os.path.join(folder, f"{name}.json"), "w") as f:
        json.dump({"name": name, "profile": current().profile, "rows": rows, "note": note}, f, indent=1, default=str)
    return path


def schedule_curves(alpha_bars: dict[str, torch.Tensor]) -> Figure:
    """Noise schedules side by side: alpha_bar_t (left) and log10 SNR_t = log10(alpha_bar / (1 - alpha_bar))
    (right) against t, one line per named schedule; alpha_bars maps a name to a (T,) tensor."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, ab in alpha_bars.items():
        ab = ab.detach().double().cpu()
        t = torch.arange(1, len(ab) + 1)
        a.plot(t, ab, label=name)
        b.plot(t, torch.log10(ab / (1 - ab)), label=name)
    a.set_title(r"$\bar\alpha_t$: how much signal is left"), a.set_xlabel("t")
    b.set_title(r"$\log_{10}$ SNR$_t$"), b.set_xlabel("t")
    b.axhline(0, color="grey", lw=0.8, ls=":")
    for ax in (a, b):
        ax.legend(), ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def toy_paths(paths: dict[str, torch.Tensor], data: torch.Tensor, n_paths: int = 40) -> Figure:
    """Sampler paths on 2-D toy data (chapter 07), one panel per sampler: the data as grey dots,
    `n_paths` paths (steps + 1, B, 2) from noise (hollow circles) to samples (filled).
    paths maps a name to the (steps + 1, B, 2) output of `cvae_lib.toy.sample_paths`."""
    fig, axes = plt.subplots(1, len(paths), figsize=(4 * len(paths), 4), squeeze=False)
    xy = data.detach().cpu().reshape(len(data), -1)[:, :2]
    for ax, (name, p) in zip(axes[0], paths.items()):
        p = p.detach().cpu()[:, :n_paths]                                   # (S + 1, n, 2)
        ax.scatter(xy[:, 0], xy[:, 1], s=2, color="0.8")
        ax.plot(p[:, :, 0].numpy(), p[:, :, 1].numpy(), lw=0.8, alpha=0.8)
        ax.scatter(p[0, :, 0], p[0, :, 1], s=12, facecolors="none", edgecolors="k", lw=0.6)
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=12, color="k")
        ax.set_title(name, fontsize=10), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def toy_samples(samples: dict[str, dict[int, torch.Tensor]], data: torch.Tensor) -> Figure:
    """Samples of 2-D toy data by sampler (rows) and number of steps (columns): samples maps a
    sampler name to {steps: (B, 2) or (B, 2, 1, 1) points}; the data is drawn in grey behind."""
    names = list(samples)
    steps = list(samples[names[0]])
    fig, axes = plt.subplots(len(names), len(steps), figsize=(2.2 * len(steps), 2.3 * len(names)), squeeze=False)
    xy = data.detach().cpu().reshape(len(data), -1)[:, :2]
    lim = float(xy.abs().max()) * 1.6
    for r, name in enumerate(names):
        for c, k in enumerate(steps):
            ax, s = axes[r][c], samples[name][k].detach().cpu().reshape(-1, 2)
            ax.scatter(xy[:, 0], xy[:, 1], s=1, color="0.85")
            ax.scatter(s[:, 0], s[:, 1], s=1.5, color="C0" if r == 0 else "C1")
            ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_xticks([]), ax.set_yticks([])
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(f"{k} step{'s' if k > 1 else ''}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.tight_layout()
    return fig


def metric_curves(rows: list[dict], x: str, ys: Sequence[str], by: str, title: str | None = None) -> Figure:
    """One panel per metric in `ys`, each metric against `x`, one line per value of `by`:
    rows are dicts such as {"objective": "flow", "NFE": 10, "class accuracy": 0.4, "FD": 80.0}."""
    fig, axes = plt.subplots(1, len(ys), figsize=(4 * len(ys), 3), squeeze=False)
    for ax, y in zip(axes[0], ys):
        for name in dict.fromkeys(r[by] for r in rows):
            pts = sorted((r[x], r[y]) for r in rows if r[by] == name)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=str(name))
        ax.set_xlabel(x), ax.set_ylabel(y), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
