"""The Jupyter front end: ipywidgets panels composed by :class:`Workbench`.

This is the only package that imports ipywidgets, plotly or IPython. Plot builders are pure
functions (``confusion_figure(...) -> go.Figure``, ``attribution_grid(...) -> Figure``);
panels hold view state only and update their widgets in place; :class:`Controller` is the
one path from a click to the :class:`~workbench.session.EditSession` and back.

Names are imported on first use (PEP 562), so ``from workbench.widgets import show`` is quick
and :func:`show` can load the widget libraries while the base model is scored.

Example:
    >>> from workbench.widgets import show
    >>> wb = show("assets/models/fashion-editable")     # a progress line, then the workbench
    >>> from workbench.widgets import Workbench
    >>> wb = Workbench.from_checkpoint("assets/models/fashion-editable", limit=2000)
    >>> wb   # in a notebook
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {  # name -> the module of this package that defines it
    **dict.fromkeys(["AttributionView"], "attribution_view"),
    **dict.fromkeys(["MessageArea"], "common"),
    **dict.fromkeys(["Comparison"], "compare"),
    **dict.fromkeys(["Callbacks", "Controller", "Selection"], "controller"),
    **dict.fromkeys(["EDITORS", "EditPanel"], "edit_panel"),
    **dict.fromkeys(["DEFAULT_SORT", "SORTS", "ErrorBrowser"], "error_browser"),
    **dict.fromkeys(["confusion_figure", "per_class_figure", "probability_figure", "timeline_figure",
                     "update_confusion"], "figures"),
    **dict.fromkeys(["GLOSSARY"], "glossary"),
    **dict.fromkeys(["attribution_grid", "attribution_overlay", "figure_png", "image_png"], "images"),
    **dict.fromkeys(["show"], "launch"),
    **dict.fromkeys(["MetricsPanel"], "metrics_panel"),
    **dict.fromkeys(["OutcomeCard", "describe_edit"], "outcome"),
    **dict.fromkeys(["live_figure"], "plotly_widget"),
    **dict.fromkeys(["ProbePanel"], "probe_panel"),
    **dict.fromkeys(["TargetPicker", "suggest_targets"], "target_picker"),
    **dict.fromkeys(["Workbench", "default_checkpoint", "open_session", "resolve_checkpoint"], "workbench"),
}

if TYPE_CHECKING:
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
    from .launch import show
    from .metrics_panel import MetricsPanel
    from .outcome import OutcomeCard, describe_edit
    from .plotly_widget import live_figure
    from .probe_panel import ProbePanel
    from .target_picker import TargetPicker, suggest_targets
    from .workbench import Workbench, default_checkpoint, open_session, resolve_checkpoint

__all__ = [
    "attribution_grid", "attribution_overlay", "AttributionView", "Callbacks", "Comparison",
    "confusion_figure", "Controller", "default_checkpoint", "DEFAULT_SORT", "describe_edit", "EDITORS",
    "EditPanel", "ErrorBrowser", "figure_png", "GLOSSARY", "image_png", "live_figure", "MessageArea",
    "MetricsPanel", "open_session", "OutcomeCard", "per_class_figure", "probability_figure", "ProbePanel",
    "resolve_checkpoint", "Selection", "show", "SORTS", "suggest_targets", "TargetPicker", "timeline_figure",
    "update_confusion", "Workbench",
]


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
