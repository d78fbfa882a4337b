"""Critical neurons: how many neurons does one example's prediction need? (Maini et al. 2023, sec. 3)

Greedy search for one example ``(x, y)``: repeatedly remove (zero) the neuron whose removal
most raises ``loss(x, y) - loss(random training batch)``, to first order, until the model no
longer predicts ``y`` for ``x``. The example's term is the mean loss over Gaussian-noised
copies of ``x`` (so the search does not follow an adversarial direction of the one image).
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.outputs import forward_logits
from .settings import DEFAULT, EVAL_BATCH_SIZE, QUICK, SearchSettings
from .sites import Neuron, Site, find_sites, masked, model_modes, neuron_masks

__all__ = ["CriticalNeurons", "SearchRepeat", "critical_neurons", "accuracy_with_removed"]

Pool = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SearchRepeat:
    """One greedy search.

    Attributes:
        neurons: removed neurons in order, ``(layer, index)``.
        flipped: the prediction is no longer the label, before a budget ran out (also when it never
            was: ``stopped == "not_predicted"``, no neuron removed). When False the count is a
            lower bound.
        prediction: the prediction on ``x`` after the removal (the label when not flipped).
        stopped: ``"flipped"``, ``"max_neurons"``, ``"time_limit"``, ``"exhausted"`` (every
            neuron removed) or ``"not_predicted"`` (the model did not predict the label at all).
        accuracy_after: accuracy on the other data with these neurons removed (None without data).
        seconds: wall time of the search.
    """

    neurons: tuple[Neuron, ...]
    flipped: bool
    prediction: int
    stopped: str
    accuracy_after: float | None
    seconds: float = field(compare=False)

    @property
    def count(self) -> int:
        return len(self.neurons)


@dataclass(frozen=True)
class CriticalNeurons:
    """The result of :func:`critical_neurons` for one example.

    Attributes:
        label: the label ``y`` whose prediction was searched.
        initial_prediction: the model's prediction on ``x`` before any removal.
        count: removed neurons, mean over repeats (a repeat that hit a budget counts what it removed).
        counts: per repeat.
        neurons: the first repeat's removed neurons, in order, as ``(layer, index)``.
        layer_counts: layer -> removed neurons in it, mean over repeats (every searched layer, in
            execution order, zeros included).
        flipped_to: the most frequent prediction after the removal among repeats that flipped
            (None when none did).
        flip_rate: share of repeats that flipped the prediction.
        accuracy_before, accuracy_after: accuracy on other data without and with the removal
            (``accuracy_after`` is the mean over repeats); None without other data.
        accuracy_cost: ``accuracy_before - accuracy_after``.
        repeats: every :class:`SearchRepeat`.
        layer_sizes: layer -> number of neurons it has (the searched layers).
        settings, seed: what produced it (same settings, seed, model and data: same result).
        seconds: total wall time.
    """

    label: int
    initial_prediction: int
    count: float
    counts: tuple[int, ...]
    neurons: tuple[Neuron, ...]
    layer_counts: Mapping[str, float]
    flipped_to: int | None
    flip_rate: float
    accuracy_before: float | None
    accuracy_after: float | None
    accuracy_cost: float | None
    repeats: tuple[SearchRepeat, ...]
    layer_sizes: Mapping[str, int]
    settings: SearchSettings
    seed: int
    seconds: float = field(compare=False)

    @property
    def top_layer(self) -> str | None:
        """The layer holding most of the removed neurons (first in execution order on a tie)."""
        if not any(self.layer_counts.values()):
            return None
        return max(self.layer_counts, key=lambda k: self.layer_counts[k])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (neurons as ``[layer, index]`` lists)."""
        d = asdict(self)
        d["layer_counts"], d["layer_sizes"] = dict(self.layer_counts), dict(self.layer_sizes)
        d["neurons"] = [list(n) for n in self.neurons]
        for r in d["repeats"]:
            r["neurons"] = [list(n) for n in r["neurons"]]
        d["top_layer"] = self.top_layer
        return d


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _as_example(x: torch.Tensor, y: int | torch.Tensor) -> tuple[torch.Tensor, int]:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError("x must be a float tensor (C, H, W) or (1, C, H, W), normalised like the training data")
    if x.dim() >= 2 and x.shape[0] == 1 and x.dim() in (2, 4):
        x = x[0]
    if isinstance(y, torch.Tensor):
        if y.numel() != 1:
            raise ValueError(f"y must be one label, got a tensor of shape {tuple(y.shape)}")
        y = int(y.item())
    if isinstance(y, bool) or not isinstance(y, int):
        raise TypeError(f"y must be an int label, got {type(y).__name__}")
    return x, int(y)


