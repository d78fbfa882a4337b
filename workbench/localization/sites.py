"""Where neurons can be removed: sites (conv channels, linear units) and the hooks that zero them.

A *neuron* is a unit of a linear layer or an output channel of a conv layer, named
``(layer, index)`` with ``layer`` the module's dotted name in ``model.named_modules()``.
Removing it zeroes its activation with a forward hook. When a BatchNorm directly follows the
conv (or linear) layer, the activation is zeroed at the BatchNorm's output: zeroing the conv's
output alone would let the BatchNorm turn the zero back into its shift, so the channel would
not be removed. The site is still reported under the conv's name.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = ["Site", "find_sites", "group_counts", "group_of", "is_zeroable", "masked", "model_modes", "neuron_masks"]

Neuron = tuple[str, int]


@dataclass(frozen=True)
class Site:
    """One layer whose neurons can be removed.

    Attributes:
        name: the conv/linear module's dotted name (what results report).
        hook: the module whose output is masked (``name``, or the BatchNorm right after it).
        size: its channels (conv) or units (linear).
        kind: ``"conv"`` (mask along dim 1) or ``"linear"`` (mask along the last dim).
    """

    name: str
    hook: str
    size: int
    kind: str


def is_zeroable(module: nn.Module) -> bool:
    """True for the layers whose neurons the search removes: ``nn.Linear`` and conv layers."""
    return isinstance(module, (nn.Linear, _ConvNd))


@contextlib.contextmanager
def model_modes(model: nn.Module, training: bool = False) -> Iterator[None]:
    """Put every module in ``training`` mode for the block, then restore each module's own flag."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _size(m: nn.Module) -> int:
    if isinstance(m, nn.Linear):
        return int(m.out_features)
    assert isinstance(m, _ConvNd)
    return int(m.out_channels)


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[list[str], dict[str, str]]:
    """Run ``x`` once; returns the zeroable modules in execution order and conv -> following BN."""
    mods = dict(model.named_modules())
    order: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    follows: dict[str, str] = {}
    handles = []

    def hook(name: str):
        def fn(mod: nn.Module, inp: tuple, out: object) -> None:
            if is_zeroable(mod) and isinstance(out, torch.Tensor):
                if name not in outputs:
                    order.append(name)
                outputs[name] = out
            elif isinstance(mod, _BatchNorm) and inp and isinstance(inp[0], torch.Tensor):
                for src, t in outputs.items():
                    if inp[0] is t and src not in follows:
                        follows[src] = name
        return fn

    try:
        for name, m in mods.items():
            if name and (is_zeroable(m) or isinstance(m, _BatchNorm)):
                handles.append(m.register_forward_hook(hook(name)))
        with torch.no_grad(), model_modes(model, False):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return order, follows


def find_sites(model: nn.Module, x: torch.Tensor, layers: Sequence[str] | str | None = None) -> list[Site]:
    """The layers whose neurons may be removed, in execution order.

    Args:
        model: any ``nn.Module`` (not modified; one forward pass of ``x`` is run to find the order).
        x: ``(1, C, H, W)`` (or any batch the model takes), on the model's device.
        layers: dotted module names; a conv/linear module is taken as it is, any other module
            stands for every conv/linear layer inside it. Default: every conv/linear layer the
            forward pass runs, except the last one (the classifier that produces the logits).
    Returns:
        ``list[Site]``.
    Raises:
        ValueError: no layer can be zeroed, or a name is unknown (the message lists valid ones).
    """
    mods = dict(model.named_modules())
    zeroable = [n for n, m in mods.items() if n and is_zeroable(m)]
    if not zeroable:
        raise ValueError(f"{type(model).__name__} has no layer that can be zeroed: the search removes units of "
                         "nn.Linear and channels of conv layers, and this model has neither")
    order, follows = _trace(model, x)
    if not order:
        raise ValueError(f"the forward pass of {type(model).__name__} ran none of its conv/linear layers "
                         f"({zeroable[:4]}...), so there is nothing to zero")
    classifier = order[-1]
    if layers is None:
        chosen = order[:-1]
        if not chosen:
            raise ValueError(f"{type(model).__name__}'s only conv/linear layer is its classifier {classifier!r}; "
                             f"pass layers=[{classifier!r}] to search its units anyway")
    else:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        if not wanted:
            raise ValueError("layers is empty; pass None for every layer but the classifier, or module names")
        chosen = []
        for w in wanted:
            if w not in mods or not w:
                raise ValueError(f"unknown layer {w!r}; use dotted module names from model.named_modules(), "
                                 f"e.g. {order[:3]}")
            if is_zeroable(mods[w]):
                inside = [w]
            else:
                inside = [n for n in order if n.startswith(w + ".") and n != classifier]
            if not inside:
                raise ValueError(f"layer {w!r} holds no conv/linear layer the forward pass runs "
                                 f"(other than the classifier {classifier!r}); choose another, e.g. {order[:3]}")
            if w in mods and is_zeroable(mods[w]) and w not in order:
                raise ValueError(f"layer {w!r} is not run by the model's forward pass, so zeroing it does nothing")
            chosen += [n for n in inside if n not in chosen]
        chosen = [n for n in order if n in chosen]
    return [Site(n, follows.get(n, n), _size(mods[n]), "linear" if isinstance(mods[n], nn.Linear) else "conv")
            for n in chosen]


