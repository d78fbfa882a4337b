"""A forward's logits, whatever the model returns: the one place the core reads a model's output.

:func:`forward_logits` is how the core calls a model (the editor, the evaluator's full forward,
captum's forward functions, localization, the probe), and :class:`~workbench.models.graph.Split`
passes its suffix's output through :func:`logits_of`. So a model may return

* the logits tensor ``(N, classes)``;
* an object with a ``logits`` attribute or key: a Hugging Face ``ImageClassifierOutput``,
  ``{"logits": ...}``;
* a mapping with exactly one tensor entry (``{"out": t}``).

Anything else (a mapping with several tensors and no ``logits`` key, say) is refused with the
keys found and a four-line wrapper that picks the right one. A tuple is not guessed at:
:func:`check_logits` refuses it and names ``out[0]``.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
from torch.func import functional_call

#: The key (or attribute) that holds the logits in a structured output.
LOGITS_KEY = "logits"


def wrapper_hint(pick: str = 'out["logits"]') -> str:
    """The four-line wrapper that makes ``forward`` return one logits tensor (for messages)."""
    return ("class Logits(torch.nn.Module):\n"
            "    def __init__(self, net): super().__init__(); self.net = net\n"
            "    def forward(self, x):\n"
            f"        out = self.net(x); return {pick}\n"
            "and open Logits(model) (the groups keep their names under 'net.')")


def logits_of(out: Any) -> Any:
    """The logits in a forward's output ``out`` (see the module docstring).

    A tensor, a tuple or anything unrecognised is returned as it is (:func:`check_logits`
    says what is wrong with it). Raises ValueError for a mapping or object whose logits are
    ambiguous: no ``logits`` entry and not exactly one tensor entry.
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if LOGITS_KEY in out:
            return out[LOGITS_KEY]
        tensors = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
        if len(tensors) == 1:
            return out[tensors[0]]
        first = (tensors or list(out) or [LOGITS_KEY])[0]
        raise ValueError(f"the model returned a {type(out).__name__} with keys {list(out)[:8]} and no "
                         f"{LOGITS_KEY!r} key, so which entry holds the logits is ambiguous "
                         f"({len(tensors)} tensor entries). Wrap the model so that forward returns the "
                         f"logits tensor:\n{wrapper_hint(f'out[{first!r}]')}")
    if not isinstance(out, (tuple, list)) and isinstance(getattr(out, LOGITS_KEY, None), torch.Tensor):
        return getattr(out, LOGITS_KEY)
    return out


def forward_logits(model: nn.Module, x: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None,
                   **kwargs: Any) -> torch.Tensor:
    """``model(x)``'s logits (:func:`logits_of`); ``params`` (any subset of the model's
    parameter/buffer names) override its tensors through ``torch.func.functional_call``.

    Args:
        x: ``(N, C, H, W)`` images, normalised as the model expects.
    Returns:
        the logits, normally ``(N, classes)`` (not checked here: see :func:`check_logits`).
    """
    out = model(x, **kwargs) if not params else functional_call(model, dict(params), (x,), kwargs)
    return logits_of(out)


def describe_output(out: object) -> str:
    """A short description of a forward's output, for error messages."""
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)} ({out.dtype})"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)} items"
    if isinstance(out, Mapping):
        return f"a {type(out).__name__} with keys {list(out)[:4]}"
    return f"a {type(out).__name__}"


def check_logits(out: object, batch: int, num_classes: int | None = None) -> torch.Tensor:
    """``out`` if it is ``(batch, num_classes)`` float logits, else a ValueError naming the fix."""
    ok = isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == batch and \
        torch.is_floating_point(out) and (num_classes is None or out.shape[1] == num_classes)
    if not ok:
        want = f"(N, {num_classes})" if num_classes is not None else "(N, classes)"
        pick = "out[0]" if isinstance(out, (tuple, list)) else "out.logits"
        raise ValueError(f"the model must return {want} float logits for N = {batch} images, but it returned "
                         f"{describe_output(out)}. Wrap it in an nn.Module whose forward returns the logits "
                         f"tensor (for example out.logits or out[0]), with one column per class:\n"
                         f"{wrapper_hint(pick)}")
    return out  # type: ignore[return-value]
