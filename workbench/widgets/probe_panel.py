"""ProbePanel: does the last edit carry over to augmented views of the edited image?"""
from __future__ import annotations

import html
from typing import Sequence

import ipywidgets as W
import plotly.graph_objects as go

from .common import css
from .figures import generalization_figure

__all__ = ["ProbePanel"]


class ProbePanel:
    """Share of augmented views (flip, shift, noise) of the edited image given the target label.

    The figure (two bars, before / after the edit) is updated in place by :meth:`show`.
    """

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.report = None
        self.figure = go.FigureWidget(generalization_figure(0.0, 0.0))
        self.text = css(W.HTML("<i>generalization probe: runs after an edit</i>"), "wb-probe")
        self.widget = css(W.VBox([self.text, self.figure]), "wb-probe-panel")

    def show(self, report, index: int | None, target: int) -> None:
        """Show a ``GeneralizationReport`` for the edit of image ``index`` towards ``target``."""
        self.report = report
        with self.figure.batch_update():
            self.figure.data[0].y = [report.before, report.after]
            self.figure.data[0].text = [f"{report.before:.0%}", f"{report.after:.0%}"]
        kinds = ", ".join(f"{k} {b:.0%}→{a:.0%}" for k, (b, a) in report.per_kind.items())
        where = f"#{index}" if index is not None else "the edited image"
        n = report.n_views * max(1, len(report.per_kind))
        self.text.value = (f"edit of {where} → <b>{html.escape(self.classes[target])}</b>: "
                           f"<span class='wb-probe-after'>{report.after:.0%}</span> of {n} augmented views "
                           f"now predicted as the target (before: {report.before:.0%}; {kinds})")

    def clear(self, text: str = "generalization probe: runs after an edit") -> None:
        self.report = None
        with self.figure.batch_update():
            self.figure.data[0].y = [0.0, 0.0]
            self.figure.data[0].text = ["", ""]
        self.text.value = f"<i>{html.escape(text)}</i>"
