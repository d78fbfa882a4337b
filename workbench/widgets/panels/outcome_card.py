"""OutcomeCard: what the last click did, in plain words.

``Fixed ✓ — now predicts Shirt. Test accuracy 93.0% → 92.9% (−0.13 pp); 127 other images
changed; 21 ms``. The card fills in three steps, as the numbers arrive: the edit itself
(success, new prediction, steps), a drawdown estimate from a stratified sample with its 95%
interval, then the exact figures on the whole split. Each part is replaced, never left over
from an earlier click: a failed edit clears the figures of the previous one.

The words come from :mod:`workbench.widgets.wording` (pure); the card only joins them into
one HTML widget.
"""
from __future__ import annotations

from typing import Any

from ...editing.guard import COST_WARNING_PP
from ..common import css
from ..markup import HTML, Markup, join, markup
from ..wording import EARLIER_EDIT_NOTE, Outcome, estimate_line, exact_line, pp

__all__ = ["COST_WARNING_PP", "OutcomeCard"]

# An edit that costs more than COST_WARNING_PP points of test accuracy (the edit guard's
# threshold, workbench.editing.guard) is shown in the warning colour.
_STATUSES = ("empty", "fixed", "costly", "failed", "noop", "history", "pending", "info")
_COLORS = {"fixed": "#1b5e20", "costly": "#8a5a00", "failed": "#b71c1c", "noop": "#0d47a1", "info": "#333"}


class OutcomeCard:
    """The card (CSS ``wb-card``; its ``data``-like classes ``wb-card-<status>`` say the state)."""

    def __init__(self) -> None:
        self.widget = css(HTML(), "wb-card")
        self.status = "empty"
        self.parts: dict[str, Markup] = {}
        self.show_hint("Pick a mistake below, choose the label it should have, then press Edit.")

    def _render(self, status: str, color: str) -> None:
        self.status = status
        p = self.parts
        body = join(markup("<div class='wb-card-{}'>{}</div>", k, v) for k, v in p.items() if k != "title" and v)
        with self.widget.hold_sync():  # the status class and the words: one message
            for s in _STATUSES:
                if s != status:
                    self.widget.remove_class(f"wb-card-{s}")
            self.widget.add_class(f"wb-card-{status}")
            self.widget.value = markup("<div style='border-left:6px solid {0};padding:6px 10px;background:#fafafa;"
                                       "min-height:72px'><div class='wb-card-title' style='color:{0}'>{1}</div>{2}"
                                       "</div>", color, p.get("title", ""), body)

    def show_hint(self, text: str) -> None:
        self.parts = {"title": markup("{}", text)}
        self._render("empty", _COLORS["info"])

    def show_edit(self, outcome: Outcome) -> None:
        """Step 1: the edit itself; clears every figure of the previous click."""
        ms = markup(" {:.0f} ms.", outcome.seconds * 1000) if outcome.status != "noop" else ""
        self.parts = {"title": markup("{}", outcome.title), "detail": markup("{}{}", outcome.detail, ms),
                      "estimate": Markup(), "exact": Markup(), "session": Markup()}
        self._render("pending" if outcome.status == "fixed" else outcome.status,
                     _COLORS["fixed" if outcome.status == "fixed" else outcome.status])

    def show_estimate(self, est: Any, error_before: float) -> None:
        """Step 2: the quick estimate (only after a successful edit)."""
        self.parts["estimate"] = estimate_line(est, error_before)
        self._render(self.status, _COLORS["fixed"])

    def show_exact(self, step: Any, total: Any, n_edits: int, edit_seconds: float, base_error: float,
                   index: int | None = None) -> None:
        """Step 3: exact figures of this edit and of the whole session."""
        costly = step.drawdown * 100 > COST_WARNING_PP
        self.parts["estimate"] = Markup()
        self.parts["exact"] = exact_line(step, edit_seconds, index)
        if costly:
            self.parts["exact"] += markup("<br><b>This fix cost more than {:g} pp of accuracy</b>: consider Undo, "
                                          "or a smaller learning rate.", COST_WARNING_PP)
        self.parts["session"] = markup("<span style='color:#555'>All {} edit(s) so far: accuracy {:.1%} → {:.1%} "
                                       "({})</span>", n_edits, 1 - base_error, 1 - total.error_after,
                                       pp(-total.drawdown))
        status = "costly" if costly else "fixed"
        self._render(status, _COLORS[status])

    def show_reports(self, rec: Any, n_edits: int, base_error: float) -> str:
        """The exact reports of the weights as they are (``rec``: the last applied ``EditRecord``,
        or None). A just-applied edit's card gets its exact figures; returns the note the detail
        panels carry: after a failed or no-op attempt, that they show the edit before it."""
        if rec is None:
            return ""
        if self.status == "pending":
            if rec.step_report is not None:
                self.show_exact(rec.step_report, rec.report, n_edits, rec.result.seconds, base_error,
                                rec.index if isinstance(rec.index, int) else None)
            return ""
        return EARLIER_EDIT_NOTE if self.status in ("failed", "noop") else ""

    def show_strength(self, outcome: Outcome, est: Any = None, error_before: float = 0.0, rec: Any = None,
                      n_edits: int = 0, base_error: float = 0.0) -> None:
        """The last edit at a new strength: fixed or not, then the estimate (the slider moving)
        or the exact figures (``rec``, the record with its reports: the slider at rest)."""
        self.parts = {"title": markup("{}", outcome.title), "detail": outcome.detail}
        status = outcome.status if outcome.status in _COLORS else "info"
        if rec is not None and rec.step_report is not None:
            costly = rec.step_report.drawdown * 100 > COST_WARNING_PP
            self.parts["exact"] = exact_line(rec.step_report, None, rec.index if isinstance(rec.index, int) else None)
            self.parts["session"] = markup("<span style='color:#555'>All {} edit(s) so far: accuracy {:.1%} → {:.1%} "
                                           "({})</span>", n_edits, 1 - base_error, 1 - rec.report.error_after,
                                           pp(-rec.report.drawdown))
            status = "costly" if costly and status == "fixed" else status
        elif est is not None:
            self.parts["estimate"] = estimate_line(est, error_before)
        self._render(status, _COLORS[status])

    def show_history(self, text: str, total: Any, n_edits: int, base_error: float) -> None:
        """After Undo / Redo / Reset / Load: where the session stands now."""
        line = (markup("Test accuracy now {:.1%} (base model {:.1%}, {})", 1 - total.error_after, 1 - base_error,
                       pp(-total.drawdown)) if total is not None
                else markup("Test accuracy {:.1%} (base model)", 1 - base_error))
        self.parts = {"title": markup("{}", text), "exact": line, "session": markup("{} edit(s) applied", n_edits)}
        self._render("history", _COLORS["info"])
