"""Comparison: a baseline and an editable-trained model, the same edits applied to both.

At the top a summary row: both outcome cards side by side and a verdict line saying which
model paid less for the same fix. Below: one error browser listing the union of both
models' mistakes, the editor panel, and per model the probabilities, the per-class change
and the attribution of the picked image. Each model has its own
:class:`~workbench.widgets.controller.Controller`; every click goes to the one
:class:`~workbench.widgets.lockstep.Lockstep` over the two, which keeps them in step (see
its doc for the order of one click's phases). This class builds the panels and shows what
the controllers report.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as W

from ..paths import shipped_model
from ..session.opening import open_session
from .common import STYLE_SHEET, css, log
from .controller import Controller
from .events import Attempt, Callbacks, Selection
from .lockstep import Lockstep, PairCallbacks
from .markup import HTML, Markup, markup
from .panels.attribution_view import AttributionView
from .panels.edit_panel import EditPanel
from .panels.error_browser import ErrorBrowser
from .panels.metrics_panel import MetricsPanel
from .panels.outcome_card import OutcomeCard
from .panels.target_picker import TargetPicker
from .verdict import error_notes, union_errors, verdict_html

if TYPE_CHECKING:
    from ..session import EditSession

__all__ = ["Comparison"]


class _Side:
    """One model's panels and controller."""

    def __init__(self, session: EditSession, title: str, on_select: Callable[[int], None]) -> None:
        self.session, self.title = session, title
        classes = session.classes
        self.card = OutcomeCard()
        self.picker = TargetPicker(classes, chart_width=380)
        self.controller = Controller(session, Callbacks(
            selected=self.picker.show, target=self.picker.set_target, outcome=lambda o, _r: self.card.show_edit(o),
            estimate=self.card.show_estimate, attribution=self._attribution, reports=self._reports,
            history=self._history, attribution_options=lambda: self.attribution.options(),
            attribution_error=lambda err: self.attribution.messages.error(err, "Attribution"), probe_views=0),
            name=title)
        self.metrics = MetricsPanel(self.controller.images, session.labels, classes, on_select=on_select, width=480)
        layers = session.cam_layers()
        self.attribution = AttributionView(layers, self.controller.explain, layer=layers[-1] if layers else None)

    def _attribution(self, aset: Any, sel: Any, rows: dict[str, int]) -> None:
        self.attribution.show(aset, sel, rows, len(self.session.history))

    def _reports(self, rec: Any) -> None:
        s = self.session
        self.metrics.show(rec, len(s.history), self.card.show_reports(rec, len(s.history), s.base_error))

    def _history(self, what: str) -> None:
        s = self.session
        self.card.show_history(what, s.current_report(), len(s.history), s.base_error)

    def column(self) -> W.Widget:
        return css(W.VBox([HTML(markup("<h4 style='margin:4px 0'>{}</h4>", self.title)), self.picker.chart,
                           self.metrics.widget, self.attribution.widget],
                          layout=W.Layout(border="1px solid #ddd", padding="4px", width="50%")), "wb-compare-column")


