"""Example-tied dropout, measured: does dropping the memorization channels forget the noisy labels?

The dropout itself lives in :mod:`workbench.models.dropout` (the trainer builds it, and
training sits below this package). This module scores a trained model on its own training set,
split into the clean and the noisy (flipped-label) examples, and on the test set, once per
evaluation mode:

- ``"example"``: each training example with its own memorization channels, as in training
  (the test set has no such channels, so no test figure);
- ``"all"``: every channel (for standard dropout: the usual evaluation);
- ``"drop"``: only the generalization channels (the paper's evaluation of example-tied dropout);
- ``"drop+bn"``: the same after :func:`recalibrate_batchnorm` re-estimated the BatchNorm
  statistics on the training images with the memorization channels dropped (no labels used,
  no weight changed). Dropping most channels shifts what every later BatchNorm sees; on the
  small ResNet that shift alone costs more accuracy than the memorization removed.

:func:`dropout_outcome` reduces the table to the two figures of the goal (issue 20): after
dropping, the share of noisy examples still given their noisy label (goal: at most
:data:`GOAL_NOISY_KEPT`), and the clean training accuracy lost by dropping (goal: at most
:data:`GOAL_CLEAN_COST`). ``python -m workbench memorization --checkpoint FOLDER`` prints both.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn

from ..models.dropout import MODES, ExampleTiedDropout, StandardChannelDropout, example_indices, memorization_mode
from ..models.outputs import forward_logits
from ..training.trainset import TrainingSet
from .settings import EVAL_BATCH_SIZE

__all__ = ["GOAL_CLEAN_COST", "GOAL_NOISY_KEPT", "DropoutOutcome", "MemorizationRow", "dropout_outcome",
           "memorization_table", "predict_in_mode", "recalibrate_batchnorm"]

GOAL_NOISY_KEPT = 0.05  # after dropping, at most 5% of the noisy examples keep their noisy label
GOAL_CLEAN_COST = 0.03  # ... at a clean training-accuracy cost of at most 3 points

Normalize = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MemorizationRow:
    """Accuracies of one model in one evaluation mode.

    Attributes:
        mode: ``"example"``, ``"all"`` or ``"drop"`` (``"plain"`` for a model without dropout).
        noisy: share of the noisy training examples predicted as their (wrong) training label:
            how much of the label noise is memorized.
        noisy_true: share of the noisy training examples predicted as their true label.
        clean: accuracy on the clean training examples.
        test: test accuracy (None in ``"example"`` mode).
    """

    mode: str
    noisy: float
    noisy_true: float
    clean: float
    test: float | None


def predict_in_mode(model: nn.Module, x: torch.Tensor, *, mode: str = "drop", indices: torch.Tensor | None = None,
                    normalize: Normalize | None = None, batch_size: int = EVAL_BATCH_SIZE) -> torch.Tensor:
    """``(N,) int64`` predictions of ``model`` in eval mode on ``x (N, C, H, W)`` in dropout ``mode``.

    ``indices`` ``(N,) int64``: the examples' training-set positions (needed for ``"example"``).
    The model's train/eval flags and dropout modes are restored afterwards.
    """
    if mode == "example" and indices is None:
        raise ValueError("mode 'example' needs the examples' training-set positions (indices=)")
    if indices is not None and len(indices) != len(x):
        raise ValueError(f"got {len(indices)} indices for {len(x)} images")
    dev = next(model.parameters()).device
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    out = []
    try:
        with torch.no_grad(), memorization_mode(model, mode):
            for i in range(0, len(x), batch_size):
                xb = x[i:i + batch_size].to(dev)
                xb = normalize(xb) if normalize is not None else xb.float()
                idx = indices[i:i + batch_size].to(dev) if indices is not None else None
                with example_indices(model, idx):
                    out.append(forward_logits(model, xb).argmax(1).cpu())
    finally:
        for m, t in was:
            m.training = t
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, *, mode: str = "drop", normalize: Normalize | None = None,
                          batch_size: int = EVAL_BATCH_SIZE) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are re-estimated on ``x (N, C, H, W)``.

    The dropout sites run in evaluation ``mode`` (``"drop"``: generalization channels only);
    the statistics are the plain average over all of ``x`` (``momentum=None``). Weights and
    ``model`` itself are unchanged; the copy is returned in eval mode.
    """
    if mode == "example":
        raise ValueError("re-estimate the statistics for 'drop' or 'all'; 'example' is the training behaviour")
    out = copy.deepcopy(model).eval()
    bns = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    dev = next(out.parameters()).device
    for b in bns:
        b.reset_running_stats()
        b.momentum = None
        b.train()
    with torch.no_grad(), memorization_mode(out, mode):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(dev)
            out(normalize(xb) if normalize is not None else xb.float())
    for b, orig in zip(bns, [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]):
        b.momentum = orig.momentum
    return out.eval()


