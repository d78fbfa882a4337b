"""The Jupyter front end: ipywidgets panels composed by :class:`Workbench`.

This is the only package that imports ipywidgets, plotly or IPython. Plot builders are pure
functions (``confusion_figure(...) -> go.Figure``, ``attribution_overlay(...) -> Figure``);
panels hold view state only and update their FigureWidgets in place.
"""
from .figures import (
    accuracy_figure,
    confusion_figure,
    generalization_figure,
    per_class_figure,
    probability_figure,
    timeline_figure,
)
from .images import attribution_grid, attribution_overlay, figure_png, image_png

__all__ = [
    "accuracy_figure", "attribution_grid", "attribution_overlay", "confusion_figure", "figure_png",
    "generalization_figure", "image_png", "per_class_figure", "probability_figure", "timeline_figure",
]
