"""The evaluator's fast path (cached prefix + suffix) checked against the full forward."""
from __future__ import annotations

import torch
import torch.nn as nn

from ..models import ModelAdapter, Split, forward_logits
from .prefix_cache import GraphCache, StageCache

#: The fast path must match the full forward to within this, relative to the largest logit.
FAST_PATH_RTOL = 1e-4
FAST_PATH_CHECK_IMAGES = 8

__all__ = ["FAST_PATH_CHECK_IMAGES", "FAST_PATH_RTOL", "check_fast_path", "describe"]


def check_fast_path(model: nn.Module, adapter: ModelAdapter, prefix: StageCache | GraphCache, xs: torch.Tensor,
                    base_logits: torch.Tensor, names: list[str], cut: str | Split | None, group: str,
                    fast_path: str, rtol: float = FAST_PATH_RTOL) -> float:
    """Fast path vs full forward on the first ``n`` images ``xs (n, C, H, W)`` (normalised, on
    the device), with the base weights (``base_logits[:n]``, as scored) and with the weights
    ``names`` of ``group`` perturbed.

    Returns:
        The largest absolute difference.
    Raises:
        RuntimeError: a difference above ``rtol`` (default ``FAST_PATH_RTOL``; larger for the
            fast precision) times the largest logit (a bug).
    """
    n = len(xs)
    g = torch.Generator().manual_seed(0)
    own = dict(model.named_parameters())
    perturbed = {k: own[k] + 1e-2 * (own[k].detach().float().std().nan_to_num(0.0) + 1e-3) *
                 torch.randn(own[k].shape, generator=g).to(own[k]) for k in names}
    with torch.inference_mode():
        full_base, full_edit = forward_logits(model, xs), forward_logits(model, xs, perturbed)
        carry = prefix.batch_carry(cut, 0, n)  # type: ignore[arg-type]
        split = cut if isinstance(cut, Split) else adapter.split(names)
        fast_edit = split.suffix(carry, perturbed)
    worst = 0.0
    for what, fast, full in (("base weights", base_logits[:n], full_base),
                             (f"perturbed {group}", fast_edit, full_edit)):
        err = float((fast.float() - full.float()).abs().max())
        scale = 1.0 + float(full.float().abs().max())
        if not err <= rtol * scale:
            raise RuntimeError(f"the evaluator's fast path ({fast_path}) disagrees with the full forward "
                               f"on {n} images with {what}: max |difference| {err:.3g} (allowed "
                               f"{rtol * scale:.3g}). This is a bug in the workbench; please report it "
                               "with the model's definition")
        worst = max(worst, err)
    return worst


def describe(cut: str | Split | None) -> str:
    """How edits of a group with this cut are scored, in words."""
    if not isinstance(cut, Split):
        return f"stages: cached activation entering {cut!r}, the suffix is rerun"
    if cut.kind == "full":
        return f"full forward: {cut.note}"
    return f"graph cut (torch.fx) before {cut.cut!r}: the values crossing it are cached, the suffix is rerun"
