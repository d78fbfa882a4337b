"""The controller: every click goes widgets -> controller -> EditSession -> widgets, once.

:class:`Controller` holds the selection (a test image or one of the user's own) and the
target; its public methods are the workbench's actions (select, target, edit, undo, redo,
reset, load / save / export / report, localize, use a group, and the edit's strength:
:class:`~workbench.widgets.strength_actions.StrengthActions`). It calls the session only and
answers through the view's :class:`~workbench.widgets.events.Callbacks`. An Edit click
reports as the numbers arrive: the outcome, the drawdown estimate, the attribution, the exact
reports, the generalization probe; each phase is a method (``apply``, ``estimate``,
``explain``, ``score``, ``probe``, ``finish``), so that :class:`~workbench.widgets.lockstep.Lockstep`
can run each phase on two controllers before the next. Bad input raises ``ValueError`` in
plain words (the view shows it beside the control used); nothing changes then.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from .events import Attempt, Callbacks, Selection, attribution_rows
from .marshal import MainThread
from .report import session_report
from .strength_actions import StrengthActions
from .wording import describe_edit

if TYPE_CHECKING:
    from ..editing import EditorChoice, EditorConfig, EditResult
    from ..session import EditRecord, EditSession

__all__ = ["Controller"]


@dataclass
class Controller(StrengthActions):
    """Selection, target and every action on one :class:`~workbench.session.EditSession`.

    Attributes:
        name: the model's name (the report's title).
        uploads: record uid -> ``(C, H, W) uint8`` image of each applied edit of an uploaded image.
        timings: seconds from the last Edit click to each of its phases (``outcome`` ... ``total``).
        main: hands what background threads report to the main thread (:mod:`~workbench.widgets.marshal`).
        background: compute an applied edit's exact reports in a background pass (the click
            returns after the estimate; the figures arrive through ``callbacks.reports``, and a
            new click cancels the pass). The :class:`~workbench.widgets.workbench.Workbench` turns
            it on where an event loop delivers them (a Jupyter kernel).
    """

    session: EditSession
    callbacks: Callbacks = field(default_factory=Callbacks)
    name: str = "model"
    selection: Selection | None = None
    target: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    uploads: dict[str, torch.Tensor] = field(default_factory=dict)
    main: MainThread = field(default_factory=MainThread)
    background: bool = False
    pending: Any = None  # the background exact pass of the last click (an ExactJob), if any
    _images: torch.Tensor | None = field(default=None, repr=False)

    @property
    def images(self) -> torch.Tensor:
        """``(N, C, H, W) uint8`` display images of the session's split (made once)."""
        if self._images is None:
            self._images = self.session.raw_images()
        return self._images

    # -- selection -----------------------------------------------------------------------
    def select(self, index: int) -> Selection:
        """Select test image ``index`` of the session's split; the target becomes its true label."""
        self.sync()
        sel = Selection.of_index(self.session, index, self.images)
        assert sel.true is not None
        return self._set_selection(sel, sel.true)

    def select_upload(self, data: bytes, name: str) -> Selection:
        """Select an image of the user's own (PNG or JPEG bytes); target: its prediction's runner-up."""
        sel = Selection.of_upload(self.session, data, name)
        return self._set_selection(sel, int(sel.probs.argsort(descending=True)[1]))

    def _set_selection(self, sel: Selection, target: int) -> Selection:
        self.selection, self.target = sel, int(target)
        self.callbacks.selected(sel)
        self.callbacks.target(self.target)
        self._show_localization()
        self.explain()
        return sel

    def set_target(self, target: int) -> None:
        """Use class ``target`` as the edit's target label."""
        c = len(self.session.classes)
        if isinstance(target, bool) or not 0 <= int(target) < c:
            raise ValueError(f"there is no class {target!r}: pick one of 0..{c - 1}")
        self.target = int(target)
        self.callbacks.target(self.target)
        self.explain()

    def _refresh_selection(self) -> None:
        sel = self.selection
        if sel is not None:
            self.selection = dataclasses.replace(sel, probs=self.session.probabilities(sel.x))
            self.callbacks.selected(self.selection)

    # -- the Edit click ------------------------------------------------------------------
    def edit(self, config: EditorConfig | None = None) -> EditResult | None:
        """Edit the selected image towards the target with ``config`` (default: the view's
        settings, else the session's); returns the result (None for a no-op). Runs the phases
        :meth:`apply`, :meth:`estimate`, :meth:`explain`, :meth:`score`, :meth:`probe` in order.

        Raises:
            ValueError: nothing selected, or invalid editor settings (nothing changes).
        """
        attempt = self.apply(config)
        if attempt.applied:
            self.estimate(attempt)
            self.explain()
            self._mark(attempt, "attribution")
            self.score(attempt)
            self.probe(attempt)
        else:  # failed or no-op: the figures of the weights as they are, marked as such
            self.score(attempt)
        return self.finish(attempt)

    def apply(self, config: EditorConfig | None = None) -> Attempt:
        """Phase 1: edit the selection towards the target (no scoring) and report the outcome.

        A selection the model already predicts as the target is a no-op (nothing is pushed).
        Whether the edit was applied is the session's answer (``session.applied_record``).

        Raises:
            ValueError: nothing selected, or invalid editor settings (nothing changes).
        """
        sel, target, cb, s = self.selection, self.target, self.callbacks, self.session
        asked = config or cb.editor_config()  # lr/beta None: the session resolves (and calibrates) them
        cfg = (asked or s.config).resolved()  # validates before anything changes
        if sel is None:
            raise ValueError("pick an image first: click one of the mistakes below, or upload your own")
        if target is None:
            raise ValueError("pick the label the image should have: click one of the class buttons")
        self.sync()
        self.pending = None  # the session cancels the last click's background pass
        t0 = time.perf_counter()
        self.timings = {}
        cb.phase("editing…")
        if sel.pred == target:  # nothing to fix: never push an empty edit
            noop = SimpleNamespace(success=True, steps=0, seconds=0.0, config=cfg, finite=True)
            attempt = Attempt(None, False, describe_edit(noop, s.classes, sel.pred, sel.pred, target), target, t0)
        else:
            result = s.edit(sel.x, target, asked, index=sel.index, score=False)
            record = s.applied_record(result)
            if record is not None:
                self._refresh_selection()
                if sel.index is None:  # the report shows an uploaded image's edit with the image
                    self.uploads[record.uid] = sel.raw
            assert self.selection is not None
            attempt = Attempt(result, record is not None,
                              describe_edit(result, s.classes, sel.pred, self.selection.pred, target), target, t0)
            self.timings["edit"] = result.seconds
        cb.outcome(attempt.outcome, attempt.result)
        self._mark(attempt, "outcome")
        return attempt

    def estimate(self, attempt: Attempt) -> None:
        """Phase 2 (an applied edit only): the drawdown estimate from a stratified sample."""
        if not attempt.applied:
            return
        self.callbacks.phase("estimating the drawdown…")
        attempt.estimate = self.session.estimate_last()
        self.callbacks.estimate(attempt.estimate, self._error_before_last())
        self._mark(attempt, "estimate")

    def score(self, attempt: Attempt) -> None:
        """Phase 3: the exact reports on the whole split (after a failed edit: those of the
        weights as they are, so no panel keeps a figure of an earlier click)."""
        s = self.session
        if attempt.applied and self.background:
            self._score_in_background(attempt)
            return
        if attempt.applied:
            self.callbacks.phase("scoring every test image…")
            attempt.record = s.complete_reports()
            self._reports(attempt.record)
        else:
            self._reports(s.history[-1] if s.history else None)
        self._mark(attempt, "reports")

    def _score_in_background(self, attempt: Attempt) -> None:
        """Phase 3 as a background pass: progress on the phase line, the reports when it is through."""
        cb, token = self.callbacks, object()
        self.pending = token

        def here(fn: Any) -> Any:  # on the main thread, and only while this pass is the last click's
            return lambda *a: self.main.post(lambda: fn(*a) if self.pending is token else None)

        def done(record: Any) -> None:
            attempt.record, self.pending = record, None
            self._reports(record)
            cb.phase("")
            self._mark(attempt, "reports")

        cb.phase("scoring every test image…")
        self.session.exact_async(here(done), here(lambda n, total: cb.phase(
            f"scoring every test image… {n:,} / {total:,}" if n < total else "")))

    def follow_scoring(self) -> None:
        """Show the base scoring's progress (``callbacks.scoring``) until it is through, then the
        errors, confusion and scores of the whole split (``callbacks.reports``)."""
        def arrived(n: int, total: int) -> None:
            self.callbacks.scoring(n, total)
            if n == total:
                self._reports(self.session.history[-1] if self.session.history else None)
        self.session.on_scoring_progress(lambda n, total: self.main.post(lambda: arrived(n, total)))

    def sync(self) -> None:
        """Apply what background passes reported (at each click; without a kernel's event loop,
        a script or a test calls it)."""
        self.main.drain()

    def probe(self, attempt: Attempt) -> None:
        """Phase 4 (an applied edit only): does the edit carry over to augmented views of the image."""
        sel, cb = self.selection, self.callbacks
        if attempt.applied and sel is not None and self.target is not None and cb.probe_views > 0:
            cb.probe(self.session.generalization(sel.x, self.target, n_views=cb.probe_views), sel, self.target)
        self._mark(attempt, "probe")

    def finish(self, attempt: Attempt) -> EditResult | None:
        """End of the click: clear the phase line; ``timings["total"]``; returns the result."""
        self.callbacks.phase("")
        self._mark(attempt, "total")
        return attempt.result

    def _mark(self, attempt: Attempt, name: str) -> None:
        self.timings[name] = time.perf_counter() - attempt.t0

    def _error_before_last(self) -> float:
        prev = self.session.history[-2].report if len(self.session.history) >= 2 else None
        return prev.error_after if prev is not None else self.session.base_error

    def _reports(self, record: EditRecord | None) -> None:
        self.callbacks.reports(record)
        self.refresh_scores()

    def explain(self) -> None:
        """Attribution of the selection (base vs current weights) for the view's options."""
        sel, cb = self.selection, self.callbacks
        opts = cb.attribution_options()
        if sel is None or self.target is None or opts is None:
            return
        rows = attribution_rows(sel, self.target, self.session.classes)
        try:
            aset = self.session.explain(sel.x, list(rows.values()), **opts)
        except Exception as err:  # noqa: BLE001 - a failed map must not undo the click that asked for it
            if cb.attribution_error is None:
                raise
            cb.attribution_error(err)
            return
        cb.attribution(aset, sel, rows)

    def choose_editor(self, **kw: Any) -> EditorChoice:
        """The editor for the method / group the view picked (the session's one resolver)."""
        return self.session.resolve_editor(**kw)

    # -- the edit stack and its files ----------------------------------------------------
    def undo(self) -> EditRecord:
        self.pending = None
        rec = self.session.undo()
        self._after_stack("Undone")
        return rec

    def redo(self) -> EditRecord:
        self.pending = None
        rec = self.session.redo()
        self.session.complete_reports()
        self._after_stack("Redone")
        return rec

    def reset(self) -> None:
        self.pending = None
        self.session.reset()
        self._after_stack("Back to the base model")

    def load_history(self, folder: str | Path) -> None:
        self.session.load_history(folder)
        self.session.complete_reports()
        self._after_stack(f"Loaded the history in {folder}")

    def _after_stack(self, what: str) -> None:
        self._refresh_selection()
        self.callbacks.history(what)
        self._reports(self.session.history[-1] if self.session.history else None)
        self.explain()

    def save(self, folder: str | Path, **kw: Any) -> Any:
        """Save the edit history to ``folder`` (``EditSession.save``)."""
        return self.session.save(folder, **kw)

    def export(self, folder: str | Path, **kw: Any) -> Any:
        """Export the edited model to ``folder`` (``EditSession.export``)."""
        return self.session.export(folder, **kw)

    def report(self, _target: Path | None = None) -> str:
        """The session report (self-contained HTML): base model, every applied edit, plots."""
        return session_report(self.session, self.name, self.images, self.uploads)

    # -- "Where is it stored?" -----------------------------------------------------------
    def localize(self, quick: bool | None = None) -> Any:
        """The critical-neuron search for the selection (``quick``: default the view's setting)."""
        index = self.selection.index if self.selection is not None else None
        if index is None:
            raise ValueError("no image selected: click 'select' under an image first")
        res = self.session.localize(index, quick=self.callbacks.localize_quick() if quick is None else quick)
        self.callbacks.localized(index, res)
        return res

    def use_group(self, group: str | None) -> str:
        """Edit ``group`` from now on (the group holding most removed neurons)."""
        if group is None:
            raise ValueError("no localization shown: click 'Where is it stored?' first")
        groups = self.session.group_names()
        if group not in groups:
            raise ValueError(f"group {group!r} is not one of the model's groups {groups}")
        self.callbacks.group(group)
        return group

    def refresh_scores(self) -> None:
        """After a change of the weights: per-image scores and the selection's cached localization
        (label scores once the base scoring is through)."""
        done, total = self.session.scoring_progress()
        if done == total:
            self._scores("label_quality", lambda: dict(enumerate(self.session.label_quality().tolist())))
            if self.callbacks.mislabeled is not None:  # training dynamics when the folder has them, else self-confidence
                self.callbacks.mislabeled(self.session.label_scores())
        self._show_localization()

    def _scores(self, name: str, values: Any) -> None:
        if self.callbacks.scores is not None:  # only computed for a view that shows them
            self.callbacks.scores(name, values())

    def _show_localization(self) -> None:
        index = self.selection.index if self.selection is not None else None
        res = self.session.cached_localization(index, quick=self.callbacks.localize_quick()) \
            if index is not None else None
        self.callbacks.localized(index, res)
