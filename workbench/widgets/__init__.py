"""The Jupyter front end: ipywidgets panels composed by :class:`Workbench`.

This is the only package that imports ipywidgets, plotly or IPython. Plot builders are pure
functions (``confusion_figure(...) -> go.Figure``, ``attribution_overlay(...) -> Figure``);
panels hold view state only and update their FigureWidgets in place.

Example:
    >>> from workbench.widgets import Workbench
    >>> wb = Workbench.from_checkpoint("assets/models/fashion-editable", limit=2000)
    >>> wb   # in a notebook
"""
from .attribution_view import AttributionRequest, AttributionView
from .common import MessageArea
from .compare import Comparison
from .edit_panel import EDITORS, EditPanel
from .error_browser import SORTS, ErrorBrowser
from .figures import (
    accuracy_figure,
    confusion_figure,
    generalization_figure,
    per_class_figure,
    probability_figure,
    timeline_figure,
    update_confusion,
)
from .images import attribution_grid, attribution_overlay, figure_png, image_png
from .metrics_panel import MetricsPanel
from .probe_panel import ProbePanel
from .session_view import SessionView, current_errors
from .target_picker import TargetPicker, suggest_targets
from .workbench import Workbench, default_checkpoint, open_session, resolve_checkpoint

__all__ = [
    "AttributionRequest", "AttributionView", "Comparison", "EDITORS", "EditPanel", "ErrorBrowser", "MessageArea",
    "MetricsPanel", "ProbePanel", "SORTS", "SessionView", "TargetPicker", "Workbench", "accuracy_figure",
    "attribution_grid", "attribution_overlay", "confusion_figure", "current_errors", "default_checkpoint",
    "figure_png", "generalization_figure", "image_png", "open_session", "per_class_figure", "probability_figure",
    "resolve_checkpoint", "suggest_targets", "timeline_figure", "update_confusion",
]
