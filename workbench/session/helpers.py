"""Set-up and export helpers of :class:`~workbench.session.EditSession`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..data import DataBundle
from ..editing.editor import EditorConfig
from ..models import ModelAdapter
from .records import EditRecord

if TYPE_CHECKING:
    from ..evaluation import EditReport, Evaluator


def load_bundle(card: Mapping[str, Any]) -> DataBundle:
    """The data set a model card names, with the recipe's data root, validation size and seed."""
    from ..data import load_for_card

    return load_for_card(dict(card))


def build_evaluator(model: nn.Module | ModelAdapter, bundle: DataBundle, split: str, config: EditorConfig,
                    device: torch.device, limit: int | None) -> Evaluator | None:
    """An Evaluator on ``split`` bound to the model's current (base) weights, or None when
    the evaluation package has none."""
    try:
        from ..evaluation import Evaluator
    except ImportError:  # the evaluator is optional; sessions work without reports
        return None
    return Evaluator(model, bundle, split=split, layers=config.layers, device=device, limit=limit)


def black_image(mean: Sequence[float] | None, std: Sequence[float] | None) -> torch.Tensor | None:
    """``(C, 1, 1)``: a black pixel in normalised units (the attribution baseline)."""
    if not mean or not std:
        return None
    return (-torch.tensor(list(mean), dtype=torch.float32) / torch.tensor(list(std), dtype=torch.float32)).view(-1, 1, 1)


def export_card(card: Mapping[str, Any], history: Sequence[EditRecord], base_hash: str,
                checkpoint: Path | None, report: EditReport | None, split: str,
                examples: int | None) -> dict[str, Any]:
    """The card of an exported edited model: the base card's fields (minus its error rates),
    ``base_model`` (the whole base card), ``edits`` (index, target, method, lr, steps,
    success ... per applied edit) and, with a report, the edited model's error."""
    base = {k: v for k, v in card.items() if k not in ("test_error", "val_error")}
    out: dict[str, Any] = {**base, "arch": card.get("arch", "small-resnet"), "edited": True,
                           "base_model": dict(card), "base_sha256": base_hash,
                           "base_checkpoint": str(checkpoint) if checkpoint else None,
                           "edits": [{"n": i, **r.summary()} for i, r in enumerate(history)],
                           "exported_at": time.time()}
    if report is not None:
        out["edited_eval"] = {"split": split, "images": examples,
                              "error_before": report.error_before, "error_after": report.error_after}
    return out


def evaluator_fingerprint(ev: Evaluator | None) -> dict[str, Any] | None:
    """What saved predictions depend on: the split, its size, its labels and the base predictions."""
    if ev is None:
        return None
    from .history_io import state_hash

    return {"split": ev.split, "examples": int(len(ev.labels)),
            "sha256": state_hash({"labels": ev.labels, "base_preds": ev.base_preds})}


def report_from_preds(ev: Evaluator, preds: torch.Tensor, reference: torch.Tensor) -> EditReport:
    """The :class:`EditReport` that ``ev.score`` gives for weights predicting ``preds`` (no
    forward pass: used to restore saved reports)."""
    from ..evaluation import EditReport

    preds, ref = preds.long().cpu(), reference.long().cpu()
    before = float((ref != ev.labels).float().mean())
    after = float((preds != ev.labels).float().mean())
    return EditReport(before, after, after - before, preds, torch.nonzero(preds != ref).flatten(),
                      ev.per_class_error(ref), ev.per_class_error(preds), 0.0, ref.clone())
