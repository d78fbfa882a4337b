"""Plain batched inference helpers (batches, transfers and inference mode from :mod:`workbench.batching`)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..batching import default_batch_size, precision_for, scoring, to_device
from .outputs import forward_logits


def predict_logits(model: nn.Module, x: torch.Tensor, *, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   batch_size: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """Logits of ``model`` (in its current mode) for all of ``x``, exact fp32 under ``torch.inference_mode``.

    Args:
        x: ``(N, C, H, W)`` uint8 images (with ``normalize``) or normalised floats.
        batch_size: default :func:`workbench.batching.default_batch_size` of the device.
    Returns:
        ``(N, num_classes)`` float32 on the CPU.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    b = default_batch_size(dev) if batch_size is None else batch_size
    outs = []
    with scoring(precision_for("exact", dev)):
        for i in range(0, len(x), b):
            xb = to_device(x[i:i + b], dev)
            if normalize is not None:
                xb = normalize(xb)
            outs.append(forward_logits(model, xb).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def error_rate(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of wrong argmax predictions, in [0, 1]."""
    return float((logits.argmax(1) != y.to(logits.device)).float().mean())
