"""What an :class:`~workbench.evaluation.Evaluator` shows of its split without scoring edited
weights: the images (as stored, or normalised on its device) and the base model's mistakes,
confusion and per-class error."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import torch

from .reports import Misclassified, confusion_matrix, errors_from_logits, per_class_error_rate

if TYPE_CHECKING:
    from ..data import ImageSource

__all__ = ["SplitViews"]


class SplitViews:
    """Images and base-model views of one split (the Evaluator's base class).

    Its subclass sets ``labels (N,)``, ``source`` (:class:`~workbench.data.ImageSource`),
    ``split``, ``device``, ``normalize``, ``num_classes`` and the base records."""

    labels: torch.Tensor
    source: ImageSource
    split: str
    device: torch.device
    num_classes: int
    normalize: Callable[[torch.Tensor], torch.Tensor]
    base_logits: torch.Tensor
    base_preds: torch.Tensor

    # ----------------------------------------------------------------- data access
    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> torch.Tensor:
        """Example ``i`` of the split, normalised: ``(C, H, W) float32`` on the evaluator's device."""
        return self.normalize(self.raw_image(i).to(self.device))

    def raw_image(self, i: int) -> torch.Tensor:
        """Example ``i`` as stored: ``(C, H, W) uint8`` on the CPU."""
        if not -len(self) <= int(i) < len(self):
            raise IndexError(f"index {i} out of range for the {len(self)} examples of the {self.split!r} split")
        return self.source.images([int(i)])[0]

    def raw_images(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Examples ``indices`` as stored: ``(n, C, H, W)`` on the CPU (meant for a few)."""
        return self.source.images(torch.as_tensor(indices, dtype=torch.long).reshape(-1))

    def images(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Examples ``indices``, normalised: ``(n, C, H, W) float32`` on the evaluator's device."""
        return self.normalize(self.raw_images(indices).to(self.device))

    # ----------------------------------------------------------------- base-model views
    def misclassified(self, sort: str = "index") -> list[Misclassified]:
        """The split's examples that the base model gets wrong.

        Args:
            sort: ``"index"`` (ascending), ``"confidence"`` (most confident mistakes first)
                or ``"margin"`` (largest ``logit(pred) - logit(true)`` first).
        """
        keys: dict[str, Callable[[Misclassified], float]] = {
            "index": lambda m: m.index, "confidence": lambda m: -m.confidence, "margin": lambda m: -m.margin}
        if sort not in keys:
            raise ValueError(f"unknown sort {sort!r}; use one of {sorted(keys)}")
        return sorted(errors_from_logits(self.base_logits, self.labels), key=keys[sort])

    def confusion(self, preds: torch.Tensor | None = None) -> torch.Tensor:
        """``(C, C) int64`` counts; row = true label, column = prediction (default: base)."""
        p = self.base_preds if preds is None else self.check_preds(preds, "preds")
        return confusion_matrix(self.labels, p, self.num_classes)

    def per_class_error(self, preds: torch.Tensor | None = None) -> torch.Tensor:
        """``(C,) float32`` error rate per true class (NaN for classes absent from the split)."""
        p = self.base_preds if preds is None else self.check_preds(preds, "preds")
        return per_class_error_rate(self.labels, p, self.num_classes)

    def check_preds(self, preds: torch.Tensor, what: str) -> torch.Tensor:
        """``preds`` as ``(N,) int64`` on the CPU; ValueError naming ``what`` when its length is not the split's."""
        p = torch.as_tensor(preds).reshape(-1).long().cpu()
        if len(p) != len(self.labels):
            raise ValueError(f"{what} has {len(p)} entries; the {self.split!r} split here has {len(self.labels)}")
        return p
