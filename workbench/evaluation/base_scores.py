"""The base model's scores on a split, filled chunk by chunk, and the wait for them.

The evaluator scores its base model in one pass over the split (:meth:`Evaluator.base_pass
<workbench.evaluation.Evaluator.base_pass>`). :class:`BaseScores` holds what that pass has
produced so far: the logits of the first ``scored`` images, and, once the pass completed, every
per-image record (logits, predictions, margins, label quality). Reading a record waits for
the pass; the scored part can be read at any time (:meth:`BaseScores.partial_logits`).

A pass runs in one thread at a time. A reader in that same thread cannot wait for it (the
pass would never go on): it gets a RuntimeError that says to read the scored part instead.
"""
from __future__ import annotations

import threading
from typing import Callable, ContextManager, Generator, Iterator, TypeVar

import torch

from ..models.graph import TRACE_LOCK

from .budget import release_heap
from .score_cache import score_records

__all__ = ["BaseScores", "ScoringStopped", "fill", "locked"]

T = TypeVar("T")


class ScoringStopped(RuntimeError):
    """The base scoring was stopped before it finished (the session was closed)."""


class BaseScores:
    """Base scores of ``total`` images and ``num_classes`` classes (see the module docstring).

    Attributes:
        scored: images scored so far (the first ``scored`` of the split).
        total: images in the split.
        from_cache: the records were read from the score cache (no forward pass).
    """

    def __init__(self, total: int, num_classes: int) -> None:
        self.total, self.scored = total, 0
        self._logits = torch.empty(total, num_classes, dtype=torch.float32)
        self._records: dict[str, torch.Tensor] | None = None
        self._device_logits: torch.Tensor | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None
        self.runner: int | None = None  # the thread running the pass now
        self.from_cache = False

    # -- written by the pass ---------------------------------------------------------------
    def add(self, i: int, j: int, logits: torch.Tensor) -> None:
        """The base logits ``(j - i, C)`` of images ``i:j`` (the next chunk)."""
        if i != self.scored:
            raise RuntimeError(f"base scores arrived for images {i}:{j} after {self.scored}: a bug")
        self._logits[i:j] = logits.float().cpu()
        self.scored = j

    def finish(self, labels: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """Every image scored: build the records, keep the logits on ``device`` too; returns the records."""
        if self.scored != self.total:
            raise RuntimeError(f"only {self.scored} of {self.total} images are scored: a bug")
        return self.install(score_records(self._logits, labels), device)

    def install(self, records: dict[str, torch.Tensor], device: torch.device, *,
                from_cache: bool = False) -> dict[str, torch.Tensor]:
        """Records of the whole split (scored here, or read from the score cache)."""
        self._logits = records["logits"]
        self._device_logits = records["logits"].to(device)
        self._records, self.scored, self.from_cache = records, self.total, from_cache
        self._done.set()
        return records

    def fail(self, error: BaseException) -> None:
        """The pass stopped with ``error``: every waiter raises it."""
        if not self._done.is_set():
            self._error = error
            self._done.set()

    # -- read ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Every image is scored (the records can be read without waiting)."""
        return self._records is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every image is scored; False if ``timeout`` seconds passed first.

        Raises:
            RuntimeError: the pass failed or was stopped (its error, chained), or this is the
                thread running the pass.
        """
        if not self._done.is_set() and self.runner == threading.get_ident():
            raise RuntimeError("the base scores are read from the thread that computes them, before they are all "
                               f"in ({self.scored} of {self.total}); read the scored part "
                               "(session.scoring_progress(), current_errors(partial=True)) in a progress callback")
        if not self._done.wait(timeout):
            return False
        if self._error is not None:
            if isinstance(self._error, ScoringStopped):
                raise self._error
            raise RuntimeError(f"scoring the base model stopped at image {self.scored} of {self.total}: "
                               f"{type(self._error).__name__}: {self._error}") from self._error
        return True

    def record(self, name: str) -> torch.Tensor:
        """``logits``, ``preds``, ``labels``, ``margins`` or ``label_quality`` (waits for the pass)."""
        self.wait()
        assert self._records is not None
        return self._records[name]

    @property
    def device_logits(self) -> torch.Tensor:
        """``(N, C)`` base logits on the evaluator's device (waits for the pass)."""
        self.wait()
        assert self._device_logits is not None
        return self._device_logits

    def partial_logits(self) -> torch.Tensor:
        """``(scored, C)`` base logits of the images scored so far (CPU; do not modify)."""
        return self._logits[:self.scored]

    def first_logits(self, n: int, device: torch.device) -> torch.Tensor:
        """``(n, C)`` base logits of the first ``n`` images on ``device`` (they must be scored)."""
        if self.scored < n:
            raise RuntimeError(f"the first {n} base logits are read before they are scored: a bug")
        return self._logits[:n].to(device)


def locked(batches: Iterator[T], lock: ContextManager[object], scores: BaseScores,
           compute: Callable[[], ContextManager[object]] = torch.inference_mode) -> Iterator[T]:
    """``batches``, each computed under ``lock``, :data:`~workbench.models.graph.TRACE_LOCK` and
    ``compute()`` (``torch.inference_mode``, or :func:`workbench.batching.scoring` of a precision)
    (a pass that may run beside other threads; nothing is held between batches, so the caller's
    code between them runs free). While ``scores`` are incomplete, the thread computing them is
    recorded (:meth:`BaseScores.wait` refuses to wait in it)."""
    while True:
        scores.runner = threading.get_ident() if not scores.ready else None
        with TRACE_LOCK, lock, compute():
            try:
                item = next(batches)
            except StopIteration:
                return
        yield item


def fill(scores: BaseScores, batches: Iterator[tuple[int, int, torch.Tensor]], labels: torch.Tensor,
         device: torch.device, *, first: Callable[[], object], keep: Callable[[dict[str, torch.Tensor]], object] | None,
         progress: Callable[[int, int], None] | None) -> Generator[tuple[int, int], None, None]:
    """The base pass: ``scores`` filled from ``batches`` (``(i, j, logits of images i:j)`` in order),
    yielding ``(scored, total)`` after each.

    ``first()`` (the fast-path check) runs once the first chunk is yielded, before the second is
    computed (at once when one chunk is the whole split): a first page of mistakes does not wait
    for it (about three forwards of a few images, seconds for a ViT-B on a CPU), and the records
    are never complete or kept unchecked. ``keep(records)`` runs once every image is in (the score
    cache), ``progress(scored, total)`` after each chunk. Closing it early stops the scoring
    (readers get :class:`ScoringStopped`); an error in it reaches every reader, and nothing is kept.
    """
    n = scores.total
    try:
        for i, j, logits in batches:
            scores.add(i, j, logits)
            if j == n:
                if i == 0:  # one chunk is the whole split: checked before the records are complete
                    first()
                records = scores.finish(labels, device)
                if keep is not None:
                    keep(records)
            if progress is not None:
                progress(j, n)
            yield j, n
            if j == n:  # after the last report
                release_heap()  # the pass's freed batches go back to the OS (see release_heap)
            if i == 0 and j < n:  # the first chunk is out: checked before the second is computed
                first()
    except GeneratorExit:
        scores.fail(ScoringStopped(f"the base scoring was stopped at {scores.scored} of {n} images "
                                   "(the session was closed); open the session again"))
        raise
    except BaseException as err:
        scores.fail(err)
        raise
