"""Display images made on demand at display size, with a small LRU cache (for image grids over
a streamed split: nothing reads or keeps the whole set)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch

from .convert import resized
from .source import ImageSource

THUMBNAIL_SIZE = 64  # the longer side of a thumbnail, in pixels
THUMBNAILS_KEPT = 512

__all__ = ["THUMBNAIL_SIZE", "Thumbnails"]


class Thumbnails:
    """``view[i]`` -> image ``i`` for display: ``(C, h, w)`` (uint8 pixels, or float in 0..1), its
    longer side at most ``size`` (smaller images are left as they are).

    Indexes like the ``(N, C, H, W)`` tensor that an in-memory split gives for display
    (``len(view)``, ``view[i]``), so image grids take either.

    Args:
        source: the split's images; n: only the first ``n`` (default all).
        display: stored images ``(n, C, H, W)`` -> display images (``DataBundle.display_images``).
        size: longer side of a thumbnail; kept: thumbnails kept (least recently used dropped).
    """

    def __init__(self, source: ImageSource, display: Callable[[torch.Tensor], torch.Tensor], *,
                 n: int | None = None, size: int = THUMBNAIL_SIZE, kept: int = THUMBNAILS_KEPT) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {size!r}")
        self.source, self.display, self.size, self.kept = source, display, size, kept
        self.n = len(source) if n is None else min(int(n), len(source))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if isinstance(i, bool) or not isinstance(i, int) and not (isinstance(i, torch.Tensor) and i.dim() == 0):
            raise TypeError(f"thumbnails are read one at a time: view[i] with an int, got {i!r}")
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"image {i} out of range for {self.n} images")
        i %= self.n
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        img = self.display(self.source.images([i]))
        h, w = img.shape[-2:]
        if max(h, w) > self.size:
            s = self.size / max(h, w)
            img = resized(img, (max(1, round(h * s)), max(1, round(w * s))))
        self._cache[i] = out = img[0]
        while len(self._cache) > self.kept:
            self._cache.popitem(last=False)
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, C, h, w)`` of the thumbnails (image 0's size stands for all)."""
        return (self.n, *self[0].shape) if self.n else (0,)
