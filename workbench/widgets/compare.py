"""Comparison: a baseline and an editable-trained model, the same edits applied to both.

At the top a summary row: both outcome cards side by side and a verdict line saying which
model paid less for the same fix. Below: one error browser listing the union of both
models' mistakes, the editor panel, and per model the probabilities, the per-class change
and the attribution of the picked image. Each model has its own
:class:`~workbench.widgets.controller.Controller`; this class only keeps them in step.

One click runs each controller phase on both sides before the next phase: both edits and
both outcome cards first, then both estimates (the verdict so far), then both exact
reports (the verdict), then the attributions, the per-class plots and the error browser.
Undo / Redo / Reset move both sides by one *comparison step* (the edits one click
applied, on one side or both), so the two models stay in step after a failed edit.
"""
from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import ipywidgets as W

from .attribution_view import AttributionView
from .common import STYLE_SHEET, MessageArea, css, log
from .controller import Attempt, Callbacks, Controller
from .edit_panel import EditPanel
from .error_browser import ErrorBrowser
from .metrics_panel import MetricsPanel
from .glossary import term
from .markup import HTML, Markup, join, markup
from .outcome import OutcomeCard
from .target_picker import TargetPicker
from ..paths import shipped_model
from ..session.opening import open_session

if TYPE_CHECKING:
    from ..session import EditSession

__all__ = ["Comparison", "error_notes", "union_errors", "verdict_html"]


def union_errors(left: list, right: list) -> list:
    """Mistakes of either model, one entry per image (the left model's entry when both err)."""
    out = {e.index: e for e in right}
    out.update({e.index: e for e in left})
    return [out[i] for i in sorted(out)]


def error_notes(left: list, right: list, names: Sequence[str]) -> dict[int, str]:
    """Which model gets each image of :func:`union_errors` wrong (a line under its thumbnail)."""
    wrong = [{e.index for e in left}, {e.index for e in right}]
    return {i: "both wrong" if i in wrong[0] and i in wrong[1] else
            f"only {names[0] if i in wrong[0] else names[1]} wrong" for i in wrong[0] | wrong[1]}


def _pp(x: float) -> str:
    return f"{x:+.2f} pp".replace("-", "−")


def verdict_html(names: Sequence[str], attempts: Sequence[Attempt], totals: Sequence[float] | None,
                 classes: Sequence[str], *, exact: bool) -> Markup:
    """The summary line: which model paid less for one click's edit.

    Args:
        names: the two models' titles. attempts: each side's :class:`Attempt` of the click.
        totals: each side's drawdown of all applied edits so far, in pp (shown when exact).
        exact: the figures are the exact reports (``attempt.record``); else the estimates
            (``attempt.estimate``), or only the outcomes while no estimate is there yet.

    A side that was not fixed (or refused) is named as such, with no figure: its weights did
    not change, so there is no cost to compare. A side that already predicted the target
    needed no edit: it paid 0 pp.
    """
    target = classes[attempts[0].target] if 0 <= attempts[0].target < len(classes) else "?"

    def cost(a: Attempt) -> float | None:
        if a.outcome.status == "noop":
            return 0.0
        if exact and a.record is not None and a.record.step_report is not None:
            return a.record.step_report.drawdown * 100
        if not exact and a.estimate is not None:
            return a.estimate.drawdown * 100
        return None

    def figure(k: int) -> Markup:
        a, c = attempts[k], cost(attempts[k])
        if a.outcome.status == "noop":
            return markup("{} 0 pp (no edit needed: it already predicts {})", names[k], target)
        return markup("{} {}{}", names[k], "" if exact else "≈ ", _pp(c) if c is not None else "…")

    def short(k: int) -> Markup:  # "Fixed ✓" of the card's title (markup already)
        return markup("{}", attempts[k].outcome.title).split(" — ")[0]

    failed = [k for k, a in enumerate(attempts) if a.outcome.status == "failed"]
    costs = [cost(a) for a in attempts]
    if failed:
        text = join((markup("<b>{}: {}</b> (its weights are unchanged)", names[k], short(k)) for k in failed), "; ")
        rest = [k for k in range(2) if k not in failed]
        text += (markup(". No cost to compare for this image; {} of {}", term("drawdown"), figure(rest[0])) if rest
                 else markup(". Neither model was changed, so there is no cost to compare"))
        text += markup(". Allow more steps or a larger step size in Editor settings, or pick another image.")
    elif any(c is None for c in costs):
        text = markup("Both models edited ({}); working out what each paid…",
                      join((markup("{}: {}", names[k], short(k)) for k in range(2)), ", "))
    else:
        c0, c1 = costs
        assert c0 is not None and c1 is not None
        who = (markup("Both models paid the same") if abs(c0 - c1) < 0.005
               else markup("<b>{} paid less</b>", names[0 if c0 < c1 else 1]))
        how = (markup("exact, on every test image") if exact
               else markup("{}; the exact figures follow…", term("estimate")))
        text = markup("{}{} for this fix: {} {}, {} ({}).", "" if exact else "≈ ", who, term("drawdown"), figure(0),
                      figure(1), how)
    if exact and totals is not None:
        text += markup("<br><span style='color:#555'>All edits so far: {} {}, {} {}.</span>", names[0],
                       _pp(totals[0]), names[1], _pp(totals[1]))
    state = "final" if exact else "pending"
    return markup("<div class='wb-verdict-text wb-verdict-{}' style='font-size:1.05em;padding:4px'>{}</div>",
                  state, text)


