"""What the evaluator caches: the values an edit cannot change, batch by batch.

Two caches with one interface (``cut_for(names)``, ``logits(params, cut)``, ``info()``):

* :class:`StageCache` for the project's ResNets (a chain of stages): per stage and lazily,
  the activation entering it; a stage over the memory bound is recomputed batch by batch
  from the nearest cached earlier stage.
* :class:`GraphCache` for any other model: per cut (:class:`~workbench.models.Split`) and
  lazily, the values crossing the cut for every batch (tensors, and the ints a traced graph
  carries such as the batch size); over the bound, they are recomputed per batch from the
  images. A ``"full"`` split (untraceable model) caches nothing and runs the full forward.

Both run the same operations on the same batch slices as a plain full forward in batches
of ``batch_size``, so base weights give the base logits bit for bit on the CPU.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call

from ..models import ModelAdapter, Split

Normalize = Callable[[torch.Tensor], torch.Tensor]


def _nbytes(carry: Sequence[object]) -> int:
    return sum(c.element_size() * c.numel() for c in carry if isinstance(c, torch.Tensor))


class Batches:
    """The split's images, normalised on the device, in fixed batches."""

    def __init__(self, x: torch.Tensor, normalize: Normalize, device: torch.device, batch_size: int) -> None:
        self.x, self.normalize, self.device, self.batch_size = x, normalize, device, batch_size
        self.progress: Callable[[int, int], None] | None = None  # (images read, total), while set

    def bounds(self) -> list[tuple[int, int]]:
        n, b = len(self.x), self.batch_size
        return [(i, min(i + b, n)) for i in range(0, n, b)]

    def images(self, i: int, j: int) -> torch.Tensor:
        out = self.normalize(self.x[i:j].to(self.device))
        if self.progress is not None:
            self.progress(j, len(self.x))
        return out


