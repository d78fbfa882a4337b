"""Targets no gradient can reach: why an edit fails whatever its step size.

A classifier whose logits leave through a ReLU (torchvision's SqueezeNet ends in ``Conv2d ->
ReLU -> AdaptiveAvgPool2d``) gives a class whose pre-activation is negative at every position
a logit of exactly 0, and a gradient of exactly 0 with respect to every weight before the
ReLU. No step size, and no group, raises that logit: the editor only pushes the other logits
down, towards the same 0. :func:`unreachable_target` finds such a target after a failed edit
(one extra forward and backward pass of the failing images) and says what to do instead.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

from ..models.adapter import ModelAdapter
from ..models.outputs import forward_logits

#: Modules whose slope is exactly 0 over part of their input: where a logit's gradient can die.
ZERO_SLOPE = (nn.ReLU, nn.Hardtanh)  # nn.ReLU6 is a Hardtanh


def _active(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """Where ``module`` passes a gradient, read from its output."""
    if isinstance(module, nn.Hardtanh):
        return (out > module.min_val) & (out < module.max_val)
    return out > 0


def _dies_at(logit: torch.Tensor, outputs: list[tuple[str, nn.Module, torch.Tensor]]) -> str | None:
    """The last zero-slope module whose output gets a gradient from ``logit`` but passes none on."""
    for name, module, out in reversed(outputs):
        try:
            (g,) = torch.autograd.grad(logit, [out], retain_graph=True, allow_unused=True)
        except RuntimeError:  # an in-place op rewrote that output later: not a point we can read
            continue
        if g is not None and bool(g.ne(0).any()) and not bool((g * _active(module, out)).ne(0).any()):
            return f"{name} ({type(module).__name__})"
    return None


def unreachable_target(adapter: ModelAdapter, x: torch.Tensor, y: torch.Tensor,
                       params: Mapping[str, torch.Tensor]) -> str:
    """A message when no gradient reaches the target logit of a failing image, else ``""``.

    Args:
        adapter: the model (run in the mode it is in: eval for an edit).
        x: ``(N, C, H, W)`` the edited images; y: ``(N,)`` their targets.
        params: the edited group's parameters after the edit (name -> tensor).
    Returns:
        ``""`` when every image predicts its target or a gradient reaches each failing
        image's target logit from the edited group; otherwise the reason and the way out.
    """
    model = adapter.model
    full = {n: (params[n] if n in params else p).detach().requires_grad_(True)
            for n, p in model.named_parameters()}
    outputs: list[tuple[str, nn.Module, torch.Tensor]] = []

    def keep(name: str):
        def hook(module: nn.Module, _inp: object, out: object) -> None:
            if isinstance(out, torch.Tensor) and out.requires_grad:
                outputs.append((name, module, out))
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in model.named_modules() if isinstance(m, ZERO_SLOPE)]
    try:
        with torch.enable_grad():
            logits = forward_logits(model, x, full)
    finally:
        for h in hooks:
            h.remove()
    names, group = list(full), set(params)
    for i in torch.nonzero(logits.argmax(-1) != y).flatten().tolist():
        logit = logits[i, int(y[i])]
        grads = torch.autograd.grad(logit, list(full.values()), retain_graph=True, allow_unused=True)
        reach = {n for n, g in zip(names, grads) if g is not None and bool(g.ne(0).any())}
        if reach & group:
            continue
        where = _dies_at(logit, outputs)
        groups = [g for g in adapter.group_names()[:-1] if set(adapter.params(g)) & reach]
        other = (f", or edit a group the gradient does reach ({', '.join(groups[:3])})" if groups else
                 " (no group of this model gets a gradient from it)")
        fix = (f"open the model with {where.split()[0]} replaced by torch.nn.Identity() (the predictions change "
               "only where every logit was 0)" if where else "make the model return the logits before it")
        return (f"no gradient reaches the target class {int(y[i])}: its logit is {float(logit.detach()):.3g} for "
                f"{'this image' if len(y) == 1 else f'image {i} of the batch'} and its gradient with respect to the "
                f"edited group is exactly 0, because the output passes through "
                f"{where or 'a function with zero slope there'}, which is inactive for that class, so no step "
                f"size can raise it. Way out: edit the pre-activation: {fix}{other}")
    return ""
