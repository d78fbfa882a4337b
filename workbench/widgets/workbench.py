"""Workbench: one screen around one EditSession, and the opener for a model in memory.

It makes the panels, lays them out (:mod:`workbench.widgets.screen`: a header line, two
columns, tabs, and any panel added with :meth:`Workbench.add_tab`) and fills the controller's
callbacks with the panel updates they stand for.

Every click goes to the one :class:`~workbench.widgets.controller.Controller` (through
:meth:`Workbench._guarded`, which puts an error beside the control used); the controller
calls the session and answers through the callbacks below, each of which updates its own
panel in place. The panels never call the session nor each other.

Open it with :func:`workbench.widgets.show` (a model folder) or :meth:`Workbench.from_model`
(a model and its data).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import ipywidgets as W

from .common import SIZES, MessageArea, css
from .controller import Controller
from .events import Callbacks, Selection, StrengthState
from .screen import build_screen, header_html
from .wording import describe_strength
from .panels.attribution_view import AttributionView
from .panels.edit_panel import EditPanel
from .panels.error_browser import ErrorBrowser
from .panels.history_panel import HistoryPanel
from .panels.localization_panel import LocalizationPanel
from .panels.metrics_panel import MetricsPanel
from .panels.outcome_card import OutcomeCard
from .panels.probe_panel import ProbePanel
from .panels.strength_panel import StrengthPanel
from .panels.target_picker import TargetPicker
from .panels.upload_panel import UploadPanel
from .plots.charts import chart_fonts

if TYPE_CHECKING:
    from ..session import EditRecord, EditSession

__all__ = ["DEFAULT_OUTPUT", "Workbench"]

DEFAULT_OUTPUT = "workbench-output"  # beside the notebook (the kernel's working folder)


class Workbench:
    """Error browser, target picker, outcome card, details, history and localization on one session.

    Args:
        session: an :class:`~workbench.session.EditSession` with an evaluator.
        note: a line shown at start (e.g. a model fallback).
        page_size: thumbnails per page in the error browser.
        attribution_method: the attribution panel's initial method.
        probe_views: augmented views per kind for the generalization probe (0 = off).
        output_dir: where Save / Export / Report write (default ``workbench-output`` in the
            current folder, i.e. beside the notebook).
        presentation: start in presentation mode.

    Example:
        >>> wb = show("assets/models/fashion-editable")   # or Workbench.from_model(model, data)
        >>> wb.controller.select(wb.browser.page_items[0].index); wb.controller.edit()
    """

    def __init__(self, session: EditSession, *, note: str = "", page_size: int = 10,
                 attribution_method: str = "Saliency", probe_views: int = 16, name: str = "",
                 output_dir: str | Path | None = None, presentation: bool = False) -> None:
        self.session = session
        self.name = name or (Path(session.checkpoint).name if session.checkpoint else "model")
        self.startup_seconds = 0.0  # set by widgets.show: seconds to a usable workbench, and its steps
        self.startup_steps: dict[str, float] = {}
        classes = session.classes
        self.controller = c = Controller(session, Callbacks(
            selected=self._on_selected, target=self._on_target, phase=self._on_phase, outcome=self._on_outcome,
            estimate=self._on_estimate, attribution=self._on_attribution, reports=self._on_reports,
            probe=self._on_probe, history=self._on_history, localized=self._on_localized, scores=self._on_scores,
            mislabeled=self._on_mislabeled, scoring=self._on_scoring,
            group=self._on_group, strength=self._on_strength, editor_config=lambda: self.panel.edit_config(),
            attribution_options=lambda: None if self.presentation else self.attribution.options(),  # hidden there
            localize_quick=lambda: bool(self.localization.quick.value),
            attribution_error=lambda err: self.attribution.messages.error(err, "Attribution"),
            probe_views=probe_views), name=self.name)
        c.background = c.main.delivers  # exact figures after the click, where an event loop delivers them
        scored, total = session.scoring_progress()
        self.images = c.images
        self.picker = TargetPicker(classes, on_target=self._guarded("edit", "Choosing the target", c.set_target))
        self.panel = EditPanel(session.group_names(), {
            "edit": self._guarded("edit", "Edit", c.edit), "undo": self._guarded("edit", "Undo", c.undo),
            "redo": self._guarded("edit", "Redo", c.redo), "reset": self._guarded("edit", "Reset", c.reset)},
            config=session.config, choose=c.choose_editor, note=session.editor_choice.note)
        self.messages = self.panel.messages  # the edit's messages: beside the Edit button
        self.card = OutcomeCard()
        self.strength = StrengthPanel(self._guarded("edit", "Edit strength", c.strength.preview),
                                      self._guarded("edit", "Edit strength", c.strength.settle),
                                      self._guarded("edit", "Smallest strength that fixes", c.strength.smallest))
        self.browser_messages = MessageArea("browser")
        open_image = self._guarded("browser", "Opening the image", c.select)
        self.browser = ErrorBrowser(self.images, classes, page_size=page_size, columns=page_size, on_select=open_image,
                                    errors=session.current_errors(partial=True),
                                    confusion=session.confusion(partial=True),
                                    title="Mistakes of the current model: pick one to fix")
        self.upload = UploadPanel(c.select_upload)
        self.metrics = MetricsPanel(self.images, session.labels, classes, on_select=open_image)
        layers = session.cam_layers()
        self.attribution = AttributionView(layers, c.explain, method=attribution_method,
                                           layer=layers[-1] if layers else None)
        self.probe = ProbePanel(classes)
        self.history = HistoryPanel(Path(output_dir) if output_dir is not None else Path.cwd() / DEFAULT_OUTPUT, {
            "save": c.save, "load": c.load_history, "export": c.export, "report": c.report})
        self.localization_messages = MessageArea("localization")
        self.localization = LocalizationPanel(classes, {
            "localize": self._guarded("localization", "Where is it stored?", c.localize),
            "edit_group": self._guarded("localization", "Edit this group", c.use_group)}, session.group_names())
        self.present = css(W.ToggleButton(value=presentation, description="Presentation mode", icon="desktop",
                                          tooltip="for a projector: larger images and fonts, only what a lesson "
                                                  "needs"), "wb-present-toggle")
        self.present.observe(lambda ch: self.set_presentation(bool(ch["new"])), names="value")
        sc = self.screen = build_screen(self, note)
        self.header, self.status, self.glossary, self.legend = sc.header, sc.status, sc.glossary, sc.legend
        self.details, self.mode_tabs, self.tabs = sc.details, sc.mode_tabs, sc.mode_tabs.widget
        self.tools, self.header_row, self.widget, self.root = sc.tools, sc.header_row, sc.root, sc.root
        self._sync_buttons()
        self._show_history_panel()
        c.refresh_scores()
        self.set_presentation(presentation)  # applies SIZES (the one place for every size) either way
        if scored < total:  # the rest is scored in the background: a bar, then the whole list
            self.browser.set_progress(scored, total)
            c.follow_scoring()

    def open_tab(self, title: str) -> None:
        """Open the tab titled ``title`` (either mode's title); ValueError if it is not on screen."""
        self.mode_tabs.open(title)

    @classmethod
    def from_model(cls, model: Any, data: Any, *, classes: Sequence[str] | None = None, limit: int | None = None,
                   device: Any = None, name: str = "", session_kw: dict[str, Any] | None = None,
                   **kw: Any) -> Workbench:
        """Open a workbench on any ``nn.Module`` classifier and its data, in one call (no model folder).

        Args:
            model: e.g. a torchvision model just trained in a notebook (edited in place).
            data: a torch ``Dataset`` of ``(image, label)``, ``(x, y)`` tensors, an ImageFolder
                path or a ``DataBundle`` (see :func:`workbench.data.as_bundle`).
            classes: class names (default: the data set's ``classes``, else ``"0"``, ``"1"`` ...).
            session_kw: go to :class:`~workbench.session.EditSession` (``mean=``, ``std=``, ``config=``,
                ``calibration=`` ...).
            kw: go to :class:`Workbench`.

        A model without tuned step sizes (anything but the project's ResNets) gets a calibrated one
        first (:meth:`EditSession.prepare_editor`), shown in the status line.
        """
        from ..session import EditSession

        session = EditSession(model, data, classes=classes, limit=limit, device=device, **(session_kw or {}))
        session.prepare_editor()  # a model without tuned step sizes is calibrated before the panel shows them
        return cls(session, name=name or type(model).__name__, note=session.editor_note, **kw)

    # -- view --------------------------------------------------------------------------------
    def add_tab(self, title: str, widget: W.Widget) -> None:
        """Add a panel as a tab below the main row (not shown in presentation mode)."""
        self.mode_tabs.add(title, widget)

    def set_presentation(self, on: bool) -> None:
        """Presentation mode: images >= 160 px, text >= 18 px, chart labels enlarged, and only what a
        lesson needs (the image, its labels, Edit, the outcome, the per-class change, the flipped
        images, the mistakes to pick from and "Where is it stored?"); every other panel is hidden."""
        if self.present.value != on:
            self.present.value = on  # calls back here
            return
        (self.root.add_class if on else self.root.remove_class)("wb-present")
        image, thumb, flipped, cell = SIZES[on]
        self.picker.set_image_size(image)
        self.browser.set_thumb_size(thumb)
        self.metrics.set_thumb_size(flipped)
        self.attribution.cell = cell
        hidden = "none" if on else ""
        for w in (self.attribution.controls, self.browser.controls, self.attribution.widget, self.probe.widget,
                  self.picker.chart, self.browser.confusion_box):
            w.layout.display = hidden
        self.legend.layout.display = "" if on else "none"
        for fig in (self.metrics.figure, self.localization.figure):
            chart_fonts(fig, on)
        self.mode_tabs.show(on)
        if self.controller.selection is not None and not on:
            self.controller.explain()  # the maps, redrawn at the normal size

    @property
    def presentation(self) -> bool:
        return bool(self.present.value)

    # -- callbacks from the controller: each updates its own panel ---------------------------
    def _on_selected(self, sel: Selection) -> None:
        self.picker.show(sel)
        self.browser.select(sel.index if sel.index is not None else -1, notify=False)

    def _on_target(self, target: int) -> None:
        self.picker.set_target(target)

    def _on_phase(self, text: str) -> None:
        self.panel.set_phase(text)

    def _on_outcome(self, outcome: Any, result: Any) -> None:
        self.card.show_edit(outcome)
        if result is not None:  # the step size the session resolved (learned, tuned or calibrated)
            self.panel.follow(result.config, self.session.editor_note)

    def _on_estimate(self, est: Any, error_before: float) -> None:
        self.card.show_estimate(est, error_before)

    def _on_attribution(self, aset: Any, sel: Selection, rows: dict[str, int]) -> None:
        self.attribution.show(aset, sel, rows, len(self.session.history))

    def _on_reports(self, rec: EditRecord | None) -> None:
        s = self.session
        note = self.card.show_reports(rec, len(s.history), s.base_error)
        self.metrics.show(rec, len(s.history), note)
        if note:  # the probe, too, is of the edit before the failed attempt
            self.probe.mark_earlier(note)
        self.browser.set_errors(s.current_errors(), s.confusion(), base=not s.history)
        self._show_history_panel()
        self._sync_buttons()

    def _on_strength(self, st: StrengthState) -> None:
        s = self.session
        out = describe_strength(st.alpha, st.fixed, s.classes, st.pred, st.target)
        self.card.show_strength(out, st.estimate, st.error_before, st.record, len(s.history), s.base_error)
        self.strength.set_value(st.alpha)

    def _on_probe(self, rep: Any, sel: Selection, target: int) -> None:
        self.probe.show(rep, sel.index, target)

    def _on_history(self, what: str) -> None:
        s = self.session
        self.card.show_history(what, s.current_report(), len(s.history), s.base_error)
        self.probe.clear(f"generalization probe: cleared ({what.lower()})")

    def _on_localized(self, index: int | None, result: Any) -> None:
        self.localization.select(index, result)

    def _on_scores(self, name: str, values: Mapping[int, float]) -> None:
        self.browser.set_scores(name, dict(values))

    def _on_mislabeled(self, scores: Any) -> None:
        self.browser.set_scores("mislabeled", scores.values)
        self.browser.set_mislabel_source(scores.description)

    def _on_group(self, group: str) -> None:
        self.panel.set_group(group)

    def _on_scoring(self, scored: int, total: int) -> None:
        failed = self.session.scoring_failure()
        if failed is not None:  # the list stays as it was scored; every figure of the whole split would raise
            self.browser_messages.error(failed, f"Scoring the base model (stopped at {scored:,} of {total:,} images)")
            return
        self.browser.set_progress(scored, total)
        if scored == total:
            self.header.value = header_html(self.session, self.name)

    # -- helpers -----------------------------------------------------------------------------
    def _guarded(self, where: str, action: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A click's handler: errors go to the message line beside the control used."""
        def run(*args: Any) -> Any:
            area = {"edit": self.panel.messages, "browser": self.browser_messages,
                    "localization": self.localization_messages}[where]
            area.clear()
            with area.guard(action):
                return fn(*args)
            if where == "edit" and action == "Edit":
                self.card.show_hint("The edit did not run: see the message beside the Edit button.")
            self.panel.set_phase("")
            return None
        return run

    def _sync_buttons(self) -> None:
        self.panel.set_history_buttons(self.session.can_undo, self.session.can_redo)
        self.strength.show(self.session.history[-1].strength if self.session.history else None)

    def _show_history_panel(self) -> None:
        s = self.session
        scored, total = s.scoring_progress()
        if scored < total:  # the base accuracy is not known yet
            return
        acc = [1 - s.base_error] + [1 - r.report.error_after for r in s.history if r.report is not None]
        rows = []
        for r in s.history:
            t = r.target if isinstance(r.target, int) else r.target[0]
            dd = f"{r.step_report.drawdown * 100:+.2f} pp" if r.step_report is not None else "…"
            rows.append((f"#{r.index}" if isinstance(r.index, int) else "your image", s.classes[t],
                         str(r.result.steps), dd))
        self.history.show(acc, rows)

    def _repr_mimebundle_(self, **kw: Any) -> Any:
        return self.widget._repr_mimebundle_(**kw)
