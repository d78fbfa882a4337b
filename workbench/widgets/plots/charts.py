"""Pure plotly chart builders for the workbench panels.

Every builder takes plain numbers (tensors, arrays or sequences) and returns a fresh
``go.Figure``; none of them keeps state or touches a display. The panels wrap a figure
once in ``go.FigureWidget`` and afterwards only swap trace data in place (see
``update_*`` helpers), so the browser never redraws a panel from scratch. Class names are
data: they go into a figure through :func:`~workbench.widgets.markup.plot_label` (plotly
renders some tags in labels and hover text), so they show as written.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..markup import plot_label

__all__ = [
    "COLORS", "LARGE_FONT", "TEMPLATE", "chart_fonts", "confusion_figure", "localization_colors", "localization_figure", "per_class_figure",
    "pp_range", "probability_colors", "probability_figure", "probability_text", "timeline_axes", "timeline_figure",
    "update_confusion",
]

COLORS = {"base": "#9aa5b1", "true": "#2e7d32", "pred": "#c62828", "target": "#1565c0",
          "before": "#9aa5b1", "after": "#1565c0", "up": "#2e7d32", "down": "#c62828",
          "layer": "#90a4ae", "top layer": "#ef6c00"}
_MARGIN = dict(l=40, r=10, t=36, b=40)
_AXIS = dict(gridcolor="#ebf0f8", linecolor="#ebf0f8", zerolinecolor="#ebf0f8", automargin=True, ticks="")
# What the figures take from "plotly_white" (every colour they draw is set explicitly). That
# template is deep-copied and validated for every figure (~20 ms each, at startup) and sent to
# the browser with every FigureWidget (~6 KB); this one is built once and is 0.4 KB.
TEMPLATE = go.layout.Template(layout=dict(paper_bgcolor="white", plot_bgcolor="white", font=dict(color="#2a3f5f"),
                                          xaxis=_AXIS, yaxis=_AXIS, hoverlabel=dict(align="left")))


LARGE_FONT = 16  # chart text in presentation mode (px): readable on a projector at 1024x768
TITLE_FONT = 13


def chart_fonts(fig: go.Figure, large: bool) -> None:
    """Set a figure's text for a projector (``large``: ticks, axis titles and legend at
    ``LARGE_FONT`` px) or back to the builders' sizes; one batched update."""
    with fig.batch_update():
        fig.layout.font.size = LARGE_FONT if large else None
        fig.layout.title.font.size = LARGE_FONT + 2 if large else TITLE_FONT


