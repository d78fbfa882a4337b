"""The exact reports of the applied edits, computed in a background thread: :class:`ExactJob`.

A click answers in three stages: the outcome at once (``session.edit(..., score=False)``), the
stratified estimate (``session.estimate_last()``), then the exact figures on the whole split.
:meth:`Scoring.exact_async <workbench.session.scoring.Scoring.exact_async>` starts the third
as an :class:`ExactJob`, a Future-like handle: ``done()``, ``result(timeout)``, ``cancel()``,
the progress of its pass (``progress``, and a callback per batch).

What holds: the job scores a copy of the history taken when it starts and fills every record
at once, at its end, only when the weights are still the ones it scored; a new edit, undo,
redo, reset or load cancels it first (``Scoring.cancel_exact``), and a cancelled job changes
nothing: no record is half filled, no logits are kept, no prefix cache is half filled.
"""
from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..evaluation import Evaluator
    from .edit_record import EditRecord
    from .stack import EditStack

__all__ = ["ExactJob"]


class ExactJob:
    """One background pass filling the exact reports of the records scored with ``score=False``.

    Args:
        evaluator, stack: the session's.
        callback: called with the last applied record (its reports in) when the job completes;
            never after a cancel. It runs in the job's thread.
        progress: called as ``progress(scored, total)`` after each batch of each pass.

    Attributes:
        progress_so_far: ``(scored, total)`` of the pass running now.
    """

    def __init__(self, evaluator: Evaluator, stack: EditStack, callback: Callable[[EditRecord], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.evaluator, self.stack, self.callback, self.on_progress = evaluator, stack, callback, progress
        self.progress_so_far = (0, len(evaluator))
        self._cancel, self._done = threading.Event(), threading.Event()
        self._install = threading.Lock()  # the records are filled under it; cancel() takes it too
        self._record: EditRecord | None = None
        self._error: BaseException | None = None
        self._history = list(stack.history)  # the state scored
        self._tag = stack.weights_tag()
        self.thread = threading.Thread(target=self._run, name="workbench-exact", daemon=True)
        self.thread.start()

    # -- the Future-like handle --------------------------------------------------------------
    def cancel(self, wait: bool = True) -> bool:
        """Stop the pass (within one batch); nothing it computed is kept. Returns False when it
        had already completed (its reports are in). ``wait``: also wait for its thread to end."""
        with self._install:
            if self._done.is_set() and not self._cancel.is_set():
                return False
            self._cancel.set()
        if wait and self.thread is not threading.current_thread():
            self.thread.join()
        return True

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def done(self) -> bool:
        """True once the reports are in, the job failed, or it was cancelled and has stopped."""
        return self._done.is_set() or (self._cancel.is_set() and not self.thread.is_alive())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the job's thread to end; False when ``timeout`` seconds passed first."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def result(self, timeout: float | None = None) -> EditRecord | None:
        """The last applied record with its exact reports (None without history).

        Raises:
            TimeoutError: not done within ``timeout`` seconds.
            concurrent.futures.CancelledError: the job was cancelled.
            Exception: what the pass raised.
        """
        if not self.wait(timeout):
            raise TimeoutError(f"the exact pass is not done after {timeout} s ({self.progress_so_far[0]} of "
                               f"{self.progress_so_far[1]} images scored)")
        if self._cancel.is_set():
            raise CancelledError("the exact pass was cancelled (a new click changed the weights)")
        if self._error is not None:
            raise self._error
        return self._record

    # -- the pass -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            new = self._score()
            with self._install:
                if new is None or self._cancel.is_set() or self.stack.weights_tag() != self._tag:
                    self._cancel.set()
                    return
                history = self.stack.history
                for k, rec in new.items():
                    if history[k].uid == rec.uid:
                        history[k] = rec
                self._record = history[-1] if history else None
                self._done.set()
        except BaseException as err:  # noqa: BLE001 - handed to result()
            with self._install:
                self._error = err
                self._done.set()
            return
        if self.callback is not None and self._record is not None:
            self.callback(self._record)

    def _score(self) -> dict[int, EditRecord] | None:
        """The filled records by position (None: cancelled)."""
        ev, history, out = self.evaluator, self._history, {}
        preds = ev.base_preds
        for k, rec in enumerate(history):
            if rec.report is None:
                params = self.stack.params_of(history, k + 1)
                passes = ev.score_pass(params)
                for scored, total in passes:
                    self.progress_so_far = (scored, total)
                    if self.on_progress is not None:
                        self.on_progress(scored, total)
                    if self._cancel.is_set():
                        passes.close()  # nothing kept: no memo, no half-filled prefix cache
                        return None
                rec = out[k] = dataclasses.replace(rec, report=ev.score(params),  # the pass's logits: no forward
                                                   step_report=ev.score(params, reference_preds=preds))
            preds = rec.report.preds_after  # type: ignore[union-attr]
        return out
