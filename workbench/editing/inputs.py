"""Checks of an edit's inputs (images and target labels) and of a batch of images to score.

:func:`check_images` is the one shape/dtype check of images given to a model (``edit()`` and
``EditSession.probabilities`` share it, so both refuse a 4000 x 4000 image with the same
words); :func:`check_inputs` adds the target labels and the batch bound of an edit.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from ..models.adapter import ModelAdapter, adapt
from .editor_defaults import MAX_EDIT_BATCH, MAX_EDIT_BATCH_NOTE


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(model.parameters())
    return p.dtype, p.device


def check_images(model: nn.Module | ModelAdapter, x: object,
                 expected: Sequence[int] | None = None) -> torch.Tensor:
    """``x`` as a ``(N, C, H, W)`` float batch on the model's device and dtype, checked.

    Args:
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float, normalised as the model expects.
        expected: ``(C, H, W)`` the model takes (default: the adapter's ``input_shape``; no
            shape check when neither is known).
    Raises:
        TypeError: not a tensor, or not floating point (uint8 images must be normalised first).
        ValueError: a shape the model does not take, an empty batch, NaN or inf.
    """
    adapter = adapt(model)
    dtype, device = _model_dtype_device(adapter.model)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dtype == torch.uint8 or not torch.is_floating_point(x):
        raise TypeError(f"x has dtype {x.dtype}; the model takes normalised float images: "
                        "use bundle.normalize(x) on uint8 images first")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    want = tuple(expected) if expected is not None else adapter.input_shape or tuple(x.shape[1:])
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(want):
        raise ValueError(f"x has shape {tuple(x.shape)}; this model takes (N, {', '.join(map(str, want))}) "
                         f"or a single image {tuple(want)}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: give at least one image")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf values; check the image and its normalisation")
    return x.to(device=device, dtype=dtype)


def check_inputs(model: nn.Module | ModelAdapter, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise edit inputs.

    Args:
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float, normalised as the model expects;
            N <= :data:`~workbench.editing.editor_defaults.MAX_EDIT_BATCH`.
        y_ref: an int, a sequence of N ints, or an ``(N,)`` integer tensor.
    Returns:
        ``(x (N, C, H, W), y (N,) int64)`` on the model's device and dtype.
    """
    adapter = adapt(model)
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] == 0:
        raise ValueError("empty batch: give at least one image and one target label")
    if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] > MAX_EDIT_BATCH:
        raise ValueError(f"a batch edit takes at most {MAX_EDIT_BATCH} images, got {x.shape[0]}: every step runs "
                         f"the edited layers forward and backward on the whole batch ({MAX_EDIT_BATCH_NOTE}). "
                         f"Edit the images in batches of at most {MAX_EDIT_BATCH} (each batch is one edit, "
                         "undone as one)")
    xb = check_images(adapter, x)
    if isinstance(y_ref, torch.Tensor):
        if y_ref.dtype.is_floating_point or y_ref.dtype == torch.bool:
            raise TypeError(f"y_ref must hold integer labels, got dtype {y_ref.dtype}")
        y = y_ref.reshape(-1).long()
    elif isinstance(y_ref, (int,)) and not isinstance(y_ref, bool):
        y = torch.tensor([y_ref])
    elif isinstance(y_ref, Sequence) and not isinstance(y_ref, str) and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in y_ref):
        y = torch.tensor(list(y_ref), dtype=torch.long)
    else:
        raise TypeError(f"y_ref must be an int label, a list of ints or an integer tensor, got {y_ref!r}")
    if y.numel() != xb.shape[0]:
        raise ValueError(f"{xb.shape[0]} image(s) but {y.numel()} target label(s); give one label per image")
    n_cls = adapter.num_classes
    if n_cls is not None and (bool((y < 0).any()) or bool((y >= n_cls).any())):
        raise ValueError(f"target label(s) {y.tolist()} out of range: this model has classes 0..{n_cls - 1}")
    return xb, y.to(xb.device)
