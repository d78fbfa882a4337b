"""How the evaluator computes: its compute set up once (a copy of the model, the memory budget, the
split's batches, the prefix cache), its batch size, measured within the memory budget, and the
fast mode's prediction flips against exact fp32.

The policy (values and rules) is :mod:`workbench.batching`; this module applies it to an
evaluator's model, images and :class:`~workbench.evaluation.budget.MemoryBudget`.
"""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from ..batching import (FAST_CHECK_IMAGES, PROBE_IMAGES, BatchPlan, Precision, PrecisionCheck, measure_peak,
                        plan_batch, precision_for, prepare_model, scoring, to_device)
from ..data import ImageSource
from ..models import ModelAdapter, forward_logits
from ..paths import spill_dir
from .budget import RESIDENT_MAX, MemoryBudget, SpillFolder, default_budget
from .prefix_cache import Batches, GraphCache, StageCache, Store
from .split_checks import check_forward

__all__ = ["BATCH_HOLDER", "WEIGHTS_HOLDER", "Compute", "check_precision", "model_bytes", "plan_compute",
           "probe_images", "set_up"]

WEIGHTS_HOLDER = "model weights"
BATCH_HOLDER = "one batch's activations"


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def probe_images(source: ImageSource, normalize: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device) -> torch.Tensor:
    """The first ``PROBE_IMAGES`` images of ``source``, normalised on ``device`` (the probe batch)."""
    return normalize(to_device(source.images(range(min(PROBE_IMAGES, len(source)))), device))


def plan_compute(model: nn.Module, probe_images: Callable[[], torch.Tensor], budget: MemoryBudget,
                 device: torch.device, given: int | None, data_name: str, num_classes: int) -> BatchPlan:
    """Check the model on ``probe_images() -> (n, C, H, W)`` (normalised, on ``device``: a ValueError
    naming a mismatch), measure the activation bytes per image on them, and size the batch.

    The model's weights and one batch's activations are reserved in ``budget`` (they are held
    while scoring, whatever the budget), so the caches get what is left.
    """
    budget.reserve(WEIGHTS_HOLDER, model_bytes(model), force=True)
    probe = probe_images()
    try:
        peak = measure_peak(lambda: check_forward(model, probe, data_name, num_classes), device)
    except ValueError:  # the model fails on the data (raised again, unmeasured) or with the meter only
        check_forward(model, probe, data_name, num_classes)
        peak = 0
    per_image = math.ceil(peak / max(1, len(probe)))
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    plan = plan_batch(per_image, budget.total - budget.used, device, free=free, given=given)
    budget.reserve(BATCH_HOLDER, plan.bytes, force=True)
    return plan


def check_precision(model: nn.Module, images: Callable[[range], torch.Tensor], fast_logits: torch.Tensor,
                    batch_size: int, device: torch.device) -> PrecisionCheck:
    """Fast-mode logits ``fast_logits (N, C)`` against an exact fp32 forward, by a contiguous copy of
    ``model``, of the first ``FAST_CHECK_IMAGES`` images (``images(range) -> (n, C, H, W)``,
    normalised, on ``device``)."""
    n = min(len(fast_logits), FAST_CHECK_IMAGES.get(device.type, FAST_CHECK_IMAGES["cpu"]))
    exact = precision_for("exact", device)
    ref = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    outs = []
    with scoring(exact):
        for i in range(0, n, batch_size):
            outs.append(forward_logits(ref, images(range(i, min(n, i + batch_size)))).float().cpu())
    want = torch.cat(outs) if outs else torch.empty(0, fast_logits.shape[1])
    got = fast_logits[:n].float().cpu()
    diff = float((want - got).abs().max()) if n else 0.0
    return PrecisionCheck(int((want.argmax(1) != got.argmax(1)).sum()), n, diff)


@dataclass(frozen=True)
class Compute:
    """How one evaluator computes, set up once by :func:`set_up`.

    Attributes:
        model: the evaluator's own eval-mode copy of the model, on its device, without gradients.
        adapter: that copy's :class:`~workbench.models.ModelAdapter`.
        budget: the :class:`~workbench.evaluation.budget.MemoryBudget` the records and caches share.
        spill: the folder a cache past the budget goes to (``spill="mmap"``).
        data: the split's batches, planned (:func:`plan_compute`) before the first pass.
        prefix: the prefix cache: by stage for the project's ResNets, else by ``torch.fx`` graph cut.
    """

    model: nn.Module
    adapter: ModelAdapter
    budget: MemoryBudget
    spill: SpillFolder
    data: Batches
    prefix: StageCache | GraphCache


def set_up(given: ModelAdapter, source: ImageSource, normalize: Callable[[torch.Tensor], torch.Tensor],
           data_name: str, num_classes: int, device: torch.device, precision: Precision, *,
           memory_budget: int | str | None, spill: str, batch_size: int | None, workers: int | None,
           resident_max: int = RESIDENT_MAX) -> Compute:
    """The compute of an evaluator of ``given`` on ``source`` (``num_classes`` logits): a copy of its
    model on ``device``, prepared for ``precision``; the budget (``memory_budget``, default a share of
    the memory) with the per-image records reserved; the batches (``batch_size`` or planned on the
    probe images, ``workers`` to stream them); the prefix cache, spilling past the budget as ``spill`` says
    (on the CPU, caches over ``resident_max`` go to the file first)."""
    model = copy.deepcopy(given.model).to(device).eval().requires_grad_(False)
    adapter = given.with_model(model)
    budget = MemoryBudget(default_budget(device) if memory_budget is None else memory_budget)
    # base logits on the CPU and the device, the memo's logits, labels, predictions, margins, quality
    budget.reserve("per-image records", len(source) * (3 * 4 * num_classes + 3 * 8 + 2 * 4), force=True)
    probe = functools.partial(probe_images, source, normalize, device)
    planner = functools.partial(plan_compute, model, probe, budget, device, batch_size,
                                data_name, num_classes)  # on CPU, no probe forward on a reopen from the score cache
    prepare_model(model, precision)
    folder = SpillFolder(spill_dir())
    data = Batches(source, normalize, device, planner, workers, precision)
    store = Store(budget, spill, folder, device, resident_max=resident_max)
    prefix = StageCache(adapter, data, store) if adapter.stages else GraphCache(adapter, data, store)
    return Compute(model, adapter, budget, folder, data, prefix)
