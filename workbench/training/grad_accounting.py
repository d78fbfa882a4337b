"""Gradient accounting during training with label noise (Maini et al., ICML 2023, section 1).

At every step the cross-entropy gradient is split into the part from the batch's clean
examples and the part from its noisy (flipped-label) examples. Per layer (a module that owns
parameters) and per epoch, ``grad_accounting.jsonl`` in the model folder receives

- ``clean`` and ``noisy``: the norm of the gradient of the loss *summed* over the clean
  (noisy) examples of a batch, divided by ``sqrt(#parameters of the layer)``, averaged over the
  epoch's steps;
- ``cosine``: the cosine similarity of the two gradients (equivalently of the mean clean and
  mean noisy gradients), averaged over the epoch's steps.

The model is updated with the usual mean-loss gradient, exactly: the loss returned to the
trainer is the linear surrogate ``sum(p * g)`` whose gradient is ``g = (g_clean + g_noisy) / B``.
It costs one forward and two backward passes per step (a plain step: one and one).

The per-layer statistic (:func:`layer_gradients`) and the layers (:func:`parameter_layers`) are
defined here once; :mod:`workbench.localization.snapshot_accounting` applies them to one
full-set gradient of saved weights.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.batch import current_batch_indices
from ..models.outputs import forward_logits

ACCOUNTING_FILE = "grad_accounting.jsonl"


def parameter_layers(model: nn.Module, layers: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{layer: [parameter names]}``: every module that owns parameters (its own ones), in module
    order, or the given module paths (all parameters under each).

    Raises:
        ValueError: an unknown module path, or one without parameters.
    """
    mods = dict(model.named_modules())
    out: dict[str, list[str]] = {}
    if layers is None:
        for name, mod in mods.items():
            own = [f"{name}.{n}" if name else n for n, _ in mod.named_parameters(recurse=False)]
            if own:
                out[name] = own
        return out
    for layer in layers:
        if layer not in mods:
            raise ValueError(f"unknown layer {layer!r}; use dotted module names, e.g. {list(mods)[1:4]}")
        names = [f"{layer}.{n}" if layer else n for n, _ in mods[layer].named_parameters()]
        if not names:
            raise ValueError(f"layer {layer!r} has no parameters")
        out[layer] = names
    return out


@dataclass(frozen=True)
class LayerGradients:
    """One layer's clean and noisy gradients.

    Attributes:
        layer: the module path; params: its number of parameters.
        clean, noisy: the norm of the clean (noisy) gradient over ``sqrt(params)``.
        cosine: the cosine of the two gradients; None when either is zero.
    """

    layer: str
    params: int
    clean: float
    noisy: float
    cosine: float | None


def layer_gradients(layers: Mapping[str, Sequence[str]], clean: Mapping[str, torch.Tensor],
                    noisy: Mapping[str, torch.Tensor]) -> list[LayerGradients]:
    """The per-layer statistic of the module docstring, for each ``{layer: [parameter names]}``.

    Args:
        layers: e.g. :func:`parameter_layers`; every name must be in ``clean`` and ``noisy``.
        clean, noisy: ``{parameter name: gradient}``, each gradient shaped like its parameter.
    """
    rows = []
    for layer, names in layers.items():
        c = torch.cat([clean[n].reshape(-1) for n in names]).double()
        z = torch.cat([noisy[n].reshape(-1) for n in names]).double()
        root = math.sqrt(c.numel())
        cn, zn = float(c.norm()), float(z.norm())
        cos = float(c @ z) / (cn * zn) if cn > 0 and zn > 0 else None
        rows.append(LayerGradients(layer, c.numel(), cn / root, zn / root, cos))
    return rows


