"""Progressive open: the base model's first chunk is scored at once, the rest in a background thread.

:class:`BaseScoring` runs the evaluator's base pass (:meth:`~workbench.evaluation.Evaluator.base_pass`).
It scores ``first_chunk`` images (whole batches; the first page of mistakes), or as many as
``first_wait`` seconds allow (at least one batch), before the session is returned, then, when at
least ``first_chunk`` more remain, the rest in a daemon thread; fewer are scored at once (a
thread is not worth it). ``background=False`` scores
everything before returning.

Thread safety: the pass runs on the evaluator's own copy of the base weights (made when it was
built), so edits of the session's model never race with it. Everything that needs every base
score (``base_preds``, an exact report, the estimate, the confusion of the whole split) waits for
the pass; ``current_errors(partial=True)`` and ``confusion(partial=True)`` answer on the scored
part, and :meth:`BaseScoring.progress` says how far it is.
"""
from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING, Callable, Generator

if TYPE_CHECKING:
    from ..evaluation import Evaluator

__all__ = ["FIRST_CHUNK", "FIRST_WAIT_S", "BaseScoring", "ProgressCallback"]

FIRST_CHUNK = 256  # images scored before the session is returned: enough for the first page of mistakes
FIRST_WAIT_S = 3.0  # ... or as many as this many seconds of scoring allow (a 224-px model on the CPU)
ProgressCallback = Callable[[int, int], None]


class BaseScoring:
    """The base pass of ``evaluator`` (None: nothing to score), first chunk now, the rest in a thread.

    Args:
        evaluator: built with ``defer=True`` (else its base is scored already and this does nothing).
        background: False scores every image before :meth:`start` returns.
        first_chunk: images scored before :meth:`start` returns (at least one batch).
        first_wait: seconds of scoring after which :meth:`start` returns even before ``first_chunk``
            images are in (the rest comes in the thread, the list of mistakes grows as it does).
        progress: called as ``progress(scored, total)`` after each batch (see :meth:`on_progress`).
    """

    def __init__(self, evaluator: Evaluator | None, *, background: bool = True, first_chunk: int = FIRST_CHUNK,
                 first_wait: float = FIRST_WAIT_S, progress: ProgressCallback | None = None) -> None:
        if isinstance(first_chunk, bool) or not isinstance(first_chunk, int) or first_chunk < 1:
            raise ValueError(f"first_chunk must be a positive number of images, got {first_chunk!r}")
        if isinstance(first_wait, bool) or not isinstance(first_wait, (int, float)) or not first_wait > 0:
            raise ValueError(f"first_wait must be a positive number of seconds, got {first_wait!r}")
        self.evaluator, self.background, self.first_chunk = evaluator, background, first_chunk
        self.first_wait = float(first_wait)
        self._callbacks: list[ProgressCallback] = [progress] if progress is not None else []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._told = threading.Event()  # the thread's last report is out (or it failed or was stopped)
        self.error: BaseException | None = None  # why the background pass failed (it is told to the views too)

    def start(self) -> None:
        """Score the first chunk (everything, without ``background``), then start the thread."""
        ev = self.evaluator
        if ev is None:
            return
        passes = ev.base_pass()
        t0 = time.perf_counter()
        for scored, total in passes:
            self._notify(scored, total)
            enough = scored >= self.first_chunk or time.perf_counter() - t0 >= self.first_wait
            if self.background and enough and total - scored >= self.first_chunk:
                ev.base.runner = None  # this thread no longer computes them: it may wait for them
                self.thread = threading.Thread(target=self._run, args=(passes,), name="workbench-scoring",
                                               daemon=True)
                self.thread.start()
                return

    def _run(self, passes: Generator[tuple[int, int], None, None]) -> None:
        assert self.evaluator is not None
        self.evaluator.base.runner = threading.get_ident()  # the pass resumes here (its checks included)
        try:
            for scored, total in passes:
                self._notify(scored, total)
                if scored == total:
                    self._told.set()
                if self._stop.is_set() and scored < total:
                    passes.close()  # the evaluator records why; readers get ScoringStopped
                    return
        except Exception as err:  # noqa: BLE001 - kept by the evaluator: every reader of the scores raises it
            self.error = err
            warnings.warn(f"scoring the base model failed: {type(err).__name__}: {err}", RuntimeWarning,
                          stacklevel=1)
            self._notify(*self.progress())  # the views hear it (and read :attr:`error`)
        finally:
            self._told.set()

    def _notify(self, scored: int, total: int) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(scored, total)
            except Exception as err:  # noqa: BLE001 - a view's failure must not stop the scoring
                warnings.warn(f"a scoring progress callback failed: {type(err).__name__}: {err}", RuntimeWarning,
                              stacklevel=1)

    # -- the session's API -----------------------------------------------------------------
    def progress(self) -> tuple[int, int]:
        """``(scored, total)`` images of the split whose base scores are in (``(0, 0)`` without data)."""
        ev = self.evaluator
        return (0, 0) if ev is None else (ev.base.scored, ev.base.total)

    def failure(self) -> BaseException | None:
        """Why the background pass failed (None: it did not, or it still runs)."""
        return self.error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every base score is in and told to the progress callbacks (the records are
        complete a moment before the last batch is reported); False when ``timeout`` seconds
        passed first.

        Raises:
            RuntimeError: the scoring failed (its error) or was stopped by :meth:`close`.
        """
        if self.evaluator is None:
            return True
        t0 = time.perf_counter()
        if not self.evaluator.wait_base(timeout):
            return False
        if self.thread is None or self.thread is threading.current_thread():  # a callback waiting: its report is on
            return True
        return self._told.wait(None if timeout is None else max(0.0, timeout - (time.perf_counter() - t0)))

    def on_progress(self, callback: ProgressCallback) -> None:
        """Call ``callback(scored, total)`` after each scored batch, from the scoring thread (a
        view hands it to its own thread; it must not wait for another thread, which may be in
        :meth:`wait`); it is called once now with the progress so far, so a
        view that subscribes late still hears that the scoring is complete."""
        if not callable(callback):
            raise TypeError(f"the progress callback must be callable, got {type(callback).__name__}")
        with self._lock:
            self._callbacks.append(callback)
        callback(*self.progress())

    def close(self, wait: bool = True) -> None:
        """Stop the background pass (within one batch) and, with ``wait``, wait for its thread;
        the scores stay incomplete (readers then raise
        :class:`~workbench.evaluation.base_scores.ScoringStopped`) and nothing is written to the
        score cache."""
        self._stop.set()
        if wait and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()