class StageCache:
    """Activations entering each stage of a :class:`~workbench.models.ResNet`."""

    kind = "stages"

    def __init__(self, adapter: ModelAdapter, data: Batches, cache_limit_bytes: int) -> None:
        self.model, self.data, self.limit = adapter.model, data, cache_limit_bytes
        self.stages: list[str] = list(adapter.stages or ())
        self._cache: dict[str, torch.Tensor | None] = {}  # None: too large, recomputed per batch

    def cut_for(self, adapter: ModelAdapter, names: Sequence[str]) -> str | None:
        """The first stage owning any of ``names`` (None for no names)."""
        return adapter.split(names).cut if names else None

    def logits(self, params: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        return torch.cat([self._run(params, h, stage) for h in self._batches(stage)])

    def batch_carry(self, stage: str, i: int, j: int) -> tuple:
        return (self._entering(stage, i, j),)

    def subset_logits(self, params: dict[str, torch.Tensor], stage: str, idx: torch.Tensor) -> torch.Tensor | None:
        """Logits of examples ``idx`` only (None when the activation is not cached)."""
        act = self._activation(stage)
        if act is None:
            return None
        b = self.data.batch_size
        return torch.cat([self._run(params, act[idx[k:k + b].to(act.device)], stage) for k in range(0, len(idx), b)])

    def _run(self, params: dict[str, torch.Tensor], h: torch.Tensor, stage: str) -> torch.Tensor:
        if not params:
            return self.model(h, start=stage)
        return functional_call(self.model, params, (h,), {"start": stage})

    def _batches(self, stage: str) -> Iterator[torch.Tensor]:
        act = self._activation(stage)
        for i, j in self.data.bounds():
            yield act[i:j] if act is not None else self._entering(stage, i, j)

    def _entering(self, stage: str, i: int, j: int) -> torch.Tensor:
        """Activation entering ``stage`` for examples ``i:j``, from the nearest cached stage."""
        k = self.stages.index(stage)
        for src in reversed(self.stages[:k]):
            act = self._cache.get(src)
            if act is not None:
                return self.model(act[i:j], start=src, stop=stage)
        h = self.data.images(i, j)
        return h if stage == self.stages[0] else self.model(h, stop=stage)

    def _activation(self, stage: str) -> torch.Tensor | None:
        if stage not in self._cache:
            probe = self._entering(stage, 0, 1)
            nbytes = probe.element_size() * probe.numel() * len(self.data.x)
            self._cache[stage] = None if nbytes > self.limit else self._fill(stage)
        return self._cache[stage]

    def _fill(self, stage: str) -> torch.Tensor:
        """The activation entering ``stage`` for every example, written batch by batch into one
        tensor (no concatenation: half the peak memory, and no copy of the whole cache)."""
        out: torch.Tensor | None = None
        for i, j in self.data.bounds():
            h = self._entering(stage, i, j)
            if out is None:
                out = h.new_empty((len(self.data.x), *h.shape[1:]))
            out[i:j] = h
        assert out is not None  # the split is never empty (checked by the Evaluator)
        return out

    def info(self) -> dict[str, str]:
        return {s: ("not cached (over cache_limit_bytes)" if a is None else
                    f"{tuple(a.shape)} {a.element_size() * a.numel() / 2 ** 20:.1f} MiB")
                for s, a in self._cache.items()}


class GraphCache:
    """The values crossing each cut of a traced model, per batch."""

    def __init__(self, adapter: ModelAdapter, data: Batches, cache_limit_bytes: int) -> None:
        self.model: nn.Module = adapter.model
        self.data, self.limit = data, cache_limit_bytes
        self._cache: dict[int, list[tuple] | None] = {}  # cut index -> per-batch carries (None: too large)
        self._splits: dict[int, Split] = {}

    def cut_for(self, adapter: ModelAdapter, names: Sequence[str]) -> Split | None:
        """The split for edits of ``names`` (None for no names)."""
        return adapter.split(names) if names else None

    def logits(self, params: dict[str, torch.Tensor], split: Split) -> torch.Tensor:
        return torch.cat([split.suffix(c, params) for c in self._carries(split)])

    def batch_carry(self, split: Split, i: int, j: int) -> tuple:
        return split.prefix(self.data.images(i, j))

    def subset_logits(self, params: dict[str, torch.Tensor], split: Split, idx: torch.Tensor) -> torch.Tensor | None:
        """Logits of examples ``idx`` only: the cached carries gathered batch by batch (None
        when nothing is cached or a carry is not a per-example tensor)."""
        if split.kind == "full":
            return None
        cached = self._cache.get(split.index)
        if cached is None:
            return None
        out = torch.empty(0)
        parts, order = [], []
        for (i, j), carry in zip(self.data.bounds(), cached):
            local = idx[(idx >= i) & (idx < j)]
            if not len(local):
                continue
            if not all(isinstance(c, torch.Tensor) and c.dim() > 0 and c.shape[0] == j - i for c in carry):
                return None
            sel = (local - i).to(carry[0].device)
            parts.append(split.suffix(tuple(c[sel] for c in carry), params))
            order.append(local)
        if not parts:
            return out
        logits, where = torch.cat(parts), torch.cat(order)
        return _reorder(logits, where, idx)

    def _carries(self, split: Split) -> Iterator[tuple]:
        if split.kind == "full":  # nothing is cached: the carry is the images
            for i, j in self.data.bounds():
                yield (self.data.images(i, j),)
            return
        if split.index not in self._cache:
            bounds = self.data.bounds()
            first = split.prefix(self.data.images(*bounds[0]))
            if _nbytes(first) * len(bounds) > self.limit:
                self._cache[split.index] = None
            else:
                self._cache[split.index] = [first] + [split.prefix(self.data.images(i, j)) for i, j in bounds[1:]]
            self._splits[split.index] = split
        cached = self._cache[split.index]
        if cached is not None:
            yield from cached
        else:
            for i, j in self.data.bounds():
                yield split.prefix(self.data.images(i, j))

    def info(self) -> dict[str, str]:
        out = {}
        for k, c in self._cache.items():
            where = f"before {self._splits[k].cut}"
            out[where] = "not cached (over cache_limit_bytes)" if c is None else \
                f"{len(c[0]) if c else 0} values per batch, {sum(_nbytes(b) for b in c) / 2 ** 20:.1f} MiB"
        return out


def _reorder(logits: torch.Tensor, where: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``logits`` (for examples ``where``) in the order of ``idx``."""
    pos = {int(w): k for k, w in enumerate(where.tolist())}
    return logits[torch.tensor([pos[int(i)] for i in idx.tolist()], dtype=torch.long, device=logits.device)]
