"""Pure image builders: PNG thumbnails, the attribution grid (PIL) and matplotlib attribution overlays.

Nothing here touches ``matplotlib.pyplot``: figures are ``matplotlib.figure.Figure``
objects rendered with the Agg canvas, so building them in a widget callback never opens a
window nor leaks into a notebook's inline figures.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

__all__ = ["attribution_grid", "attribution_overlay", "figure_png", "image_png"]

_FONT_FILE = "fonts/ttf/DejaVuSans.ttf"  # matplotlib's own font: the grid reads like the other figures
_GAP = 6  # pixels between cells
_OPACITY = 0.85  # of a map at its colour limit (attribution_overlay's default)
_BAR_PX = 14  # width of a colour bar


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
                        alpha: float = _OPACITY, vmax: float | None = None, signed: bool | None = None,
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




@functools.lru_cache(maxsize=8)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from matplotlib import get_data_path

    try:
        return ImageFont.truetype(str(Path(get_data_path()) / _FONT_FILE), px)
    except OSError:  # a matplotlib without its fonts: PIL's own
        return ImageFont.load_default(px)


def _cell(rgb: np.ndarray, size: tuple[int, int]) -> PILImage.Image:
    """``(H, W, 3)`` float 0..1 -> a tile of ``size`` (width, height): nearest pixels up, area averages down."""
    img = PILImage.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode="RGB")
    if img.size == size:
        return img
    up = size[0] >= img.width
    return img.resize(size, PILImage.Resampling.NEAREST if up else PILImage.Resampling.BOX)


def _blend(gray: np.ndarray, rgba: np.ndarray) -> np.ndarray:
    """The coloured map over the gray image, with the map's own opacity."""
    a = rgba[..., 3:4]
    return gray[..., None] * (1.0 - a) + rgba[..., :3] * a


