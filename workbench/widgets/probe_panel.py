"""ProbePanel: does the last edit carry over to augmented views of the edited image?

Two progress bars (before / after the edit) show the share of augmented views (flip,
shift, noise) of the edited image that the model gives the target label; plain widgets,
updated in place.
"""
from __future__ import annotations

import html
from typing import Sequence

import ipywidgets as W

from .common import css

__all__ = ["ProbePanel"]


class ProbePanel:
    """Share of augmented views of the edited image predicted as the target, before vs after."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.report = None
        self._text = ""
        self.text = css(W.HTML("<i>generalization probe: runs after an edit</i>"), "wb-probe")
        self.bars = {k: css(W.FloatProgress(value=0.0, min=0.0, max=1.0, description=k, bar_style=style,
                                            layout=W.Layout(width="300px")), f"wb-probe-bar-{k}")
                     for k, style in (("before", ""), ("after", "info"))}
        self.labels = {k: W.HTML("") for k in self.bars}
        self.kinds = css(W.HTML(""), "wb-probe-kinds")
        rows = [W.HBox([self.bars[k], self.labels[k]]) for k in self.bars]
        self.widget = css(W.VBox([self.text, *rows, self.kinds]), "wb-probe-panel")

    def show(self, report, index: int | None, target: int) -> None:
        """Show a ``GeneralizationReport`` for the edit of image ``index`` towards ``target``."""
        self.report = report
        for k, v in (("before", report.before), ("after", report.after)):
            self.bars[k].value = float(v)
            self.labels[k].value = f"<b>{v:.0%}</b>"
        where = f"#{index}" if index is not None else "the edited image"
        n = report.n_views * max(1, len(report.per_kind))
        self._text = (f"edit of {where} → <b>{html.escape(self.classes[target])}</b>: "
                      f"<span class='wb-probe-after'>{report.after:.0%}</span> of {n} augmented views "
                      f"now predicted as the target (before the edit: {report.before:.0%})")
        self.text.value = self._text
        self.kinds.value = "<small>" + ", ".join(f"{k}: {b:.0%} → {a:.0%}"
                                                  for k, (b, a) in report.per_kind.items()) + "</small>"

    def mark_earlier(self, note: str) -> None:
        """Say that the probe shown is of an earlier edit (after a failed or no-op attempt)."""
        if self.report is not None:
            self.text.value = f"{self._text} <span style='color:#8a5a00'>({html.escape(note)})</span>"

    def clear(self, text: str = "generalization probe: runs after an edit") -> None:
        self.report = None
        for k in self.bars:
            self.bars[k].value = 0.0
            self.labels[k].value = ""
        self.kinds.value = ""
        self.text.value = f"<i>{html.escape(text)}</i>"
