"""Pure plotly figure builders for the workbench panels.

Every builder takes plain numbers (tensors, arrays or sequences) and returns a fresh
``go.Figure``; none of them keeps state or touches a display. The panels wrap a figure
once in ``go.FigureWidget`` and afterwards only swap trace data in place (see
``update_*`` helpers), so the browser never redraws a panel from scratch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "COLORS", "accuracy_range", "confusion_figure", "metrics_figure", "probability_colors", "probability_figure",
    "update_confusion",
]

COLORS = {"base": "#9aa5b1", "true": "#2e7d32", "pred": "#c62828", "target": "#1565c0",
          "before": "#9aa5b1", "after": "#1565c0", "up": "#2e7d32", "down": "#c62828"}
_MARGIN = dict(l=40, r=10, t=36, b=40)


def _np(x) -> np.ndarray:
    """Tensor / sequence -> float numpy array on the host."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def _layout(title: str, height: int, width: int | None = None, **kw) -> dict:
    out = dict(title=dict(text=title, font=dict(size=13)), height=height, margin=_MARGIN,
               template="plotly_white", showlegend=False, **kw)
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
    ticks = dict(tickmode="array", tickvals=list(range(c)), ticktext=[s[:9] for s in classes])
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
                       height: int = 270, width: int | None = 440) -> go.Figure:
    """Bar chart of one image's class probabilities.

    Args:
        probs: ``(C,)`` softmax probabilities (any float sequence).
        classes: ``C`` class names.
        true, pred, target: class indices to colour (green, red, blue).
    """
    p = _np(probs)
    fig = go.Figure(go.Bar(x=list(classes), y=p.tolist(),
                           marker_color=probability_colors(len(classes), true=true, pred=pred, target=target),
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(**_layout(title, height, width), yaxis=dict(range=[0, 1], title="p"),
                      xaxis=dict(tickangle=-45, automargin=True))
    fig.update_layout(margin=dict(_MARGIN, r=30))
    return fig


def metrics_figure(base: float, before: float, after: float, step_change, total_change,
                   accuracies: Sequence[float], classes: Sequence[str], *, height: int = 500,
                   width: int | None = 640) -> go.Figure:
    """The metrics panel in one figure (one widget instead of three).

    Args:
        base, before, after: test accuracy of the base model, before and after the last edit.
        step_change, total_change: ``(C,)`` per-class accuracy change (fraction) of the last
            edit alone and of the session vs the base model.
        accuracies: test accuracy after each edit of the session; element 0 is the base model.
        classes: ``C`` class names.
    Returns:
        A figure with four traces, updated in place by the panel (only ``y``, ``text`` and
        the first y range change): 0 accuracy bars (base / before / after), 1 session
        timeline (x = edit number, implicit), 2 per-class change of this edit, 3 per-class
        change of the session (both in percentage points).
    """
    fig = make_subplots(rows=2, cols=2, column_widths=[0.42, 0.58], row_heights=[0.45, 0.55],
                        specs=[[{}, {}], [{"colspan": 2}, None]], vertical_spacing=0.2, horizontal_spacing=0.12,
                        subplot_titles=("Test accuracy", "Session timeline (accuracy after each edit)",
                                        "Per-class accuracy change (pp)"))
    fig.add_trace(go.Bar(x=["base", "before edit", "after edit"], y=[base, before, after], name="accuracy",
                         marker_color=[COLORS["base"], COLORS["before"], COLORS["after"]],
                         text=[f"{v:.2%}" for v in (base, before, after)], textposition="auto",
                         hovertemplate="%{x}: %{y:.2%}<extra></extra>", showlegend=False), row=1, col=1)
    acc = _np(accuracies).tolist()
    fig.add_trace(go.Scatter(y=acc, mode="lines+markers", name="timeline",  # x: the edit number (index)
                             line_color=COLORS["after"], hovertemplate="edit %{x}: %{y:.2%}<extra></extra>",
                             showlegend=False), row=1, col=2)
    s, t = _np(step_change) * 100, _np(total_change) * 100
    fig.add_trace(go.Bar(x=list(classes), y=s.tolist(), name="this edit", marker_color=COLORS["after"]), row=2, col=1)
    fig.add_trace(go.Bar(x=list(classes), y=t.tolist(), name="session", marker_color=COLORS["base"]), row=2, col=1)
    fig.update_layout(**_layout("", height, width), barmode="group")
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=0.47, x=1, xanchor="right"),
                      margin=dict(l=50, r=10, t=30, b=60))
    fig.update_annotations(font_size=12)
    fig.update_yaxes(tickformat=".0%", range=accuracy_range(base, before, after), row=1, col=1)
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_xaxes(title_text="edit #", dtick=1, rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title_text="pp", zeroline=True, row=2, col=1)
    fig.update_xaxes(tickangle=-30, row=2, col=1)
    return fig


def accuracy_range(*accuracies: float) -> list[float]:
    """y range of the accuracy bars: from 5 points under the lowest value to 100%."""
    return [max(0.0, min(accuracies) - 0.05), 1.0]
