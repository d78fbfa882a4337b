"""The edit stack of an :class:`~workbench.session.EditSession`: the base weights, the applied
edits (history), the undone ones (redo), the failed attempts, and the lock that makes each
state change exclusive."""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Iterator, Sequence

import torch
import torch.nn as nn

from .history_io import state_hash
from .edit_record import EditRecord

if TYPE_CHECKING:
    from ..editing.editor import EditResult
    from ..evaluation import EditReport


class SessionBusy(RuntimeError):
    """Another action (an edit, undo, redo, reset, save or load) is running on this session."""


class EditStack:
    """Base weights and a stack of applied edits over ``model`` (changed in place).

    Args:
        model: the model holding the *base* weights now; :meth:`push`, :meth:`undo`,
            :meth:`redo` and :meth:`reset` move its weights, bit for bit.

    Attributes:
        history: applied edits, oldest first. undone: undone edits, the next one to redo last.
        attempts: failed or refused edits, as summaries without tensors (bounded by the caller).
        base: the base weights and buffers (read only; :attr:`base_state` gives a copy).
        base_hash: sha256 of the base state.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.base: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.base_hash = state_hash(self.base)
        self.history: list[EditRecord] = []
        self.undone: list[EditRecord] = []
        self.attempts: list[EditRecord] = []
        self._lock = threading.Lock()
        self._busy_with = ""

    # -- reading ---------------------------------------------------------------------------
    @property
    def base_state(self) -> dict[str, torch.Tensor]:
        """The base weights and buffers (a copy, on the model's device)."""
        return {k: v.clone() for k, v in self.base.items()}

    def edited_names(self) -> list[str]:
        """Names of every parameter changed by an applied edit (order of first edit)."""
        names: list[str] = []
        for rec in self.history:
            names += [n for n in rec.result.after if n not in names]
        return names

    def params_at(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """The edited parameters after ``step`` applied edits (0 = base; default: now).

        Returns name -> tensor for :meth:`edited_names` (pass it to ``Evaluator.score`` or
        to attribution as ``params``).
        """
        n = len(self.history) if step is None else step
        if not 0 <= n <= len(self.history):
            raise ValueError(f"step must be in 0..{len(self.history)}, got {step}")
        return self.params_of(self.history, n)

    def params_of(self, records: Sequence[EditRecord], step: int) -> dict[str, torch.Tensor]:
        """:meth:`params_at` of a history ``records`` (e.g. a copy taken by a background pass)."""
        names = list(dict.fromkeys(n for rec in records for n in rec.result.after))
        out = {k: self.base[k] for k in names}
        for rec in records[:step]:
            out.update(rec.result.after)
        return out

    def current_report(self) -> EditReport | None:
        """Cumulative report of the current weights against the base (None before any edit
        or when the last edit was not scored)."""
        return self.history[-1].report if self.history else None

    def applied_record(self, result: EditResult) -> EditRecord | None:
        """The record of ``result`` when it is the last applied edit (accepted, it changed the
        weights and was pushed), else None (failed, refused, a no-op, or no longer on top)."""
        return self.history[-1] if self.history and self.history[-1].result is result else None

    def weights_tag(self) -> tuple[str, ...]:
        """Identifies the current weights: the uids of the applied edits (``()`` = base), each
        with its strength when that is not 1 (``"<uid>@0.5"``)."""
        return tuple(rec.uid if rec.strength == 1.0 else f"{rec.uid}@{rec.strength!r}" for rec in self.history)

    # -- changing (call these inside :meth:`exclusive`) -----------------------------------
    def push(self, record: EditRecord) -> None:
        """Apply an accepted edit's result to the model and push its record; clears redo."""
        current = self.params_at()
        for n, v in record.result.before.items():  # share bit-identical tensors: halves the memory per edit
            same = current.get(n, self.base.get(n))
            if same is not None and torch.equal(v, same):
                record.result.before[n] = same
        record.result.apply(self.model)
        self.history.append(record)
        self.undone.clear()

    def add_attempt(self, record: EditRecord, keep: int) -> None:
        """Record a failed or refused edit (a summary without tensors); keeps the newest ``keep``."""
        self.attempts.append(record)
        del self.attempts[:-keep]

    def replace_top(self, record: EditRecord) -> None:
        """Swap the last applied edit for ``record`` (the same edit at another strength: the same
        ``before``) and write its weights, bit for bit; clears redo (the undone edits started
        from the weights being replaced)."""
        if not self.history:
            raise ValueError("no edit is applied yet: make an edit first")
        self.history[-1].result.revert(self.model)  # checks the model holds the top's weights
        record.result.apply(self.model)
        self.history[-1] = record
        self.undone.clear()

    def undo(self) -> EditRecord:
        """Restore the weights from before the last edit, bit for bit; returns its record."""
        if not self.history:
            raise ValueError("nothing to undo: no edit is applied")
        rec = self.history[-1]
        rec.result.revert(self.model)
        self.undone.append(self.history.pop())
        return rec

    def redo(self) -> EditRecord:
        """Re-apply the last undone edit; returns its record."""
        if not self.undone:
            raise ValueError("nothing to redo: no edit was undone since the last edit")
        rec = self.undone[-1]
        rec.result.apply(self.model)
        self.history.append(self.undone.pop())
        return rec

    def reset(self) -> None:
        """Back to the base weights; history and redo cleared (attempts kept)."""
        self.model.load_state_dict(self.base)
        self.history.clear()
        self.undone.clear()

    # -- the lock --------------------------------------------------------------------------
    @contextlib.contextmanager
    def exclusive(self, action: str) -> Iterator[None]:
        """Hold the lock for one state change; a concurrent call (a second click while an edit
        runs, another thread) gets :class:`SessionBusy` and changes nothing."""
        if not self._lock.acquire(blocking=False):
            raise SessionBusy(f"the session is busy with {self._busy_with}; wait for it to finish, then try again")
        self._busy_with = action
        try:
            yield
        finally:
            self._busy_with = ""
            self._lock.release()

    @property
    def busy(self) -> bool:
        """True while an edit, undo, redo, reset, save, load or scoring pass runs."""
        return self._lock.locked()
