"""One image of any form -> a stored ``(C, H, W)`` tensor, and resizing (shared by the in-memory
and the streamed readers, so both give the very same tensors)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_chw", "resized"]


def as_chw(img: Any, i: int) -> torch.Tensor:
    """Image ``i`` (a tensor ``(C, H, W)``/``(H, W)``, a PIL image or an ``(H, W[, C])`` array) ->
    ``(C, H, W)``: ``uint8`` stays ``uint8``, anything else becomes ``float32``."""
    if isinstance(img, torch.Tensor):
        t = img
    elif isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img))
        if t.dim() == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
            t = t.permute(2, 0, 1)
    elif hasattr(img, "mode") and hasattr(img, "size"):  # a PIL image
        from torchvision.transforms.v2.functional import pil_to_tensor

        t = pil_to_tensor(img)
    else:
        raise TypeError(f"image {i} is a {type(img).__name__}; give tensors, PIL images or numpy arrays")
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"image {i} has shape {tuple(t.shape)}; images must be (C, H, W) or (H, W)")
    return t if t.dtype == torch.uint8 else t.float()


def resized(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """``(N, C, H, W)`` resized to ``size`` (antialiased; unchanged when already that size)."""
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    from torchvision.transforms.v2.functional import resize

    return resize(x, list(size), antialias=True)
