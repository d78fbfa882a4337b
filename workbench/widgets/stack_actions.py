"""Undo, Redo, Reset and the history's files: a part of the one
:class:`~workbench.widgets.controller.Controller` (``controller.stack``; its actions are also the
controller's own, ``controller.undo()`` ...).

Each change of the stack cancels the last click's background pass, then the view follows: the
selection's probabilities, the history line, the reports of the weights as they are and the
attribution.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import session_report

if TYPE_CHECKING:
    from ..session import EditRecord
    from .controller_core import ControllerCore

__all__ = ["StackActions"]


class StackActions:
    """The edit stack and its files, on the ``controller`` that composes this part."""

    def __init__(self, controller: ControllerCore) -> None:
        self.controller = controller

    def undo(self) -> EditRecord:
        """Take the last applied edit back (``EditSession.undo``)."""
        self.controller.pending = None
        rec = self.controller.session.undo()
        self._after("Undone")
        return rec

    def redo(self) -> EditRecord:
        """Apply the last undone edit again, with its exact reports (``EditSession.redo``)."""
        self.controller.pending = None
        rec = self.controller.session.redo()
        self.controller.session.complete_reports()
        self._after("Redone")
        return rec

    def reset(self) -> None:
        """Back to the base model (``EditSession.reset``)."""
        self.controller.pending = None
        self.controller.session.reset()
        self._after("Back to the base model")

    def load_history(self, folder: str | Path) -> None:
        """Replay the edit history saved in ``folder`` (``EditSession.load_history``)."""
        self.controller.session.load_history(folder)
        self.controller.session.complete_reports()
        self._after(f"Loaded the history in {folder}")

    def _after(self, what: str) -> None:
        c = self.controller
        c.refresh_selection()
        c.callbacks.history(what)
        c.show_reports(c.session.history[-1] if c.session.history else None)
        c.explain()

    def save(self, folder: str | Path, **kw: Any) -> Any:
        """Save the edit history to ``folder`` (``EditSession.save``)."""
        return self.controller.session.save(folder, **kw)

    def export(self, folder: str | Path, **kw: Any) -> Any:
        """Export the edited model to ``folder`` (``EditSession.export``)."""
        return self.controller.session.export(folder, **kw)

    def report(self, _target: Path | None = None) -> str:
        """The session report (self-contained HTML): base model, every applied edit, plots."""
        c = self.controller
        return session_report(c.session, c.name, c.images, c.uploads)
