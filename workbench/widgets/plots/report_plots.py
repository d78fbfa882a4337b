"""The session report's two matplotlib plots: accuracy after each edit, per-class change.

Pure builders: each returns a standalone :class:`matplotlib.figure.Figure` (no pyplot);
:func:`~workbench.widgets.plots.images.figure_png` renders it. Class names are drawn as
plain text (no mathtext).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["per_class_plot", "timeline_plot"]


def _figure(w: float = 6.0, h: float = 2.6) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(w, h), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def timeline_plot(accuracies: Sequence[float]) -> Figure:
    """Test accuracy (in %) of the base model (edit 0) and after each applied edit.

    Args:
        accuracies: fractions in [0, 1], the base model's first.
    """
    fig, ax = _figure()
    ax.plot(range(len(accuracies)), [a * 100 for a in accuracies], marker="o", color="#1565c0")
    ax.set_xlabel("edit #")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(range(len(accuracies)))
    ax.set_title("Test accuracy after each edit")
    fig.tight_layout()
    return fig


def per_class_plot(change_pp: np.ndarray, classes: Sequence[str]) -> Figure:
    """Per-class accuracy change of all edits, in percentage points (green up, red down).

    Args:
        change_pp: ``(C,)`` accuracy change per class in pp (NaN already replaced).
    """
    fig, ax = _figure()
    ax.bar(range(len(classes)), change_pp, color=["#2e7d32" if v >= 0 else "#c62828" for v in change_pp])
    ax.set_xticks(range(len(classes)), list(classes), rotation=30, ha="right", fontsize=8, parse_math=False)
    ax.axhline(0, color="#888", lw=0.8)
    ax.set_ylabel("pp")
    ax.set_title("Per-class accuracy change, all edits")
    fig.tight_layout()
    return fig