def _share(hit: torch.Tensor) -> float:
    return float(hit.float().mean()) if len(hit) else float("nan")


def memorization_table(model: nn.Module, train: TrainingSet, *, test: tuple[torch.Tensor, torch.Tensor] | None = None,
                       modes: Sequence[str] | None = None, batch_size: int = EVAL_BATCH_SIZE) -> list[MemorizationRow]:
    """One :class:`MemorizationRow` per mode for ``model`` on its training set ``train``.

    Args:
        test: ``(x uint8 (M, C, H, W), y (M,))``; default ``train.bundle``'s test split.
        modes: default every mode in :data:`~workbench.models.dropout.MODES` plus ``"drop+bn"``
            for a model with example-tied dropout, ``("all", "drop", "drop+bn")`` with standard
            dropout, ``("plain",)`` without.
    """
    has = [m for m in model.modules() if isinstance(m, (ExampleTiedDropout, StandardChannelDropout))]
    if modes is None:
        modes = ("plain",) if not has else ((*MODES, "drop+bn") if isinstance(has[0], ExampleTiedDropout)
                                            else ("all", "drop", "drop+bn"))
    bad = [m for m in modes if m not in (*MODES, "plain", "drop+bn")]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; use {list(MODES)}, 'drop+bn' (or 'plain' without dropout)")
    tx, ty = test if test is not None else train.bundle.split("test")
    noisy = train.noisy
    rows = []
    for mode in modes:
        run = "drop" if mode in ("plain", "drop+bn") else mode
        m = recalibrate_batchnorm(model, train.x, normalize=train.normalize) if mode == "drop+bn" else model
        pred = predict_in_mode(m, train.x, mode=run, indices=train.indices, normalize=train.normalize,
                               batch_size=batch_size)
        test_acc = None
        if mode != "example" and len(tx):
            tp = predict_in_mode(m, tx, mode=run, normalize=train.normalize, batch_size=batch_size)
            test_acc = _share(tp == ty)
        rows.append(MemorizationRow(mode, _share(pred[noisy] == train.y[noisy]),
                                    _share(pred[noisy] == train.y_true[noisy]),
                                    _share(pred[~noisy] == train.y[~noisy]), test_acc))
    return rows


@dataclass(frozen=True)
class DropoutOutcome:
    """The goal's two figures for one model (shares in [0, 1]).

    Attributes:
        noisy_kept: share of the noisy training examples still predicted as their noisy label
            after dropping (mode :attr:`after`).
        noisy_kept_before: the same before dropping (mode :attr:`before`): what was memorized.
        clean_before, clean_after: accuracy on the clean training examples before and after.
        before: ``"example"`` (example-tied: each example with its own channels, as trained) or
            ``"all"`` (standard dropout: its usual evaluation).
        after: ``"drop"`` (the paper's evaluation) or ``"drop+bn"``.
    """

    noisy_kept: float
    noisy_kept_before: float
    clean_before: float
    clean_after: float
    before: str
    after: str

    @property
    def clean_cost(self) -> float:
        """Clean training accuracy lost by dropping: ``clean_before - clean_after``."""
        return self.clean_before - self.clean_after

    def meets_goal(self) -> bool:
        return self.noisy_kept <= GOAL_NOISY_KEPT and self.clean_cost <= GOAL_CLEAN_COST

    def lines(self) -> list[str]:
        """Two human-readable lines, with the goal."""
        return [f"noisy labels kept after dropping ({self.after}): {self.noisy_kept:.1%} "
                f"(before, {self.before}: {self.noisy_kept_before:.1%}; goal <= {GOAL_NOISY_KEPT:.0%})",
                f"clean training accuracy cost: {self.clean_cost * 100:.1f} points ({self.clean_before:.1%} -> "
                f"{self.clean_after:.1%}; goal <= {GOAL_CLEAN_COST * 100:.0f} points)"]


def dropout_outcome(rows: Sequence[MemorizationRow], *, after: str = "drop") -> DropoutOutcome:
    """The goal's figures from a :func:`memorization_table`: ``after`` against ``"example"``
    (example-tied dropout) or else ``"all"`` (standard dropout). A model without dropout has
    nothing to drop: ValueError."""
    by = {r.mode: r for r in rows}
    if after not in ("drop", "drop+bn"):
        raise ValueError(f"after={after!r}: the outcome compares 'drop' or 'drop+bn' with the model as trained")
    before = "example" if "example" in by else "all"
    if after not in by or before not in by:
        raise ValueError(f"the table has modes {list(by)}; the outcome needs {after!r} and 'example' or 'all' "
                         "(a model with example-tied or standard dropout, all modes measured)")
    a, b = by[after], by[before]
    return DropoutOutcome(a.noisy, b.noisy, b.clean, a.clean, before, after)
