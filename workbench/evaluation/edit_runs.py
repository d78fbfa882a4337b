"""N independent edits of one model, each from the base weights, each scored on the whole split.

The paper's protocol (Sinitsin et al. 2020, section 5): :meth:`Evaluator.evaluate_edits
<workbench.evaluation.Evaluator.evaluate_edits>` runs it on one process, and ``evaluate``
under torchrun runs it on each rank's share of the edits (:mod:`workbench.evaluation.shards`).
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Mapping, Protocol, Sequence

import torch

from ..editing import EditorConfig, EditResult, edit
from ..models import ModelAdapter
from .reports import EditOutcome, EvalSummary, group_name

EditCallback = Callable[[int, EditResult, torch.Tensor], None]


class Scorer(Protocol):
    """What the edits are scored with (an :class:`~workbench.evaluation.Evaluator`)."""

    adapter: ModelAdapter
    labels: torch.Tensor

    @property
    def base_preds(self) -> torch.Tensor: ...

    @property
    def base_error(self) -> float: ...

    def preds_for(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

    def summarize(self, outcomes: Sequence[EditOutcome], config: EditorConfig, *, protocol: str,
                  seconds: float) -> EvalSummary: ...


def run_edits(scorer: Scorer, x: torch.Tensor, y: torch.Tensor, config: EditorConfig | None = None, *,
              protocol: str = "custom", progress: bool = True, indices: torch.Tensor | None = None,
              callback: EditCallback | None = None, previous: Sequence[EditOutcome] = (),
              previous_seconds: float = 0.0,
              on_outcome: Callable[[EditOutcome], None] | None = None) -> EvalSummary:
    """N independent edits, each from the base model, each scored on the whole split by ``scorer``.

    Args:
        x: ``(n, C, H, W) float32`` normalised images; y: ``(n,) int64`` target labels.
        config: the editor (default :class:`EditorConfig`); its ``layers`` may differ from
            the evaluator's (the right stage is then cached on first use).
        protocol: a name recorded in the summary (``"random"``, ``"natural"``, ...).
        progress: show a tqdm bar on stderr.
        indices: ``(n,)`` split indices of the images, recorded per edit (optional).
        callback: called as ``callback(i, result, preds)`` after edit ``i`` with its
            :class:`EditResult` and ``(N,) int64`` predictions (CPU).
        previous: outcomes of earlier edits of the same run (a resumed run); ``x``/``y``
            then hold only the remaining edits, and the summary covers both.
        previous_seconds: wall time already spent on ``previous``.
        on_outcome: called with each new :class:`EditOutcome` as soon as it is known.
    Returns:
        :class:`EvalSummary`. An edit that makes no step (the model already predicts the
        target, or the step was abandoned as non-finite) leaves the base predictions.
    """
    cfg = (config or EditorConfig()).resolved(getattr(scorer, "layers", None))  # unset layers: the scorer's group
    scorer.adapter.params(cfg.group)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError("x must be an (n, C, H, W) float tensor of normalised images")
    y = torch.as_tensor(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels; give one target label per image")
    idx = None if indices is None else torch.as_tensor(indices).reshape(-1).tolist()
    if idx is not None and len(idx) != len(x):
        raise ValueError(f"{len(x)} images but {len(idx)} indices")
    from tqdm import tqdm

    t0 = time.perf_counter()
    outcomes: list[EditOutcome] = list(previous)
    bar = tqdm(total=len(outcomes) + len(x), initial=len(outcomes), desc=f"{protocol} edits ({cfg.method}, {group_name(cfg.group)})",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        for i in range(len(x)):
            res = edit(scorer.adapter, x[i], int(y[i]), cfg)
            preds = scorer.base_preds if res.steps == 0 or not res.finite else scorer.preds_for(res.after)
            err = float((preds != scorer.labels).float().mean())
            outcome = EditOutcome(  # a wrecked edit (editing.guard) is no success
                None if idx is None else int(idx[i]), int(y[i]), res.accepted,
                res.steps if res.accepted else cfg.max_steps, err - scorer.base_error,
                int((preds != scorer.base_preds).sum()), res.finite, res.seconds, res.wrecked)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if callback is not None:
                callback(i, res, preds)
            bar.update(1)
            if progress and (i % 10 == 9 or i == len(x) - 1):
                ok = sum(o.success for o in outcomes) / len(outcomes)
                dd = sum(abs(o.drawdown) for o in outcomes) / len(outcomes)
                bar.set_postfix(success=f"{100 * ok:.1f}%", drawdown=f"{100 * dd:.2f}%")
    finally:
        bar.close()
    return scorer.summarize(outcomes, cfg, protocol=protocol, seconds=previous_seconds + time.perf_counter() - t0)

