"""Layer rewinding and retraining (Maini et al. 2023, sec. 2).

* **Rewinding**: replace one layer's weights (and buffers) by those of an earlier epoch's
  snapshot, keep the rest, and measure accuracy on the clean and on the noisy training
  examples (accuracy on a noisy example = it is still predicted with its noisy label).
* **Retraining**: re-initialise one layer, freeze the rest, and train that layer on the clean
  examples only (one-cycle schedule); do the noisy examples keep their noisy labels?

A *layer* is a dotted module path; everything under it (parameters and buffers) moves. The
default layers are the model's direct children that hold parameters (``stem``, ``chain1``...,
``head`` for the project's ResNets). The given model is never modified: each function works
on a copy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.outputs import forward_logits
from .snapshot_accounting import State, read_state
from .settings import EVAL_BATCH_SIZE, RETRAIN_BATCH_SIZE, RETRAIN_EPOCHS, RETRAIN_PEAK_LR

__all__ = ["RewindRow", "default_layers", "layer_keys", "retrain_layer", "retraining_table", "rewind_layer",
           "rewinding_table", "split_accuracy"]

Normalize = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RewindRow:
    """Accuracy after rewinding (or retraining) one layer.

    Attributes:
        layer: the module path (None: the model as it is).
        epoch: the snapshot it was rewound to (None for the unchanged model or a retraining row).
        clean_accuracy: on the clean training examples (their label = the given label).
        noisy_accuracy: on the noisy ones, against their *noisy* label (high = still memorized).
        kind: ``"final"``, ``"rewind"`` or ``"retrain"``.
    """

    layer: str | None
    epoch: int | None
    clean_accuracy: float
    noisy_accuracy: float
    kind: str


def default_layers(model: nn.Module) -> list[str]:
    """The model's direct children that hold parameters, in order."""
    return [n for n, m in model.named_children() if any(True for _ in m.parameters())]


def layer_keys(model: nn.Module, layer: str) -> list[str]:
    """State-dict keys (parameters and buffers) under module path ``layer``.

    Raises:
        ValueError: unknown path, or a module with no state.
    """
    mods = dict(model.named_modules())
    if layer not in mods or not layer:
        raise ValueError(f"unknown layer {layer!r}; use a dotted module path, e.g. {default_layers(model)[:4]}")
    keys = [k for k in model.state_dict() if k.startswith(layer + ".")]
    if not keys:
        raise ValueError(f"layer {layer!r} has no parameters or buffers to rewind")
    return keys


def rewind_layer(model: nn.Module, layer: str, state: State | str | Path) -> nn.Module:
    """A copy of ``model`` whose ``layer`` holds ``state``'s values (the rest unchanged).

    Args:
        model: the converged model (not modified).
        layer: dotted module path (``"chain2"``, ``"chain2.0.conv1"``...).
        state: the earlier weights: a state dict, a ``.safetensors`` file or a model folder.
    Raises:
        ValueError: unknown layer, or ``state`` lacks the layer's keys or has other shapes.
    """
    keys = layer_keys(model, layer)
    sd = read_state(state)
    own = model.state_dict()
    missing = [k for k in keys if k not in sd]
    shapes = [k for k in keys if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or shapes:
        raise ValueError(f"the snapshot cannot rewind {layer!r}: missing {missing[:3]}, other shapes {shapes[:3]}; "
                         "use a snapshot of the same run")
    out = copy.deepcopy(model)
    new = out.state_dict()
    with torch.no_grad():
        for k in keys:
            new[k].copy_(sd[k].to(new[k].device))
    return out


@torch.no_grad()
def split_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noisy: torch.Tensor, *,
                   normalize: Normalize | None = None, batch_size: int = EVAL_BATCH_SIZE) -> tuple[float, float]:
    """``(clean accuracy, noisy accuracy)`` of ``model`` (eval mode) on ``x (N, ...)``, labels ``y``.

    ``noisy (N,) bool`` marks the flipped labels; accuracy on them is agreement with ``y``
    (NaN when a part is empty).
    """
    dev = next(model.parameters()).device
    was = [(m, m.training) for m in model.modules()]
    model.eval()
    hits = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(dev)
            xb = normalize(xb) if normalize is not None else xb.float()
            hits.append((forward_logits(model, xb).argmax(1) == y[i:i + batch_size].to(dev)).cpu())
    finally:
        for m, t in was:
            m.training = t
    h = torch.cat(hits).float()
    f = noisy.bool().cpu()
    clean = float(h[~f].mean()) if bool((~f).any()) else float("nan")
    noisy_acc = float(h[f].mean()) if bool(f.any()) else float("nan")
    return clean, noisy_acc


