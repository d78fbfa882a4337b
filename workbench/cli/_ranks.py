"""``evaluate`` under ``torchrun``: join the process group, pick each rank's device and threads,
run a step on rank 0 only, and check that the ranks see the same model, data and draw."""
from __future__ import annotations

import argparse
import hashlib
from typing import Any, Callable, TypeVar

import torch

from ..training.distributed import Distributed, from_env, launched, threads_per_rank

T = TypeVar("T")


class Rank0Failed(Exception):
    """Raised on the other ranks when a step that only rank 0 runs failed there (rank 0 prints why)."""


def join(args: argparse.Namespace) -> Distributed | None:
    """Join torchrun's process group (None for one process) and set the CPU threads.

    Each rank computes on ``cuda:LOCAL_RANK`` when ``--device`` is ``cuda`` or left out on a
    machine with CUDA (NCCL), else on the CPU (gloo). Threads: ``--threads``, else under
    torchrun this machine's cores divided by its ranks (:func:`threads_per_rank`), else
    PyTorch's default. ``args.device`` is set to the rank's device.
    """
    from ..device import default_device, resolve_device

    if not launched():
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return None
    dev = resolve_device(args.device, what="--device") if args.device is not None else default_device()
    if dev.type == "cuda" and args.device is not None and ":" in str(args.device):
        raise ValueError(f"--device {args.device} under torchrun: each rank computes on cuda:LOCAL_RANK, its own "
                         "GPU; pass --device cuda or leave --device out")
    dist = from_env(dev.type)
    assert dist is not None
    torch.set_num_threads(args.threads if args.threads is not None else threads_per_rank())
    args.device = str(dist.device)
    return dist


def on_rank0(dist: Distributed | None, fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0 only, its result sent to every rank.

    A ``ValueError`` on rank 0 propagates there (its message is the one printed) and raises
    :class:`Rank0Failed` on the others, so that every rank stops instead of waiting.
    """
    if dist is None:
        return fn()
    if dist.is_main:
        try:
            value = fn()
        except ValueError as err:
            dist.broadcast_object(("error", str(err)))
            raise
        dist.broadcast_object(("ok", value))
        return value
    kind, value = dist.broadcast_object(None)
    if kind == "error":
        raise Rank0Failed(value)
    return value


def fingerprint(base_preds: torch.Tensor, indices: torch.Tensor, targets: torch.Tensor,
                device: torch.device | str) -> dict[str, Any]:
    """What must agree between the ranks: the base predictions ``(N,)`` and the draw ``(n,)``, ``(n,)``."""
    digest = hashlib.sha256()
    for t in (base_preds, indices, targets):
        digest.update(t.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return {"digest": digest.hexdigest(), "device": str(device)}


def disagreement(prints: list[dict[str, Any]]) -> str | None:
    """Why the ranks' :func:`fingerprint` differ (None: they agree on everything but the device)."""
    ranks = [r for r, p in enumerate(prints) if p["digest"] != prints[0]["digest"]]
    if not ranks:
        return None
    return (f"rank(s) {ranks} see other base predictions or another edit draw than rank 0 (devices "
            f"{[p['device'] for p in prints]}): their results would not equal one process's. Run every rank on "
            "the same kind of device with the same data and model, or run one process")


def check_agree(dist: Distributed, base_preds: torch.Tensor, indices: torch.Tensor, targets: torch.Tensor) -> str:
    """Every rank's fingerprint compared (ValueError on every rank if any differs); returns the ranks'
    devices, e.g. ``"cpu"`` or ``"cuda:0,cuda:1"``."""
    prints = dist.all_gather_object(fingerprint(base_preds, indices, targets, dist.device))
    problem = disagreement(prints)
    if problem:
        raise ValueError(problem)
    return ",".join(sorted({p["device"] for p in prints}))