def neuron_masks(sites: Sequence[Site], device: torch.device | str, removed: Sequence[Neuron] = (),
                 requires_grad: bool = False) -> dict[str, torch.Tensor]:
    """One ``(size,)`` float mask per site: 1 = kept, 0 = removed (``removed`` set to 0).

    Raises:
        ValueError: a removed neuron names an unknown layer or an index out of its range.
    """
    masks = {s.name: torch.ones(s.size, device=device) for s in sites}
    for layer, idx in removed:
        if layer not in masks:
            raise ValueError(f"neuron ({layer!r}, {idx}) is not in a searched layer; layers: {list(masks)[:5]}...")
        if not 0 <= int(idx) < masks[layer].numel():
            raise ValueError(f"neuron index {idx} out of range for {layer!r} (0..{masks[layer].numel() - 1})")
        masks[layer][int(idx)] = 0.0
    return {k: v.requires_grad_(requires_grad) for k, v in masks.items()}


@contextlib.contextmanager
def masked(model: nn.Module, sites: Sequence[Site], masks: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Multiply each site's activation by its mask for the block (hooks removed even on error).

    ``masks[site.name]`` is ``(size,)``; conv activations are scaled per channel (dim 1),
    linear ones per unit (last dim). Gradients flow to masks that require grad: the gradient
    with respect to a mask entry is ``sum(activation * dL/d activation)`` over its neuron.

    Example:
        >>> with masked(model, sites, neuron_masks(sites, "cpu", [("chain1.0.conv1", 3)])):
        ...     logits = model(x)          # channel 3 of chain1.0.conv1 removed
    """
    mods = dict(model.named_modules())
    handles = []

    def hook(site: Site):
        def fn(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
            m = masks[site.name].to(out.dtype)
            if site.kind == "conv":
                m = m.view(1, -1, *([1] * (out.dim() - 2)))
            if not torch.is_grad_enabled():
                return out.mul_(m)  # no graph to keep: scale in place
            return out * m
        return fn

    try:
        for s in sites:
            handles.append(mods[s.hook].register_forward_hook(hook(s)))
        yield
    finally:
        for h in handles:
            h.remove()


def group_of(layer: str, groups: Sequence[str]) -> str | None:
    """The most specific edit group holding module ``layer``: the longest group name equal to
    ``layer`` or a prefix of it at a dot (``"chain1.0.conv1"`` -> ``"chain1"``); None if none does.

    ``"all"`` is never chosen (it is not a module path).
    """
    hits = [g for g in groups if g != "all" and (layer == g or layer.startswith(g + "."))]
    return max(hits, key=len) if hits else None


def group_counts(layer_counts: Mapping[str, float], groups: Sequence[str]) -> dict[str, float]:
    """Sum per edit group of per-layer counts (each layer goes to :func:`group_of`'s group;
    layers in no group are left out). Groups keep their given order."""
    out = {g: 0.0 for g in groups if g != "all"}
    for layer, c in layer_counts.items():
        g = group_of(layer, groups)
        if g is not None:
            out[g] += float(c)
    return out
