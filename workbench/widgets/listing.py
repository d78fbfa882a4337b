"""SteadyList: the error list's order, kept in place across edits (no widgets).

After an edit the error list does not jump: the images keep their places; an image that is
no longer wrong stays listed, with the status ``fixed``; an image the edits made wrong (not
in the first list given) is appended at the end with the status ``new``. Only a new sort or
filter orders the list again. The first list given is the reference: the base model's
mistakes when the view opens at the base weights.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

__all__ = ["SteadyList"]

Sorter = Callable[[list], list]


class SteadyList:
    """The listed images, their order and their status (``wrong``, ``fixed`` or ``new``).

    Args:
        errors: the first error list (``Misclassified``-like items: ``index, true, pred,
            confidence, margin``); its images are the reference for ``fixed`` and ``new``.
    """

    def __init__(self, errors: Iterable) -> None:
        self.errors: list = list(errors)
        self.items = {int(e.index): e for e in self.errors}  # the last entry seen per image
        self.origin = set(self.items)
        self.wrong = set(self.items)
        self.keep: int | None = None  # the selected image stays listed while selected
        self.order: list[int] | None = None  # None: sort at the next read

    def update(self, errors: Iterable, sort: Sorter, *, base: bool = False) -> None:
        """The current errors: listed images keep their places, new ones go at the end (in ``sort``
        order). ``base``: they are the base model's errors (no edit applied); images not in the
        first list join it (a list that grows while the base model is scored), and the list is
        sorted again."""
        self.errors = list(errors)
        self.wrong = {int(e.index) for e in self.errors}
        self.items.update({int(e.index): e for e in self.errors})
        if base and not self.wrong <= self.origin:
            self.origin |= self.wrong
            self.order = None
        if self.order is not None:
            kept = [i for i in self.order if self.listed(i)]
            placed = set(kept)
            added = sort([self.items[i] for i in sorted(self.wrong - placed)])
            self.order = kept + [int(e.index) for e in added]

    def listed(self, index: int) -> bool:
        """Wrong now, or in the first list (then ``fixed``), or the selected image."""
        return index in self.wrong or index in self.origin or index == self.keep

    def status(self, index: int) -> str:
        """``wrong``; ``fixed`` (in the first list, right now); ``new`` (wrong now, not in the first
        list); ``right`` (neither: an image listed only while it is selected)."""
        if index not in self.wrong:
            return "fixed" if index in self.origin else "right"
        return "new" if index not in self.origin else "wrong"

    def reorder(self) -> None:
        """Sort again at the next read (a new sort or filter)."""
        self.order = None

    def entries(self, sort: Sorter) -> list:
        """The listed entries in their steady order (sorted with ``sort`` the first time)."""
        if self.order is None:
            pool = self.wrong | self.origin | ({self.keep} if self.keep in self.items else set())
            self.order = [int(e.index) for e in sort([self.items[i] for i in sorted(pool)])]
        return [self.items[i] for i in self.order if self.listed(i)]

    def count(self, status: str, within: Sequence | None = None) -> int:
        """How many listed images (of ``within``, default all) have ``status``."""
        pool = [int(e.index) for e in within] if within is not None else \
            [i for i in self.wrong | self.origin if self.listed(i)]
        return sum(1 for i in pool if self.status(i) == status)
