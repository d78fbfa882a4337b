"""Scoring edited weights on an evaluator's split: the suffix pass of their cut, the memo of the
last pass, and the fast-path check that runs before the first one.

An :class:`~workbench.evaluation.Evaluator` composes one :class:`EditedScores` (its ``edited``);
the evaluator's ``logits_for``, ``preds_for``, ``preds_on``, ``score_pass`` and ``fast_path_error``
are this part's. Exactness: the suffix runs the very same operations, on the same batch slices, as a
plain full forward, so weights equal to the base give bit-identical logits on the CPU; the fast
path is checked against the full forward with perturbed weights of the group before the first
score of edited weights (a mismatch raises).
"""
from __future__ import annotations

import functools
import threading
from typing import Generator, Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from ..batching import Precision, prepare_input, scoring, to_device
from ..editing import EditResult
from ..models import ModelAdapter, Split
from ..models.graph import TRACE_LOCK
from .base_scores import BaseScores, locked
from .fast_path import FAST_PATH_CHECK_IMAGES, check_fast_path
from .prefix_cache import Batches, GraphCache, StageCache

__all__ = ["EditedScores", "Params", "Progress", "memo_key"]

Params = Mapping[str, torch.Tensor]
Progress = Generator[tuple[int, int], None, None]  # (scored, total) after each batch of a pass


def memo_key(params: Params) -> tuple | None:
    """Identity of the tensors given (object id + in-place version), or None if untrackable."""
    try:
        return tuple((n, id(v), v._version) for n, v in sorted(params.items()))
    except RuntimeError:  # inference tensors have no version counter
        return None


