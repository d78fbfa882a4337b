"""Which mistake to show first: the orders of the error list and the lesson's picks.

Pure functions over ``Misclassified``-like items (``index, true, pred, confidence, margin``).
The error browser sorts with them and the lesson picks its images with them, so "the first
typical mistake" is the same image in both.
"""
from __future__ import annotations

from typing import Iterable, Sequence, TypeVar

__all__ = ["median_margin", "most_confident", "typical_first"]

E = TypeVar("E")


def median_margin(errors: Iterable) -> float:
    """The median margin ``logit(pred) - logit(true)`` of ``errors`` (the upper one of an even count; 0 if none)."""
    margins = sorted(float(e.margin) for e in errors)
    return margins[len(margins) // 2] if margins else 0.0


def typical_first(items: Sequence[E], errors: Iterable | None = None) -> list[E]:
    """``items`` with the margin closest to the median margin of ``errors`` (default: ``items``)
    first; ties in index order. A typical mistake is neither a near-tie (fixed by a nudge) nor
    the most confident one (often a mislabeled or odd image, whose fix is the costliest)."""
    med = median_margin(items if errors is None else errors)
    return sorted(items, key=lambda e: (abs(float(e.margin) - med), int(e.index)))  # type: ignore[attr-defined]


def most_confident(items: Sequence[E]) -> list[E]:
    """``items`` with the most confident mistake first (ties in index order)."""
    return sorted(items, key=lambda e: (-float(e.confidence), int(e.index)))  # type: ignore[attr-defined]
