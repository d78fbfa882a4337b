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
from .figures import confusion_figure, metrics_figure, probability_figure, update_confusion
from .images import attribution_grid, attribution_overlay, figure_png, image_png
from .metrics_panel import MetricsPanel
from .plotly_widget import live_figure
from .probe_panel import ProbePanel
from .session_view import SessionView, current_errors
from .target_picker import TargetPicker, suggest_targets
from .workbench import Workbench, default_checkpoint, open_session, resolve_checkpoint

__all__ = [
    "attribution_grid", "attribution_overlay", "AttributionRequest", "AttributionView", "Comparison",
    "confusion_figure", "current_errors", "default_checkpoint", "EDITORS", "EditPanel", "ErrorBrowser",
    "figure_png", "image_png", "live_figure", "MessageArea", "metrics_figure", "MetricsPanel", "open_session",
    "probability_figure", "ProbePanel", "resolve_checkpoint", "SessionView", "SORTS", "suggest_targets",
    "TargetPicker", "update_confusion", "Workbench",
]