@dataclass(frozen=True)
class _Step:
    """One comparison click on the stack: which sides pushed an edit, and the verdict shown."""

    applied: tuple[bool, bool]
    verdict: Markup


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
            history=self._history, attribution_options=lambda: self.attribution.options(),
            attribution_error=lambda err: self.attribution.messages.error(err, "Attribution"), probe_views=0))
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
                               choose=left.resolve_editor, note=left.editor_choice.note)
        self.messages = self.panel.messages
        self.verdict = css(HTML(markup("<i>Edit an image: the same fix is applied to both models, and this line "
                                       "says which one paid less for it.</i>")), "wb-verdict")
        self._done: list[_Step] = []  # comparison steps applied (Undo takes back the last one)
        self._redone: list[_Step] = []  # steps undone (Redo applies the last one again)
        self.browser = ErrorBrowser(left.raw_images(), classes, page_size=page_size, columns=page_size,
                                    on_select=self._guarded("Opening the image", self.select),
                                    errors=union_errors(*self._side_errors()), confusion=left.confusion(),
                                    notes=error_notes(*self._side_errors(), names),
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

    # -- actions -------------------------------------------------------------------------
    def errors(self) -> list:
        """The union of both models' current mistakes (see :func:`union_errors`)."""
        return union_errors(*self._side_errors())

    def _side_errors(self) -> tuple[list, list]:
        return self.sides[0].session.current_errors(), self.sides[1].session.current_errors()

    def select(self, index: int) -> None:
        for s in self.sides:  # a bad index raises on the first side; attribution errors go to each side's line
            s.controller.select(int(index))
        self.picker.show(self.sides[0].controller.selection)  # type: ignore[arg-type]
        self.picker.set_target(self.sides[0].controller.target)  # type: ignore[arg-type]
        self.browser.select(int(index), notify=False)

    def set_target(self, target: int) -> None:
        for s in self.sides:
            s.controller.set_target(int(target))
        self.picker.set_target(int(target))

    def edit(self) -> list:
        """Edit the picked image on both sides; returns both results (None for a no-op).

        Each phase runs on both sides before the next one starts (see the module's doc), so
        both outcome cards and the verdict so far show within the editors' time.
        """
        cfg = self.panel.config.resolved()  # validates before anything changes
        ctrl = [s.controller for s in self.sides]
        self.panel.set_phase("editing both models…")
        attempts = [ctrl[0].apply(cfg)]
        try:
            attempts.append(ctrl[1].apply(cfg))
        except Exception:
            if attempts[0].applied:  # the sides never drift apart: take the first edit back
                ctrl[0].undo()
                self._redone.clear()  # its redo stack now holds that edit on top: nothing to redo
                self._after_change()
            self.verdict.value = markup("<div class='wb-verdict-text'><i>This edit was taken back on both models: "
                                        "{} could not be edited (see the message).</i></div>", self.names[1])
            raise
        self.picker.show(ctrl[0].selection)  # type: ignore[arg-type]
        self._show_verdict(attempts, exact=False)
        if any(a.applied for a in attempts):
            self._redone.clear()
            self._done.append(_Step((attempts[0].applied, attempts[1].applied), Markup()))
        self.panel.set_phase("estimating what each model paid…")
        for c, a in zip(ctrl, attempts):
            c.estimate(a)
        self._show_verdict(attempts, exact=False)
        self.panel.set_phase("scoring every test image, both models…")
        for c, a in zip(ctrl, attempts):
            if a.result is not None:
                c.score(a)
        verdict = self._show_verdict(attempts, exact=True)
        if self._done and any(a.applied for a in attempts):
            self._done[-1] = _Step(self._done[-1].applied, verdict)
        try:
            self.panel.set_phase("attribution of both models…")
            for c, a in zip(ctrl, attempts):
                if a.applied:
                    c.explain()
        finally:  # the error list and the Undo button follow the edits whatever happens
            self._after_change()
        for c, a in zip(ctrl, attempts):
            c.finish(a)
        self.panel.set_phase("")
        return [a.result for a in attempts]

    def undo(self) -> None:
        """Take back the last click's edits, on the side(s) that applied one."""
        self._move(self._done, self._redone, "undo", "nothing to undo: no edit is applied")

    def redo(self) -> None:
        """Apply the last undone click's edits again, on the same side(s)."""
        self._move(self._redone, self._done, "redo", "nothing to redo: no edit was undone since the last edit")

    def _move(self, source: list[_Step], target: list[_Step], action: str, empty: str) -> None:
        """One click's step from ``source`` to ``target``, undoing or redoing it on its side(s)."""
        if not source:
            raise ValueError(empty)
        step = source.pop()
        for s, on in zip(self.sides, step.applied):
            if on:
                getattr(s.controller, action)()
        target.append(step)
        self._after_stack("Undone" if action == "undo" else "Redone")

    def reset(self) -> None:
        """Both models back to their base weights."""
        for s in self.sides:
            s.controller.reset()
        self._done.clear()
        self._redone.clear()
        self._after_stack("Back to the base models")

    def _after_stack(self, what: str) -> None:
        if self.sides[0].controller.selection is not None:
            self.picker.show(self.sides[0].controller.selection)
        n = len(self._done)
        now = (f"{n} edit{'s' if n != 1 else ''} still applied; the last one:" if n else
               "No edit is applied: both models have their base weights.")
        self.verdict.value = markup("<div class='wb-verdict-text'><i>{}.</i> {}</div>{}", what, now,
                                    self._done[-1].verdict if n else "")
        self._after_change()

    def _show_verdict(self, attempts: list[Attempt], *, exact: bool) -> Markup:
        totals = [s.session.history[-1].report.drawdown * 100 if s.session.history and s.session.history[-1].report
                  is not None else 0.0 for s in self.sides]
        self.verdict.value = verdict_html(self.names, attempts, totals if exact else None,
                                          self.sides[0].session.classes, exact=exact)
        return self.verdict.value

    def _after_change(self) -> None:
        left, right = self._side_errors()
        self.browser.set_errors(union_errors(left, right), self.sides[0].session.confusion(),
                                error_notes(left, right, self.names))
        self.panel.set_history_buttons(bool(self._done), bool(self._redone))

    def _guarded(self, action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            self.messages.clear()
            with self.messages.guard(action):
                return fn(*args)
            self.panel.set_phase("")  # never leave "editing both models…" beside an error
            return None
        return run

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)
