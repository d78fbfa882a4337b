"""Plain batched inference helpers."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from .outputs import forward_logits


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, *, normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   batch_size: int = 1000, device: torch.device | str | None = None) -> torch.Tensor:
    """Logits of ``model`` (in its current mode) for all of ``x``.

    Args:
        x: ``(N, C, H, W)`` uint8 images (with ``normalize``) or normalised floats.
    Returns:
        ``(N, num_classes)`` float32 on the CPU.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        if normalize is not None:
            xb = normalize(xb)
        outs.append(forward_logits(model, xb).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


def error_rate(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of wrong argmax predictions, in [0, 1]."""
    return float((logits.argmax(1) != y.to(logits.device)).float().mean())
