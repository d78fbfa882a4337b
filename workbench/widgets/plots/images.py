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


def _overlay_rgba(a: np.ndarray, lim: float, signed: bool, cmap: str | None, alpha: float) -> np.ndarray:
    """Colour the map and make it transparent where it is near 0 (the image stays visible)."""
    from matplotlib import colormaps

    if signed:
        cm = colormaps[cmap or "bwr"]
        rgba = cm(np.clip(a / (2 * lim) + 0.5, 0.0, 1.0))
    else:
        cm = colormaps[cmap or "Reds"]
        rgba = cm(np.clip(0.25 + 0.75 * np.abs(a) / lim, 0.0, 1.0))
    rgba[..., 3] = alpha * np.clip(np.abs(a) / lim, 0.0, 1.0) ** 0.7
    return rgba


def attribution_overlay(attr, image, ax: Axes | None = None, *, title: str = "", cmap: str | None = None,
                        alpha: float = 0.85, vmax: float | None = None, signed: bool | None = None,
                        fontsize: int = 10) -> Figure:
    """Draw an attribution map over a grayscale version of its image.

    The colour's opacity grows with ``|attr|``: pixels that do not matter stay as they are,
    so the image never washes out (a sequential map such as Saliency is not a red veil).

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
    is_signed = bool(signed if signed is not None else a.min(initial=0.0) < 0.0)
    ax.imshow(gray, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.imshow(_overlay_rgba(a, lim, is_signed, cmap, alpha), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)
    return ax.figure  # type: ignore[return-value]


def attribution_grid(image, maps: Mapping[str, Sequence], *, columns: Sequence[str] = ("before", "after",
                     "after - before"), title: str = "", cell: float = 1.9, fontsize: int = 10) -> Figure:
    """A grid of overlays: one row per label, one column per model state (plus the image),
    and a colorbar per colour scale (shared by the before/after columns; one for the difference).

    Args:
        image: ``(C, H, W)`` image in 0..1 (or uint8).
        maps: row title -> sequence of ``(H, W)`` maps, one per entry of ``columns``.
            Rows share one colour scale per column kind so before/after are comparable.
        columns: column titles (a title containing ``-`` is a signed difference).
        cell: inches per image (presentation mode uses a larger one).
    Returns:
        A standalone :class:`matplotlib.figure.Figure` (render it with :func:`figure_png`).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    rows = list(maps)
    n_cols = len(columns) + 1
    fig = Figure(figsize=(cell * n_cols + 1.2, cell * max(1, len(rows)) + 0.5), dpi=100)
    if title:
        fig.suptitle(title, fontsize=fontsize)
    same_scale = [i for i, c in enumerate(columns) if "-" not in c]
    diff_cols = [i for i in range(len(columns)) if i not in same_scale]
    lim = max((float(np.abs(_np(maps[r][i])).max(initial=0.0)) for r in rows for i in same_scale), default=1.0) or 1.0
    signed_same = any(float(_np(maps[r][i]).min(initial=0.0)) < 0 for r in rows for i in same_scale)
    for r, row in enumerate(rows):
        ax0 = fig.add_subplot(len(rows), n_cols, r * n_cols + 1)
        ax0.imshow(_hwc(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax0.set_xticks([])
        ax0.set_yticks([])
        ax0.set_ylabel(row, fontsize=fontsize - 1, parse_math=False)  # a class name is text
        if r == 0:
            ax0.set_title("image", fontsize=fontsize)
        for c, col in enumerate(columns):
            ax = fig.add_subplot(len(rows), n_cols, r * n_cols + c + 2)
            attribution_overlay(maps[row][c], image, ax, title=col if r == 0 else "", fontsize=fontsize,
                                vmax=lim if c in same_scale else None, signed=signed_same if c in same_scale else True)
    fig.subplots_adjust(left=0.08, right=0.86, top=0.84 if title else 0.9, bottom=0.03, wspace=0.08, hspace=0.12)
    bars = [("map", Normalize(-lim if signed_same else 0.0, lim), "bwr" if signed_same else "Reds")]
    if diff_cols:
        dl = max((float(np.abs(_np(maps[r][i])).max(initial=0.0)) for r in rows for i in diff_cols), default=1.0) or 1.0
        bars.append(("after - before", Normalize(-dl, dl), "bwr"))
    h = 0.8 / len(bars)
    for k, (label, norm, name) in enumerate(bars):
        cax = fig.add_axes((0.88, 0.1 + k * h + 0.05 * h, 0.02, 0.8 * h))
        cmap = name if name == "bwr" else LinearSegmentedColormap.from_list("wb-reds", ["#fde0d2", "#a50f15"])
        cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax)
        cb.ax.tick_params(labelsize=fontsize - 3)
        cb.set_label(label, fontsize=fontsize - 2)
    return fig


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes with the Agg canvas (no pyplot)."""
    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
