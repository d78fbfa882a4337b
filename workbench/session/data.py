"""The split an :class:`~workbench.session.EditSession` works on: class names, labels and images,
from its evaluator (when it has one) or straight from its data set."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn as nn

from .helpers import as_index

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation import Evaluator


def require_evaluator(ev: Evaluator | None) -> Evaluator:
    """``ev``, or a ValueError that says how to open a session with one."""
    if ev is None:
        raise ValueError("this session has no evaluator (no data set); open it with EditSession.from_checkpoint "
                         "or EditSession(model, bundle)")
    return ev


class SessionData:
    """Images and labels of ``split`` (its first ``limit`` images).

    Args:
        model: the session's model (class count when there is no data).
        bundle: the data set, or None.
        evaluator: bound to the split, or None (then images come from ``bundle``).
        split, limit: which images.
        device: where :meth:`image` puts them.
    """

    def __init__(self, model: nn.Module, bundle: DataBundle | None, evaluator: Evaluator | None, split: str,
                 limit: int | None, device: torch.device) -> None:
        self.model, self.bundle, self.evaluator = model, bundle, evaluator
        self.split, self.limit, self.device = split, limit, device

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names (index = label)."""
        if self.evaluator is not None:
            return tuple(self.evaluator.classes)
        if self.bundle is not None:
            return tuple(self.bundle.classes)
        n = int(getattr(self.model, "num_classes", 0))
        return tuple(str(i) for i in range(n))

    @property
    def labels(self) -> torch.Tensor:
        """``(N,) int64`` true labels of the split (CPU)."""
        return require_evaluator(self.evaluator).labels

    @property
    def num_examples(self) -> int:
        """Images in the split (after ``limit``); ValueError without data."""
        if self.evaluator is not None:
            return int(len(self.evaluator.labels))
        if self.bundle is None:
            raise ValueError("this session has no data set; pass images to edit() or build it with a bundle")
        n = len(self.bundle.labels(self.split))
        return n if self.limit is None else min(n, self.limit)

    def image(self, index: int | Sequence[int]) -> torch.Tensor:
        """Normalised image(s) of the split: ``(C, H, W)`` for an int, ``(N, C, H, W)`` for a list."""
        index = as_index(index)
        if isinstance(index, tuple):
            return torch.stack([self.image(i) for i in index])
        n = self.num_examples
        if isinstance(index, bool) or not 0 <= index < n:
            raise ValueError(f"index {index!r} out of range: the {self.split} split has {n} images (0..{n - 1})")
        if self.evaluator is not None:
            return self.evaluator.image(index).to(self.device)
        assert self.bundle is not None
        x = self.bundle.image_source(self.split).images([index])
        return self.bundle.normalize(x.to(self.device))[0]

    def raw_images(self) -> torch.Tensor:
        """``(N, C, H, W) uint8`` images of the split for display (``DataBundle.display_images``)."""
        ev = require_evaluator(self.evaluator)
        n = len(ev.labels)
        if self.bundle is not None:
            return self.bundle.display_view(self.split, n)  # type: ignore[return-value]
        return torch.stack([ev.raw_image(i) for i in range(n)])
