"""Attribution before and after an edit: the same image, labels and method, two weight sets."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..editing.editor import eval_mode
from ..models.outputs import forward_logits
from .methods import Progress, attribute


@dataclass(frozen=True, eq=False)
class AttributionSet:
    """Maps for each label, before and after an edit.

    Attributes:
        method: the attribution method (a key of ``METHODS``).
        labels: the explained classes, e.g. ``(original prediction, edit target)``.
        before, after: one ``(H, W)`` float32 map per label (same order as ``labels``).
        probs_before, probs_after: ``(C,)`` softmax of the image under each weight set.
        seconds: wall time of the four (or 2 x len(labels)) maps.
    """

    method: str
    labels: tuple[int, ...]
    before: tuple[torch.Tensor, ...]
    after: tuple[torch.Tensor, ...]
    probs_before: torch.Tensor
    probs_after: torch.Tensor
    seconds: float

    @property
    def diff(self) -> tuple[torch.Tensor, ...]:
        """``after - before`` per label, each ``(H, W)``."""
        return tuple(a - b for a, b in zip(self.after, self.before))

    def map(self, label: int, which: str = "after") -> torch.Tensor:
        """The ``(H, W)`` map of ``label``; ``which`` is ``"before"``, ``"after"`` or ``"diff"``."""
        if label not in self.labels:
            raise ValueError(f"label {label} was not explained; this set has labels {self.labels}")
        if which not in ("before", "after", "diff"):
            raise ValueError(f"which must be 'before', 'after' or 'diff', got {which!r}")
        i = self.labels.index(label)
        return (self.before if which == "before" else self.after if which == "after" else self.diff)[i]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Flat view for plotting: keys like ``"before/3"``, ``"after/3"``, ``"diff/3"``."""
        out: dict[str, torch.Tensor] = {}
        for i, lab in enumerate(self.labels):
            out[f"before/{lab}"], out[f"after/{lab}"], out[f"diff/{lab}"] = \
                self.before[i], self.after[i], self.diff[i]
        return out


@torch.no_grad()
def class_probabilities(model: nn.Module, params: Mapping[str, torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor:
    """``(classes,)`` softmax of ``model`` for one normalised ``(C, H, W)`` image, under ``params``
    (name -> tensor, overriding the model's own; None or empty: the model's own weights), on the CPU."""
    p = next(model.parameters())
    xb = x.to(device=p.device, dtype=p.dtype).reshape(1, *x.shape[-3:])
    with eval_mode(model):
        logits = forward_logits(model, xb, params)
    return torch.softmax(logits.float(), -1)[0].cpu()


def before_after(model: nn.Module, before_params: Mapping[str, torch.Tensor] | None,
                 after_params: Mapping[str, torch.Tensor] | None, x: torch.Tensor,
                 labels: int | Sequence[int], method: str = "Integrated Gradients", *,
                 progress: Progress | None = None, **kw: Any) -> AttributionSet:
    """Attribution of ``labels`` for ``x`` under two weight sets, with their differences.

    Both weight sets override the parameters of the same ``model`` through
    ``torch.func.functional_call`` (no copy of the model is made; None = the model's own).

    Args:
        model: a workbench model.
        before_params, after_params: name -> tensor (any subset of the model's parameters),
            e.g. ``EditResult.before`` and ``EditResult.after``.
        x: ``(C, H, W)`` float, normalised.
        labels: one class or several, e.g. ``(original, target)``.
        method: a key of ``METHODS``; ``kw`` go to :func:`attribute` (``n_steps``, ``window``...).
        progress: called with the overall fraction done, in [0, 1].
    Returns:
        :class:`AttributionSet` with ``(H, W)`` maps per label.

    Example:
        >>> s = before_after(model, res.before, res.after, x, (orig, target), "Saliency")
        >>> s.diff[1].shape
        torch.Size([28, 28])
    """
    labs = (labels,) if isinstance(labels, int) else tuple(int(v) for v in labels)
    if not labs:
        raise ValueError("give at least one label to explain")
    t0 = time.perf_counter()
    jobs = [(w, lab) for w in (before_params, after_params) for lab in labs]
    maps: list[torch.Tensor] = []
    for j, (params, lab) in enumerate(jobs):
        sub = None if progress is None else (lambda f, j=j: progress((j + f) / len(jobs)))
        maps.append(attribute(model, x, lab, method, params=params, progress=sub, **kw))
    n = len(labs)
    return AttributionSet(method, labs, tuple(maps[:n]), tuple(maps[n:]),
                          class_probabilities(model, before_params, x), class_probabilities(model, after_params, x),
                          time.perf_counter() - t0)
