"""Pure image builders: PNG thumbnails and matplotlib attribution overlays.

Nothing here touches ``matplotlib.pyplot``: figures are ``matplotlib.figure.Figure``
objects rendered with the Agg canvas, so building them in a widget callback never opens a
window nor leaks into a notebook's inline figures.
"""
from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from PIL import Image as PILImage

__all__ = ["attribution_grid", "attribution_overlay", "figure_png", "image_png"]


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _hwc(image) -> np.ndarray:
    """``(C, H, W)`` uint8 or float in 0..1 -> ``(H, W)`` or ``(H, W, 3)`` float in 0..1."""
    a = _np(image)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W) or (H, W), got {a.shape}")
    if a.max(initial=0.0) > 1.0 + 1e-6:
        a = a / 255.0
    a = np.clip(a, 0.0, 1.0)
    return a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))


def image_png(image, *, scale: int = 3) -> bytes:
    """PNG bytes of one image, upscaled ``scale`` times with nearest-neighbour pixels.

    Args:
        image: ``(C, H, W)`` uint8 (0..255) or float (0..1) tensor/array, C in {1, 3}.
    Returns:
        PNG-encoded bytes, ready for ``ipywidgets.Image(value=..., format="png")``.
    """
    a = (_hwc(image) * 255.0 + 0.5).astype(np.uint8)
    img = PILImage.fromarray(a, mode="L" if a.ndim == 2 else "RGB")
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), PILImage.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def attribution_overlay(attr, image, ax: Axes | None = None, *, title: str = "", cmap: str | None = None,
                        alpha: float = 0.7, vmax: float | None = None, signed: bool | None = None) -> Figure:
    """Draw an attribution map over a grayscale version of its image.

    Args:
        attr: ``(H, W)`` attribution (any scale). Signed maps use a diverging colour map
            centred on 0 (red > 0 > blue); non-negative maps (e.g. Saliency) a sequential one.
        image: ``(C, H, W)`` image in 0..1 (or uint8), drawn underneath in gray.
        ax: axes to draw into; a new standalone figure is made when None.
        cmap: override the colour map.
        vmax: colour limit; default ``max |attr|``.
        signed: force the diverging (True) or sequential (False) colour map; None: from the data.
    Returns:
        The figure that owns ``ax``.
    """
    if ax is None:
        fig = Figure(figsize=(2.2, 2.2), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
    a = _np(attr)
    if a.ndim != 2:
        raise ValueError(f"attr must have shape (H, W), got {a.shape}")
    img = _hwc(image)
    gray = img if img.ndim == 2 else img.mean(axis=2)
    lim = float(vmax) if vmax is not None else float(np.abs(a).max(initial=0.0))
    lim = lim if lim > 0 else 1.0
    ax.imshow(gray, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    if not (signed if signed is not None else a.min(initial=0.0) < 0.0):
        ax.imshow(a, cmap=cmap or "Reds", vmin=0.0, vmax=lim, alpha=alpha, interpolation="nearest")
    else:
        ax.imshow(a, cmap=cmap or "bwr", norm=TwoSlopeNorm(0.0, -lim, lim), alpha=alpha, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return ax.figure  # type: ignore[return-value]


def attribution_grid(image, maps: Mapping[str, Sequence], *, columns: Sequence[str] = ("before", "after",
                     "after - before"), title: str = "") -> Figure:
    """A grid of overlays: one row per label, one column per model state (plus the image).

    Args:
        image: ``(C, H, W)`` image in 0..1 (or uint8).
        maps: row title -> sequence of ``(H, W)`` maps, one per entry of ``columns``.
            Rows share one colour scale per column kind so before/after are comparable.
        columns: column titles.
    Returns:
        A standalone :class:`matplotlib.figure.Figure` (render it with :func:`figure_png`).
    """
    rows = list(maps)
    n_cols = len(columns) + 1
    fig = Figure(figsize=(1.9 * n_cols, 1.95 * max(1, len(rows)) + 0.3), dpi=100)
    if title:
        fig.suptitle(title, fontsize=9)
    same_scale = [i for i, c in enumerate(columns) if "-" not in c]
    lim = max((float(np.abs(_np(maps[r][i])).max(initial=0.0)) for r in rows for i in same_scale), default=1.0)
    for r, row in enumerate(rows):
        ax0 = fig.add_subplot(len(rows), n_cols, r * n_cols + 1)
        ax0.imshow(_hwc(image), cmap="gray", interpolation="nearest")
        ax0.set_xticks([])
        ax0.set_yticks([])
        ax0.set_ylabel(row, fontsize=8)
        if r == 0:
            ax0.set_title("image", fontsize=8)
        for c, col in enumerate(columns):
            ax = fig.add_subplot(len(rows), n_cols, r * n_cols + c + 2)
            attribution_overlay(maps[row][c], image, ax, title=col if r == 0 else "",
                                vmax=lim if c in same_scale else None, signed=None if c in same_scale else True)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.86 if title else 0.9, bottom=0.02, wspace=0.08, hspace=0.12)
    return fig


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes with the Agg canvas (no pyplot)."""
    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
