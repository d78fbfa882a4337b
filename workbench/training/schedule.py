"""The optimizer a recipe trains with and its learning-rate schedule (a factor per step)."""
from __future__ import annotations

import math
from typing import Any

import torch

from .recipes import Recipe


def lr_factor(recipe: Recipe, step: int, total: int, steps_per_epoch: int) -> float:
    """The multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    A linear warm-up over ``recipe.warmup_epochs``, then ``recipe.schedule``: ``"cosine"``
    (to 0), ``"triangle"`` (linear to 0) or ``"constant"`` (1).
    """
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if recipe.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if recipe.schedule == "triangle":
        return 1.0 - progress
    if recipe.schedule != "cosine":
        raise ValueError(f"unknown schedule {recipe.schedule!r}; use 'cosine', 'constant' or 'triangle'")
    return 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(recipe: Recipe, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with momentum (weight decay as L2 in the gradient)."""
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    return torch.optim.AdamW(groups, lr=recipe.lr)
