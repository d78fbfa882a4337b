"""Figure builders for the analyses: each returns a :class:`matplotlib.figure.Figure` and
never touches pyplot's global state (matplotlib is imported inside the functions)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch

from .edits import SequentialCurve

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["embedding_figure", "grouped_bar_figure", "heatmap_figure", "sequential_figure", "training_curves_figure"]


# --------------------------------------------------------------------------- figures
def _figure(rows: int, cols: int, width: float = 4.0, height: float = 3.2) -> tuple["Figure", np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(rows, cols)
    return fig, axes


_SKIP = {"epoch", "step", "wall_time_s"}


def training_curves_figure(runs: Mapping[str, Sequence[Mapping[str, Any]]], keys: Sequence[str] | None = None,
                           cols: int = 3) -> "Figure":
    """One panel per metric (loss, test_error, edit/locality losses, learned editor lr, ...),
    one line per run, against the epoch.

    Args:
        runs: run name -> rows from :func:`read_metrics`.
        keys: metrics to plot; default every numeric key found (except epoch/step/time).
    """
    if keys is None:
        found: list[str] = []
        for rows in runs.values():
            for r in rows:
                found += [k for k, v in r.items() if k not in _SKIP and k not in found
                          and isinstance(v, (int, float)) and not isinstance(v, bool)]
        keys = found
    if not keys:
        raise ValueError("no metrics to plot; are the runs empty?")
    n_rows = math.ceil(len(keys) / cols)
    fig, axes = _figure(n_rows, min(cols, len(keys)))
    for ax, key in zip(axes.flat, keys):
        for name, rows in runs.items():
            pts = [(r.get("epoch", i + 1), r[key]) for i, r in enumerate(rows) if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        vals = [r[key] for rows in runs.values() for r in rows if isinstance(r.get(key), (int, float))]
        if "lr" in key and vals and min(vals) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    return fig


def heatmap_figure(matrices: Mapping[str, torch.Tensor], classes: Sequence[str], *, title: str = "",
                   xlabel: str = "affected class (true label)", ylabel: str = "edited image's class",
                   cbar_label: str = "change of error", diverging: bool = True) -> "Figure":
    """Side-by-side ``(C, C)`` heatmaps on one shared color scale (one per model)."""
    fig, axes = _figure(1, len(matrices), width=4.8, height=4.4)
    vals = torch.cat([m.flatten() for m in matrices.values()])
    vals = vals[torch.isfinite(vals)]
    vmax = float(vals.abs().max()) if vals.numel() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    kw = dict(cmap="RdBu_r", vmin=-vmax, vmax=vmax) if diverging else dict(cmap="viridis", vmin=0, vmax=vmax)
    im = None
    for ax, (name, m) in zip(axes.flat, matrices.items()):
        im = ax.imshow(m.numpy(), **kw)
        finite = m[torch.isfinite(m)]
        mean = float(finite.mean()) if finite.numel() else float("nan")
        ax.set_title(f"{name}\nmean {mean:+.4f}" if diverging else f"{name}\nmean {mean:.4f}")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize="small")
        ax.set_yticks(range(len(classes)), classes, fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), label=cbar_label, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def embedding_figure(points: Mapping[str, np.ndarray], colors: Mapping[str, Sequence[int]],
                     classes: Sequence[str], *, title: str = "", legend: str = "class") -> "Figure":
    """Scatter plots of 2-D embeddings (one panel per model), colored by a class per point."""
    fig, axes = _figure(1, len(points), width=4.6, height=4.2)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for ax, (name, xy) in zip(axes.flat, points.items()):
        c = np.asarray(colors[name])
        for k, cls in enumerate(classes):
            m = c == k
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=14, color=cmap(k % cmap.N), label=cls)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes.flat[-1].legend(title=legend, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        fig.suptitle(title)
    return fig


def sequential_figure(curves: Mapping[str, SequentialCurve], *, title: str = "") -> "Figure":
    """Cumulative drawdown (and success) against the number of edits applied, per model."""
    fig, axes = _figure(1, 2, width=4.8)
    for name, cv in curves.items():
        n = np.arange(1, len(cv.drawdown) + 1)
        axes[0, 0].plot(n, 100 * np.asarray(cv.drawdown), marker=".", label=name)
        axes[0, 1].plot(n, 100 * np.cumsum(cv.success) / n, marker=".", label=name)
    axes[0, 0].set(xlabel="edits attempted", ylabel="cumulative drawdown (%)", title="test error increase")
    axes[0, 1].set(xlabel="edits attempted", ylabel="success so far (%)", title="edit success")
    for ax in axes.flat:
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def grouped_bar_figure(values: Mapping[str, Mapping[str, float]], *, ylabel: str = "", title: str = "",
                       scale: float = 1.0) -> "Figure":
    """Grouped bars: ``values[series][category]`` (e.g. model -> editor -> drawdown)."""
    fig, axes = _figure(1, 1, width=6.4, height=3.4)
    ax = axes[0, 0]
    cats: list[str] = []
    for row in values.values():
        cats += [c for c in row if c not in cats]
    width = 0.8 / max(1, len(values))
    for s, (name, row) in enumerate(values.items()):
        xs = [i + (s - (len(values) - 1) / 2) * width for i, c in enumerate(cats) if c in row]
        ax.bar(xs, [scale * row[c] for c in cats if c in row], width, label=name)
    ax.set_xticks(range(len(cats)), cats)
    ax.set(ylabel=ylabel, title=title)
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize="small")
    return fig
