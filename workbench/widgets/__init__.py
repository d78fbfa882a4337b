"""The Jupyter front end: ipywidgets panels composed by :class:`Workbench`.

This is the only package that imports ipywidgets, plotly or IPython. Two openers:
:func:`show` for a model folder, :meth:`Workbench.from_model` for a model and its data. On
screen, every click goes to the one :class:`Controller` (the comparison: :class:`Lockstep`
over two), which calls the :class:`~workbench.session.EditSession` and tells the panels
(:mod:`workbench.widgets.panels`, view state only) what to show; plot builders
(:mod:`workbench.widgets.plots`) are pure functions (``confusion_figure(...) -> go.Figure``).

Names are imported on first use (PEP 562), so ``from workbench.widgets import show`` is quick
and :func:`show` can load the widget libraries while the base model is scored.

Example:
    >>> from workbench.widgets import show
    >>> wb = show("assets/models/fashion-editable")     # a progress line, then the workbench
    >>> from workbench.widgets import Workbench
    >>> wb = Workbench.from_model(my_model, my_test_set, classes=my_classes)
    >>> wb   # in a notebook
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {  # name -> the module that defines it (relative to this package, or absolute)
    **dict.fromkeys(["default_checkpoint", "open_session", "resolve_checkpoint"], "workbench.session.opening"),
    **dict.fromkeys(["MessageArea"], "common"),
    **dict.fromkeys(["Comparison"], "comparison"),
    **dict.fromkeys(["Controller"], "controller"),
    **dict.fromkeys(["Attempt", "Callbacks", "Selection"], "events"),
    **dict.fromkeys(["GLOSSARY"], "glossary"),
    **dict.fromkeys(["show"], "launch"),
    **dict.fromkeys(["Lockstep"], "lockstep"),
    **dict.fromkeys(["describe_edit"], "wording"),
    **dict.fromkeys(["Workbench"], "workbench"),
    **dict.fromkeys(["AttributionView"], "panels.attribution_view"),
    **dict.fromkeys(["EDITORS", "EditPanel"], "panels.edit_panel"),
    **dict.fromkeys(["DEFAULT_SORT", "SORTS", "ErrorBrowser"], "panels.error_browser"),
    **dict.fromkeys(["LocalizationPanel"], "panels.localization_panel"),
    **dict.fromkeys(["MetricsPanel"], "panels.metrics_panel"),
    **dict.fromkeys(["OutcomeCard"], "panels.outcome_card"),
    **dict.fromkeys(["ProbePanel"], "panels.probe_panel"),
    **dict.fromkeys(["TargetPicker", "suggest_targets"], "panels.target_picker"),
    **dict.fromkeys(["confusion_figure", "localization_figure", "per_class_figure", "probability_figure",
                     "timeline_figure", "update_confusion"], "plots.charts"),
    **dict.fromkeys(["attribution_grid", "attribution_overlay", "figure_png", "image_png"], "plots.images"),
    **dict.fromkeys(["live_figure"], "plots.live"),
}

if TYPE_CHECKING:
    from .common import MessageArea
    from .comparison import Comparison
    from .controller import Controller
    from .events import Attempt, Callbacks, Selection
    from .glossary import GLOSSARY
    from .launch import show
    from .lockstep import Lockstep
    from .panels.attribution_view import AttributionView
    from .panels.edit_panel import EDITORS, EditPanel
    from .panels.error_browser import DEFAULT_SORT, SORTS, ErrorBrowser
    from .panels.localization_panel import LocalizationPanel
    from .panels.metrics_panel import MetricsPanel
    from .panels.outcome_card import OutcomeCard
    from .panels.probe_panel import ProbePanel
    from .panels.target_picker import TargetPicker, suggest_targets
    from .plots.charts import (confusion_figure, localization_figure, per_class_figure, probability_figure,
                               timeline_figure, update_confusion)
    from .plots.images import attribution_grid, attribution_overlay, figure_png, image_png
    from .plots.live import live_figure
    from .wording import describe_edit
    from .workbench import Workbench
    from ..session.opening import default_checkpoint, open_session, resolve_checkpoint

__all__ = [
    "Attempt", "attribution_grid", "attribution_overlay", "AttributionView", "Callbacks", "Comparison",
    "confusion_figure", "Controller", "default_checkpoint", "DEFAULT_SORT", "describe_edit", "EDITORS",
    "EditPanel", "ErrorBrowser", "figure_png", "GLOSSARY", "image_png", "live_figure", "LocalizationPanel",
    "localization_figure", "Lockstep", "MessageArea", "MetricsPanel", "open_session", "OutcomeCard",
    "per_class_figure", "probability_figure", "ProbePanel", "resolve_checkpoint", "Selection", "show", "SORTS",
    "suggest_targets", "TargetPicker", "timeline_figure", "update_confusion", "Workbench",
]


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(where if where.startswith("workbench.") else f".{where}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
