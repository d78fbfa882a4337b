"""Which layers LayerGradCam can explain: modules with one spatial ``(N, C, H, W)`` output,
or, on a vision transformer, its blocks' tokens laid out on the patch grid.

A forward pass on one image, with a hook on every module, records each module's output
shape. A layer qualifies when its output is a 4-D tensor with more than one spatial cell and
the module runs exactly once per forward (a module reused twice, such as torchvision's shared
``relu`` in a block, has no single output to explain).

**Transformers.** When blocks of the model's runs of repeated blocks
(:mod:`workbench.models.groups`: timm's ``blocks.N``, Hugging Face's ``vit.layers.N``,
torchvision's ``encoder.layers.encoder_layer_N``) output ``(N, T, D)`` tokens whose last
``P`` form the patch grid (:class:`TokenGrid`), those blocks are the layers GradCAM explains,
and the attention internals are not offered: the tokens after the class/register tokens are
reshaped to ``(N, D, H', W')`` (the grid of the patch embedding's convolution, else
``sqrt(P) x sqrt(P)``), as is common practice. A model with neither gets a plain refusal.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn as nn

from ..models import ModelAdapter, adapt
from ..models.groups import group_paths

#: At most this many class/register tokens precede the patch tokens.
MAX_PREFIX_TOKENS = 8
#: A refusal lists this many layers (the nearest the head first), then how many more there are.
SHOWN_LAYERS = 5


@dataclass(frozen=True)
class LayerInfo:
    """One module's output in a forward pass: ``path``, ``kind`` (class name), ``shape``
    ``(C, H, W)`` or other per-image shape, ``calls`` per forward, ``usable`` for LayerGradCam."""

    path: str
    kind: str
    shape: tuple[int, ...]
    calls: int

    tuple_out: bool = False

    @property
    def usable(self) -> bool:
        return self.calls == 1 and not self.tuple_out and len(self.shape) == 3 and self.shape[1] * self.shape[2] > 1


@dataclass(frozen=True)
class TokenGrid:
    """How a block's ``(N, T, D)`` tokens map to the patch grid: ``prefix`` class/register
    tokens first, then ``height * width`` patch tokens in row-major order."""

    prefix: int
    height: int
    width: int

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, T, D)`` -> ``(N, D, height, width)``."""
        patches = tokens[:, self.prefix:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], self.height, self.width)

    def from_grid(self, tokens: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """``tokens`` with the patch tokens taken from ``grid`` (the same values: a view round trip)."""
        return torch.cat([tokens[:, :self.prefix], grid.flatten(2).transpose(1, 2)], 1)


class _GridView(nn.Module):
    """The module LayerGradCam hooks on a transformer: a block's tokens as a patch grid."""

    def __init__(self, grid: TokenGrid) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.grid.to_grid(tokens)


@contextlib.contextmanager
def grid_view(block: nn.Module, grid: TokenGrid) -> Iterator[nn.Module]:
    """While open, ``block``'s tokens pass through the returned module as ``(N, D, H', W')`` (so
    captum's LayerGradCam can explain it); the block's output values are unchanged."""
    view = _GridView(grid)

    def hook(_m: nn.Module, _inp: object, out: object) -> object:
        tokens = out[0] if isinstance(out, tuple) else out
        new = grid.from_grid(tokens, view(tokens))  # type: ignore[arg-type]
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = block.register_forward_hook(hook)
    try:
        yield view
    finally:
        handle.remove()


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
    tuples: dict[str, bool] = {}
    order: list[str] = []

    def hook(path: str):
        def fn(_m: nn.Module, _inp: object, out: object) -> None:
            first = out[0] if isinstance(out, tuple) and out else out
            shape = tuple(first.shape[1:]) if isinstance(first, torch.Tensor) else ()
            if path not in seen:
                seen[path] = []
            seen[path].append(shape)
            tuples[path] = isinstance(out, tuple)
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
    return [LayerInfo(n, type(kinds[n]).__name__, seen[n][-1], len(seen[n]), tuples[n]) for n in order]


def _grid(tokens: int, infos: list[LayerInfo]) -> TokenGrid | None:
    """The patch grid of ``tokens`` tokens: the patch embedding's (a spatial output of at most
    ``tokens`` cells, at most MAX_PREFIX_TOKENS fewer), else the smallest square prefix split."""
    for i in reversed(infos):
        if i.usable and 0 <= tokens - i.shape[1] * i.shape[2] <= MAX_PREFIX_TOKENS:
            return TokenGrid(tokens - i.shape[1] * i.shape[2], i.shape[1], i.shape[2])
    for prefix in range(0, MAX_PREFIX_TOKENS + 1):
        side = math.isqrt(tokens - prefix) if tokens > prefix else 0
        if side > 1 and side * side == tokens - prefix:
            return TokenGrid(prefix, side, side)
    return None


def token_layers(model: nn.Module | ModelAdapter, x: torch.Tensor,
                 infos: list[LayerInfo] | None = None) -> dict[str, TokenGrid]:
    """Transformer blocks whose ``(T, D)`` token output maps to a patch grid, path -> grid, in
    forward order (empty for a model without such blocks)."""
    adapter = adapt(model)
    infos = infos if infos is not None else layer_outputs(adapter, x)
    members = {p for run in group_paths(adapter.model)[1] for p in run}
    out: dict[str, TokenGrid] = {}
    for i in infos:
        if i.path in members and i.calls == 1 and len(i.shape) == 2 and i.shape[0] > 1:
            grid = _grid(i.shape[0], infos)
            if grid is not None:
                out[i.path] = grid
    return out


def cam_layers(model: nn.Module | ModelAdapter, x: torch.Tensor) -> list[str]:
    """Module paths LayerGradCam can use for images like ``x``, in forward order (for UIs):
    a transformer's blocks (:func:`token_layers`), else the layers with a spatial output."""
    infos = layer_outputs(model, x)
    return list(token_layers(model, x, infos)) or [i.path for i in infos if i.usable]


def shortlist(paths: list[str], groups: list[str] | tuple[str, ...] = (), n: int = SHOWN_LAYERS) -> str:
    """The ``n`` best of ``paths`` (forward order) and how many more there are: the model's
    ``groups`` first, each part nearest the head first."""
    near = [p for p in reversed(paths) if p in groups] + [p for p in reversed(paths) if p not in groups]
    near = near[:n]
    more = f" ... and {len(paths) - n} more (workbench.attribution.cam_layers(model, x) lists them)" \
        if len(paths) > n else ""
    return ", ".join(near) + more if near else "none"


def _no_cam(model: nn.Module) -> ValueError:
    return ValueError(f"GradCAM does not apply to {type(model).__name__}: it has no layer with a spatial (C, H, W) "
                      "output that runs once per forward, and no transformer blocks whose tokens form a patch grid. "
                      "Use Integrated Gradients, Saliency or Occlusion")


def default_cam_layer(model: nn.Module | ModelAdapter, x: torch.Tensor) -> str:
    """The layer LayerGradCam explains by default: a transformer's last block (its tokens on the
    patch grid), else the last spatial layer before the head, i.e. the last usable layer to
    finish in the forward (the outermost one when a block and its last child end together,
    e.g. ``layer3``)."""
    usable = cam_layers(model, x)
    if not usable:
        raise _no_cam(adapt(model).model)
    return usable[-1]


def cam_layer(model: nn.Module | ModelAdapter, x: torch.Tensor, layer: str | None
              ) -> tuple[nn.Module, TokenGrid | None]:
    """The module LayerGradCam explains, ``layer`` (a module path) or the default one, and the
    patch grid its tokens are laid out on (None for a spatial layer; see :func:`grid_view`).

    Raises:
        ValueError: an unknown path (with close names), a layer without a spatial output (a
            Linear layer, an attention internal of a transformer), naming the nearest of the
            layers that can be used, or a model GradCAM does not apply to.
    """
    adapter = adapt(model)
    infos = layer_outputs(adapter, x)
    tokens = token_layers(adapter, x, infos)
    usable = list(tokens) or [i.path for i in infos if i.usable]
    if not usable:
        raise _no_cam(adapter.model)
    if layer is None:
        layer = usable[-1]
    try:
        module = adapter.module(layer)
    except ValueError as e:
        raise ValueError(f"unknown layer {layer!r} for LayerGradCam ({e}); layers it can use: "
                         f"{shortlist(usable, adapter.group_names())}") from None
    if layer not in usable:
        got = {i.path: i for i in infos}.get(layer)
        why = "it does not run in the forward" if got is None else \
            (f"it runs {got.calls} times per forward" if got.calls != 1 else
             "on a transformer GradCAM explains a block's tokens on the patch grid" if tokens else
             f"its output is {got.shape} per image, not a (C, H, W) map with more than one cell")
        raise ValueError(f"LayerGradCam cannot explain {layer!r} ({type(module).__name__}): {why}. "
                         f"Layers it can use: {shortlist(usable, adapter.group_names())}")
    return module, tokens.get(layer)
