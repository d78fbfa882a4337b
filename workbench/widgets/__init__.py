"""The Jupyter front end: ipywidgets panels composed by :class:`Workbench`.

This is the only package that imports ipywidgets, plotly or IPython. Plot builders are pure
functions (``confusion_figure(...) -> go.Figure``, ``attribution_grid(...) -> Figure``);
panels hold view state only and update their widgets in place; :class:`Controller` is the
one path from a click to the :class:`~workbench.session.EditSession` and back.

Example:
    >>> from workbench.widgets import Workbench
    >>> wb = Workbench.from_checkpoint("assets/models/fashion-editable", limit=2000)
    >>> wb   # in a notebook
"""
from .attribution_view import AttributionView
from .common import MessageArea
from .compare import Comparison
from .controller import Callbacks, Controller, Selection
from .edit_panel import EDITORS, EditPanel
from .error_browser import DEFAULT_SORT, SORTS, ErrorBrowser
from .figures import (confusion_figure, per_class_figure, probability_figure, timeline_figure,
                      update_confusion)
from .glossary import GLOSSARY
from .images import attribution_grid, attribution_overlay, figure_png, image_png
from .metrics_panel import MetricsPanel
from .outcome import OutcomeCard, describe_edit
from .plotly_widget import live_figure
from .probe_panel import ProbePanel
from .target_picker import TargetPicker, suggest_targets
from .workbench import Workbench, default_checkpoint, open_session, resolve_checkpoint

__all__ = [
    "attribution_grid", "attribution_overlay", "AttributionView", "Callbacks", "Comparison", "confusion_figure",
    "Controller", "default_checkpoint", "DEFAULT_SORT", "describe_edit", "EDITORS", "EditPanel", "ErrorBrowser",
    "figure_png", "GLOSSARY", "image_png", "live_figure", "MessageArea", "MetricsPanel", "open_session",
    "OutcomeCard", "per_class_figure", "probability_figure", "ProbePanel", "resolve_checkpoint", "Selection",
    "SORTS", "suggest_targets", "TargetPicker", "timeline_figure", "update_confusion", "Workbench",
]
