"""The fast evaluator: scores edited weights on a whole split by rerunning only the suffix.

An edit changes the parameters of a group. Everything before the first module it changes
computes exactly what the base model computes, so the evaluator caches, lazily, what crosses
that cut (:mod:`workbench.evaluation.prefix_cache`): for the project's ResNets the activation
entering a stage, for any other model the values crossing a ``torch.fx`` graph cut (skip
connections included). Scoring edited weights then costs one pass of the suffix, in large
batches, under ``torch.inference_mode``. A model that cannot be traced is scored with the
full forward (``fast_path`` says so, and a warning is issued once).

Exactness: the cached prefix and the suffix run the very same operations, on the same batch
slices, as a plain full forward in batches of ``batch_size``, so weights equal to the base
give bit-identical logits (``torch.equal``) on the CPU, wherever the images and the cache live.
The fast path is checked against the full forward with perturbed weights of the group (at
construction, or at the first score after base scores read from the score cache); a mismatch
raises. Its parts: :mod:`~workbench.evaluation.compute_plan` sets up how it computes,
:mod:`~workbench.evaluation.base_scores` holds the base pass's scores and
:mod:`~workbench.evaluation.edited_scores` scores edited weights.

Memory: base logits, predictions, labels and the cached prefix share one ``memory_budget``
(:mod:`workbench.evaluation.budget`). Base scores can be kept on disk, keyed by the model's
sha256 and the data's fingerprint (:mod:`workbench.evaluation.score_cache`): reopening the
same model on the same data then reads them, and runs no forward pass.
"""
from __future__ import annotations

import functools
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import torch
import torch.nn as nn

from ..batching import BatchPlan, PrecisionCheck, precision_for, scoring
from ..data import DataBundle
from ..device import default_device
from ..editing import EditorConfig, EditResult
from ..editing.editor_defaults import DEFAULT_GROUP
from ..models import ModelAdapter, adapt
from .base_scores import BaseScores, fill, locked
from .budget import RESIDENT_MAX, SPILL_MODES, parse_bytes
from .compute_plan import check_precision, set_up
from .edited_scores import EditedScores, Params, Progress
from .fast_path import FAST_PATH_CHECK_IMAGES, FAST_PATH_RTOL, describe  # noqa: F401
from .edit_runs import EditCallback, run_edits
from .score_cache import open_score_cache
from .reports import EditOutcome, EditReport, EvalSummary, group_name
from .split_views import SplitViews
from .split_checks import batch_size_for, classes_of, split_source

T = TypeVar("T")


def _nothing() -> Progress:
    yield from ()


