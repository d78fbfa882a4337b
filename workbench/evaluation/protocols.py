"""Which edits to make: the paper's random-label protocol and the "natural" one.

* ``random`` (the paper, Sec. 4.1): N distinct images of the split, each with a label drawn
  uniformly from all C classes (seeded). The label may equal the model's current prediction
  (about 1/C of the time); such an edit succeeds with 0 steps and changes nothing, exactly as
  in the paper's protocol.
* ``natural``: N images the base model misclassifies, each edited to its true label.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch

from ..data import DataBundle

if TYPE_CHECKING:
    from .evaluator import Evaluator

PROTOCOLS = ("random", "natural")


@dataclass(frozen=True, eq=False)
class EditSet:
    """Edits to make: ``x, y = edit_set`` unpacks the images and targets.

    Attributes:
        x: ``(n, C, H, W) float32`` normalised images (CPU).
        y: ``(n,) int64`` target labels.
        indices: ``(n,) int64`` the images' indices in ``split``.
        protocol: ``"random"`` or ``"natural"``; split: where the images come from.
    """

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    protocol: str
    split: str

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.x, self.y))

    @property
    def n(self) -> int:
        return int(self.y.numel())


def _check_n(n: int, available: int, what: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of edits must be a positive integer, got {n!r}")
    if n > available:
        raise ValueError(f"asked for {n} edits but only {available} {what} are available; "
                         f"use at most {available} edits")


def random_label_edits(source: DataBundle | Evaluator, n: int, seed: int = 0, *, split: str = "test",
                       limit: int | None = None) -> EditSet:
    """The paper's protocol: ``n`` distinct images with uniformly random labels.

    Args:
        source: a :class:`DataBundle` (images from ``split``, first ``limit`` of them) or an
            :class:`Evaluator` (images from its split; ``split``/``limit`` are ignored).
        n: number of edits; seed: the draw is a pure function of the seed.
    Returns:
        :class:`EditSet` with ``x (n, C, H, W)`` normalised floats and ``y (n,)`` labels.

    Example:
        >>> x, y = random_label_edits(bundle, 1000, seed=0)
    """
    from .evaluator import Evaluator

    if isinstance(source, Evaluator):
        images, normalize, c, split = source.source, source.normalize, source.num_classes, source.split
    elif isinstance(source, DataBundle):
        images = source.image_source(split)
        images = images if limit is None else images.subset(range(min(limit, len(images))))
        normalize, c = source.normalize, source.num_classes
    else:
        raise TypeError(f"source must be a DataBundle or an Evaluator, got {type(source).__name__}")
    _check_n(n, len(images), f"{split} images")
    idx, y = random_draw(len(images), n, seed, c)
    assert y is not None
    return EditSet(normalize(images.images(idx)), y, idx, "random", split)


def random_draw(examples: int, n: int, seed: int, classes: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The random protocol's draw, a pure function of the seed (``merge-results`` checks parts against it).

    Returns:
        ``(n,) int64`` distinct image indices in ``0..examples-1`` and ``(n,) int64`` labels in
        ``0..classes-1`` (None when ``classes`` is None: the indices alone).
    """
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(examples, generator=g)[:n]
    return idx, (torch.randint(0, classes, (n,), generator=g) if classes is not None else None)


def natural_edits(evaluator: Evaluator, n: int, seed: int = 0) -> EditSet:
    """``n`` images the base model misclassifies (a seeded random sample), with their true labels.

    Returns:
        :class:`EditSet`; ``ValueError`` if the split has fewer than ``n`` mistakes.
    """
    wrong = torch.nonzero(evaluator.base_preds != evaluator.labels).flatten()
    _check_n(n, len(wrong), f"misclassified {evaluator.split} images")
    g = torch.Generator().manual_seed(int(seed))
    idx = wrong[torch.randperm(len(wrong), generator=g)[:n]]
    return EditSet(evaluator.normalize(evaluator.raw_images(idx)), evaluator.labels[idx].clone(), idx,
                   "natural", evaluator.split)


def make_edits(protocol: str, evaluator: Evaluator, n: int, seed: int = 0) -> EditSet:
    """``random`` or ``natural`` edits drawn from the evaluator's split."""
    if protocol == "random":
        return random_label_edits(evaluator, n, seed)
    if protocol == "natural":
        return natural_edits(evaluator, n, seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
