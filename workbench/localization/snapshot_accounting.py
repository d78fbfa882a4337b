"""Gradient accounting on saved weights: clean vs noisy gradients per layer (Maini et al. 2023, sec. 1).

For one set of weights (a model, or each of a run's per-epoch snapshots) and a training set
whose noisy (flipped-label) examples are known, per layer:

- ``clean``: the norm of the gradient of the cross-entropy *summed* over the clean examples,
  divided by ``sqrt(#parameters of the layer)``; ``noisy`` the same over the noisy examples;
- ``cosine``: the cosine similarity of the mean clean and the mean noisy gradients.

A *layer* is a module that owns parameters (conv, BatchNorm, linear), named by its dotted
path, or any module path you pass (all parameters under it). The layers and the statistic are
those of the trainer's in-loop accounting (``--grad-accounting``,
:mod:`workbench.training.grad_accounting`), which averages batch gradients over an epoch's
steps instead of taking one full-set gradient at the epoch's end.

The model is never modified: gradients are taken through ``torch.func.functional_call`` on
detached copies of the parameters, in eval mode by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.outputs import forward_logits
from ..training.grad_accounting import LayerGradients, layer_gradients, parameter_layers
from .settings import EVAL_BATCH_SIZE
from .sites import model_modes

__all__ = ["GradientAccount", "account_epochs", "gradient_accounting", "read_state"]

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class GradientAccount:
    """Per-layer gradients of one set of weights.

    Attributes:
        epoch: the snapshot's epoch (None for a plain model).
        layers: one :class:`LayerGradients` per layer, in module order.
        n_clean, n_noisy: examples in each part.
    """

    epoch: int | None
    layers: tuple[LayerGradients, ...]
    n_clean: int
    n_noisy: int

    def as_rows(self) -> list[dict]:
        """One flat dict per layer (``epoch, layer, params, clean, noisy, cosine``), for tables."""
        return [{"epoch": self.epoch, **vars(r)} for r in self.layers]


def read_state(source: State | str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a mapping, a ``.safetensors`` file or a model folder (safe loading only)."""
    if isinstance(source, Mapping):
        return dict(source)
    from safetensors.torch import load_file

    p = Path(source)
    if p.is_dir():
        p = p / "model.safetensors"
    if p.suffix != ".safetensors" or not p.is_file():
        raise FileNotFoundError(f"{source}: expected a .safetensors file or a model folder holding model.safetensors")
    return load_file(str(p), device="cpu")


def gradient_accounting(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noisy: torch.Tensor, *,
                        state: State | str | Path | None = None, layers: Sequence[str] | None = None,
                        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                        batch_size: int = EVAL_BATCH_SIZE, epoch: int | None = None) -> GradientAccount:
    """Clean vs noisy gradients per layer, for the model's weights (or ``state``'s).

    Args:
        model: the classifier (not modified); it runs on its own device.
        x: ``(N, C, H, W)`` training images (uint8 with ``normalize``, or normalised floats).
        y: ``(N,)`` the labels trained on (noisy ones included).
        noisy: ``(N,)`` bool, True where the label was flipped.
        state: weights to use instead of the model's (a state dict, file or folder).
        layers: module paths (default: every module that owns parameters).
        epoch: recorded in the result.
    Returns:
        :class:`GradientAccount`.
    """
    if not (len(x) == len(y) == len(noisy)) or len(x) == 0:
        raise ValueError(f"x, y and noisy must have the same non-zero length, got {len(x)}, {len(y)}, {len(noisy)}")
    noisy = noisy.bool()
    groups = parameter_layers(model, layers)
    dev = next(model.parameters()).device
    own = dict(model.named_parameters())
    sd = read_state(state) if state is not None else {}
    params = {n: sd.get(n, p).detach().to(dev).float().requires_grad_() for n, p in own.items()}
    buffers = {n: sd.get(n, b).to(dev) for n, b in model.named_buffers()}
    wanted = [n for names in groups.values() for n in names]
    sums_c = {n: torch.zeros_like(params[n], dtype=torch.float64) for n in wanted}
    sums_n = {n: torch.zeros_like(params[n], dtype=torch.float64) for n in wanted}
    with model_modes(model, False):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(dev)
            xb = normalize(xb) if normalize is not None else xb.float()
            yb, fb = y[i:i + batch_size].to(dev).long(), noisy[i:i + batch_size].to(dev)
            per = F.cross_entropy(forward_logits(model, xb, {**params, **buffers}).float(), yb, reduction="none")
            for part, sums in ((~fb, sums_c), (fb, sums_n)):
                if bool(part.any()):
                    gs = torch.autograd.grad(per[part].sum(), [params[n] for n in wanted], retain_graph=True,
                                             allow_unused=True)
                    for n, g in zip(wanted, gs):
                        if g is not None:
                            sums[n] += g.double()
    n_noisy = int(noisy.sum())
    n_clean = len(noisy) - n_noisy
    rows = layer_gradients(groups, sums_c, sums_n)
    return GradientAccount(epoch, tuple(rows), n_clean, n_noisy)


def account_epochs(model: nn.Module, states: Mapping[int, State | str | Path], x: torch.Tensor,
                   y: torch.Tensor, noisy: torch.Tensor, **kw) -> list[GradientAccount]:
    """:func:`gradient_accounting` for every ``{epoch: weights}`` (e.g. a run's per-epoch snapshots)."""
    return [gradient_accounting(model, x, y, noisy, state=states[e], epoch=int(e), **kw) for e in sorted(states)]
