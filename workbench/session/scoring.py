"""Scores of an :class:`~workbench.session.EditSession`'s weights on its split: the exact reports
of each edit (at once, or in a background pass: :meth:`Scoring.exact_async`), the current
model's errors and confusion, and a quick drawdown estimate of the last edit. Everything here
reads the session's :class:`~workbench.evaluation.Evaluator`; what needs every base score
waits for the base pass (:mod:`workbench.session.background`), except the ``partial=True``
answers, which are on the images scored so far."""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Mapping

import torch

from .data import require_evaluator
from .exact import ExactJob
from .stack import EditStack

if TYPE_CHECKING:
    from ..evaluation import EditReport, Evaluator, Misclassified
    from ..evaluation.estimate import DrawdownEstimate, StratifiedSample
    from .edit_record import EditRecord

ERRORS_KEPT = 16  # states whose error lists current_errors keeps


class Scoring:
    """Reports, errors, confusion and estimates of the stack's weights.

    Args:
        evaluator: bound to the base weights and the split, or None (then every report is None
            and the accessors raise ValueError naming the fix).
        stack: the session's edit stack (the weights to score, the records to complete).
    """

    def __init__(self, evaluator: Evaluator | None, stack: EditStack) -> None:
        self.evaluator, self.stack = evaluator, stack
        self._errors_by_state: dict[tuple[object, ...], list[Misclassified]] = {}
        self._sample: tuple[int, StratifiedSample] | None = None
        self.pending: ExactJob | None = None  # the exact pass running in the background, if any

    @property
    def base_error(self) -> float:
        """Test error of the base model on the split, in [0, 1]."""
        return float(require_evaluator(self.evaluator).base_error)

    @property
    def base_preds(self) -> torch.Tensor:
        """``(N,) int64`` predictions of the base model."""
        return require_evaluator(self.evaluator).base_preds

    @property
    def scoring_note(self) -> str:
        """A plain-words note when every score needs a full forward (an untraceable model:
        edits are scored more slowly), else ``""``."""
        ev = self.evaluator
        return ev.fast_path if ev is not None and ev.fast_path.startswith("full forward") else ""

    # -- the exact reports -------------------------------------------------------------------
    def score(self, params: Mapping[str, torch.Tensor], prev_preds: torch.Tensor | None
              ) -> tuple[EditReport | None, EditReport | None]:
        """``(against the base, against prev_preds)`` reports of weights ``params`` (None, None
        without an evaluator)."""
        ev = self.evaluator
        if ev is None:
            return None, None
        return ev.score(params), ev.score(params, reference_preds=prev_preds)

    def preds_now(self) -> torch.Tensor | None:
        """``(N,) int64`` predictions of the current weights (None without an evaluator): the
        reference of the next edit's step report."""
        ev = self.evaluator
        if ev is None:
            return None
        if not self.stack.history:
            return ev.base_preds
        last = self.stack.history[-1].report
        return last.preds_after if last is not None else ev.score(self.stack.params_at()).preds_after

    def current_preds(self) -> torch.Tensor:
        """``(N,) int64`` predictions of the current weights (the last report's, else scored)."""
        ev = require_evaluator(self.evaluator)
        history = self.stack.history
        if not history:
            return ev.base_preds
        rep = history[-1].report
        return rep.preds_after if rep is not None else ev.preds_for(self.stack.params_at())

    def exact_async(self, callback: Callable[[EditRecord], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ExactJob | None:
        """Start the exact reports of the edits made with ``score=False`` in a background thread.

        Returns the :class:`~workbench.session.exact.ExactJob` (``result()``, ``cancel()``,
        ``done()``), or None without an evaluator or history. ``callback(record)`` gets the last
        record with its reports when the job completes (never after a cancel); ``progress(scored,
        total)`` follows each batch. Both run in the job's thread. A new edit, undo, redo, reset
        or load cancels the job, and a cancelled job changes nothing.
        """
        if self.evaluator is None or not self.stack.history:
            return None
        self.cancel_exact()
        self.pending = ExactJob(self.evaluator, self.stack, callback, progress)
        return self.pending

    def cancel_exact(self) -> None:
        """Cancel the pending exact pass, if any, and wait for it to stop (within one batch)."""
        job, self.pending = self.pending, None
        if job is not None:
            job.cancel()

    def complete_reports(self) -> EditRecord | None:
        """Score every applied edit that was made with ``score=False`` (exact reports on the
        whole split); returns the last record (None without history or evaluator). A pending
        background pass (:meth:`exact_async`) is waited for, not repeated."""
        ev, history = self.evaluator, self.stack.history
        if ev is None or not history:
            return None
        if self.pending is not None:
            self.pending.wait()
        preds = ev.base_preds
        with self.stack.exclusive("scoring the edits"):
            for k, rec in enumerate(history):
                if rec.report is None:
                    params = self.stack.params_at(k + 1)
                    report = ev.score(params)
                    step = ev.score(params, reference_preds=preds)
                    history[k] = rec = dataclasses.replace(rec, report=report, step_report=step)
                preds = rec.report.preds_after  # type: ignore[union-attr]
        return history[-1]

    # -- the current model's mistakes --------------------------------------------------------
    def current_errors(self, partial: bool = False) -> list[Misclassified]:
        """The current model's misclassified examples (confidence and margin from its logits).

        Kept per state (the uids of the applied edits; the last few states), so that Undo,
        Redo and a second view of the same session do not score the whole split again.
        ``partial``: while the base model is still being scored (no edit applied yet), the
        mistakes among the images scored so far (``session.scoring_progress()`` says how many),
        instead of waiting for the rest."""
        ev = require_evaluator(self.evaluator)
        if not self.stack.history:
            if partial and not ev.base.ready:
                from ..evaluation.reports import errors_from_logits

                logits = ev.base.partial_logits()
                return errors_from_logits(logits, ev.labels[:len(logits)])
            return list(ev.misclassified())
        from ..evaluation.reports import errors_from_logits

        key = (id(ev), *self.stack.weights_tag())
        cache = self._errors_by_state
        if key not in cache:
            cache[key] = errors_from_logits(ev.logits_for(self.stack.params_at()), ev.labels)
            for old in list(cache)[:-ERRORS_KEPT]:
                del cache[old]
        return list(cache[key])

    def confusion(self, partial: bool = False) -> torch.Tensor:
        """``(C, C) int64`` confusion counts of the current weights (row = true class).
        ``partial``: as :meth:`current_errors`, counts of the images scored so far."""
        ev = require_evaluator(self.evaluator)
        if partial and not self.stack.history and not ev.base.ready:
            from ..evaluation.reports import confusion_matrix

            preds = ev.base.partial_logits().argmax(1)
            return confusion_matrix(ev.labels[:len(preds)], preds, ev.num_classes)
        return ev.confusion(self.current_preds())

    # -- the quick estimate of the last edit -------------------------------------------------
    def estimate_sample(self, n: int | None = None) -> StratifiedSample:
        """The fixed stratified sample used by :meth:`estimate_last` (drawn once, seed 0)."""
        from ..evaluation.estimate import DEFAULT_SAMPLE, stratified_sample

        ev = require_evaluator(self.evaluator)
        key = n or DEFAULT_SAMPLE
        if self._sample is None or self._sample[0] != key:
            self._sample = (key, stratified_sample(ev.labels, ev.base_preds != ev.labels, key))
        return self._sample[1]

    def estimate_last(self, n: int | None = None) -> DrawdownEstimate:
        """Estimated drawdown of the last applied edit alone (its weights against the ones
        before it), with a 95% interval, from a stratified sample (about 10x faster than
        the exact report; see :mod:`workbench.evaluation.estimate`)."""
        from ..evaluation.estimate import estimate_drawdown

        history = self.stack.history
        if not history:
            raise ValueError("no edit is applied yet: make an edit first")
        ev = require_evaluator(self.evaluator)
        k = len(history)
        prev = history[k - 2].report if k > 1 else None
        reference = ev.base_preds if k == 1 else (prev.preds_after if prev is not None
                                                  else ev.preds_for(self.stack.params_at(k - 1)))
        return estimate_drawdown(ev, self.stack.params_at(), self.estimate_sample(n), reference)
