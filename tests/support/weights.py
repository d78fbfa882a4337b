"""Model weights as plain dicts, compared bit for bit, and an edit target the editor reaches quickly."""
from __future__ import annotations

import torch


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """The same keys and bit-identical tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def runner_up(session, i: int) -> int:
    """The second most likely class of image ``i`` of ``session``: a target the editor reaches quickly."""
    return int(session.probabilities(i).argsort(descending=True)[1])