def attribution_grid(image, maps: Mapping[str, Sequence], *, columns: Sequence[str] = ("before", "after",
                     "after - before"), title: str = "", cell: float = 1.9, fontsize: int = 10) -> bytes:
    """PNG bytes of a grid of overlays: one row per label, one column per model state (plus the image),
    and a colour bar per colour scale (shared by the before/after columns; one for the difference).

    Drawn with numpy and PIL, not matplotlib: the grid is redrawn on every Edit click, and a
    matplotlib figure of 8 axes and 2 colour bars costs about ten times as much to build and render.
    The colours are :func:`attribution_overlay`'s.

    Args:
        image: ``(C, H, W)`` image in 0..1 (or uint8).
        maps: row title -> sequence of ``(H, W)`` maps, one per entry of ``columns``.
            Rows share one colour scale per column kind so before/after are comparable.
        columns: column titles (a title containing ``-`` is a signed difference).
        title: a line above the grid.
        cell: inches per image at 100 dpi (presentation mode uses a larger one).
        fontsize: text size in points at 100 dpi.
    """
    img = _hwc(image)
    if img.ndim == 3 and img.shape[2] != 3:  # not RGB (e.g. 2 or 4 channels): shown in gray
        img = img.mean(axis=2)
    gray = img if img.ndim == 2 else img.mean(axis=2)
    shown = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    side, text_px = max(16, round(cell * 100)), max(8, round(fontsize * 100 / 72))
    h, w = gray.shape  # a cell keeps the image's aspect: its longer side is ``side`` pixels
    pw, ph = (side, max(1, round(side * h / w))) if w >= h else (max(1, round(side * w / h)), side)
    font, small = _font(text_px), _font(max(8, text_px - 3))
    rows = list(maps)
    same_scale = [i for i, c in enumerate(columns) if "-" not in c]
    diff_cols = [i for i in range(len(columns)) if i not in same_scale]
    arrays = {r: [np.nan_to_num(_np(m), nan=0.0, posinf=0.0, neginf=0.0) for m in maps[r]] for r in rows}
    for r in rows:
        if len(arrays[r]) != len(columns):
            raise ValueError(f"row {r!r} has {len(arrays[r])} maps for {len(columns)} columns {list(columns)}: "
                             "give one map per column")
        for a in arrays[r]:
            if a.shape != gray.shape:
                raise ValueError(f"each map must have the image's shape (H, W) = {gray.shape}, got {a.shape}")
    lim = max((float(np.abs(arrays[r][i]).max(initial=0.0)) for r in rows for i in same_scale), default=1.0) or 1.0
    signed_same = any(float(arrays[r][i].min(initial=0.0)) < 0 for r in rows for i in same_scale)
    dl = max((float(np.abs(arrays[r][i]).max(initial=0.0)) for r in rows for i in diff_cols), default=1.0) or 1.0

    draw0 = ImageDraw.Draw(PILImage.new("RGB", (1, 1)))
    label_w = max((draw0.textlength(r, font=font) for r in rows), default=0.0)
    left = int(label_w) + 2 * _GAP
    top = (text_px + _GAP) * (2 if title else 1) + _GAP
    bars = [("map", -lim if signed_same else 0.0, lim, signed_same)] + (
        [(columns[diff_cols[0]], -dl, dl, True)] if diff_cols else [])
    tick_w = max(draw0.textlength(f"{v:.2g}", font=small) for _, lo, hi, _ in bars for v in (lo, hi))
    label_px = max(draw0.textlength(b[0], font=small) for b in bars)
    bar_w = int(max(_BAR_PX + _GAP + tick_w, label_px)) + 2 * _GAP
    small_px = max(8, text_px - 3)
    n_cols = len(columns) + 1
    grid_h = max(1, len(rows)) * (ph + _GAP)
    width = left + n_cols * (pw + _GAP) + bar_w + _GAP
    head = small_px + small_px // 2 + _GAP  # a bar's label, then room for half its top tick label
    bar_h = max(40, (grid_h - _GAP) // len(bars) - head - small_px)
    height = max(top + grid_h, top - text_px + len(bars) * (bar_h + head + small_px)) + _GAP
    canvas = PILImage.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((width / 2, _GAP), title, fill="black", font=font, anchor="ma")
    y_titles = top - text_px - _GAP // 2
    for c, name in enumerate(("image", *columns)):
        draw.text((left + c * (pw + _GAP) + pw / 2, y_titles), name, fill="black", font=font, anchor="ma")
    for k, row in enumerate(rows):
        y = top + k * (ph + _GAP)
        draw.text((left - _GAP, y + ph / 2), row, fill="black", font=font, anchor="rm")
        canvas.paste(_cell(shown, (pw, ph)), (left, y))
        for c in range(len(columns)):
            a = arrays[row][c]
            rgba = (_overlay_rgba(a, lim, signed_same, None, _OPACITY) if c in same_scale
                    else _overlay_rgba(a, dl, True, None, _OPACITY))
            canvas.paste(_cell(_blend(gray, rgba), (pw, ph)), (left + (c + 1) * (pw + _GAP), y))
    x = left + n_cols * (pw + _GAP) + _GAP
    for k, (label, lo, hi, signed) in enumerate(bars):
        y = top - text_px + k * (bar_h + head + small_px)
        draw.text((x, y), label, fill="black", font=small)
        y += head
        v = np.linspace(hi, lo, bar_h)[:, None]  # top: the largest value
        rgba = _overlay_rgba(v, max(abs(lo), abs(hi)), signed, None, 1.0)
        strip = np.repeat(rgba[..., :3], _BAR_PX, axis=1)
        canvas.paste(PILImage.fromarray((strip * 255.0 + 0.5).astype(np.uint8), mode="RGB"), (x, y))
        draw.rectangle((x, y, x + _BAR_PX - 1, y + bar_h - 1), outline="#888888")
        for frac, val in ((0.0, hi), (0.5, (hi + lo) / 2), (1.0, lo)):
            draw.text((x + _BAR_PX + _GAP, y + frac * (bar_h - 1)), f"{val:.2g}", fill="black", font=small,
                      anchor="lm")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render a matplotlib figure to PNG bytes with the Agg canvas (no pyplot)."""
    FigureCanvasAgg(fig)  # attaches an Agg canvas to the figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
