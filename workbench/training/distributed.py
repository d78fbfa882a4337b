"""Process groups for ``torchrun``: DDP for ``train``, shared edits for ``evaluate``.

``torchrun --nproc_per_node=N -m workbench train ...`` trains with DistributedDataParallel;
``torchrun --nproc_per_node=N -m workbench evaluate ...`` shares the N edits among the ranks
(:mod:`workbench.evaluation.shards`) and gathers their outcomes with :meth:`Distributed.all_gather_object`.

NCCL on GPUs (one per process, ``cuda:LOCAL_RANK``), gloo on CPUs. The training loop uses
the object returned by :func:`from_env` through ``.rank``, ``.world``, ``.wrap(model)``,
``.barrier()`` and ``.all_reduce_mean_(tensors)``; ``evaluate`` through ``.all_gather_object`` and
``.broadcast_object``.

Gradients with Editable Training: the base loss goes through the DDP wrapper, while the
editor and the locality term use the same leaf parameters through ``functional_call`` on the
unwrapped module. All terms are summed into one loss and one ``backward()``: autograd sums
every contribution into a parameter's gradient accumulator before it runs once, so DDP's
reducer all-reduces the gradient of the whole objective (the editor's inner
``torch.autograd.grad`` calls do not run the accumulators). The editor's own learnable
hyperparameters live outside DDP and are averaged by :meth:`Distributed.all_reduce_mean_`.
``tests/training/test_distributed.py`` checks that two gloo ranks, which draw different edits, end
with identical weights.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as tdist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Distributed:
    """One process of a DDP job (see :func:`from_env`)."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)``; rank 0's weights and buffers are broadcast to all."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        # The second-order graph can hand a 1x1 conv's gradient back with other strides; DDP then
        # copies it into its bucket (correct, a little slower) and warns once per process.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)

    def broadcast_buffers_(self, model: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank, in place.

        DDP broadcasts them at the start of each forward, so after the last step of an epoch
        the ranks differ by their own last update; this makes them identical again.
        """
        for b in model.buffers():
            tdist.broadcast(b, src=0)

    def barrier(self) -> None:
        if self.backend == "nccl":
            tdist.barrier(device_ids=[self.device.index])
        else:
            tdist.barrier()

    def all_reduce_mean_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Average tensors over the ranks, in place."""
        for t in tensors:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
            t.div_(self.world)

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable) on every rank (the others' ``obj`` is ignored)."""
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def abort(self) -> None:
        """Leave the process group at once, without waiting for the other ranks (after an error)."""
        if tdist.is_initialized():
            tdist.destroy_process_group()

    def close(self) -> None:
        """Leave the process group (after the other ranks are done, so none is left waiting)."""
        if tdist.is_initialized():
            self.barrier()
            tdist.destroy_process_group()


def launched() -> bool:
    """True in a process started by ``torchrun`` with more than one rank (``RANK`` set, ``WORLD_SIZE > 1``)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def threads_per_rank() -> int:
    """CPU threads for one rank: the cores this process may use, divided by the ranks on this machine.

    torchrun sets ``OMP_NUM_THREADS=1`` for every rank unless it is set already, which leaves
    cores idle on a machine with more cores than ranks; this is the share that does not.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, cores // max(1, local))


def from_env(device: str | torch.device | None = None) -> Distributed | None:
    """Join the process group described by torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

    Returns None for a single process (no ``RANK`` or ``WORLD_SIZE <= 1``).
    ``device``: None picks ``cuda:LOCAL_RANK`` when CUDA is present, else the CPU; ``"cuda"``
    without an index is mapped to ``cuda:LOCAL_RANK``.
    """
    if not launched():
        return None
    world = int(os.environ["WORLD_SIZE"])
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if device is None:
        dev = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"rank {rank} would compute on {dev}, but this machine has {torch.cuda.device_count()} "
                         "CUDA GPU(s); start at most one process per GPU (torchrun --nproc-per-node "
                         f"{torch.cuda.device_count()}) or pass --device cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Distributed(rank, world, local, dev, backend)