class EditedScores:
    """Logits and predictions of the base model with some parameters replaced, one suffix pass each.

    Args:
        model: the evaluator's eval-mode copy of the model (a pass swaps its weights, under ``lock``).
        adapter: its :class:`~workbench.models.ModelAdapter`.
        prefix: the prefix cache (:mod:`workbench.evaluation.prefix_cache`) that passes run the suffix of.
        data: the split's batches (its plan is made before any cache is placed).
        base: the base scores; edited weights are scored once they are complete.
        lock: one pass at a time on ``model``.
        precision: how scores are computed (``"exact"`` or ``"fast"``).
        group: ``(names, cut)`` of the evaluator's group (the fast path is checked on it).
        label: the group's name, for messages; fast_path: how scores are computed, in words.
    """

    def __init__(self, model: nn.Module, adapter: ModelAdapter, prefix: StageCache | GraphCache, data: Batches,
                 base: BaseScores, lock: threading.RLock, precision: Precision, device: torch.device, *,
                 group: tuple[list[str], str | Split | None], label: str, fast_path: str) -> None:
        self.model, self.adapter, self.prefix, self.data = model, adapter, prefix, data
        self.base, self.lock, self.precision, self.device = base, lock, precision, device
        self.group, self.label, self.fast_path = group, label, fast_path
        self.names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
        self.memo: tuple[tuple, torch.Tensor] | None = None  # ((key, tensors), (N, C) device logits)
        self.checked: float | None = None

    @property
    def fast_path_error(self) -> float:
        """The largest difference between fast path and full forward on a few images, base and
        group-perturbed weights (RuntimeError above the tolerance; computed on first read)."""
        if self.checked is None:
            names, cut = self.group
            n = min(FAST_PATH_CHECK_IMAGES, self.base.total, self.data.batch_size)
            xs = self.data.at(torch.arange(n))  # normalised, on the device, in the precision's format
            base = self.base.first_logits(len(xs), self.device)
            with scoring(self.precision):
                self.checked = check_fast_path(self.model, self.adapter, self.prefix, xs, base, names, cut,
                                               self.label, self.fast_path, rtol=self.precision.check_rtol)
        return self.checked

    def check(self) -> float:
        """:attr:`fast_path_error` under the trace lock and the evaluator's lock (the base pass runs
        it on its first chunk, before any edited weights are scored)."""
        with TRACE_LOCK, self.lock:
            return self.fast_path_error

    def params(self, params: Params | EditResult) -> dict[str, torch.Tensor]:
        """``params`` (or an EditResult's ``after``) as a dict; TypeError / ValueError naming a bad one."""
        if isinstance(params, EditResult):
            params = params.after
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping name -> tensor or an EditResult, got {type(params).__name__}")
        unknown = [n for n in params if n not in self.names]
        if unknown:
            raise ValueError(f"unknown parameter name(s) {unknown[:3]}; names come from model.named_parameters(), "
                             f"e.g. {next(n for n, _ in self.model.named_parameters())!r}")
        return dict(params)

    def cut(self, params: Params) -> str | Split | None:
        """Where the suffix of ``params`` starts (None: nothing to rerun, the base logits)."""
        return self.prefix.cut_for(self.adapter, list(params))

    def logits_for(self, params: Params | EditResult) -> torch.Tensor:
        """Logits of the base model with some parameters replaced.

        Args:
            params: name -> tensor for any subset of the model's parameters (or buffers), or
                an :class:`~workbench.editing.EditResult` (its ``after``). Only the stages owning
                the *names* given are rerun; an empty mapping returns the base logits.
        Returns:
            ``(N, C) float32`` on the CPU.
        """
        return self.device_logits(params).cpu().clone()

    def preds_for(self, params: Params | EditResult) -> torch.Tensor:
        """``(N,) int64`` predictions (CPU) of the base model with ``params`` replaced."""
        return self.device_logits(params).argmax(1).cpu()

    def preds_on(self, params: Params | EditResult, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """``(n,) int64`` predictions (CPU) on the examples ``indices`` only, ``params`` replaced.

        Runs the same suffix as :meth:`preds_for` on a subset (for quick estimates, see
        :mod:`workbench.evaluation.estimate`); logits may differ from the whole split's in the
        last bits, because the batches differ.
        """
        p = self.params(params)
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        cut = self.cut(p)
        if cut is None:
            return self.base.record("preds")[idx].clone()
        self.base.wait()  # the base pass runs alone on the model
        dev = self.on_device(p)
        with self.lock:
            _ = self.fast_path_error  # checked before the first score of edited weights
            with scoring(self.precision):
                logits = self.prefix.subset_logits(dev, cut, idx)  # type: ignore[arg-type]
        return logits.argmax(1).cpu()

    def score_pass(self, params: Params | EditResult) -> Progress:
        """The pass of ``params`` over the split, batch by batch: yields ``(scored, total)``; once it
        is through, the evaluator's ``score``, :meth:`preds_for` and :meth:`logits_for` of the same
        ``params`` (the same tensors) run no forward pass. Each batch holds the evaluator's lock, so
        it may run in a background thread; closing it early keeps nothing (no logits, no
        half-filled prefix cache)."""
        p = self.params(params)
        cut, total = self.cut(p), self.base.total
        if cut is None or self.remembers(p):
            yield total, total
            return
        for _, j, _ in locked(self.pass_at(p, cut), self.lock, self.base, functools.partial(scoring, self.precision)):
            yield j, total

    def device_logits(self, params: Params | EditResult) -> torch.Tensor:
        """``(N, C)`` logits on the device with ``params`` overriding (the memo's when it holds them)."""
        p = self.params(params)
        cut = self.cut(p)
        if cut is None:
            return self.base.device_logits
        if not self.remembers(p):
            with self.lock, scoring(self.precision):
                for _ in self.pass_at(p, cut):
                    pass
        assert self.memo is not None
        return self.memo[1]

    def remembers(self, params: dict[str, torch.Tensor]) -> bool:
        """The memo holds the logits of these very tensors (a None key never matches)."""
        key = memo_key(params)
        return key is not None and self.memo is not None and self.memo[0][0] == key

    def on_device(self, params: Params) -> dict[str, torch.Tensor]:
        """``params`` detached, on the device, in the precision's memory format."""
        return {n: prepare_input(to_device(v.detach(), self.device), self.precision) for n, v in params.items()}

    def pass_at(self, params: dict[str, torch.Tensor], cut: str | Split) -> Iterator[tuple[int, int, torch.Tensor]]:
        """One pass of the suffix of ``cut`` (device logits per batch); the memo is set when it completes."""
        self.base.wait()  # the base pass runs alone on the model; edited weights are checked after it
        _ = self.data.plan  # made (the budget reserved) before any cache is placed
        dev = self.on_device(params)
        if params:
            _ = self.fast_path_error  # checked before the first score of edited weights
        chunks = []
        for i, j, out in self.prefix.iter_logits(dev, cut):  # type: ignore[arg-type]
            chunks.append(out.float())
            yield i, j, chunks[-1]
        # The memo holds the tensors themselves, so their ids cannot be reused while it lives.
        self.memo = ((memo_key(params), list(params.values())), torch.cat(chunks))
