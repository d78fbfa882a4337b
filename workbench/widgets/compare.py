"""Comparison: a baseline and an editable-trained model side by side, the same edits on both.

One ErrorBrowser (listing the *first* model's current errors) and one EditPanel drive two
SessionViews: selecting an image shows it in both target pickers, Edit applies the same
target and editor settings to both sessions, and the statuses, metrics and probes sit
side by side. Undo / Redo / Reset act on both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as W

from .common import MessageArea, css, log
from .error_browser import ErrorBrowser
from .session_view import SessionView
from ..paths import shipped_model
from ..session.opening import open_session
from .workbench import _Controller

__all__ = ["Comparison"]


class Comparison(_Controller):
    """Two sessions (same data set and architecture family) edited in lockstep.

    Args:
        left, right: ``EditSession`` objects with evaluators on the same split.
        names: titles of the two columns.
    """

    def __init__(self, left, right, *, names: tuple[str, str] = ("baseline", "editable"), note: str = "",
                 page_size: int = 10, probe_views: int = 16) -> None:
        if len(left.evaluator.labels) != len(right.evaluator.labels) or \
                not bool((left.evaluator.labels.cpu() == right.evaluator.labels.cpu()).all()):
            raise ValueError("the two models are evaluated on different images; open both with the same "
                             "data set, split and limit")
        self.messages = MessageArea()
        views = [SessionView(s, title=n, on_select=self.select, on_target=self.set_target,
                             probe_views=probe_views, metrics_width=500) for s, n in zip((left, right), names)]
        errors, confusion = views[0].errors()
        self.browser = ErrorBrowser(views[0].images, views[0].classes, on_select=self.select, page_size=page_size,
                                    title=f"Misclassified by {names[0]} (current weights)", errors=errors,
                                    confusion=confusion)
        self._init_common(views, [g for g in left.group_names() if g in right.group_names()], left.config)
        self.panel.progress.max = 2 + len(views)
        self.header = css(W.HTML(f"<h3 style='margin:4px 0'>Compare: {names[0]} vs {names[1]}</h3>"
                                 f"<div style='color:#555'>base test error {names[0]} "
                                 f"{views[0].base_error:.2%}, {names[1]} {views[1].base_error:.2%}; "
                                 "every edit is applied to both</div>"), "wb-header")
        columns = [css(W.VBox([W.HTML(f"<h4 style='margin:6px 0'>{v.title}</h4>"), v.status, v.picker.widget,
                               v.metrics.widget, v.probe.widget], layout=W.Layout(border="1px solid #ddd",
                                                                                  padding="4px")),
                       "wb-compare-column") for v in views]
        self.widget = css(W.VBox([self.header, self.messages.widget, self.browser.widget, self.panel.widget,
                                  W.HBox(columns)]), "wb-comparison")
        if note:
            self.messages.show(note, "warning")
            log.warning(note)

    @classmethod
    def from_checkpoints(cls, baseline_folder: str | Path | None = None, editable_folder: str | Path | None = None,
                         *, limit: int | None = None, device: Any = None, bundle: Any = None,
                         **kw: Any) -> Comparison:
        """Open two model folders (defaults: ``assets/models/fashion-baseline`` and ``fashion-editable``).

        Raises:
            FileNotFoundError: a folder is missing (the message names it).
            ValueError: the models do not share a data set / split.
        """
        base = baseline_folder if baseline_folder is not None else shipped_model("fashion-baseline")
        edit = editable_folder if editable_folder is not None else shipped_model("fashion-editable")
        left, n1 = open_session(base, limit=limit, device=device, bundle=bundle)
        right, n2 = open_session(edit, limit=limit, device=device, bundle=bundle)
        names = (Path(left.checkpoint).name, Path(right.checkpoint).name)
        if names[0] == names[1]:
            names = (names[0] + " (1)", names[1] + " (2)")
        return cls(left, right, names=names, note="; ".join(n for n in (n1, n2) if n), **kw)
