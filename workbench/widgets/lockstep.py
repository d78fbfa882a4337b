"""Lockstep: the comparison's controller, two :class:`~workbench.widgets.controller.Controller`
objects (one per model, same images) edited in step.

One Edit click runs each controller phase on both sides before the next phase: both edits
and both outcome cards first, then both estimates (the verdict so far), then both exact
reports (the verdict), then the attributions. Undo / Redo / Reset move both sides by one
*comparison step* (the edits one click applied, on one side or both), so the two models stay
in step after a failed edit. It answers the view through :class:`PairCallbacks`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .events import Attempt, Selection

if TYPE_CHECKING:
    from ..editing import EditorConfig, EditResult
    from .controller import Controller

__all__ = ["Lockstep", "PairCallbacks"]


def _nop(*_a: Any) -> None:
    return None


@dataclass
class PairCallbacks:
    """What the lockstep tells the comparison view.

    ``selected(sel, target)``: the left side's selection and the target; ``target``; ``phase``
    (what runs now, ``""`` when idle); ``verdict(attempts, totals)``: the verdict so far
    (``totals``: each side's drawdown of all applied edits in pp once the figures are exact,
    None before), returns what it shows (kept for Redo); ``taken_back``: the first side's edit
    was taken back because the second side failed; ``stack(what, steps, verdict)``: after Undo /
    Redo / Reset, the comparison steps still applied and the last one's verdict;
    ``changed(can_undo, can_redo)``: the weights changed. ``editor_config``: the view's settings.
    """

    selected: Callable[[Selection, int], None] = _nop
    target: Callable[[int], None] = _nop
    phase: Callable[[str], None] = _nop
    verdict: Callable[[list[Attempt], list[float] | None], Any] = _nop
    taken_back: Callable[[], None] = _nop
    stack: Callable[[str, int, Any], None] = _nop
    changed: Callable[[bool, bool], None] = _nop
    editor_config: Callable[[], EditorConfig | None] = lambda: None


@dataclass(frozen=True)
class _Step:
    """One comparison click on the stack: which sides pushed an edit, and the verdict shown."""

    applied: tuple[bool, bool]
    verdict: Any


class Lockstep:
    """Select, target, edit, undo, redo and reset on two controllers at once.

    Args:
        left, right: the two sides' controllers (sessions on the same images).
        callbacks: the comparison view's :class:`PairCallbacks`.
    """

    def __init__(self, left: Controller, right: Controller, callbacks: PairCallbacks | None = None) -> None:
        self.controllers = (left, right)
        self.callbacks = callbacks or PairCallbacks()
        self.done: list[_Step] = []  # comparison steps applied (Undo takes back the last one)
        self.redone: list[_Step] = []  # steps undone (Redo applies the last one again)

    def select(self, index: int) -> None:
        """Select test image ``index`` on both sides (a bad index raises on the first side)."""
        for c in self.controllers:
            c.select(int(index))
        self._show_selection()

    def set_target(self, target: int) -> None:
        for c in self.controllers:
            c.set_target(int(target))
        self.callbacks.target(int(target))

    def edit(self, config: EditorConfig | None = None) -> list[EditResult | None]:
        """Edit the picked image on both sides with ``config`` (default: the view's settings);
        returns both results (None for a no-op). If the second side raises, the first side's
        edit is taken back, so the sides never drift apart."""
        cb, (left, right) = self.callbacks, self.controllers
        cfg = (config or cb.editor_config() or left.session.config).resolved()  # validates before anything changes
        cb.phase("editing both models…")
        attempts = [left.apply(cfg)]
        try:
            attempts.append(right.apply(cfg))
        except Exception:
            if attempts[0].applied:
                left.undo()
                self.redone.clear()  # its redo stack now holds that edit on top: nothing to redo
                self._changed()
            cb.taken_back()
            raise
        self._show_selection()
        cb.verdict(attempts, None)
        applied = any(a.applied for a in attempts)
        if applied:
            self.redone.clear()
            self.done.append(_Step((attempts[0].applied, attempts[1].applied), None))
        cb.phase("estimating what each model paid…")
        for c, a in zip(self.controllers, attempts):
            c.estimate(a)
        cb.verdict(attempts, None)
        cb.phase("scoring every test image, both models…")
        for c, a in zip(self.controllers, attempts):
            if a.result is not None:
                c.score(a)
        verdict = cb.verdict(attempts, self._totals())
        if applied:
            self.done[-1] = _Step(self.done[-1].applied, verdict)
        try:
            cb.phase("attribution of both models…")
            for c, a in zip(self.controllers, attempts):
                if a.applied:
                    c.explain()
        finally:  # the error list and the Undo button follow the edits whatever happens
            self._changed()
        for c, a in zip(self.controllers, attempts):
            c.finish(a)
        cb.phase("")
        return [a.result for a in attempts]

    def undo(self) -> None:
        """Take back the last click's edits, on the side(s) that applied one."""
        self._move(self.done, self.redone, "undo", "nothing to undo: no edit is applied")

    def redo(self) -> None:
        """Apply the last undone click's edits again, on the same side(s)."""
        self._move(self.redone, self.done, "redo", "nothing to redo: no edit was undone since the last edit")

    def reset(self) -> None:
        """Both models back to their base weights."""
        for c in self.controllers:
            c.reset()
        self.done.clear()
        self.redone.clear()
        self._after_stack("Back to the base models")

    def _move(self, source: list[_Step], target: list[_Step], action: str, empty: str) -> None:
        """One click's step from ``source`` to ``target``, undoing or redoing it on its side(s)."""
        if not source:
            raise ValueError(empty)
        step = source.pop()
        for c, on in zip(self.controllers, step.applied):
            if on:
                getattr(c, action)()
        target.append(step)
        self._after_stack("Undone" if action == "undo" else "Redone")

    def _after_stack(self, what: str) -> None:
        self._show_selection()
        self.callbacks.stack(what, len(self.done), self.done[-1].verdict if self.done else None)
        self._changed()

    def _show_selection(self) -> None:
        left = self.controllers[0]
        if left.selection is not None and left.target is not None:
            self.callbacks.selected(left.selection, left.target)

    def _totals(self) -> list[float]:
        """Each side's drawdown of all applied edits so far, in pp."""
        return [c.session.history[-1].report.drawdown * 100 if c.session.history and
                c.session.history[-1].report is not None else 0.0 for c in self.controllers]

    def _changed(self) -> None:
        self.callbacks.changed(bool(self.done), bool(self.redone))