def _draw(pool: Pool | None, n: int, g: torch.Generator, normalize: Callable[[torch.Tensor], torch.Tensor] | None,
          device: torch.device) -> Pool | None:
    if pool is None or n == 0:
        return None
    px, py = pool
    idx = torch.randperm(len(px), generator=g)[:n] if n < len(px) else torch.arange(len(px))
    bx = px[idx.to(px.device)].to(device)
    if normalize is not None:
        bx = normalize(bx)
    return bx.float(), py[idx.to(py.device)].to(device).long()


@torch.no_grad()
def accuracy_with_removed(model: nn.Module, sites: Sequence[Site], removed: Sequence[Neuron],
                          x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``model`` on ``x (N, C, H, W)``, ``y (N,)`` with ``removed`` zeroed (eval mode)."""
    dev = _device(model)
    touched = {layer for layer, _ in removed}
    sites = [site for site in sites if site.name in touched]  # no hook where nothing is removed
    masks = neuron_masks(sites, dev, removed)
    correct = 0
    with model_modes(model, False), masked(model, sites, masks):
        for i in range(0, len(x), EVAL_BATCH_SIZE):
            xb, yb = x[i:i + EVAL_BATCH_SIZE].to(dev), y[i:i + EVAL_BATCH_SIZE].to(dev)
            correct += int((forward_logits(model, xb).argmax(1) == yb).sum())
    return correct / max(1, len(x))


def _search(model: nn.Module, sites: Sequence[Site], x: torch.Tensor, y: int, batch: Pool | None,
            noise: torch.Tensor, s: SearchSettings) -> tuple[list[Neuron], bool, int, str]:
    """One greedy search (model in eval mode, on its device). Returns neurons, flipped, pred, why."""
    dev = x.device
    masks = neuron_masks(sites, dev, requires_grad=True)
    flat_sites = [(site.name, i) for site in sites for i in range(site.size)]
    alive = torch.ones(len(flat_sites), dtype=torch.bool, device=dev)
    xs = [x.unsqueeze(0), x.unsqueeze(0) + noise]
    k = noise.shape[0]
    if batch is not None:
        xs.append(batch[0])
    xb = torch.cat(xs)
    yk = torch.full((k,), y, dtype=torch.long, device=dev)
    removed: list[Neuron] = []
    t0 = time.perf_counter()
    with masked(model, sites, masks):
        while True:
            with torch.enable_grad():
                logits = forward_logits(model, xb).float()
                pred = int(logits[0].argmax())
                if pred != y:
                    return removed, True, pred, "flipped" if removed else "not_predicted"
                if s.max_neurons is not None and len(removed) >= s.max_neurons:
                    return removed, False, pred, "max_neurons"
                if s.time_limit is not None and time.perf_counter() - t0 >= s.time_limit:
                    return removed, False, pred, "time_limit"
                if not bool(alive.any()):
                    return removed, False, pred, "exhausted"
                obj = F.cross_entropy(logits[1:1 + k], yk)
                if batch is not None:
                    obj = obj - F.cross_entropy(logits[1 + k:], batch[1])
                grads = torch.autograd.grad(obj, [masks[site.name] for site in sites])
            # first-order gain of the objective when a mask entry goes 1 -> 0: -dL/dm
            score = -torch.cat(grads)
            score = torch.where(alive, score, torch.full_like(score, -torch.inf))
            j = int(score.argmax())
            alive[j] = False
            name, idx = flat_sites[j]
            with torch.no_grad():
                masks[name][idx] = 0.0
            removed.append((name, idx))


def critical_neurons(model: nn.Module, x: torch.Tensor, y: int | torch.Tensor, *,
                     reference: Pool | None = None, other: Pool | None = None,
                     normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     layers: Sequence[str] | str | None = None, seed: int = 0, quick: bool = False,
                     settings: SearchSettings | None = None, **overrides: Any) -> CriticalNeurons:
    """Greedy critical-neuron search for one example; the model is never modified.

    Args:
        model: any ``nn.Module`` classifier, on any device (the search runs there).
        x: ``(C, H, W)`` or ``(1, C, H, W)`` float image, normalised.
        y: the label whose prediction is searched (e.g. its training label, or the model's
            prediction to ask where that prediction lives).
        reference: ``(X (N, C, H, W), Y (N,))`` training data; each repeat draws a random batch of
            ``batch_size`` from it for the ``- loss(batch)`` term (None: the example's term only).
        other: ``(X, Y)`` data for the accuracy cost of the removal (default: ``reference``).
        normalize: applied to drawn batches (e.g. ``bundle.normalize`` for uint8 pools).
        layers: module names to search (see :func:`~workbench.localization.find_sites`);
            default every conv/linear layer but the classifier.
        seed: seeds the batches and the noise of every repeat (results are reproducible).
        quick: start from :data:`~workbench.localization.settings.QUICK` (few repeats, capped
            steps) instead of :data:`~workbench.localization.settings.DEFAULT`.
        settings: explicit :class:`SearchSettings`; ``overrides`` replace its fields
            (``repeats=30``, ``max_neurons=None`` ...).
    Returns:
        :class:`CriticalNeurons`.
    Raises:
        ValueError, TypeError: bad input (shapes, label out of range, no zeroable layer, unknown
            layer names, bad settings); the model is unchanged.

    Example:
        >>> res = critical_neurons(model, bundle.normalize(bundle.train_x[:1])[0], int(bundle.train_y[0]),
        ...                        reference=(bundle.train_x, bundle.train_y), normalize=bundle.normalize)
        >>> res.count, res.neurons[:3], res.top_layer, res.accuracy_cost
    """
    s = (settings or (QUICK if quick else DEFAULT))
    bad = set(overrides) - set(SearchSettings.__dataclass_fields__)
    if bad:
        raise TypeError(f"unknown setting(s) {sorted(bad)}; choose from {list(SearchSettings.__dataclass_fields__)}")
    s = s.override(**overrides)
    s.validate()
    x, y = _as_example(x, y)
    dev = _device(model)
    x = x.to(dev).float()
    t_all = time.perf_counter()
    for pool, what in ((reference, "reference"), (other, "other")):
        if pool is not None and (len(pool) != 2 or len(pool[0]) != len(pool[1]) or len(pool[0]) == 0):
            raise ValueError(f"{what} must be a pair (images (N, C, H, W), labels (N,)) of equal, non-zero length")
        if pool is not None and tuple(pool[0].shape[1:]) != tuple(x.shape):
            raise ValueError(f"{what} images have shape {tuple(pool[0].shape[1:])} but x has {tuple(x.shape)}; "
                             "pass data of the same kind as x")
    with model_modes(model, False):
        try:
            with torch.no_grad():
                logits0 = forward_logits(model, x.unsqueeze(0)).float()
        except RuntimeError as err:
            raise ValueError(f"the model cannot run x of shape {tuple(x.shape)} ({err}); pass one image "
                             "(C, H, W) shaped like the training data") from err
        n_cls = logits0.shape[-1]
        if not 0 <= y < n_cls:
            raise ValueError(f"label {y} out of range: the model has {n_cls} classes (0..{n_cls - 1})")
        sites = find_sites(model, x.unsqueeze(0), layers)
        pred0 = int(logits0[0].argmax())
        other = other if other is not None else reference
        g_cost = torch.Generator().manual_seed(seed * 7919 + 1)
        cost = _draw(other, s.cost_size, g_cost, normalize, dev)
        acc0 = accuracy_with_removed(model, sites, [], *cost) if cost is not None else None
        repeats: list[SearchRepeat] = []
        for rep in range(s.repeats):
            g = torch.Generator().manual_seed(seed * 7919 + 1000 + rep)
            batch = _draw(reference, s.batch_size, g, normalize, dev)
            noise = (torch.randn((s.noise_copies, *x.shape), generator=g) * s.noise_std).to(dev)
            t0 = time.perf_counter()
            neurons, flipped, pred, why = _search(model, sites, x, y, batch, noise, s)
            dt = time.perf_counter() - t0
            acc = accuracy_with_removed(model, sites, neurons, *cost) if cost is not None else None
            repeats.append(SearchRepeat(tuple(neurons), flipped, pred, why, acc, dt))
    counts = tuple(r.count for r in repeats)
    per_layer = {site.name: 0.0 for site in sites}
    for r in repeats:
        for name, _ in r.neurons:
            per_layer[name] += 1.0 / len(repeats)
    flips = Counter(r.prediction for r in repeats if r.flipped)
    flipped_to = min(flips, key=lambda c: (-flips[c], c)) if flips else None
    accs = [r.accuracy_after for r in repeats if r.accuracy_after is not None]
    acc1 = sum(accs) / len(accs) if accs else None
    return CriticalNeurons(
        label=y, initial_prediction=pred0, count=sum(counts) / len(counts), counts=counts,
        neurons=repeats[0].neurons, layer_counts=per_layer, flipped_to=flipped_to,
        flip_rate=sum(r.flipped for r in repeats) / len(repeats), accuracy_before=acc0, accuracy_after=acc1,
        accuracy_cost=(acc0 - acc1) if acc0 is not None and acc1 is not None else None,
        repeats=tuple(repeats), layer_sizes={site.name: site.size for site in sites}, settings=s, seed=seed,
        seconds=time.perf_counter() - t_all)
