"""Whether a model takes images of a given size: :func:`check_takes`, one forward pass of one
blank image, run before any work so that a size mismatch is refused in plain words instead of
failing deep inside a convolution (``Kernel size can't be greater than actual input size``)
or inside timm's patch embedding (``Input height (28) doesn't match model (32)``).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .outputs import forward_logits

__all__ = ["check_takes", "expected_size"]

#: Keyword arguments of model builders that fix the input side (timm ``img_size``, Hugging Face
#: ``image_size``, the project's ``input_size``).
SIZE_KEYS = ("img_size", "image_size", "input_size")


def expected_size(kwargs: dict) -> tuple[int, int] | None:
    """The ``(H, W)`` a builder's keyword arguments fix (``img_size=32`` -> ``(32, 32)``), or None."""
    for k in SIZE_KEYS:
        v = kwargs.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v, v
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(s, int) and s > 0 for s in v):
            return int(v[0]), int(v[1])
    return None


def check_takes(model: nn.Module, shape: Sequence[int], *, fix: str, expected: str = "") -> None:
    """Refuse (ValueError) when ``model`` cannot run on one ``(C, H, W)`` image of ``shape``.

    Args:
        shape: ``(C, H, W)`` of the data's images.
        fix: what to do, for the message (e.g. ``"pass --image-size 32"``).
        expected: the size the model was made for, when known (``"32x32 (its card's input_shape)"``).
    The model's mode and weights are left as they were (eval mode, no gradient).
    """
    c, h, w = (int(v) for v in shape)
    p = next(iter(model.parameters()), None)
    x = torch.zeros(1, c, h, w, device=p.device if p is not None else "cpu",
                    dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32)
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            forward_logits(model, x)
    except Exception as err:  # noqa: BLE001 - any failure of the forward is the model refusing this size
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        made = f"; it was made for {expected}" if expected else ""
        raise ValueError(f"{type(model).__name__} cannot take the data's {c}x{h}x{w} images (C x H x W){made}: "
                         f"its forward fails with {type(err).__name__}: {first}. {fix}") from None
    finally:
        model.train(was)