def _np(x) -> np.ndarray:
    """Tensor / sequence -> float numpy array on the host."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _labels(classes: Sequence[str]) -> list[str]:
    return [plot_label(c) for c in classes]


def _layout(title: str, height: int, width: int | None = None, **kw) -> dict:
    out = dict(title=dict(text=title, font=dict(size=TITLE_FONT)), height=height, margin=_MARGIN,
               template=TEMPLATE, showlegend=False, **kw)
    if width is not None:
        out["width"] = width
    return out


def confusion_figure(confusion, classes: Sequence[str], *, title: str = "Confusion (errors only)",
                     height: int = 330, width: int | None = 380) -> go.Figure:
    """Heatmap of a confusion matrix, diagonal blanked so that the errors stand out.

    Args:
        confusion: ``(C, C)`` counts, rows = true class, columns = predicted class.
        classes: ``C`` class names (tick labels).
    Returns:
        A figure whose single heatmap trace has integer coordinates ``x = pred``,
        ``y = true`` (so a click's ``points.xs[0], points.ys[0]`` are class indices) and
        the counts as hover text.

    Example:
        >>> fig = confusion_figure(torch.eye(3) * 5, ["a", "b", "c"])
    """
    cm = _np(confusion)
    c = len(classes)
    if cm.shape != (c, c):
        raise ValueError(f"confusion has shape {cm.shape}; expected ({c}, {c}) for {c} classes")
    fig = go.Figure(go.Heatmap(x=list(range(c)), y=list(range(c)), colorscale="Reds", showscale=False,
                               xgap=1, ygap=1, hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
                               **_confusion_values(cm)))
    ticks = dict(tickmode="array", tickvals=list(range(c)), ticktext=_labels(classes), automargin=True)
    fig.update_layout(**_layout(title, height, width),
                      xaxis=dict(title="predicted", tickangle=-45, **ticks),
                      yaxis=dict(title="true", autorange="reversed", **ticks))
    return fig


def _confusion_values(cm: np.ndarray) -> dict:
    z = cm.copy()
    np.fill_diagonal(z, np.nan)
    text = [[str(int(v)) for v in row] for row in cm]
    return {"z": [[None if np.isnan(v) else float(v) for v in row] for row in z], "text": text,
            "texttemplate": "%{text}", "textfont": {"size": 9}}


def update_confusion(fig: go.Figure, confusion) -> None:
    """Swap the counts of a :func:`confusion_figure` in place (one batched update)."""
    vals = _confusion_values(_np(confusion))
    with fig.batch_update():
        fig.data[0].z = vals["z"]
        fig.data[0].text = vals["text"]


def probability_colors(c: int, *, true: int | None = None, pred: int | None = None,
                       target: int | None = None) -> list[str]:
    """Bar colours: target blue, otherwise true green, predicted red, the rest grey."""
    out = []
    for k in range(c):
        out.append(COLORS["target"] if k == target else COLORS["true"] if k == true
                   else COLORS["pred"] if k == pred else COLORS["base"])
    return out


def probability_figure(probs, classes: Sequence[str], *, true: int | None = None, pred: int | None = None,
                       target: int | None = None, title: str = "Class probabilities",
                       height: int = 165, width: int | None = 440) -> go.Figure:
    """Bar chart of one image's class probabilities (values written upright above the bars).

    Args:
        probs: ``(C,)`` softmax probabilities (any float sequence).
        classes: ``C`` class names (written in full).
        true, pred, target: class indices to colour (green, red, blue).
    """
    p = _np(probs)
    fig = go.Figure(go.Bar(x=_labels(classes), y=p.tolist(), text=probability_text(p), textposition="outside",
                           textangle=0, cliponaxis=False, textfont=dict(size=10),
                           marker_color=probability_colors(len(classes), true=true, pred=pred, target=target),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(**_layout(title, height, width), yaxis=dict(range=[0, 1.12], title="p", tickformat=".0%"),
                      xaxis=dict(tickangle=-35, automargin=True))
    fig.update_layout(margin=dict(l=45, r=10, t=30, b=10))
    return fig


def probability_text(p) -> list[str]:
    """Bar labels: the percentage where it is at least 1%, else nothing."""
    return [f"{v:.0%}" if v >= 0.01 else "" for v in _np(p).tolist()]


def per_class_figure(step_change, total_change, classes: Sequence[str], *, title: str = "",
                     height: int = 260, width: int | None = 620) -> go.Figure:
    """Per-class accuracy change in percentage points: this edit (blue) and the session (grey).

    Args:
        step_change, total_change: ``(C,)`` accuracy change per class, as fractions.
    Returns:
        Two bar traces (0: this edit, 1: all edits so far); the legend sits above the plot
        area, so it never covers a bar, and every class name is written in full.
    """
    s, t = _np(step_change) * 100, _np(total_change) * 100
    fig = go.Figure([
        go.Bar(x=_labels(classes), y=s.tolist(), name="this edit", marker_color=COLORS["after"],
               hovertemplate="%{x}: %{y:+.2f} pp (this edit)<extra></extra>"),
        go.Bar(x=_labels(classes), y=t.tolist(), name="all edits so far", marker_color=COLORS["base"],
               hovertemplate="%{x}: %{y:+.2f} pp (all edits)<extra></extra>")])
    fig.update_layout(**{**_layout(title, height, width), "showlegend": True}, barmode="group",
                      legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"),
                      yaxis=dict(title="accuracy change (pp)", zeroline=True, zerolinecolor="#888",
                                 range=pp_range(s, t)),
                      xaxis=dict(tickangle=-30, automargin=True))
    fig.update_layout(margin=dict(l=80, r=10, t=40, b=70))  # room for the axis title at LARGE_FONT
    return fig


def pp_range(*values) -> list[float]:
    """y range of a per-class plot in pp: symmetric, at least +-0.5 pp, so that no bar is cut."""
    m = max([float(np.abs(_np(v)).max(initial=0.0)) for v in values] + [0.5])
    return [-1.15 * m, 1.15 * m]


def timeline_figure(accuracies: Sequence[float], *, title: str = "Test accuracy after each edit",
                    height: int = 240, width: int | None = 520) -> go.Figure:
    """The session timeline: accuracy of the base model (edit 0) and after each edit.

    The axes are set from the data: x ticks are whole edit numbers, the y range spans the
    values with at least 1 pp of room (never 0-150% for a single point), and tick labels
    have enough decimals not to repeat.
    """
    acc = _np(accuracies).tolist()
    fig = go.Figure(go.Scatter(x=list(range(len(acc))), y=acc, mode="lines+markers", line_color=COLORS["after"],
                               hovertemplate="after edit %{x}: %{y:.2%}<extra></extra>"))
    fig.update_layout(**_layout(title, height, width), **timeline_axes(acc))
    fig.update_layout(margin=dict(l=60, r=10, t=36, b=40))
    return fig


def timeline_axes(acc: Sequence[float]) -> dict:
    """x and y axis settings of :func:`timeline_figure` for these accuracies."""
    lo, hi = (min(acc), max(acc)) if acc else (0.9, 0.9)
    pad = max(0.005, (hi - lo) * 0.15)
    y0, y1 = max(0.0, lo - pad), min(1.0, hi + pad)
    step = _nice_step((y1 - y0) / 4)
    decimals = max(0, int(np.ceil(-np.log10(step * 100))))
    return dict(xaxis=dict(title="edit #", tickmode="linear", tick0=0, dtick=max(1, len(acc) // 10 or 1),
                           range=[-0.3, max(1, len(acc) - 1) + 0.3]),
                yaxis=dict(range=[y0, y1], tickmode="linear", tick0=0, dtick=step,
                           tickformat=f".{decimals}%"))


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, >= raw."""
    exp = np.floor(np.log10(max(raw, 1e-6)))
    for m in (1, 2, 5, 10):
        if m * 10 ** exp >= raw:
            return float(m * 10 ** exp)
    return float(10 ** (exp + 1))


def localization_colors(layers: Sequence[str], highlight: Sequence[str] = ()) -> list[str]:
    """Bar colours of :func:`localization_figure`: ``highlight``-ed layers orange, the rest grey."""
    return [COLORS["top layer"] if n in highlight else COLORS["layer"] for n in layers]


def localization_figure(layer_counts: Mapping[str, float], highlight: Sequence[str] = (),
                        title: str = "") -> go.Figure:
    """Bar chart: removed neurons per layer (mean over repeats), ``highlight``-ed layers in orange.

    Args:
        layer_counts: layer name -> mean number of critical neurons removed from it.
    """
    names = list(layer_counts)
    return go.Figure(
        go.Bar(x=_labels(names), y=[float(layer_counts[n]) for n in names],
               marker_color=localization_colors(names, highlight),
               hovertemplate="%{x}: %{y:.2g} neurons<extra></extra>"),
        layout=dict(title=dict(text=title, font=dict(size=TITLE_FONT)), height=280, width=560,
                    margin=dict(l=70, r=10, t=30, b=20), yaxis=dict(title="removed neurons", rangemode="tozero"),
                    xaxis=dict(tickangle=-45, automargin=True), template=TEMPLATE))
