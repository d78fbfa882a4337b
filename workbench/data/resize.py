"""One image size for a whole data set: :func:`resize_bundle`, and :func:`size_pair` for the
``image_size`` a card or a flag gives.

A model trained at 32 px scores nonsense on 28 px images, or fails on them: the CLI and
``load_for_card`` bring a data set to the size the model's card records (or ``--image-size``)
with this, and say so. Images are resized once, antialiased, as stored (``uint8`` pixels stay
``uint8``); a streamed split is read at one size already and is refused here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from .bundle import DataBundle
from .convert import resized
from .source import ImageSource

#: Largest side a data set is resized to (the card checks use the same bound).
MAX_SIDE = 4096

__all__ = ["MAX_SIDE", "resize_bundle", "size_pair"]


def size_pair(size: int | Sequence[int] | None, what: str = "image_size") -> tuple[int, int] | None:
    """``32`` -> ``(32, 32)``; ``(H, W)`` kept; None stays None. ValueError for anything else."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)  # type: ignore[arg-type]
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in pair):
        raise ValueError(f"{what} must be a side in 1..{MAX_SIDE} (e.g. 32) or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


def resize_bundle(bundle: DataBundle, size: int | Sequence[int]) -> DataBundle:
    """``bundle`` with every split's images resized to ``size`` (``(H, W)`` or a square side);
    the same bundle when they already have that size. ``meta["image_size"]`` records a square
    size (cards write it, so ``load_for_card`` reads the data back at that size).

    Raises:
        ValueError: a bad size, or a streamed split (give the size when opening the folder:
            ``load_dataset("imagefolder:PATH", image_size=N)`` / ``as_bundle(path, resize=N)``).
    """
    hw = size_pair(size)
    assert hw is not None
    if tuple(bundle.input_shape[1:]) == hw:
        return bundle
    splits: dict[str, Any] = {}
    for name in ("train", "val", "test"):
        x = getattr(bundle, f"{name}_x")
        if isinstance(x, ImageSource):
            raise ValueError(f"the {name} split of {bundle.name} is read from disk batch by batch, at "
                             f"{bundle.input_shape[1]}x{bundle.input_shape[2]}: open the folder at {hw[0]}x{hw[1]} "
                             f"instead (image_size={hw[0]}, or resize=({hw[0]}, {hw[1]}))")
        splits[f"{name}_x"] = _resized(x, hw) if len(x) else x.new_zeros((0, x.shape[1], *hw))
    meta = {**bundle.meta, **({"image_size": hw[0]} if hw[0] == hw[1] else {"image_hw": list(hw)})}
    return dataclasses.replace(bundle, meta=meta, **splits)


def _resized(x: torch.Tensor, hw: tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, *hw)`` in chunks (bounded extra memory), dtype kept."""
    return torch.cat([resized(x[i:i + chunk], hw) for i in range(0, len(x), chunk)])
