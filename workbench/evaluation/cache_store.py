"""How the evaluator reads a split's images and where its caches go.

:class:`Batches` gives the split's images normalised on the device, in fixed batches (one pass
at a time, read ahead by DataLoader workers when streamed from disk). :class:`Store` places a
cache against the evaluator's :class:`~workbench.evaluation.budget.MemoryBudget`: in memory
while it fits, else in a memory-mapped file, else nowhere (recomputed); on the CPU a cache over
``resident_max`` goes to the file first.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterator, Sequence

import torch

from ..batching import MIN_BATCH, BatchPlan, Precision, prepare_input, to_device
from ..data import ImageSource
from .budget import RESIDENT_MAX, MemoryBudget, SpillFolder, release_heap

__all__ = ["LEAD_IMAGES", "Batches", "Store", "carry_bytes", "carry_to", "describe_place"]

Normalize = Callable[[torch.Tensor], torch.Tensor]


def carry_bytes(carry: Sequence[object]) -> int:
    return sum(c.element_size() * c.numel() for c in carry if isinstance(c, torch.Tensor))


def carry_to(carry: tuple, device: torch.device) -> tuple:
    return tuple(to_device(c, device) if isinstance(c, torch.Tensor) else c for c in carry)


LEAD_IMAGES = 64  # the first images of a pass, read and scored in batches of MIN_BATCH (the first page comes early)


class Batches:
    """The split's images, normalised on the device in the memory format of ``precision``, in
    fixed batches of ``batch_size`` (an int, or a plan made at the first use of :attr:`plan`).

    With a planned batch larger than :data:`~workbench.batching.MIN_BATCH`, the first
    :data:`LEAD_IMAGES` images come in batches of ``MIN_BATCH`` (a ResNet-50 on one CPU thread
    scores 16 images in about 2 s, 256 in about 30 s), so the first mistakes are scored within
    seconds; from ``MIN_BATCH`` images up the logits do not depend on the batch size. The
    bounds are fixed for the evaluator's life: every pass and cache uses the same batches.
    """

    def __init__(self, source: ImageSource, normalize: Normalize, device: torch.device,
                 batch_size: int | Callable[[], BatchPlan], workers: int | None = None,
                 precision: Precision | None = None) -> None:
        self.source, self.normalize, self.device = source, normalize, device
        self._plan: BatchPlan | None = BatchPlan(batch_size, 0, f"batch {batch_size} (given)", given=True) \
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

    @property
    def lead(self) -> int:
        """Images at the start read in batches of ``MIN_BATCH`` (0: none)."""
        return 0 if self.plan.given or self.batch_size <= MIN_BATCH else min(LEAD_IMAGES, self.n)

    def bounds(self) -> list[tuple[int, int]]:
        n, b, lead = self.n, self.batch_size, self.lead
        return ([(i, min(i + MIN_BATCH, lead)) for i in range(0, lead, MIN_BATCH)]
                + [(i, min(i + b, n)) for i in range(lead, n, b)])

    def images(self, i: int, j: int) -> torch.Tensor:
        """Images ``i:j``, normalised on the device (one read, for single batches)."""
        return self._ready(to_device(self.source.images(range(i, j)), self.device), j)

    def at(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` (a few), normalised on the device."""
        return self._format(self.normalize(to_device(self.source.images(idx), self.device)))

    def stream(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(i, j, images i:j normalised on the device)`` for every batch, in order (one pass,
        read ahead by the source's DataLoader workers when streamed)."""
        lead = self.lead
        batches = self.source.batches(None, self.batch_size, device=self.device, workers=self.workers) if not lead \
            else itertools.chain(self.source.batches(range(lead), MIN_BATCH, device=self.device, workers=0),
                                 self.source.batches(range(lead, self.n), self.batch_size, device=self.device,
                                                     workers=self.workers))
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
    file (``spill="mmap"``, when the spill folder has room), else nowhere (recomputed).

    On the CPU, a cache over ``resident_max`` bytes goes to the file first, budget or not
    (:data:`~.budget.RESIDENT_MAX`: resident file pages read as fast as memory and the kernel may
    drop them). :attr:`reasons` says, per cache, why it went where it did.
    """

    def __init__(self, budget: MemoryBudget, spill: str, folder: SpillFolder, device: torch.device, *,
                 resident_max: int = RESIDENT_MAX) -> None:
        self.budget, self.spill, self.folder, self.device = budget, spill, folder, device
        self.resident_max = int(resident_max)
        self.reasons: dict[str, str] = {}

    def place(self, what: str, nbytes: int) -> str:
        """``"memory"``, ``"mmap"`` or ``"recompute"`` for ``nbytes`` of ``what`` (memory is reserved).

        On the CPU a spill folder on a RAM disk (:attr:`~.budget.SpillFolder.in_memory`) takes
        nothing: its files would be memory outside the budget.
        """
        cpu = self.device.type == "cpu"
        ram_disk = cpu and self.spill == "mmap" and self.folder.in_memory

        def can_map() -> bool:
            return self.spill == "mmap" and not ram_disk and self.folder.room_for(nbytes)

        if cpu and nbytes > self.resident_max and can_map():
            self.reasons[what] = f"larger than {self.resident_max / 2 ** 20:.4g} MiB: the kernel pages it"
            return "mmap"
        note = (f"; the spill folder {self.folder.root} is on a RAM disk, where a file is memory too: point "
                "$WORKBENCH_CACHE at a folder on a disk and reopen") if ram_disk else ""
        if self.budget.reserve(what, nbytes):
            self.reasons[what] = "within the memory budget" + (note if nbytes > self.resident_max else "")
            return "memory"
        self.reasons[what] = "over the memory budget" + note
        return "mmap" if can_map() else "recompute"

    def why(self, what: str) -> str:
        """Why ``what`` went where it did (its :attr:`reasons` entry; ``""`` if it was never placed)."""
        return self.reasons.get(what, "")

    def empty(self, where: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        if where == "mmap":
            return self.folder.tensor(shape, dtype)
        return torch.empty(shape, dtype=dtype, device=self.device)

    def keep(self, where: str, carry: tuple) -> tuple:
        """``carry`` as kept at ``where`` (copied into the file when memory-mapped).

        The heap is trimmed first (:func:`~.budget.release_heap`): what the batches before freed
        goes back to the OS. Copied into a file, each batch's carry is freed; kept in memory, the
        carries sit between the batch's freed temporaries. Either way glibc held on to about as
        much again as the cache (docs/scale.md, the memory rows before and after).
        """
        release_heap()
        if where == "mmap":
            return tuple(self.folder.copy(c) if isinstance(c, torch.Tensor) else c for c in carry)
        return carry

    def write(self, out: torch.Tensor, i: int, j: int, h: torch.Tensor) -> None:
        """Rows ``i:j`` of the cache ``out`` (in memory or a file) are ``h`` (the heap trimmed first, as in :meth:`keep`)."""
        release_heap()
        out[i:j] = h


def describe_place(where: str, what: str, nbytes: int, why: str = "") -> str:
    """One line for ``cache_info``: ``what``'s size and where it is kept (``why``: from :attr:`Store.reasons`)."""
    if where == "memory":
        place = "in memory" + (f" ({why})" if why and why != "within the memory budget" else "")
        return f"{what} {nbytes / 2 ** 20:.1f} MiB {place}"
    why = why or "over the memory budget"
    if where == "recompute":
        return f"not cached ({why}): recomputed per batch"
    place = f"in a memory-mapped file ({why})"
    return f"{what} {nbytes / 2 ** 20:.1f} MiB {place}"
