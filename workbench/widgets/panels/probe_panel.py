"""ProbePanel: does the last edit carry over to augmented views of the edited image?

Two progress bars (before / after the edit) show the share of augmented views (flip,
shift, noise) of the edited image that the model gives the target label; plain widgets,
updated in place.
"""
from __future__ import annotations

from typing import Sequence

import ipywidgets as W

from ..common import css
from ..markup import HTML, Markup, join, markup

__all__ = ["NO_PROBE", "ProbePanel"]

NO_PROBE = ("Generalization probe: after an edit, this shows whether the fix carries over to shifted, "
            "flipped and noisy copies of the edited image.")


class ProbePanel:
    """Share of augmented views of the edited image predicted as the target, before vs after."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)
        self.report = None
        self._text = Markup()
        self.text = css(HTML(markup("<i>{}</i>", NO_PROBE)), "wb-probe")
        self.bars = {k: css(W.FloatProgress(value=0.0, min=0.0, max=1.0, description=k, bar_style=style,
                                            layout=W.Layout(width="300px")), f"wb-probe-bar-{k}")
                     for k, style in (("before", ""), ("after", "info"))}
        self.labels = {k: HTML("") for k in self.bars}
        self.kinds = css(HTML(""), "wb-probe-kinds")
        self.rows = W.VBox([W.HBox([self.bars[k], self.labels[k]]) for k in self.bars],
                           layout=W.Layout(display="none"))  # shown with a report: never empty bars
        self.widget = css(W.VBox([self.text, self.rows, self.kinds]), "wb-probe-panel")

    def show(self, report, index: int | None, target: int) -> None:
        """Show a ``GeneralizationReport`` for the edit of image ``index`` towards ``target``."""
        self.report = report
        self.rows.layout.display = ""
        for k, v in (("before", report.before), ("after", report.after)):
            self.bars[k].value = float(v)
            self.labels[k].value = markup("<b>{:.0%}</b>", v)
        where = f"#{index}" if index is not None else "the edited image"
        n = report.n_views * max(1, len(report.per_kind))
        self._text = markup("edit of {} → <b>{}</b>: <span class='wb-probe-after'>{:.0%}</span> of {} augmented "
                            "views now predicted as the target (before the edit: {:.0%})", where,
                            self.classes[target], report.after, n, report.before)
        self.text.value = self._text
        self.kinds.value = markup("<small>{}</small>", join((f"{k}: {b:.0%} → {a:.0%}"
                                                             for k, (b, a) in report.per_kind.items()), ", "))

    def mark_earlier(self, note: str) -> None:
        """Say that the probe shown is of an earlier edit (after a failed or no-op attempt)."""
        if self.report is not None:
            self.text.value = markup("{} <span style='color:#8a5a00'>({})</span>", self._text, note)

    def clear(self, text: str = "") -> None:
        self.report = None
        self.rows.layout.display = "none"
        for k in self.bars:
            self.bars[k].value = 0.0
            self.labels[k].value = ""
        self.kinds.value = ""
        self.text.value = markup("<i>{}</i>", text or NO_PROBE)
