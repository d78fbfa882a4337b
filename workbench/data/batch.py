"""The training-set positions of the batch being trained on, for code that needs them.

The trainer runs each step inside ``with batch_indices(idx):``; objectives (gradient
accounting splits clean from noisy examples) read :func:`current_batch_indices`. Objectives
keep their ``(model, x, y, step)`` signature.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

_CURRENT: contextvars.ContextVar[torch.Tensor | None] = contextvars.ContextVar("batch_indices", default=None)


@contextlib.contextmanager
def batch_indices(indices: torch.Tensor) -> Iterator[torch.Tensor]:
    """Within the block, :func:`current_batch_indices` returns ``indices`` ``(B,) int64``."""
    token = _CURRENT.set(indices)
    try:
        yield indices
    finally:
        _CURRENT.reset(token)


def current_batch_indices() -> torch.Tensor | None:
    """``(B,) int64`` positions in the training set of the current batch, or None outside training."""
    return _CURRENT.get()
