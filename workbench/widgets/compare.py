"""Comparison: a baseline and an editable-trained model, the same edits applied to both.

At the top a summary row: both outcome cards side by side and a verdict line saying which
model paid less for the same fix. Below: one error browser listing the union of both
models' mistakes, the editor panel, and per model the probabilities, the per-class change
and the attribution of the picked image. Each model has its own
:class:`~workbench.widgets.controller.Controller`; this class only keeps them in step.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as W

from .attribution_view import AttributionView
from .common import STYLE_SHEET, MessageArea, css, log
from .controller import Callbacks, Controller
from .edit_panel import EditPanel
from .error_browser import ErrorBrowser
from .metrics_panel import MetricsPanel
from .outcome import OutcomeCard
from .target_picker import TargetPicker
from ..paths import shipped_model
from ..session.opening import open_session

if TYPE_CHECKING:
    from ..session import EditSession

__all__ = ["Comparison", "union_errors"]


def union_errors(left: list, right: list) -> list:
    """Mistakes of either model, one entry per image (the left model's entry when both err)."""
    out = {e.index: e for e in right}
    out.update({e.index: e for e in left})
    return [out[i] for i in sorted(out)]


class _Side:
    """One model's panels and controller."""

    def __init__(self, session: EditSession, title: str, on_select: Callable[[int], None]) -> None:
        self.session, self.title = session, title
        classes = session.classes
        self.card = OutcomeCard()
        self.picker = TargetPicker(classes, chart_width=380)
        self.metrics = MetricsPanel(session.raw_images(), session.labels, classes, on_select=on_select, width=480)
        layers = session.cam_layers()
        self.controller = Controller(session, Callbacks(
            selected=self.picker.show, target=self.picker.set_target, outcome=lambda o, _r: self.card.show_edit(o),
            estimate=self.card.show_estimate, attribution=self._attribution, reports=self._reports,
            history=self._history, attribution_options=lambda: self.attribution.options(), probe_views=0))
        self.attribution = AttributionView(layers, self.controller.explain, layer=layers[-1] if layers else None)

    def _attribution(self, aset: Any, sel: Any, rows: dict[str, int]) -> None:
        self.attribution.show(aset, sel, rows, len(self.session.history))

    def _reports(self, rec: Any) -> None:
        s = self.session
        if self.card.status == "pending" and rec is not None and rec.step_report is not None:
            self.card.show_exact(rec.step_report, rec.report, len(s.history), rec.result.seconds, s.base_error,
                                 rec.index if isinstance(rec.index, int) else None)
        self.metrics.show(rec, len(s.history))

    def _history(self, what: str) -> None:
        s = self.session
        self.card.show_history(what, s.current_report(), len(s.history), s.base_error)

    def column(self) -> W.Widget:
        return css(W.VBox([W.HTML(f"<h4 style='margin:4px 0'>{html.escape(self.title)}</h4>"), self.picker.chart,
                           self.metrics.widget, self.attribution.widget],
                          layout=W.Layout(border="1px solid #ddd", padding="4px", width="50%")), "wb-compare-column")


class Comparison:
    """Two sessions (same data set and split) edited in lockstep.

    Args:
        left, right: ``EditSession`` objects on the same images.
        names: titles of the two models.
    """

    def __init__(self, left: EditSession, right: EditSession, *, names: tuple[str, str] = ("baseline", "editable"),
                 note: str = "", page_size: int = 10) -> None:
        if len(left.labels) != len(right.labels) or not bool((left.labels == right.labels).all()):
            raise ValueError("the two models are evaluated on different images; open both with the same "
                             "data set, split and limit")
        self.names = names
        self.sides = [_Side(s, n, self._guarded("Opening the image", self.select)) for s, n in zip((left, right), names)]
        classes = left.classes
        self.picker = TargetPicker(classes, on_target=self._guarded("Choosing the target", self.set_target))
        groups = [g for g in left.group_names() if g in right.group_names()]
        self.panel = EditPanel(groups, {"edit": self._guarded("Edit", self.edit),
                                        "undo": self._guarded("Undo", self.undo),
                                        "redo": self._guarded("Redo", self.redo),
                                        "reset": self._guarded("Reset", self.reset)}, config=left.config,
                               card=left.card, note=left.editor_choice.note)
        self.messages = self.panel.messages
        self.verdict = css(W.HTML("<i>Edit an image: the same fix is applied to both models.</i>"), "wb-verdict")
        self.browser = ErrorBrowser(left.raw_images(), classes, page_size=page_size, columns=page_size,
                                    on_select=self._guarded("Opening the image", self.select),
                                    errors=self.errors(), confusion=left.confusion(),
                                    title=f"Mistakes of either model (confusion: {names[0]})")
        header = W.HTML(f"<b style='font-size:1.15em'>Compare</b>: {html.escape(names[0])} (accuracy "
                        f"{1 - left.base_error:.1%}) vs {html.escape(names[1])} ({1 - right.base_error:.1%}); "
                        "every edit is applied to both")
        cards = W.HBox([css(W.VBox([W.HTML(f"<b>{html.escape(s.title)}</b>"), s.card.widget],
                                   layout=W.Layout(width="50%", padding="0 4px")), "wb-compare-card")
                        for s in self.sides])
        summary = css(W.VBox([cards, self.verdict]), "wb-compare-summary")
        self.widget = css(W.VBox([W.HTML(STYLE_SHEET), header, summary,
                                  W.HBox([self.picker.widget, self.panel.widget], layout=W.Layout(flex_flow="row wrap")),
                                  self.browser.widget, W.HBox([s.column() for s in self.sides])]),
                          "wb-root", "wb-comparison")
        if note:
            self.messages.show(note, "warning")
            log.warning(note)

    @classmethod
    def from_checkpoints(cls, baseline_folder: str | Path | None = None, editable_folder: str | Path | None = None,
                         *, limit: int | None = None, device: Any = None, bundle: Any = None,
                         **kw: Any) -> Comparison:
        """Open two model folders (defaults: ``assets/models/fashion-baseline`` and ``fashion-editable``)."""
        base = baseline_folder if baseline_folder is not None else shipped_model("fashion-baseline")
        edit = editable_folder if editable_folder is not None else shipped_model("fashion-editable")
        left, n1 = open_session(base, limit=limit, device=device, bundle=bundle)
        right, n2 = open_session(edit, limit=limit, device=device, bundle=bundle)
        names = (Path(str(left.checkpoint)).name, Path(str(right.checkpoint)).name)
        if names[0] == names[1]:
            names = (names[0] + " (1)", names[1] + " (2)")
        return cls(left, right, names=names, note="; ".join(n for n in (n1, n2) if n), **kw)

    # -- actions -------------------------------------------------------------------------
    def errors(self) -> list:
        return union_errors(self.sides[0].session.current_errors(), self.sides[1].session.current_errors())

    def select(self, index: int) -> None:
        for s in self.sides:
            s.controller.select(int(index))
        self.picker.show(self.sides[0].controller.selection)  # type: ignore[arg-type]
        self.picker.set_target(self.sides[0].controller.target)  # type: ignore[arg-type]
        self.browser.select(int(index), notify=False)

    def set_target(self, target: int) -> None:
        for s in self.sides:
            s.controller.set_target(int(target))
        self.picker.set_target(int(target))

    def edit(self) -> list:
        cfg = self.panel.config.resolved()
        results = []
        for s in self.sides:
            self.panel.set_phase(f"editing {s.title}…")
            results.append(s.controller.edit(cfg))
        self.panel.set_phase("")
        self.picker.show(self.sides[0].controller.selection)  # type: ignore[arg-type]
        self._after_change()
        return results

    def undo(self) -> None:
        self._stack("undo")

    def redo(self) -> None:
        self._stack("redo")

    def reset(self) -> None:
        self._stack("reset")

    def _stack(self, what: str) -> None:
        ok = [s.session.can_undo if what == "undo" else s.session.can_redo if what == "redo" else True
              for s in self.sides]
        if not all(ok):
            raise ValueError("nothing to undo: no edit is applied" if what == "undo" else
                             "nothing to redo: no edit was undone since the last edit")
        for s in self.sides:
            getattr(s.controller, what)()
        if self.sides[0].controller.selection is not None:
            self.picker.show(self.sides[0].controller.selection)
        self._after_change()

    def _after_change(self) -> None:
        self.browser.set_errors(self.errors(), self.sides[0].session.confusion())
        self.verdict.value = self.verdict_html()
        s = [x.session for x in self.sides]
        self.panel.set_history_buttons(all(x.can_undo for x in s), all(x.can_redo for x in s))

    def verdict_html(self) -> str:
        """Which model paid less for the last edit (and for all edits so far)."""
        recs = [s.session.history[-1] if s.session.history else None for s in self.sides]
        if any(r is None or r.step_report is None for r in recs):
            return "<i>No edit applied to both models yet.</i>"
        cost = [r.step_report.drawdown * 100 for r in recs]  # type: ignore[union-attr]
        total = [r.report.drawdown * 100 for r in recs]  # type: ignore[union-attr]
        if abs(cost[0] - cost[1]) < 0.005:
            who = "Both models paid the same for this fix"
        else:
            k = 0 if cost[0] < cost[1] else 1
            who = f"<b>{html.escape(self.names[k])} paid less</b> for this fix"
        return (f"<div class='wb-verdict-text' style='font-size:1.05em;padding:4px'>{who}: drawdown "
                f"{html.escape(self.names[0])} {cost[0]:+.2f} pp, {html.escape(self.names[1])} {cost[1]:+.2f} pp "
                f"(all edits so far: {total[0]:+.2f} pp vs {total[1]:+.2f} pp).</div>")

    def _guarded(self, action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            self.messages.clear()
            with self.messages.guard(action):
                return fn(*args)
            return None
        return run

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)
