"""The workbench's controller: one click goes widgets -> EditSession -> widgets, once.

:class:`Controller` holds the selection (an image of the split or one of the user's own),
the target and the edit stack actions. It calls the session only, and reports back through
explicit callbacks (:class:`Callbacks`), in the order the numbers arrive:

1. ``outcome``: the edit's result in plain words (success, new prediction, steps);
2. ``estimate``: a drawdown estimate from a stratified sample, with its 95% interval;
3. ``attribution``: maps of the selected image, base vs current weights;
4. ``reports``: the exact reports on the whole split (metrics, flipped images, errors);
5. ``probe``: does the edit carry over to augmented views of the image.

Each callback updates its own panels in place, so the front end receives the card within
the editor's time and the rest as it comes. The image of a selection is fetched once.
:meth:`Controller.edit` runs the phases in this order; each phase is also a method of its
own (``apply``, ``estimate``, ``explain``, ``score``, ``probe``, ``finish``), so that a view
driving two controllers (the comparison) can show both outcomes before either side does
its slower work.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable

import torch

from .outcome import Outcome, describe_edit

if TYPE_CHECKING:
    from ..editing import EditorConfig, EditResult
    from ..evaluation.estimate import DrawdownEstimate
    from ..session import EditRecord, EditSession

__all__ = ["Attempt", "Callbacks", "Controller", "Selection"]


@dataclass(frozen=True, eq=False)
class Selection:
    """The image being edited.

    Attributes:
        index: position in the session's split, or None for an uploaded image.
        raw: ``(C, H, W) uint8`` for display; x: ``(C, H, W)`` normalised model input.
        true: the true label (None when unknown: an uploaded image).
        base_pred: the base model's prediction; probs: ``(C,)`` of the current weights.
        name: what to call it (``#123`` or the file name).
    """

    index: int | None
    raw: torch.Tensor
    x: torch.Tensor
    true: int | None
    base_pred: int
    probs: torch.Tensor
    name: str

    @property
    def pred(self) -> int:
        return int(self.probs.argmax())


@dataclass(eq=False)
class Attempt:
    """One click's edit, filled in phase by phase (see :meth:`Controller.edit`).

    Attributes:
        result: the editor's result (None: a no-op, the model already predicts the target).
        applied: the edit was accepted and pushed on the session's history.
        outcome: the card's plain words; target: the label asked for; t0: ``perf_counter()`` at the click.
        estimate: the quick drawdown estimate (after :meth:`Controller.estimate`).
        record: the pushed record with its exact reports (after :meth:`Controller.score`).
    """

    result: EditResult | None
    applied: bool
    outcome: Outcome
    target: int
    t0: float
    estimate: DrawdownEstimate | None = None
    record: EditRecord | None = None


def _nop(*_a: Any) -> None:
    return None


@dataclass
class Callbacks:
    """What the controller tells the view; every field is optional."""

    selected: Callable[[Selection], None] = _nop
    target: Callable[[int], None] = _nop
    phase: Callable[[str], None] = _nop
    outcome: Callable[[Outcome, Any], None] = _nop
    estimate: Callable[[Any, float], None] = _nop
    attribution: Callable[[Any, Selection, dict[str, int]], None] = _nop
    reports: Callable[[Any], None] = _nop
    probe: Callable[[Any, Selection, int], None] = _nop
    history: Callable[[str], None] = _nop
    attribution_options: Callable[[], dict[str, Any] | None] = lambda: None
    attribution_error: Callable[[BaseException], None] | None = None  # None: attribution errors raise
    probe_views: int = 16


@dataclass
class Controller:
    """Selection, target and the edit stack of one :class:`~workbench.session.EditSession`.

    Methods raise ``ValueError`` with a plain-words message on bad input (the view shows it
    next to the control that was used); nothing changes then.
    """

    session: EditSession
    callbacks: Callbacks = field(default_factory=Callbacks)
    selection: Selection | None = None
    target: int | None = None
    timings: dict[str, float] = field(default_factory=dict)

    # -- selection -----------------------------------------------------------------------
    def select(self, index: int) -> Selection:
        """Select test image ``index`` of the session's split."""
        s = self.session
        n = len(s.labels)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ValueError(f"there is no test image #{index!r}: pick one of 0..{n - 1}")
        raw = s.raw_images()[index]
        x = s.image(index)
        sel = Selection(index, raw, x, int(s.labels[index]), int(s.base_preds[index]), s.probabilities(x),
                        f"#{index}")
        return self._set_selection(sel, sel.true if sel.true is not None else sel.pred)

    def select_upload(self, data: bytes, name: str) -> Selection:
        """Select an image of the user's own (PNG or JPEG bytes); target: its prediction's runner-up."""
        s = self.session
        raw = s.image_from_bytes(data, name)
        x = s.normalize(raw)
        probs = s.probabilities(x)
        base = int(s.base_probabilities(x).argmax())
        sel = Selection(None, raw, x, None, base, probs, name)
        return self._set_selection(sel, int(probs.argsort(descending=True)[1]))

    def _set_selection(self, sel: Selection, target: int) -> Selection:
        self.selection, self.target = sel, int(target)
        self.callbacks.selected(sel)
        self.callbacks.target(self.target)
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
            self.selection = Selection(sel.index, sel.raw, sel.x, sel.true, sel.base_pred,
                                       self.session.probabilities(sel.x), sel.name)
            self.callbacks.selected(self.selection)

    # -- the click -----------------------------------------------------------------------
    def edit(self, config: EditorConfig | None = None) -> EditResult | None:
        """Edit the selected image towards the target; returns the result (None for a no-op).

        The phases below, in order, each reporting through its callback as soon as its
        numbers are known: :meth:`apply` (outcome), :meth:`estimate`, :meth:`explain`
        (attribution), :meth:`score` (exact reports), :meth:`probe`. A view that drives
        several controllers (the comparison) calls the phases itself, side by side.

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

        Raises:
            ValueError: nothing selected, or invalid editor settings (nothing changes).
        """
        sel, target, cb, s = self.selection, self.target, self.callbacks, self.session
        if sel is None:
            raise ValueError("pick an image first: click one of the mistakes below, or upload your own")
        if target is None:
            raise ValueError("pick the label the image should have: click one of the class buttons")
        cfg = (config or s.config).resolved()
        t0 = time.perf_counter()
        self.timings = {}
        cb.phase("editing…")
        if sel.pred == target:  # nothing to fix: never push an empty edit
            noop = SimpleNamespace(success=True, steps=0, seconds=0.0, config=cfg, finite=True)
            attempt = Attempt(None, False, describe_edit(noop, s.classes, sel.pred, sel.pred, target), target, t0)
        else:
            result = s.edit(sel.x, target, cfg, index=sel.index, score=False)
            applied = result.success and result.steps > 0 and bool(s.history) and s.history[-1].result is result
            before = sel.pred
            if applied:
                self._refresh_selection()
            assert self.selection is not None
            attempt = Attempt(result, applied, describe_edit(result, s.classes, before, self.selection.pred, target),
                              target, t0)
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
        if attempt.applied:
            self.callbacks.phase("scoring every test image…")
            attempt.record = s.complete_reports()
            self.callbacks.reports(attempt.record)
        else:
            self.callbacks.reports(s.history[-1] if s.history else None)
        self._mark(attempt, "reports")

    def probe(self, attempt: Attempt) -> None:
        """Phase 4 (an applied edit only): does the edit carry over to augmented views of the image."""
        sel, cb = self.selection, self.callbacks
        if attempt.applied and sel is not None and self.target is not None and cb.probe_views > 0:
            rep = self.session.generalization(sel.x, self.target, n_views=cb.probe_views)
            cb.probe(rep, sel, self.target)
        self._mark(attempt, "probe")

    def finish(self, attempt: Attempt) -> EditResult | None:
        """End of the click: clear the phase line; ``timings["total"]``; returns the result."""
        self.callbacks.phase("")
        self._mark(attempt, "total")
        return attempt.result

    def _mark(self, attempt: Attempt, name: str) -> None:
        self.timings[name] = time.perf_counter() - attempt.t0

    def _error_before_last(self) -> float:
        s = self.session
        if len(s.history) < 2:
            return s.base_error
        prev = s.history[-2].report
        return prev.error_after if prev is not None else s.base_error

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

    # -- the edit stack ------------------------------------------------------------------
    def undo(self) -> EditRecord:
        rec = self.session.undo()
        self._after_stack("Undone")
        return rec

    def redo(self) -> EditRecord:
        rec = self.session.redo()
        self.session.complete_reports()
        self._after_stack("Redone")
        return rec

    def reset(self) -> None:
        self.session.reset()
        self._after_stack("Back to the base model")

    def load_history(self, folder: str | Path) -> None:
        self.session.load_history(folder)
        self.session.complete_reports()
        self._after_stack(f"Loaded the history in {folder}")

    def _after_stack(self, what: str) -> None:
        self._refresh_selection()
        self.callbacks.history(what)
        self.callbacks.reports(self.session.history[-1] if self.session.history else None)
        self.explain()


def attribution_rows(sel: Selection, target: int, classes: tuple[str, ...]) -> dict[str, int]:
    """Row title -> class for the attribution grid: at most two *different* labels.

    The base model's prediction and the target first; when they are the same class (e.g.
    an image that an edit broke, targeted back to its label), the current prediction or
    the true label takes the second row, so the two rows never show the same map twice.
    """
    named = [("base prediction", sel.base_pred), ("target", target), ("now predicted", sel.pred),
             ("true label", sel.true)]
    rows: dict[str, int] = {}
    for what, c in named:
        if c is None or c in rows.values():
            continue
        also = [w for w, v in named if v == c and w != what and v is not None]
        title = f"{what}{' = ' + ' = '.join(also) if also else ''}: {classes[c]}"
        rows[title] = int(c)
        if len(rows) == 2:
            break
    return rows
