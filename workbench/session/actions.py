"""The actions that change an :class:`~workbench.session.EditSession`'s weights: edit, undo, redo,
reset. Each cancels the pending background exact pass (``Scoring.exact_async``), holds the
stack's lock while it runs and autosaves when it is done.

One edit: the editor is resolved (``EditorResolver.for_edit``), run (``editing.edit``) and
guarded; an accepted edit is scored and pushed onto the stack, anything else is kept as a
summary in ``attempts``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from ..editing.config import check_overrides, group_as_layers
from ..editing.editor import EditorConfig, EditResult
from ..editing.editor import edit as edit_fn
from ..models import ModelAdapter
from .data import SessionData
from .helpers import as_index, check_edit_inputs
from .history_schema import MAX_ATTEMPTS
from .persistence import Persistence
from .edit_record import EditRecord, target_of
from .scoring import Scoring
from .stack import EditStack

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation.editor_resolver import EditorResolver


class EditActions:
    """Edit, undo, redo and reset on one session's stack.

    Args:
        adapter: the model's adapter (edited in place).
        bundle: the session's data (checks an edit's image shape and labels), or None.
        data: the split (images by index).
        editor: resolves each edit's editor.
        stack, scoring, persistence: the session's parts the actions change, score and save.
    """

    def __init__(self, adapter: ModelAdapter, bundle: DataBundle | None, data: SessionData, editor: EditorResolver,
                 stack: EditStack, scoring: Scoring, persistence: Persistence) -> None:
        self.adapter, self.bundle, self.data, self.editor = adapter, bundle, data, editor
        self.stack, self.scoring, self.persistence = stack, scoring, persistence

    def edit(self, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor, config: EditorConfig | None = None,
             *, index: int | Sequence[int] | None = None, score: bool = True, **overrides: Any) -> EditResult:
        """Edit the current weights so that the model predicts ``y_ref`` for ``x``.

        Args:
            x: ``(C, H, W)`` or a batch ``(N, C, H, W)`` float, normalised (one edit for all N).
            y_ref: the target label, or N labels for a batch (the record's ``target`` is an int
                for a single image, a tuple for a batch).
            config: editor settings (default ``session.config``); ``overrides`` replace fields
                (``group=`` or ``layers=`` for the edit group).
                Unset lr/beta, and overrides that change the method or group, are resolved by
                the session's :class:`~workbench.evaluation.editor_resolver.EditorResolver`
                (learned, else tuned, else calibrated).
            index: the images' indices in the evaluator's split (recorded), if known.
            score: False pushes the record without its reports (the UI shows the outcome
                first, then calls ``complete_reports``); the weights are the same.
        Returns:
            The :class:`EditResult`. An accepted edit (``result.accepted``) is applied and
            pushed (the redo stack is cleared). A failed edit, or one the edit guard flags as
            wrecking the model (``result.wrecked``: NaN/inf or a change larger than the weights,
            see ``editing.guard``), leaves the weights exactly as they were and goes to
            ``attempts`` as a summary (no tensors). An edit whose target the model already
            predicts (0 steps) records nothing. Treat its tensors as read-only: ``before``
            shares storage with the session's state.
        Raises:
            ValueError, TypeError: bad input (the editor's checks, a non-integer index);
                nothing changes.
            SessionBusy: another action is running on this session; nothing changes.
        """
        idx = None if index is None else as_index(index)
        overrides = group_as_layers(overrides)
        check_overrides(config, overrides)
        check_edit_inputs(self.bundle, x, y_ref)
        self.scoring.cancel_exact()  # a new click: the pending exact pass is of weights about to change
        with self.stack.exclusive("an edit"):
            return self._edit(x, y_ref, config, idx, overrides, score)

    def _edit(self, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor, config: EditorConfig | None,
              idx: int | tuple[int, ...] | None, overrides: Mapping[str, Any], score: bool = True) -> EditResult:
        result = edit_fn(self.adapter, x, y_ref, self.editor.for_edit(config, overrides))
        target = target_of(result.y_ref, isinstance(x, torch.Tensor) and x.dim() == 4)
        if result.wrecked:  # the guard flagged it: refused, whatever the constraint says
            result = dataclasses.replace(result, message=f"not applied (the model is unchanged): {result.message}")
        if not result.accepted:
            # kept as a summary (no tensors): 200 failed whole-model attempts used to hold 409 MiB
            self.stack.add_attempt(EditRecord(dataclasses.replace(result, before={}, after={}), idx, target,
                                              timestamp=time.time()), MAX_ATTEMPTS)
            self.persistence.autosave()
            return result
        if result.steps == 0:  # the model already predicts y_ref: nothing changed, nothing to record
            return result
        after = {**self.stack.params_at(), **result.after}
        report, step_report = self.scoring.score(after, self.scoring.preds_now()) if score else (None, None)
        self.stack.push(EditRecord(result, idx, target, report, step_report, time.time()))
        self.persistence.autosave()
        return result

    def edit_index(self, index: int | Sequence[int], y_ref: int | Sequence[int] | torch.Tensor,
                   config: EditorConfig | None = None, *, score: bool = True, **overrides: Any) -> EditResult:
        """Edit image(s) ``index`` of the evaluator's split (a list of indices = batch edit).

        ``index``: an int (numpy and torch integers too) or a sequence of them; a string or
        a float is refused with TypeError. ``score``: see :meth:`edit`.
        """
        idx = as_index(index)
        return self.edit(self.data.image(idx), y_ref, config, index=idx, score=score, **overrides)

    def undo(self) -> EditRecord:
        """Restore the weights from before the last edit, bit for bit; returns its record."""
        self.scoring.cancel_exact()
        with self.stack.exclusive("undo"):
            rec = self.stack.undo()
            self.persistence.autosave()
            return rec

    def redo(self) -> EditRecord:
        """Re-apply the last undone edit; returns its record."""
        self.scoring.cancel_exact()
        with self.stack.exclusive("redo"):
            rec = self.stack.redo()
            self.persistence.autosave()
            return rec

    def reset(self) -> None:
        """Back to the base weights; history and redo stack cleared (attempts kept: they hold
        summaries only, at most :data:`MAX_ATTEMPTS`)."""
        self.scoring.cancel_exact()
        with self.stack.exclusive("reset"):
            self.stack.reset()
            self.persistence.autosave()
