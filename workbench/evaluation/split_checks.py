"""What an :class:`~workbench.evaluation.Evaluator` is given, checked before any work.

The split's images (the first ``limit``), a batch size given, and that the model fits the data:
its input shape, its number of classes, and a forward pass that returns ``(n, classes)``
logits. Each error names the problem and the fix.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data import DataBundle, ImageSource
from ..models import ModelAdapter, check_logits, forward_logits


def batch_size_for(batch_size: int | None) -> int | None:
    """``batch_size``, checked (None: sized by :func:`workbench.batching.plan_batch`)."""
    if batch_size is None:
        return None
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def split_source(bundle: DataBundle, split: str, limit: int | None) -> ImageSource:
    """The images of ``split`` (the first ``limit``); a ValueError for a bad limit or an empty split."""
    src = bundle.image_source(split)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive integer (or None for the whole split), got {limit!r}")
        src = src.subset(range(min(limit, len(src))))
    if len(src) == 0:
        raise ValueError(f"the {split!r} split is empty; choose another split")
    return src


def classes_of(adapter: ModelAdapter, bundle: DataBundle) -> int:
    """The model's number of classes, after checking its input shape and classes against the data."""
    shape = tuple(adapter.input_shape or bundle.input_shape)
    if shape != bundle.input_shape:
        raise ValueError(f"the model takes images of shape {shape} but {bundle.name} has "
                         f"{bundle.input_shape}; load the data set the model was trained on")
    n_cls = int(adapter.num_classes or bundle.num_classes)
    if n_cls != bundle.num_classes:
        raise ValueError(f"the model has {n_cls} classes but {bundle.name} has {bundle.num_classes}")
    return n_cls


def check_forward(model: nn.Module, xs: torch.Tensor, data_name: str, num_classes: int) -> None:
    """The model takes ``xs: (n, C, H, W)`` and returns ``(n, num_classes)`` logits (ValueError)."""
    try:
        with torch.inference_mode():
            out = forward_logits(model, xs)
    except Exception as e:  # noqa: BLE001 - any failure here is a model/data mismatch
        raise ValueError(f"the model failed on {data_name} images of shape {tuple(xs.shape[1:])}: "
                         f"{type(e).__name__}: {e}. Give data the model was built for") from e
    check_logits(out, len(xs), num_classes)
