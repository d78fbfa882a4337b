"""What the evaluator caches: the values an edit cannot change, batch by batch.

Two caches with one interface (``cut_for(names)``, ``logits(params, cut)``, ``info()``):

* :class:`StageCache` for the project's ResNets (a chain of stages): per stage and lazily,
  the activation entering it.
* :class:`GraphCache` for any other model: per cut (:class:`~workbench.models.Split`) and
  lazily, the values crossing the cut for every batch (tensors, and the ints a traced graph
  carries such as the batch size). A ``"full"`` split (untraceable model) caches nothing and
  runs the full forward.

Where a cache goes is decided by :class:`Store` against the evaluator's memory budget
(:mod:`workbench.evaluation.budget`): in memory (on the device) while it fits, else in a
memory-mapped file, else nowhere (recomputed batch by batch from the images, or for a stage
from the nearest cached earlier stage).

Images come from an :class:`~workbench.data.ImageSource` (in memory or streamed from disk),
one pass at a time. Every path runs the same operations on the same batch slices as a plain
full forward in batches of ``batch_size``, so base weights give the base logits bit for bit on
the CPU, wherever the cache lives.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from ..batching import BatchPlan, Precision, prepare_input, to_device
from ..data import ImageSource
from ..models import ModelAdapter, Split
from .budget import MemoryBudget, SpillFolder

Normalize = Callable[[torch.Tensor], torch.Tensor]


def _nbytes(carry: Sequence[object]) -> int:
    return sum(c.element_size() * c.numel() for c in carry if isinstance(c, torch.Tensor))


def _to(carry: tuple, device: torch.device) -> tuple:
    return tuple(to_device(c, device) if isinstance(c, torch.Tensor) else c for c in carry)


class Batches:
    """The split's images, normalised on the device in the memory format of ``precision``, in
    fixed batches of ``batch_size`` (an int, or a plan made at the first use of :attr:`plan`)."""

    def __init__(self, source: ImageSource, normalize: Normalize, device: torch.device,
                 batch_size: int | Callable[[], BatchPlan], workers: int | None = None,
                 precision: Precision | None = None) -> None:
        self.source, self.normalize, self.device = source, normalize, device
        self._plan: BatchPlan | None = BatchPlan(batch_size, 0, f"batch {batch_size} (given)") \
            if isinstance(batch_size, int) else None
        self._planner = batch_size
        self.workers, self.precision = workers, precision
        self.n = len(source)
        self.progress: Callable[[int, int], None] | None = None  # (images read, total), while set

    @property
    def plan(self) -> BatchPlan:
        """The batch plan (made on first use: it may run a probe batch)."""
        if self._plan is None:
            assert callable(self._planner)
            self._plan = self._planner()
        return self._plan

    @property
    def batch_size(self) -> int:
        return self.plan.size

    def bounds(self) -> list[tuple[int, int]]:
        n, b = self.n, self.batch_size
        return [(i, min(i + b, n)) for i in range(0, n, b)]

    def images(self, i: int, j: int) -> torch.Tensor:
        """Images ``i:j``, normalised on the device (one read, for single batches)."""
        return self._ready(to_device(self.source.images(range(i, j)), self.device), j)

    def at(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` (a few), normalised on the device."""
        return self._format(self.normalize(to_device(self.source.images(idx), self.device)))

    def stream(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(i, j, images i:j normalised on the device)`` for every batch, in order (one pass,
        read ahead by the source's DataLoader workers when streamed)."""
        batches = self.source.batches(None, self.batch_size, device=self.device, workers=self.workers)
        for (i, j), xb in zip(self.bounds(), batches):
            yield i, j, self._ready(xb, j)

    def _format(self, x: torch.Tensor) -> torch.Tensor:
        return prepare_input(x, self.precision) if self.precision is not None else x

    def _ready(self, xb: torch.Tensor, j: int) -> torch.Tensor:
        out = self._format(self.normalize(xb))
        if self.progress is not None:
            self.progress(j, self.n)
        return out


class Store:
    """Where cached values go: memory on the device within the budget, else a memory-mapped
    file (``spill="mmap"``, when the spill folder has room), else nowhere (recomputed)."""

    def __init__(self, budget: MemoryBudget, spill: str, folder: SpillFolder, device: torch.device) -> None:
        self.budget, self.spill, self.folder, self.device = budget, spill, folder, device

    def place(self, what: str, nbytes: int) -> str:
        """``"memory"``, ``"mmap"`` or ``"recompute"`` for ``nbytes`` of ``what`` (memory is reserved)."""
        if self.budget.reserve(what, nbytes):
            return "memory"
        if self.spill == "mmap" and self.folder.room_for(nbytes):
            return "mmap"
        return "recompute"

    def empty(self, where: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if where == "mmap":
            return self.folder.tensor(shape, dtype)
        return torch.empty(shape, dtype=dtype, device=self.device)

    def keep(self, where: str, carry: tuple) -> tuple:
        if where == "mmap":
            return tuple(self.folder.copy(c) if isinstance(c, torch.Tensor) else c for c in carry)
        return carry


def _describe(where: str, what: str, nbytes: int) -> str:
    if where == "recompute":
        return "not cached (over the memory budget): recomputed per batch"
    place = "in memory" if where == "memory" else "in a memory-mapped file (over the memory budget)"
    return f"{what} {nbytes / 2 ** 20:.1f} MiB {place}"


class StageCache:
    """Activations entering each stage of a :class:`~workbench.models.ResNet`."""

    kind = "stages"

    def __init__(self, adapter: ModelAdapter, data: Batches, store: Store) -> None:
        self.model, self.data, self.store = adapter.model, data, store
        self.stages: list[str] = list(adapter.stages or ())
        self._cache: dict[str, tuple[torch.Tensor | None, str]] = {}  # stage -> (activation or None, where)

    def cut_for(self, adapter: ModelAdapter, names: Sequence[str]) -> str | None:
        """The first stage owning any of ``names`` (None for no names)."""
        return adapter.split(names).cut if names else None

    def logits(self, params: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        return torch.cat([self._run(params, h, stage) for h in self._batches(stage)])

    def batch_carry(self, stage: str, i: int, j: int) -> tuple:
        return (self._entering(stage, i, j),)

    def subset_logits(self, params: dict[str, torch.Tensor], stage: str, idx: torch.Tensor) -> torch.Tensor:
        """Logits of examples ``idx`` only: from the cached activation, else from their images."""
        act = self._activation(stage)
        b, dev = self.data.batch_size, self.data.device
        out = []
        for k in range(0, len(idx), b):
            sel = idx[k:k + b]
            if act is not None:
                h = to_device(act[sel.to(act.device)], dev)
            else:
                h = self.data.at(sel)
                h = h if stage == self.stages[0] else self.model(h, stop=stage)
            out.append(self._run(params, h, stage))
        return torch.cat(out)

    def _run(self, params: dict[str, torch.Tensor], h: torch.Tensor, stage: str) -> torch.Tensor:
        if not params:
            return self.model(h, start=stage)
        return functional_call(self.model, params, (h,), {"start": stage})

    def _batches(self, stage: str) -> Iterator[torch.Tensor]:
        act = self._activation(stage)
        if act is None:
            yield from self._entering_all(stage)
            return
        for i, j in self.data.bounds():
            yield to_device(act[i:j], self.data.device)

    def _cached_before(self, stage: str) -> tuple[str, torch.Tensor] | None:
        """The nearest stage before ``stage`` whose activation is cached, with it."""
        for src in reversed(self.stages[:self.stages.index(stage)]):
            act = self._cache.get(src, (None, ""))[0]
            if act is not None:
                return src, act
        return None

    def _entering(self, stage: str, i: int, j: int) -> torch.Tensor:
        """Activation entering ``stage`` for examples ``i:j``, from the nearest cached stage."""
        near = self._cached_before(stage)
        if near is not None:
            return self.model(to_device(near[1][i:j], self.data.device), start=near[0], stop=stage)
        h = self.data.images(i, j)
        return h if stage == self.stages[0] else self.model(h, stop=stage)

    def _entering_all(self, stage: str) -> Iterator[torch.Tensor]:
        """Activation entering ``stage`` batch by batch, in one pass (from the nearest cached stage,
        else from the images)."""
        near = self._cached_before(stage)
        if near is not None:
            src, act = near
            for i, j in self.data.bounds():
                yield self.model(to_device(act[i:j], self.data.device), start=src, stop=stage)
            return
        for _, _, h in self.data.stream():
            yield h if stage == self.stages[0] else self.model(h, stop=stage)

    def _activation(self, stage: str) -> torch.Tensor | None:
        if stage not in self._cache:
            probe = self._entering(stage, 0, 1)
            shape = (self.data.n, *probe.shape[1:])
            where = self.store.place(f"activation entering {stage}", probe.element_size() * probe[0].numel() * shape[0])
            act = None if where == "recompute" else self._fill(stage, self.store.empty(where, shape, probe.dtype))
            self._cache[stage] = (act, where)
        return self._cache[stage][0]

    def _fill(self, stage: str, out: torch.Tensor) -> torch.Tensor:
        """``out`` filled with the activation entering ``stage``, batch by batch (no concatenation:
        half the peak memory, and no copy of the whole cache)."""
        for (i, j), h in zip(self.data.bounds(), self._entering_all(stage)):
            out[i:j] = h
        return out

    def info(self) -> dict[str, str]:
        return {s: _describe(w, str(tuple(a.shape)) if a is not None else "", a.element_size() * a.numel()
                             if a is not None else 0) for s, (a, w) in self._cache.items()}

    def memory_bytes(self) -> int:
        """Bytes of cached activations held in memory (not counting memory-mapped ones)."""
        return sum(a.element_size() * a.numel() for a, w in self._cache.values() if a is not None and w == "memory")

    def clear(self) -> None:
        """Drop every cached activation (and its share of the budget)."""
        for s in self._cache:
            self.store.budget.release(f"activation entering {s}")
        self._cache.clear()


class GraphCache:
    """The values crossing each cut of a traced model, per batch."""

    def __init__(self, adapter: ModelAdapter, data: Batches, store: Store) -> None:
        self.model: nn.Module = adapter.model
        self.data, self.store = data, store
        self._cache: dict[int, tuple[list[tuple] | None, str]] = {}  # cut index -> (per-batch carries, where)
        self._splits: dict[int, Split] = {}

    def cut_for(self, adapter: ModelAdapter, names: Sequence[str]) -> Split | None:
        """The split for edits of ``names`` (None for no names)."""
        return adapter.split(names) if names else None

    def logits(self, params: dict[str, torch.Tensor], split: Split) -> torch.Tensor:
        return torch.cat([split.suffix(c, params) for c in self._carries(split)])

    def batch_carry(self, split: Split, i: int, j: int) -> tuple:
        return split.prefix(self.data.images(i, j))

    def subset_logits(self, params: dict[str, torch.Tensor], split: Split, idx: torch.Tensor) -> torch.Tensor:
        """Logits of examples ``idx`` only: the cached carries gathered batch by batch where every
        carry is a per-example tensor, else the prefix run on their images."""
        cached = self._cache.get(split.index, (None, ""))[0] if split.kind != "full" else None
        dev = self.data.device
        if cached is not None and all(isinstance(c, torch.Tensor) and c.dim() > 0 and c.shape[0] == j - i
                                      for (i, j), carry in zip(self.data.bounds(), cached) for c in carry):
            parts, order = [], []
            for (i, j), carry in zip(self.data.bounds(), cached):
                local = idx[(idx >= i) & (idx < j)]
                if len(local):
                    sel = local - i
                    parts.append(split.suffix(tuple(to_device(c[sel.to(c.device)], dev) for c in carry), params))
                    order.append(local)
            if not parts:
                return torch.empty(0)
            return _reorder(torch.cat(parts), torch.cat(order), idx)
        b = self.data.batch_size
        return torch.cat([split.suffix(split.prefix(self.data.at(idx[k:k + b])), params)
                          for k in range(0, len(idx), b)])

    def _carries(self, split: Split) -> Iterator[tuple]:
        if split.kind == "full":  # nothing is cached: the carry is the images
            for _, _, h in self.data.stream():
                yield (h,)
            return
        if split.index not in self._cache:
            self._cache[split.index] = self._fill(split)
            self._splits[split.index] = split
        cached = self._cache[split.index][0]
        if cached is not None:
            for c in cached:
                yield _to(c, self.data.device)
        else:
            for _, _, h in self.data.stream():
                yield split.prefix(h)

    def _fill(self, split: Split) -> tuple[list[tuple] | None, str]:
        """Every batch's carry, where the store places them (None: recomputed per batch)."""
        out: list[tuple] = []
        where = ""
        for _, _, h in self.data.stream():
            carry = split.prefix(h)
            if not where:
                where = self.store.place(f"values crossing the cut before {split.cut}",
                                         _nbytes(carry) * len(self.data.bounds()))
                if where == "recompute":
                    return None, where
            out.append(self.store.keep(where, carry))
        return out, where

    def info(self) -> dict[str, str]:
        out = {}
        for k, (c, w) in self._cache.items():
            what = f"{len(c[0]) if c else 0} values per batch," if c is not None else ""
            out[f"before {self._splits[k].cut}"] = _describe(w, what, sum(_nbytes(b) for b in c or ()))
        return out

    def memory_bytes(self) -> int:
        """Bytes of cached carries held in memory (not counting memory-mapped ones)."""
        return sum(_nbytes(b) for c, w in self._cache.values() if c is not None and w == "memory" for b in c)

    def clear(self) -> None:
        """Drop every cached carry (and its share of the budget)."""
        for k in self._cache:
            self.store.budget.release(f"values crossing the cut before {self._splits[k].cut}")
        self._cache.clear()


def _reorder(logits: torch.Tensor, where: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``logits`` (for examples ``where``) in the order of ``idx``."""
    pos = {int(w): k for k, w in enumerate(where.tolist())}
    return logits[torch.tensor([pos[int(i)] for i in idx.tolist()], dtype=torch.long, device=logits.device)]
