"""Batched tensor augmentations (fast on CPU; no per-image PIL work)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, *, pad: int = 2, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip.

    Args:
        x: ``(N, C, H, W)`` images (any dtype).
        pad: pixels of padding before cropping back to ``H x W``.
        flip: also flip half of the images left-right.
    Returns:
        ``(N, C, H, W)`` augmented images, same dtype.
    """
    n, _, h, w = x.shape
    dev = x.device
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
        rows = (dy.view(n, 1) + torch.arange(h, device=dev).view(1, h))  # (N, H)
        cols = (dx.view(n, 1) + torch.arange(w, device=dev).view(1, w))  # (N, W)
        idx_n = torch.arange(n, device=dev).view(n, 1, 1)
        x = xp.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=generator).to(dev) < 0.5
        x = torch.where(mask.view(n, 1, 1, 1), x.flip(-1), x)
    return x.contiguous()
