"""What the training loop measures after each epoch, besides the objective's own logs.

The validation and test errors, how well the (possibly noisy) training labels are fitted,
the objective's learned editor values, and the run's training-dynamics recorder.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..data import DataBundle
from ..models.predict import error_rate, predict_logits
from .dynamics import DynamicsRecorder
from .recipes import Recipe


def dynamics_recorder(recipe: Recipe, objective: Any, out_dir: Path, n: int, dist: Any) -> DynamicsRecorder | None:
    """The run's dynamics recorder, or None (turned off, a multi-process run, or an objective without ``last_logits``)."""
    if not recipe.record_dynamics:
        return None
    if (dist is not None and dist.world > 1) or not hasattr(objective, "last_logits"):
        print("note: training dynamics are not recorded (they need one process and the baseline or "
              "gradient-accounting objective)", file=sys.stderr)
        return None
    return DynamicsRecorder(out_dir, n)


def evaluate_splits(model: nn.Module, bundle: DataBundle, recipe: Recipe, device: torch.device) -> dict[str, float]:
    """``{"val_error", "test_error"}`` in eval mode (the first ``recipe.eval_subset`` images; a
    split without images is left out); the model's train/eval mode is restored."""
    was = model.training
    model.eval()
    out = {}
    for split in ("val", "test"):
        x, y = bundle.split(split)
        if recipe.eval_subset:
            x, y = x[:recipe.eval_subset], y[:recipe.eval_subset]
        if len(x):
            out[f"{split}_error"] = error_rate(predict_logits(model, x, normalize=bundle.normalize, device=device), y)
    model.train(was)
    return out


def fit_metrics(model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, noisy: torch.Tensor | None,
                recorder: DynamicsRecorder | None, bundle: DataBundle, device: torch.device) -> dict[str, float]:
    """How well the training labels are fitted: ``fit_noisy``, the eval-mode accuracy on the flipped
    labels of the noisy examples; ``train_acc_clean``/``train_acc_noisy``, the share predicted with
    their given label when their batch was seen this epoch (from the recorder)."""
    out: dict[str, float] = {}
    if recorder is not None:
        out["train_acc"] = recorder.accuracy()
        if noisy is not None:
            out["train_acc_clean"], out["train_acc_noisy"] = recorder.accuracy(~noisy), recorder.accuracy(noisy)
    if noisy is not None and bool(noisy.any()):
        was = model.training
        model.eval()
        logits = predict_logits(model, train_x[noisy], normalize=bundle.normalize, device=device)
        model.train(was)
        out["fit_noisy"] = 1.0 - error_rate(logits, train_y[noisy])
    return out


def editor_metrics(objective: Any, extra: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-epoch values of the objective's learned hyperparameters (editor lr/beta)."""
    if hasattr(objective, "epoch_metrics"):
        return dict(objective.epoch_metrics())
    return {name: float(t.detach().mean()) for name, t in extra.items()}


def editor_card(objective: Any, extra: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``card["editor"]``: the (learned) editor config, or ``{}`` for baseline training."""
    if hasattr(objective, "editor_card"):
        return dict(objective.editor_card())
    return {name: float(t.detach().mean()) for name, t in extra.items()}
