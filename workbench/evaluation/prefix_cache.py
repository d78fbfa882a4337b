"""What the evaluator caches: the values an edit cannot change, batch by batch.

Two caches with one interface (``cut_for(names)``, ``logits(params, cut)``,
``iter_logits(params, cut)`` batch by batch, ``subset_logits``, ``info()``):

* :class:`StageCache` for the project's ResNets (a chain of stages): per stage and lazily,
  the activation entering it.
* :class:`GraphCache` for any other model: per cut (:class:`~workbench.models.Split`) and
  lazily, the values crossing the cut for every batch (tensors, and the ints a traced graph
  carries such as the batch size). A ``"full"`` split (untraceable model) caches nothing and
  runs the full forward.

Where a cache goes is decided by :class:`Store` against the evaluator's memory budget
(:mod:`workbench.evaluation.cache_store`): in memory (on the device) while it fits, else in a
memory-mapped file (on the CPU also any cache over ``resident_max``), else nowhere (recomputed
batch by batch from the nearest cached earlier stage or cut, else from the images). A cache is filled by the first full pass at its cut,
batch by batch, and kept only when that pass completes: a pass stopped early (a cancelled
exact pass) leaves no half-filled cache.

Images come from an :class:`~workbench.data.ImageSource` (in memory or streamed from disk),
one pass at a time. Every path runs the same operations on the same batch slices as a plain
full forward in batches of ``batch_size``, so base weights give the base logits bit for bit on
the CPU, wherever the cache lives.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from ..batching import to_device
from ..models import ModelAdapter, Split
from ..models.graph_bridge import bridge
from .cache_store import Batches, Store, carry_bytes, carry_to, describe_place

__all__ = ["Batches", "GraphCache", "StageCache", "Store"]


def _stage_key(stage: str) -> str:
    """The name a stage's cache has in the budget and in the store's reasons."""
    return f"activation entering {stage}"


def _cut_key(cut: str) -> str:
    """The name a graph cut's cache has in the budget and in the store's reasons."""
    return f"values crossing the cut before {cut}"


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
        return torch.cat([out for _, _, out in self.iter_logits(params, stage)])

    def iter_logits(self, params: dict[str, torch.Tensor], stage: str) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(i, j, logits of examples i:j)`` batch by batch. The first pass at ``stage`` fills its
        cache as it goes; the cache is kept only when the pass completes (a pass closed early
        keeps nothing and gives its share of the budget back)."""
        if stage in self._cache:
            for (i, j), h in zip(self.data.bounds(), self._batches(stage)):
                yield i, j, self._run(params, h, stage)
            return
        probe = self._entering(stage, 0, 1)
        shape = (self.data.n, *probe.shape[1:])
        what = _stage_key(stage)
        where = self.store.place(what, probe.element_size() * probe[0].numel() * shape[0])
        out = None if where == "recompute" else self.store.empty(where, shape, probe.dtype)
        complete = False
        try:
            for (i, j), h in zip(self.data.bounds(), self._entering_all(stage)):
                if out is not None:
                    self.store.write(out, i, j, h)
                yield i, j, self._run(params, h, stage)
            complete = True
        finally:
            if complete:
                self._cache[stage] = (out, where)
            elif stage not in self._cache:  # a stopped pass: its reservation goes back
                self.store.budget.release(what)

    def batch_carry(self, stage: str, i: int, j: int) -> tuple:
        return (self._entering(stage, i, j),)

    def subset_logits(self, params: dict[str, torch.Tensor], stage: str, idx: torch.Tensor) -> torch.Tensor:
        """Logits of examples ``idx`` only: from the cached activation, else from the nearest cached
        earlier stage, else from their images (a subset never fills a cache: no pass over the split)."""
        act = self._cache.get(stage, (None, ""))[0]
        near = self._cached_before(stage) if act is None else None
        b, dev = self.data.batch_size, self.data.device
        out = []
        for k in range(0, len(idx), b):
            sel = idx[k:k + b]
            if act is not None:
                h = to_device(act[sel.to(act.device)], dev)
            elif near is not None:
                h = self.model(to_device(near[1][sel.to(near[1].device)], dev), start=near[0], stop=stage)
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
        act = self._cache[stage][0]
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

    def info(self) -> dict[str, str]:
        return {s: describe_place(w, str(tuple(a.shape)) if a is not None else "",
                                  a.element_size() * a.numel() if a is not None else 0,
                                  self.store.why(_stage_key(s)))
                for s, (a, w) in self._cache.items()}

    def memory_bytes(self) -> int:
        """Bytes of cached activations held in memory (not counting memory-mapped ones)."""
        return sum(a.element_size() * a.numel() for a, w in self._cache.values() if a is not None and w == "memory")

    def clear(self) -> None:
        """Drop every cached activation (and its share of the budget)."""
        for s in self._cache:
            self.store.budget.release(_stage_key(s))
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
        return torch.cat([out for _, _, out in self.iter_logits(params, split)])

    def iter_logits(self, params: dict[str, torch.Tensor], split: Split) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(i, j, logits of examples i:j)`` batch by batch; the first pass at a cut fills its
        cache as it goes, kept only when the pass completes (as :meth:`StageCache.iter_logits`)."""
        if split.kind == "full":  # nothing is cached: the carry is the images
            for i, j, h in self.data.stream():
                yield i, j, split.suffix((h,), params)
            return
        if split.index in self._cache:
            cached = self._cache[split.index][0]
            if cached is None:
                for i, j, carry in self._carries(split):
                    yield i, j, split.suffix(carry, params)
            else:
                for (i, j), c in zip(self.data.bounds(), cached):
                    yield i, j, split.suffix(carry_to(c, self.data.device), params)
            return
        what = _cut_key(split.cut)
        out: list[tuple] = []
        where, complete = "", False
        try:
            for i, j, carry in self._carries(split):
                if not where:
                    per_image = carry_bytes(carry) / max(j - i, 1)  # batches differ in size (the lead)
                    where = self.store.place(what, int(per_image * self.data.n))
                if where != "recompute":
                    out.append(self.store.keep(where, carry))
                yield i, j, split.suffix(carry, params)
            complete = True
        finally:
            if complete:
                self._cache[split.index] = (out if where != "recompute" else None, where)
                self._splits[split.index] = split
            elif split.index not in self._cache:  # a stopped pass: its reservation goes back
                self.store.budget.release(what)

    def _carries(self, split: Split) -> Iterator[tuple[int, int, tuple]]:
        """``(i, j, values crossing the cut)`` batch by batch: from the nearest earlier cut whose
        carries are kept, through the graph between the two cuts (the layers before it are not
        run again), else from the images."""
        for k in sorted((k for k in self._cache if k < split.index), reverse=True):
            cached = self._cache[k][0]
            step = bridge(self._splits[k], split) if cached is not None else None
            if cached is not None and step is not None:
                for (i, j), c in zip(self.data.bounds(), cached):
                    yield i, j, step(carry_to(c, self.data.device))
                return
        for i, j, h in self.data.stream():
            yield i, j, split.prefix(h)

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

    def info(self) -> dict[str, str]:
        out = {}
        for k, (c, w) in self._cache.items():
            what = f"{len(c[0]) if c else 0} values per batch," if c is not None else ""
            cut = self._splits[k].cut
            why = self.store.why(_cut_key(cut))
            out[f"before {cut}"] = describe_place(w, what, sum(carry_bytes(b) for b in c or ()), why)
        return out

    def memory_bytes(self) -> int:
        """Bytes of cached carries held in memory (not counting memory-mapped ones)."""
        return sum(carry_bytes(b) for c, w in self._cache.values() if c is not None and w == "memory" for b in c)

    def clear(self) -> None:
        """Drop every cached carry (and its share of the budget)."""
        for k in self._cache:
            self.store.budget.release(_cut_key(self._splits[k].cut))
        self._cache.clear()


def _reorder(logits: torch.Tensor, where: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``logits`` (for examples ``where``) in the order of ``idx``."""
    pos = {int(w): k for k, w in enumerate(where.tolist())}
    return logits[torch.tensor([pos[int(i)] for i in idx.tolist()], dtype=torch.long, device=logits.device)]