class Comparison:
    """Two sessions (same data set and split) edited in lockstep.

    Args:
        left, right: ``EditSession`` objects on the same images.
        names: titles of the two models.

    Example:
        >>> cmp = Comparison.from_checkpoints("assets/models/fashion-baseline", "assets/models/fashion-editable")
        >>> cmp.lockstep.select(12); cmp.lockstep.edit()
    """

    def __init__(self, left: EditSession, right: EditSession, *, names: tuple[str, str] = ("baseline", "editable"),
                 note: str = "", page_size: int = 10) -> None:
        if len(left.labels) != len(right.labels) or not bool((left.labels == right.labels).all()):
            raise ValueError("the two models are evaluated on different images; open both with the same "
                             "data set, split and limit")
        self.names = names
        self.sides = [_Side(s, n, self._guarded("Opening the image", lambda i: self.lockstep.select(i)))
                      for s, n in zip((left, right), names)]
        self.lockstep = ls = Lockstep(self.sides[0].controller, self.sides[1].controller, PairCallbacks(
            selected=self._on_selected, target=lambda t: self.picker.set_target(t),
            phase=lambda text: self.panel.set_phase(text), verdict=self._on_verdict, taken_back=self._on_taken_back,
            stack=self._on_stack, changed=self._on_changed, editor_config=lambda: self.panel.config))
        classes = left.classes
        self.picker = TargetPicker(classes, on_target=self._guarded("Choosing the target", ls.set_target))
        groups = [g for g in left.group_names() if g in right.group_names()]
        self.panel = EditPanel(groups, {"edit": self._guarded("Edit", ls.edit), "undo": self._guarded("Undo", ls.undo),
                                        "redo": self._guarded("Redo", ls.redo),
                                        "reset": self._guarded("Reset", ls.reset)}, config=left.config,
                               choose=self.sides[0].controller.choose_editor, note=left.editor_choice.note)
        self.messages = self.panel.messages
        self.verdict = css(HTML(markup("<i>Edit an image: the same fix is applied to both models, and this line "
                                       "says which one paid less for it.</i>")), "wb-verdict")
        wrong = self._side_errors()
        self.browser = ErrorBrowser(self.sides[0].controller.images, classes, page_size=page_size, columns=page_size,
                                    on_select=self._guarded("Opening the image", ls.select),
                                    errors=union_errors(*wrong), confusion=left.confusion(),
                                    notes=error_notes(*wrong, names),
                                    title=f"Mistakes of either model (confusion: {names[0]})")
        header = HTML(markup("<b style='font-size:1.15em'>Compare</b>: {} (accuracy {:.1%}) vs {} ({:.1%}); "
                             "every edit is applied to both", names[0], 1 - left.base_error, names[1],
                             1 - right.base_error))
        cards = W.HBox([css(W.VBox([HTML(markup("<b>{}</b>", s.title)), s.card.widget],
                                   layout=W.Layout(width="50%", padding="0 4px")), "wb-compare-card")
                        for s in self.sides])
        summary = css(W.VBox([cards, self.verdict]), "wb-compare-summary")
        self.widget = css(W.VBox([HTML(STYLE_SHEET), header, summary,
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

    def errors(self) -> list:
        """The union of both models' current mistakes (see :func:`~workbench.widgets.verdict.union_errors`)."""
        return union_errors(*self._side_errors())

    def _side_errors(self) -> tuple[list, list]:
        return self.sides[0].session.current_errors(), self.sides[1].session.current_errors()

    # -- callbacks from the lockstep -----------------------------------------------------
    def _on_selected(self, sel: Selection, target: int) -> None:
        self.picker.show(sel)
        self.picker.set_target(target)
        if sel.index is not None:
            self.browser.select(sel.index, notify=False)

    def _on_verdict(self, attempts: list[Attempt], totals: list[float] | None) -> Markup:
        self.verdict.value = verdict_html(self.names, attempts, totals, self.sides[0].session.classes,
                                          exact=totals is not None)
        return self.verdict.value

    def _on_taken_back(self) -> None:
        self.verdict.value = markup("<div class='wb-verdict-text'><i>This edit was taken back on both models: "
                                    "{} could not be edited (see the message).</i></div>", self.names[1])

    def _on_stack(self, what: str, steps: int, last_verdict: Markup | None) -> None:
        now = (f"{steps} edit{'s' if steps != 1 else ''} still applied; the last one:" if steps else
               "No edit is applied: both models have their base weights.")
        self.verdict.value = markup("<div class='wb-verdict-text'><i>{}.</i> {}</div>{}", what, now,
                                    last_verdict if last_verdict is not None else "")

    def _on_changed(self, can_undo: bool, can_redo: bool) -> None:
        left, right = self._side_errors()
        self.browser.set_errors(union_errors(left, right), self.sides[0].session.confusion(),
                                error_notes(left, right, self.names),
                                base=not any(s.session.history for s in self.sides))
        self.panel.set_history_buttons(can_undo, can_redo)

    def _guarded(self, action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A click's handler: errors go to the message line beside the Edit button."""
        def run(*args: Any) -> Any:
            self.messages.clear()
            with self.messages.guard(action):
                return fn(*args)
            self.panel.set_phase("")  # never leave "editing both models…" beside an error
            return None
        return run

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)