def rewinding_table(model: nn.Module, states: Mapping[int, State | str | Path], x: torch.Tensor, y: torch.Tensor,
                    noisy: torch.Tensor, *, layers: Sequence[str] | None = None,
                    normalize: Normalize | None = None) -> list[RewindRow]:
    """The final model's row, then one row per (layer, epoch): rewind, measure clean and noisy accuracy."""
    rows = [RewindRow(None, None, *split_accuracy(model, x, y, noisy, normalize=normalize), kind="final")]
    for layer in layers or default_layers(model):
        for e in sorted(states):
            m = rewind_layer(model, layer, states[e])
            rows.append(RewindRow(layer, int(e), *split_accuracy(m, x, y, noisy, normalize=normalize), kind="rewind"))
    return rows


def _reinit(module: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
        stats = getattr(m, "reset_running_stats", None)
        if callable(stats):
            stats()


def retrain_layer(model: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor, *,
                  epochs: int = RETRAIN_EPOCHS, peak_lr: float = RETRAIN_PEAK_LR,
                  batch_size: int = RETRAIN_BATCH_SIZE, seed: int = 0, normalize: Normalize | None = None,
                  augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None) -> nn.Module:
    """A copy of ``model`` with ``layer`` re-initialised and retrained on ``x, y``; the rest frozen.

    SGD (momentum 0.9) with a one-cycle schedule peaking at ``peak_lr`` half-way (the paper:
    20 epochs, peak 0.1 at epoch 10). Only ``layer``'s modules are in train mode (its
    BatchNorms re-estimate their statistics); every other module stays in eval mode.

    Args:
        x: ``(N, C, H, W)`` the clean training examples (uint8 with ``normalize``); y: ``(N,)``.
        augment: optional ``(batch, generator) -> batch`` applied to raw batches before ``normalize``.
    Returns:
        The retrained copy, in eval mode.
    """
    layer_keys(model, layer)  # validates
    if epochs < 1 or batch_size < 1 or peak_lr <= 0:
        raise ValueError("epochs and batch_size must be >= 1 and peak_lr > 0")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must have the same non-zero length, got {len(x)} and {len(y)}")
    out = copy.deepcopy(model)
    target = dict(out.named_modules())[layer]
    _reinit(target, seed)
    trainable = list(target.parameters())
    for p in out.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    dev = trainable[0].device if trainable else next(out.parameters()).device
    steps = max(1, len(x) // batch_size) * epochs
    opt = torch.optim.SGD(trainable, lr=peak_lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak_lr, total_steps=steps, pct_start=0.5)
    g = torch.Generator().manual_seed(seed)
    out.eval()
    target.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1 if len(x) >= batch_size else 1, batch_size):
            idx = perm[i:i + batch_size]
            xb = x[idx.to(x.device)]
            if augment is not None:
                xb = augment(xb, g)
            xb = xb.to(dev)
            xb = normalize(xb) if normalize is not None else xb.float()
            loss = F.cross_entropy(out(xb), y[idx.to(y.device)].to(dev).long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    for p, flag in zip(out.parameters(), (p.requires_grad for p in model.parameters())):
        p.requires_grad_(flag)
        p.grad = None
    return out.eval()


def retraining_table(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noisy: torch.Tensor, *,
                     layers: Sequence[str] | None = None, normalize: Normalize | None = None,
                     **kw) -> list[RewindRow]:
    """One row per layer: retrain it on the clean examples only, then measure clean and noisy accuracy
    on the whole training set (``kw`` go to :func:`retrain_layer`)."""
    clean = ~noisy.bool().cpu()
    rows = []
    for layer in layers or default_layers(model):
        m = retrain_layer(model, layer, x[clean.to(x.device)], y[clean.to(y.device)], normalize=normalize, **kw)
        rows.append(RewindRow(layer, None, *split_accuracy(m, x, y, noisy, normalize=normalize), kind="retrain"))
    return rows