class Evaluator(SplitViews):
    """Scores edited weights of one model on one split, reusing the frozen prefix.

    Args:
        model: any classifier ``nn.Module`` returning ``(N, classes)`` logits, or its
            :class:`~workbench.models.ModelAdapter`. The evaluator keeps its own eval-mode copy
            on ``device``, so the base weights are frozen at construction: later changes to
            ``model`` do not affect it.
        bundle: the data set; ``split`` is ``"test"`` (default), ``"val"`` or ``"train"``.
        layers: the group(s) that edits will change (``"layer3"``, ``"layer3.1"``, ``"chain3"``
            ...); what crosses its cut is cached at once. Other groups work too (their cut is
            cached on first use). Default: the model's default group
            (:meth:`~workbench.models.ModelAdapter.default_group`: ``chain3`` on the project's
            ResNets, the middle of the trunk elsewhere).
        device: where to compute (default: :func:`workbench.default_device`).
        batch_size: examples per forward pass (default: sized by :func:`workbench.batching.plan_batch`
            from the activation bytes of one image, measured on a probe batch, within the memory
            budget and, on CUDA, the free GPU memory; at most 256 on the CPU, where small batches
            keep the activations in cache, and 2048 on CUDA; ``batch_plan.why`` says why).
            Logits do not depend on it (bit-identical across batch sizes on the CPU).
        limit: score only the first ``limit`` examples of the split.
        memory_budget: bytes (``int``) or a size (``"4GiB"``) for everything the evaluator
            keeps in the memory it computes in: its copy of the model, one batch's activations, the
            per-image records and the caches (default: :func:`~workbench.evaluation.budget.default_budget`,
            a share of the RAM or of the free GPU memory); ``cache_info()`` says where each cache went.
        spill: a cache past the budget goes to a memory-mapped file under
            :func:`workbench.paths.spill_dir` (``"mmap"``, deleted on close) or is recomputed
            batch by batch (``"recompute"``, also when the disk lacks the room, and on the CPU
            when the spill folder is on a RAM disk, where a file is memory too).
        resident_max: on the CPU, a cache larger than this (bytes or a size) goes to the
            memory-mapped file even within the budget (default
            :data:`~workbench.evaluation.budget.RESIDENT_MAX`, 256 MiB: resident file pages read as
            fast as memory, and the kernel drops them under pressure), unless the spill folder is
            on a RAM disk. Give the budget to keep every cache that fits in memory.
        score_cache: keep base scores on disk and read them on reopen: True (in
            :func:`workbench.paths.scores_dir`), a folder, or None (off).
        workers: DataLoader worker processes for streamed images (default
            :func:`workbench.data.default_workers`).
        cache_limit_bytes: the budget, with ``spill="recompute"`` (kept for older callers).
        progress: called as ``progress(images_scored, total)`` after each batch of the base
            model's scoring (for a progress line; it runs in the scoring thread).
        defer: score the base model later, through :meth:`base_pass` (chunk by chunk, in any one
            thread; :class:`~workbench.session.EditSession` does this to open progressively).
            Every base record waits for it (``base_preds`` ...); :attr:`base` holds the scored part.
        precision: ``"exact"`` (default: the same predictions as a plain fp32 forward) or
            ``"fast"`` (opt-in: channels_last, and autocast to bfloat16 on CUDA; predictions may
            differ, and ``precision_check`` counts how many on a sample).

    Attributes:
        labels: ``(N,) int64`` true labels (CPU). classes: class names. source: the split's images
        (:class:`~workbench.data.ImageSource`). stage: where the suffix of ``layers`` starts (a
        stage name or the first edited module). fast_path: how scores are computed, in words (it
        says when the model could not be traced and the full forward is used). budget: its
        memory budget (:class:`~workbench.evaluation.budget.MemoryBudget`). score_cache_note: why
        base scores are not kept, when they are not. base: the scored part (a ``BaseScores``, in
        module :mod:`workbench.evaluation.base_scores`: ``scored``, ``partial_logits()``). precision:
        how scores are computed (its ``Precision``). edited: the part that scores edited weights
        (an ``EditedScores``, in module :mod:`workbench.evaluation.edited_scores`); ``logits_for``,
        ``preds_for``, ``preds_on`` and ``score_pass`` are its methods.

    Threads: one pass runs on the evaluator's own model copy at a time (a lock; passes that may
    run in a background thread, :meth:`base_pass` and ``score_pass``, take it batch by batch).
    Scoring edited weights waits until the base model is scored.

    Example:
        >>> ev = Evaluator(model, bundle, layers="chain3")
        >>> res = edit(model, ev.image(12), 3, layers="chain3")
        >>> ev.score(res).drawdown
    """

    def __init__(self, model: nn.Module | ModelAdapter, bundle: DataBundle, *, split: str = "test",
                 layers: str | tuple[str, ...] | None = None, device: torch.device | str | None = None,
                 batch_size: int | None = None, limit: int | None = None,
                 memory_budget: int | str | None = None, spill: str = "mmap", resident_max: int | str | None = None,
                 score_cache: bool | str | Path | None = None, workers: int | None = None,
                 cache_limit_bytes: int | None = None, progress: Callable[[int, int], None] | None = None,
                 defer: bool = False, precision: str = "exact") -> None:
        if not isinstance(bundle, DataBundle):
            raise TypeError(f"bundle must be a workbench DataBundle (workbench.data.load_dataset), got {type(bundle).__name__}")
        self.device = torch.device(device) if device is not None else default_device()
        given_batch = batch_size_for(batch_size)
        self.precision = precision_for(precision, self.device)
        if spill not in SPILL_MODES:
            raise ValueError(f"spill must be one of {list(SPILL_MODES)}, got {spill!r}")
        resident_bytes = RESIDENT_MAX if resident_max is None else parse_bytes(resident_max, "resident_max")
        if cache_limit_bytes is not None:
            memory_budget, spill = (cache_limit_bytes if memory_budget is None else memory_budget), "recompute"
        src = split_source(bundle, split, limit)
        given = adapt(model)
        layers = given.default_group(DEFAULT_GROUP) if layers is None else layers
        names = given.params(layers)  # validates the group (ValueError) before any work
        self.num_classes = n_cls = classes_of(given, bundle)
        self.split, self.layers, self.source, self.labels = split, layers, src, src.labels.clone()
        self.classes: tuple[str, ...] = tuple(bundle.classes)
        self.normalize = bundle.normalize
        t0 = time.perf_counter()
        c = set_up(given, src, bundle.normalize, bundle.name, n_cls, self.device, self.precision,
                   memory_budget=memory_budget, spill=spill, batch_size=given_batch, workers=workers,
                   resident_max=resident_bytes)
        self.model, self.adapter, self.budget = c.model, c.adapter, c.budget
        self._data, self._prefix, self._spill = c.data, c.prefix, c.spill
        weakref.finalize(self, self._spill.close)
        self._precision_check: PrecisionCheck | None = None
        cut = self._prefix.cut_for(self.adapter, names)
        self.stage = cut if isinstance(cut, str) else cut.cut if cut is not None else ""
        self.fast_path = describe(cut)
        if not isinstance(cut, str) and cut is not None and cut.kind == "full":
            warnings.warn(f"Evaluator: {cut.note}", RuntimeWarning, stacklevel=2)
        self._scores, self._score_key, self.score_cache_note = open_score_cache(
            score_cache, self.model, self.source, bundle, split, limit, self.device,
            self.batch_size if self.device.type != "cpu" else None, self.precision.name)
        records = self._scores.load(self._score_key, self.labels, n_cls) if self._scores is not None else None
        self.base = BaseScores(len(src), n_cls)
        self._lock = threading.RLock()  # one pass at a time on self.model (functional_call swaps its weights)
        self.edited = ed = EditedScores(self.model, self.adapter, self._prefix, c.data, self.base, self._lock,
                                        self.precision, self.device, group=(names, cut), label=group_name(layers),
                                        fast_path=self.fast_path)  # it holds nothing of self: no cycle
        self.logits_for, self.preds_for, self.preds_on, self.score_pass = \
            ed.logits_for, ed.preds_for, ed.preds_on, ed.score_pass  # scoring edited weights is its part's
        self._pass: Progress = _nothing()
        if records is None:
            _ = self.batch_plan  # checks the model on the data (ValueError) and sizes the batch, before any pass
            keep = functools.partial(self._scores.save, self._score_key) if self._scores is not None else None
            self._pass = fill(self.base, self.locked(self._prefix.iter_logits({}, cut)),  # type: ignore[arg-type]
                              self.labels, self.device, first=self.edited.check, keep=keep, progress=progress)
            if not defer:
                for _ in self._pass:
                    pass
        else:  # the fast path is checked at the first score of edited weights
            self.base.install(records, self.device, from_cache=True)
        self.setup_seconds = time.perf_counter() - t0

    # ----------------------------------------------------------------- the base pass
    def base_pass(self) -> Progress:
        """The rest of the base model's scoring (with ``defer=True``), chunk by chunk: yields
        ``(scored, total)`` after each batch; when it yields ``total`` every record is in (and
        kept in the score cache). Iterate it in one thread; closing it early stops the scoring
        (readers then get :class:`~workbench.evaluation.base_scores.ScoringStopped`). Empty when
        the base is scored already."""
        return self._pass

    def locked(self, batches: Iterator[T]) -> Iterator[T]:
        """``batches``, each computed under the evaluator's lock (see :func:`~.base_scores.locked`)."""
        return locked(batches, self._lock, self.base, functools.partial(scoring, self.precision))

    def wait_base(self, timeout: float | None = None) -> bool:
        """Wait until the base model is scored on every image (False: ``timeout`` passed first)."""
        return self.base.wait(timeout)

    # base records: each waits for the base pass
    base_logits = property(lambda self: self.base.record("logits"), doc="``(N, C) float32`` base logits (CPU).")
    base_preds = property(lambda self: self.base.record("preds"), doc="``(N,) int64`` base predictions (CPU).")
    base_margins = property(lambda self: self.base.record("margins"),
                            doc="``(N,) float32`` ``logit(pred) - logit(true)`` of the base model.")
    base_label_quality = property(lambda self: self.base.record("label_quality"),
                                  doc="``(N,) float32`` softmax probability of the true label.")
    scores_from_cache = property(lambda self: self.base.from_cache,
                                 doc="Whether the base scores were read from the score cache.")

    @property
    def base_error(self) -> float:
        """Test error of the base model on the split, in [0, 1] (waits for the base pass)."""
        return float((self.base_preds != self.labels).float().mean())

    @property
    def batch_plan(self) -> BatchPlan:
        """The batch size, the activation bytes of one image and why (planned before the first pass)."""
        return self._data.plan

    @property
    def batch_size(self) -> int:
        return self._data.batch_size

    @property
    def precision_check(self) -> PrecisionCheck | None:
        """Fast mode only (None when exact): its base predictions against an exact fp32 forward of
        the first ``FAST_CHECK_IMAGES`` images (computed on first read; waits for the base pass)."""
        if self._precision_check is None and not self.precision.exact:
            logits = self.base_logits
            with self._lock:
                self._precision_check = check_precision(self.model, self.images, logits, self.batch_size,
                                                        self.device)
        return self._precision_check

    @property
    def fast_path_error(self) -> float:
        """The largest difference between fast path and full forward on a few images, base and
        group-perturbed weights (RuntimeError above the tolerance)."""
        return self.edited.fast_path_error

    def cached_bytes(self) -> int:
        """Bytes the evaluator holds in the memory it computes in: the per-image records and the
        prefix caches kept in memory (memory-mapped ones are on disk)."""
        return self.budget.held.get("per-image records", 0) + self._prefix.memory_bytes()

    def close(self) -> None:
        """Free the caches and remove the spill folder (also done when the evaluator is freed)."""
        self._prefix.clear()
        self.edited.memo = None
        self._spill.close()

    # ----------------------------------------------------------------- scoring
    def score(self, params: Params | EditResult, *, reference_preds: torch.Tensor | None = None) -> EditReport:
        """Score edited weights on the whole split.

        Args:
            params: name -> tensor overriding the base weights, or an :class:`EditResult`.
            reference_preds: ``(N,) int64`` predictions to compare against (default: base).
        Returns:
            :class:`EditReport` (error, drawdown, flipped examples, per-class change).
        """
        t0 = time.perf_counter()
        preds = self.preds_for(params)
        ref = self.base_preds if reference_preds is None else self.check_preds(reference_preds, "reference_preds")
        return EditReport.from_preds(self.labels, preds, ref, self.num_classes, started=t0)

    def evaluate_edits(self, x: torch.Tensor, y: torch.Tensor, config: EditorConfig | None = None, *,
                       protocol: str = "custom", progress: bool = True, indices: torch.Tensor | None = None,
                       callback: EditCallback | None = None, previous: Sequence[EditOutcome] = (),
                       previous_seconds: float = 0.0,
                       on_outcome: Callable[[EditOutcome], None] | None = None) -> EvalSummary:
        """N independent edits, each from the base model, each scored on the whole split: see
        :func:`~workbench.evaluation.edit_runs.run_edits` for the arguments."""
        return run_edits(self, x, y, config, protocol=protocol, progress=progress, indices=indices, callback=callback,
                         previous=previous, previous_seconds=previous_seconds, on_outcome=on_outcome)

    def summarize(self, outcomes: Sequence[EditOutcome], config: EditorConfig, *, protocol: str,
                  seconds: float) -> EvalSummary:
        """The paper's metrics over ``outcomes`` (in the order given) of edits made with ``config`` on this split.

        :meth:`evaluate_edits` returns this; ``evaluate`` under torchrun calls it on rank 0 with
        every rank's outcomes, put back in the order of the draw.
        """
        cfg = config.resolved(self.layers)
        return EvalSummary.from_outcomes(
            outcomes, test_error=self.base_error, editor=cfg.method, layers=group_name(cfg.group),
            protocol=protocol, seconds=seconds, lr=cfg.lr, beta=cfg.beta, max_steps=cfg.max_steps,
            split=self.split, examples=len(self))

    def cache_info(self) -> dict[str, str]:
        """What is cached, its size, where and why, e.g.
        ``{"chain3": "(10000, 32, 14, 14) 239.3 MiB in memory"}``."""
        return self._prefix.info()

    def __repr__(self) -> str:
        return (f"Evaluator({len(self)} {self.split} examples, layers={group_name(self.layers)!r}, "
                f"base error {100 * self.base_error:.2f}%, device={self.device})")