class GradientAccounting:
    """Cross-entropy objective that logs clean vs noisy gradients per layer; see the module doc.

    Args:
        noisy: ``(N,) bool``, True for training positions whose label was flipped.
        steps_per_epoch: the trainer's steps per epoch (to number the epochs from ``step``).
        out_dir: model folder; one JSON line per epoch goes to :data:`ACCOUNTING_FILE`.
        amp: bf16 autocast of the forward on CUDA.
    """

    def __init__(self, noisy: torch.Tensor, steps_per_epoch: int, out_dir: str | Path, amp: bool = False) -> None:
        self.noisy = noisy.detach().cpu().bool()
        self.steps_per_epoch = int(steps_per_epoch)
        self.path = Path(out_dir) / ACCOUNTING_FILE
        self.amp = amp
        self._sums: dict[str, list[float]] = {}  # layer -> [clean, noisy, cos sum, cos count, #params]
        self._steps = 0
        self._epoch: int | None = None
        self.last_logits: torch.Tensor | None = None  # the last batch's (B, C) logits, for the dynamics recorder

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        indices = current_batch_indices()
        if indices is None or len(indices) != len(y):
            raise ValueError("gradient accounting needs the batch's training-set positions: call it inside "
                             "`with workbench.data.batch.batch_indices(idx):` (the trainer does this)")
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.amp and x.is_cuda else contextlib.nullcontext()
        with amp:
            logits = forward_logits(model, x)
        self.last_logits = logits.detach()
        per = F.cross_entropy(logits.float(), y, reduction="none")
        flags = self.noisy[indices.cpu()].to(per.device)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        g_c = torch.autograd.grad(per[~flags].sum(), params, retain_graph=True, allow_unused=True)
        g_n = torch.autograd.grad(per[flags].sum(), params, allow_unused=True)
        g_c = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, g_c))
        g_n = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, g_n))
        self._account(model, [n for n, _ in named], g_c, g_n, step)
        b = len(y)
        surrogate = sum(((p * ((c + n) / b).detach()).sum() for p, c, n in zip(params, g_c, g_n)),
                        torch.zeros((), device=per.device))
        logs = {"loss": float(per.mean().detach())}
        if bool(flags.any()):
            logs["loss_noisy"] = float(per[flags].mean().detach())
        if bool((~flags).any()):
            logs["loss_clean"] = float(per[~flags].mean().detach())
        return surrogate, logs

    def extra_parameters(self) -> dict[str, torch.Tensor]:
        return {}

    def _account(self, model: nn.Module, names: list[str], g_c: tuple[torch.Tensor, ...],
                 g_n: tuple[torch.Tensor, ...], step: int) -> None:
        epoch = step // self.steps_per_epoch + 1
        if self._epoch is not None and epoch != self._epoch:
            self._flush()
        self._epoch = epoch
        clean, noisy = dict(zip(names, g_c)), dict(zip(names, g_n))
        layers = {layer: own for layer, pnames in parameter_layers(model).items()
                  if (own := [n for n in pnames if n in clean])}
        for r in layer_gradients(layers, clean, noisy):
            acc = self._sums.setdefault(r.layer, [0.0, 0.0, 0.0, 0.0, float(r.params)])
            acc[0] += r.clean
            acc[1] += r.noisy
            acc[2] += r.cosine if r.cosine is not None else 0.0
            acc[3] += 1.0 if r.cosine is not None else 0.0
        self._steps += 1

    def _flush(self) -> None:
        if not self._steps or self._epoch is None:
            return
        layers = {layer: {"clean": a[0] / self._steps, "noisy": a[1] / self._steps,
                          "cosine": a[2] / a[3] if a[3] else None, "params": int(a[4])}
                  for layer, a in self._sums.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"epoch": self._epoch, "steps": self._steps, "layers": layers}) + "\n")
        self._sums, self._steps = {}, 0

    def epoch_metrics(self) -> dict[str, float]:
        """Called by the trainer once per epoch: writes the epoch's line; returns two summary values."""
        rows = {k: list(v) for k, v in self._sums.items()}
        steps = self._steps
        self._flush()
        if not steps:
            return {}
        clean = sum(r[0] for r in rows.values()) / steps
        noisy = sum(r[1] for r in rows.values()) / steps
        return {"grad_noisy_share": noisy / (clean + noisy) if clean + noisy > 0 else float("nan")}


def read_accounting(folder: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a model folder, one per epoch (the last written wins), sorted."""
    path = Path(folder) / ACCOUNTING_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train with label noise and --grad-accounting "
                                "(e.g. --recipe fashion-noisy) to record it")
    rows: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[int(r["epoch"])] = r
    return [rows[k] for k in sorted(rows)]
