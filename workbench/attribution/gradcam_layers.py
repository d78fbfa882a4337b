"""Which layers LayerGradCam can explain: modules with one spatial ``(N, C, H, W)`` output.

A forward pass on one image, with a hook on every module, records each module's output
shape. A layer qualifies when its output is a 4-D tensor with more than one spatial cell and
the module runs exactly once per forward (a module reused twice, such as torchvision's shared
``relu`` in a block, has no single output to explain).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..models import ModelAdapter, adapt


@dataclass(frozen=True)
class LayerInfo:
    """One module's output in a forward pass: ``path``, ``kind`` (class name), ``shape``
    ``(C, H, W)`` or other per-image shape, ``calls`` per forward, ``usable`` for LayerGradCam."""

    path: str
    kind: str
    shape: tuple[int, ...]
    calls: int

    @property
    def usable(self) -> bool:
        return self.calls == 1 and len(self.shape) == 3 and self.shape[1] * self.shape[2] > 1


def layer_outputs(model: nn.Module | ModelAdapter, x: torch.Tensor) -> list[LayerInfo]:
    """Every named submodule's output, in the order the forward finishes them.

    Args:
        model: any classifier (or its adapter). x: one image ``(C, H, W)`` or a batch.
    """
    adapter = adapt(model)
    net = adapter.model
    xb = x.unsqueeze(0) if x.dim() == 3 else x[:1]
    p = next(net.parameters())
    xb = xb.detach().to(device=p.device, dtype=p.dtype)
    seen: dict[str, list[tuple[int, ...]]] = {}
    order: list[str] = []

    def hook(path: str):
        def fn(_m: nn.Module, _inp: object, out: object) -> None:
            shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
            if path not in seen:
                seen[path] = []
            seen[path].append(shape)
            if path in order:
                order.remove(path)
            order.append(path)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    was = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(xb)
    finally:
        net.train(was)
        for h in handles:
            h.remove()
    kinds = dict(net.named_modules())
    return [LayerInfo(n, type(kinds[n]).__name__, seen[n][-1], len(seen[n])) for n in order]


def cam_layers(model: nn.Module | ModelAdapter, x: torch.Tensor) -> list[str]:
    """Module paths LayerGradCam can use for images like ``x``, in forward order (for UIs)."""
    return [i.path for i in layer_outputs(model, x) if i.usable]


def default_cam_layer(model: nn.Module | ModelAdapter, x: torch.Tensor) -> str:
    """The last spatial layer before the head: the last usable layer to finish in the forward
    (the outermost one when a block and its last child end together, e.g. ``layer3``)."""
    usable = cam_layers(model, x)
    if not usable:
        raise ValueError(f"{type(adapt(model).model).__name__} has no layer with a spatial (C, H, W) output "
                         "that runs once per forward, so LayerGradCam cannot be used; choose another method")
    return usable[-1]


def cam_layer(model: nn.Module | ModelAdapter, x: torch.Tensor, layer: str | None) -> nn.Module:
    """The module LayerGradCam explains: ``layer`` (a module path), or the default one.

    Raises:
        ValueError: an unknown path (with close names), or a layer without a spatial
            output (a Linear layer, say), naming the layers that can be used.
    """
    adapter = adapt(model)
    if layer is None:
        return adapter.module(default_cam_layer(adapter, x))
    info = {i.path: i for i in layer_outputs(adapter, x)}
    try:
        module = adapter.module(layer)
    except ValueError as e:
        raise ValueError(f"unknown layer {layer!r} for LayerGradCam ({e}); layers it can use: "
                         f"{[i.path for i in info.values() if i.usable]}") from None
    got = info.get(layer)
    if got is None or not got.usable:
        why = "it does not run in the forward" if got is None else \
            (f"it runs {got.calls} times per forward" if got.calls != 1 else
             f"its output is {got.shape} per image, not a (C, H, W) map with more than one cell")
        raise ValueError(f"LayerGradCam cannot explain {layer!r} ({type(module).__name__}): {why}. "
                         f"Layers it can use: {[i.path for i in info.values() if i.usable]}")
    return module
