"""The edit constraint of Sinitsin et al. (2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def edit_loss(logits: torch.Tensor, y_ref: torch.Tensor) -> torch.Tensor:
    """``l_e = max_y log p(y|x) - log p(y_ref|x)`` per example.

    Args:
        logits: ``(N, C)``.
        y_ref: ``(N,) int64`` target labels.
    Returns:
        ``(N,)`` non-negative; 0 exactly when ``y_ref`` attains the maximum.
    """
    logp = F.log_softmax(logits, dim=-1)
    return logp.max(dim=-1).values - logp.gather(1, y_ref.view(-1, 1)).squeeze(1)


def satisfied(logits: torch.Tensor, y_ref: torch.Tensor) -> torch.Tensor:
    """``(N,) bool``: the model predicts ``y_ref`` (the edit succeeded for that example)."""
    return logits.argmax(dim=-1) == y_ref
