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
give bit-identical logits (``torch.equal``) on the CPU, whether the images are in memory or
streamed from disk and wherever the cache lives (memory, a memory-mapped file, or nowhere:
recomputed). The fast path is checked against the full forward with perturbed weights of the
group (at construction, or at the first score after base scores read from the score cache);
a mismatch raises.

Memory: base logits, predictions, labels and the cached prefix share one ``memory_budget``
(:mod:`workbench.evaluation.budget`). Base scores can be kept on disk, keyed by the model's
sha256 and the data's fingerprint (:mod:`workbench.evaluation.score_cache`): reopening the
same model on the same data then reads them, and runs no forward pass.
"""
from __future__ import annotations

import copy
import functools
import time
import warnings
import weakref
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..batching import BatchPlan, PrecisionCheck, precision_for, prepare_input, prepare_model, scoring, to_device
from ..data import DataBundle, ImageSource
from ..device import default_device
from ..editing import EditorConfig, EditResult
from ..editing.editor_defaults import DEFAULT_GROUP
from ..models import ModelAdapter, Split, adapt
from ..paths import spill_dir
from .budget import SPILL_MODES, MemoryBudget, SpillFolder, default_budget
from .compute_plan import check_precision, plan_compute
from .fast_path import FAST_PATH_CHECK_IMAGES, FAST_PATH_RTOL, check_fast_path, describe  # noqa: F401
from .prefix_cache import Batches, GraphCache, StageCache, Store
from .edit_runs import EditCallback, run_edits
from .score_cache import open_score_cache, score_records
from .reports import (EditOutcome, EditReport, EvalSummary, Misclassified, confusion_matrix, errors_from_logits,
                      group_name, per_class_error_rate)
from .split_checks import batch_size_for, classes_of, split_source


Params = Mapping[str, torch.Tensor]


def _probe_images(source: ImageSource, normalize: Callable[[torch.Tensor], torch.Tensor],
                  device: torch.device) -> torch.Tensor:
    """The first two images of ``source``, normalised on ``device`` (the batch plan's probe)."""
    return normalize(to_device(source.images(range(min(2, len(source)))), device))


def _memo_key(params: Params) -> tuple | None:
    """Identity of the tensors given (object id + in-place version), or None if untrackable."""
    try:
        return tuple((n, id(v), v._version) for n, v in sorted(params.items()))
    except RuntimeError:  # inference tensors have no version counter
        return None


class Evaluator:
    """Scores edited weights of one model on one split, reusing the frozen prefix.

    Args:
        model: any classifier ``nn.Module`` returning ``(N, classes)`` logits, or its
            :class:`~workbench.models.ModelAdapter`. The evaluator keeps its own eval-mode copy
            on ``device``, so the base weights are frozen at construction: later changes to
            ``model`` do not affect it.
        bundle: the data set; ``split`` is ``"test"`` (default), ``"val"`` or ``"train"``.
        layers: the group(s) that edits will change (``"layer3"``, ``"layer3.1"``, ``"chain3"``
            ...); what crosses its cut is cached at once. Other groups work too (their cut is
            cached on first use).
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
            batch by batch (``"recompute"``, also when the disk lacks the room).
        score_cache: keep base scores on disk and read them on reopen: True (in
            :func:`workbench.paths.scores_dir`), a folder, or None (off).
        workers: DataLoader worker processes for streamed images (default
            :func:`workbench.data.default_workers`).
        cache_limit_bytes: the budget, with ``spill="recompute"`` (kept for older callers).
        progress: called as ``progress(images_read, total)`` while the base model is scored
            (for a progress line; it runs in the scoring thread).
        precision: ``"exact"`` (default: the same predictions as a plain fp32 forward) or
            ``"fast"`` (opt-in: channels_last, and autocast to bfloat16 on CUDA; predictions may
            differ, and ``precision_check`` counts how many on a sample).

    Attributes:
        labels: ``(N,) int64`` true labels (CPU). base_logits: ``(N, C) float32`` (CPU).
        base_preds: ``(N,) int64`` (CPU). base_error: float in [0, 1].
        classes: class names. stage: where the suffix of ``layers`` starts (a stage name or
        the first edited module). fast_path: how scores are computed, in words (it says when
        the model could not be traced and the full forward is used). fast_path_error: the
        largest difference between fast path and full forward (checked on first read).
        base_margins: ``(N,) float32`` ``logit(pred) - logit(true)``. base_label_quality:
        ``(N,) float32`` softmax probability of the true label. source: the split's images
        (:class:`~workbench.data.ImageSource`). budget: the :class:`MemoryBudget`.
        scores_from_cache: whether base scores were read from the score cache;
        score_cache_note: why they are not kept, when they are not. batch_plan: the batch
        size, the activation bytes of one image and why (a :class:`~workbench.batching.BatchPlan`).
        precision: how scores are computed (a :class:`~workbench.batching.Precision`).

    Example:
        >>> ev = Evaluator(model, bundle, layers="chain3")
        >>> res = edit(model, ev.image(12), 3, layers="chain3")
        >>> ev.score(res).drawdown
    """

    def __init__(self, model: nn.Module | ModelAdapter, bundle: DataBundle, *, split: str = "test",
                 layers: str | tuple[str, ...] = DEFAULT_GROUP, device: torch.device | str | None = None,
                 batch_size: int | None = None, limit: int | None = None,
                 memory_budget: int | str | None = None, spill: str = "mmap",
                 score_cache: bool | str | Path | None = None, workers: int | None = None,
                 cache_limit_bytes: int | None = None,
                 progress: Callable[[int, int], None] | None = None, precision: str = "exact") -> None:
        if not isinstance(bundle, DataBundle):
            raise TypeError(f"bundle must be a workbench DataBundle (workbench.data.load_dataset), "
                            f"got {type(bundle).__name__}")
        self.device = torch.device(device) if device is not None else default_device()
        given_batch = batch_size_for(batch_size)
        self.precision = precision_for(precision, self.device)
        if spill not in SPILL_MODES:
            raise ValueError(f"spill must be one of {list(SPILL_MODES)}, got {spill!r}")
        if cache_limit_bytes is not None:
            memory_budget, spill = (cache_limit_bytes if memory_budget is None else memory_budget), "recompute"
        src = split_source(bundle, split, limit)
        given = adapt(model)
        names = given.params(layers)  # validates the group (ValueError) before any work
        n_cls = classes_of(given, bundle)
        self.model = copy.deepcopy(given.model).to(self.device).eval().requires_grad_(False)
        self.adapter = given.with_model(self.model)
        self.split, self.layers = split, layers
        self.classes: tuple[str, ...] = tuple(bundle.classes)
        self.num_classes = n_cls
        self.normalize = self._normalize = bundle.normalize
        self.source = src
        self.labels = src.labels.clone()
        self._names = {n for n, _ in self.model.named_parameters()} | {n for n, _ in self.model.named_buffers()}
        self._memo: tuple[tuple, torch.Tensor] | None = None
        t0 = time.perf_counter()
        self.budget = MemoryBudget(default_budget(self.device) if memory_budget is None else memory_budget)
        # base logits on the CPU and the device, the memo's logits, labels, predictions, margins, quality
        self.budget.reserve("per-image records", len(src) * (3 * 4 * n_cls + 3 * 8 + 2 * 4), force=True)
        probe = functools.partial(_probe_images, src, self._normalize, self.device)
        planner = functools.partial(plan_compute, self.model, probe, self.budget, self.device, given_batch,
                                    bundle.name, n_cls)  # on CPU, no probe forward on a reopen from the score cache
        prepare_model(self.model, self.precision)
        self._precision_check: PrecisionCheck | None = None
        self._spill = SpillFolder(spill_dir())
        weakref.finalize(self, self._spill.close)
        self._data = data = Batches(src, self._normalize, self.device, planner, workers, self.precision)
        store = Store(self.budget, spill, self._spill, self.device)
        self._prefix: StageCache | GraphCache = StageCache(self.adapter, data, store) \
            if self.adapter.stages else GraphCache(self.adapter, data, store)
        cut = self._prefix.cut_for(self.adapter, names)
        self._group: tuple[list[str], str | Split | None] = (names, cut)
        self.stage = cut if isinstance(cut, str) else cut.cut if cut is not None else ""
        self.fast_path = describe(cut)
        if not isinstance(cut, str) and cut is not None and cut.kind == "full":
            warnings.warn(f"Evaluator: {cut.note}", RuntimeWarning, stacklevel=2)
        self._scores, self._score_key, self.score_cache_note = open_score_cache(
            score_cache, self.model, self.source, bundle, split, limit, self.device,
            self.batch_size if self.device.type != "cpu" else None, self.precision.name)
        records = self._scores.load(self._score_key, self.labels, n_cls) if self._scores is not None else None
        self.scores_from_cache = records is not None
        self._fast_path_error: float | None = None
        if records is None:
            data.progress = progress
            try:
                self._base_dev = self._logits({}, cut)
            finally:
                data.progress = None
            _ = self.fast_path_error
            records = score_records(self._base_dev, self.labels)
            if self._scores is not None:
                self._scores.save(self._score_key, records)
        else:  # the fast path is checked at the first score of edited weights
            self._base_dev = records["logits"].to(self.device)
        self.base_logits = records["logits"]
        self.base_preds = records["preds"]
        self.base_margins, self.base_label_quality = records["margins"], records["label_quality"]
        self.base_error = float((self.base_preds != self.labels).float().mean())
        self.setup_seconds = time.perf_counter() - t0

    @property
    def batch_plan(self) -> BatchPlan:
        """The batch size, the activation bytes of one image and why (planned before the first score)."""
        return self._data.plan

    @property
    def batch_size(self) -> int:
        return self._data.batch_size

    @property
    def fast_path_error(self) -> float:
        """The largest difference between fast path and full forward on a few images, base and
        group-perturbed weights (RuntimeError above the tolerance)."""
        if self._fast_path_error is None:
            names, cut = self._group
            xs = prepare_input(self.images(range(min(FAST_PATH_CHECK_IMAGES, len(self.source), self.batch_size))),
                               self.precision)
            with scoring(self.precision):
                self._fast_path_error = check_fast_path(self.model, self.adapter, self._prefix, xs, self._base_dev,
                                                        names, cut, group_name(self.layers), self.fast_path,
                                                        rtol=self.precision.check_rtol)
        return self._fast_path_error

    @property
    def precision_check(self) -> PrecisionCheck | None:
        """Fast mode only (None when exact): its base predictions against an exact fp32 forward of
        the first ``FAST_CHECK_IMAGES`` images (computed on first read)."""
        if self._precision_check is None and not self.precision.exact:
            self._precision_check = check_precision(self.model, self.images, self.base_logits, self.batch_size,
                                                    self.device)
        return self._precision_check

    def cached_bytes(self) -> int:
        """Bytes the evaluator holds in the memory it computes in: the per-image records and the
        prefix caches kept in memory (memory-mapped ones are on disk)."""
        return self.budget.held.get("per-image records", 0) + self._prefix.memory_bytes()

    def close(self) -> None:
        """Free the caches and remove the spill folder (also done when the evaluator is freed)."""
        self._prefix.clear()
        self._memo = None
        self._spill.close()

    # ----------------------------------------------------------------- data access
    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        """Example ``i`` of the split, normalised: ``(C, H, W) float32`` on the evaluator's device."""
        return self._normalize(self.raw_image(i).to(self.device))

    def raw_image(self, i: int) -> torch.Tensor:
        """Example ``i`` as stored: ``(C, H, W) uint8`` on the CPU."""
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"index {i} out of range for the {len(self)} examples of the {self.split!r} split")
        return self.source.images([int(i)])[0]

    def raw_images(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Examples ``indices`` as stored: ``(n, C, H, W)`` on the CPU (meant for a few)."""
        return self.source.images(torch.as_tensor(indices, dtype=torch.long).reshape(-1))

    def images(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Examples ``indices``, normalised: ``(n, C, H, W) float32`` on the evaluator's device."""
        return self._normalize(self.raw_images(indices).to(self.device))

    # ----------------------------------------------------------------- base-model views
    def misclassified(self, sort: str = "index") -> list[Misclassified]:
        """The split's examples that the base model gets wrong.

        Args:
            sort: ``"index"`` (ascending), ``"confidence"`` (most confident mistakes first)
                or ``"margin"`` (largest ``logit(pred) - logit(true)`` first).
        """
        keys: dict[str, Callable[[Misclassified], float]] = {
            "index": lambda m: m.index, "confidence": lambda m: -m.confidence, "margin": lambda m: -m.margin}
        if sort not in keys:
            raise ValueError(f"unknown sort {sort!r}; use one of {sorted(keys)}")
        return sorted(errors_from_logits(self.base_logits, self.labels), key=keys[sort])

    def confusion(self, preds: torch.Tensor | None = None) -> torch.Tensor:
        """``(C, C) int64`` counts; row = true label, column = prediction (default: base)."""
        p = self.base_preds if preds is None else self._check_preds(preds, "preds")
        return confusion_matrix(self.labels, p, self.num_classes)

    def per_class_error(self, preds: torch.Tensor | None = None) -> torch.Tensor:
        """``(C,) float32`` error rate per true class (NaN for classes absent from the split)."""
        p = self.base_preds if preds is None else self._check_preds(preds, "preds")
        return per_class_error_rate(self.labels, p, self.num_classes)

    # ----------------------------------------------------------------- scoring
    def logits_for(self, params: Params | EditResult) -> torch.Tensor:
        """Logits of the base model with some parameters replaced.

        Args:
            params: name -> tensor for any subset of the model's parameters (or buffers), or
                an :class:`EditResult` (its ``after``). Only the stages owning the *names*
                given are rerun; an empty mapping returns the base logits.
        Returns:
            ``(N, C) float32`` on the CPU.
        """
        p = self._params(params)
        return self._logits(p, self._prefix.cut_for(self.adapter, list(p))).cpu().clone()

    def preds_for(self, params: Params | EditResult) -> torch.Tensor:
        """``(N,) int64`` predictions (CPU) of the base model with ``params`` replaced."""
        p = self._params(params)
        return self._logits(p, self._prefix.cut_for(self.adapter, list(p))).argmax(1).cpu()

    def preds_on(self, params: Params | EditResult, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """``(n,) int64`` predictions (CPU) on the examples ``indices`` only, ``params`` replaced.

        Runs the same suffix as :meth:`score` on a subset (for quick estimates, see
        :mod:`workbench.evaluation.estimate`); logits may differ from :meth:`score`'s in the
        last bits, because the batches differ.
        """
        p = self._params(params)
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        cut = self._prefix.cut_for(self.adapter, list(p))
        if cut is None:
            return self.base_preds[idx].clone()
        _ = self.fast_path_error  # checked before the first score of edited weights
        dev = self._on_device(p)
        with scoring(self.precision):
            logits = self._prefix.subset_logits(dev, cut, idx)  # type: ignore[arg-type]
        return logits.argmax(1).cpu()

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
        ref = self.base_preds if reference_preds is None else self._check_preds(reference_preds, "reference_preds")
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
        cfg = config.resolved()
        return EvalSummary.from_outcomes(
            outcomes, test_error=self.base_error, editor=cfg.method, layers=group_name(cfg.layers),
            protocol=protocol, seconds=seconds, lr=cfg.lr, beta=cfg.beta, max_steps=cfg.max_steps,
            split=self.split, examples=len(self))

    # ----------------------------------------------------------------- internals
    def _params(self, params: Params | EditResult) -> dict[str, torch.Tensor]:
        if isinstance(params, EditResult):
            params = params.after
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping name -> tensor or an EditResult, got {type(params).__name__}")
        unknown = [n for n in params if n not in self._names]
        if unknown:
            raise ValueError(f"unknown parameter name(s) {unknown[:3]}; names come from model.named_parameters(), "
                             f"e.g. {next(n for n, _ in self.model.named_parameters())!r}")
        return dict(params)

    def _on_device(self, params: Params) -> dict[str, torch.Tensor]:
        return {n: prepare_input(to_device(v.detach(), self.device), self.precision) for n, v in params.items()}

    def _check_preds(self, preds: torch.Tensor, what: str) -> torch.Tensor:
        p = torch.as_tensor(preds).reshape(-1).long().cpu()
        if len(p) != len(self.labels):
            raise ValueError(f"{what} has {len(p)} entries; the {self.split!r} split here has {len(self.labels)}")
        return p

    def _logits(self, params: dict[str, torch.Tensor], cut: str | Split | None) -> torch.Tensor:
        """``(N, C)`` logits on the device, running the suffix of ``cut`` with ``params`` overriding."""
        if cut is None:
            return self._base_dev
        key = _memo_key(params)
        if key is not None and self._memo is not None and self._memo[0][0] == key:
            return self._memo[1]
        _ = self.batch_plan  # made (budget reserved) before any cache is placed
        dev = self._on_device(params)
        if params:
            _ = self.fast_path_error  # checked before the first score of edited weights
        with scoring(self.precision):
            logits = self._prefix.logits(dev, cut).float()  # type: ignore[arg-type]
        # The memo holds the tensors themselves, so their ids cannot be reused while it lives.
        self._memo = ((key, list(params.values())), logits) if key is not None else None
        return logits

    def cache_info(self) -> dict[str, str]:
        """What is cached and its size, e.g. ``{"chain3": "(10000, 32, 14, 14) 239.3 MiB"}``."""
        return self._prefix.info()

    def __repr__(self) -> str:
        return (f"Evaluator({len(self)} {self.split} examples, layers={group_name(self.layers)!r}, "
                f"base error {100 * self.base_error:.2f}%, device={self.device})")
