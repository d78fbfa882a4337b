"""Example-tied dropout (Maini et al., ICML 2023, section 4) and the standard-dropout baseline.

Each site (a module whose output is masked, e.g. every stage of a ResNet) splits its ``C``
channels in two: the first ``n_gen = int(p_gen * C)`` are *generalization* channels and are
never dropped; every training example ``i`` owns a fixed subset of ``k_mem = round(p_mem * C)``
of the remaining *memorization* channels, drawn by a hash of ``(seed, site, i)``, and only
those are active when ``i`` is in the batch. At evaluation the memorization channels are
dropped (mode ``"drop"``), so what was memorized through them is gone; the mode can be switched
to ``"example"`` (each training example's own channels, as in training; needs its index) or
``"all"`` (every channel), to compare.

Masks are computed, not stored: the model's state dict is unchanged by the dropout, so the
weights load into the plain architecture too. The sites are attached with forward hooks, which
fire however the site is reached (``model(x)``, ``forward(start=..., stop=...)``).

Example:
    >>> from workbench.models import small_resnet
    >>> m = small_resnet()
    >>> _ = attach_dropout(m, DropoutSpec("example-tied", p_gen=0.4, p_mem=0.2), ["stem", "chain1"])
    >>> with example_indices(m, torch.tensor([0, 1])):
    ...     m(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""
from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn as nn

KINDS = ("example-tied", "standard")
MODES = ("drop", "example", "all")
CONTAINER = "memorization_dropout"  # the child module holding the sites' dropout modules
_M31 = (1 << 31) - 1
_SITE_ATTR = "_workbench_site_dropout"


@dataclass(frozen=True)
class DropoutSpec:
    """What a model card records to rebuild the dropout.

    Attributes:
        kind: ``"example-tied"`` or ``"standard"`` (channel dropout with the same share of
            channels active in training, ``p_gen + p_mem``, the baseline).
        p_gen: share of each site's channels that are generalization channels (never dropped).
        p_mem: share of each site's channels active per example on top of those.
        seed: seed of the per-example subsets.
    """

    kind: str = "example-tied"
    p_gen: float = 0.4
    p_mem: float = 0.2
    seed: int = 0

    def validate(self) -> DropoutSpec:
        if self.kind not in KINDS:
            raise ValueError(f"unknown dropout kind {self.kind!r} (--dropout); use one of {list(KINDS)} or 'none'")
        for name in ("p_gen", "p_mem"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must lie in [0, 1], got {v!r}")
        if self.p_gen + self.p_mem > 1.0 + 1e-9:
            raise ValueError(f"p_gen + p_mem = {self.p_gen} + {self.p_mem} = {self.p_gen + self.p_mem:g} > 1: "
                             "the generalization and memorization channels cannot take more than all channels; "
                             "lower --p-gen or --p-mem")
        if self.p_gen <= 0.0:
            raise ValueError("p_gen (--p-gen) must be > 0: with no generalization channels, evaluation with the "
                             "memorization channels dropped would zero every site")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash(a: torch.Tensor) -> torch.Tensor:
    """A 31-bit integer mix (Wang's hash): ``int64`` in ``[0, 2^31)`` -> same range; no overflow."""
    a = (a ^ 61) ^ (a >> 16)
    a = (a * 9) & _M31
    a = a ^ (a >> 4)
    a = (a * 0x27D4EB2D) & _M31
    return a ^ (a >> 15)


class _SiteDropout(nn.Module):
    """Common part: channel split, evaluation mode, and the eval-time ``"drop"``/``"all"`` masks."""

    def __init__(self, spec: DropoutSpec, salt: int) -> None:
        super().__init__()
        self.spec = spec.validate()
        self.salt = int(salt)
        self.mode = "drop"
        self.indices: torch.Tensor | None = None

    def split(self, c: int) -> tuple[int, int]:
        """``(n_gen, k_mem)`` for a site with ``c`` channels."""
        n_gen = max(1, int(self.spec.p_gen * c))
        k_mem = min(c - n_gen, int(round(self.spec.p_mem * c)))
        return n_gen, k_mem

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() < 2:
            raise ValueError(f"dropout site output must be (N, C, ...), got shape {tuple(x.shape)}")
        return (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)

    def member_mask(self, indices: torch.Tensor, c: int) -> torch.Tensor:
        """``(B, c) bool``: the generalization channels plus each example's own memorization channels."""
        n_gen, k_mem = self.split(c)
        idx = indices.detach().long().reshape(-1).to(torch.int64)
        if len(idx) and int(idx.min()) < 0:
            raise ValueError("example indices must be >= 0 (positions in the training set)")
        ch = torch.arange(n_gen, c, device=idx.device, dtype=torch.int64)
        key = _hash((_hash(torch.full_like(idx, self.spec.seed * 1009 + self.salt) & _M31) + (idx & _M31)) & _M31)
        scores = _hash((key[:, None] + ch[None, :] * 7919) & _M31)
        mask = torch.zeros(len(idx), c, dtype=torch.bool, device=idx.device)
        mask[:, :n_gen] = True
        if k_mem > 0:
            pick = scores.topk(k_mem, dim=1, largest=False).indices + n_gen
            mask.scatter_(1, pick, True)
        return mask

    def eval_scale(self, c: int) -> tuple[torch.Tensor, float]:
        """``(keep (c,) bool, scale)`` for the ``"drop"`` and ``"all"`` modes.

        Both are rescaled so that the expected activation mass matches training, where
        ``n_gen + k_mem`` channels were active.
        """
        n_gen, k_mem = self.split(c)
        keep = torch.zeros(c, dtype=torch.bool)
        if self.mode == "drop":
            keep[:n_gen] = True
            return keep, (n_gen + k_mem) / n_gen
        keep[:] = True
        return keep, (n_gen + k_mem) / c


class ExampleTiedDropout(_SiteDropout):
    """Example-tied dropout for one site. Input/output: ``(N, C, ...)``; indices ``(N,)`` int64.

    Training: ``x * mask[i]`` with ``mask[i]`` the generalization channels plus example ``i``'s
    memorization channels (no rescaling). Evaluation: per :attr:`mode`:
    ``"drop"`` keeps only the generalization channels, scaled by ``(n_gen + k_mem) / n_gen``;
    ``"example"`` applies the training mask (needs indices); ``"all"`` keeps every channel,
    scaled by ``(n_gen + k_mem) / C``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self._shape(x)
        if self.training or self.mode == "example":
            if self.indices is None:
                raise ValueError("example-tied dropout needs each example's index in the training set: run the "
                                 "forward inside `with example_indices(model, idx):` (the trainer does this)")
            if len(self.indices) != x.shape[0]:
                raise ValueError(f"got {len(self.indices)} example indices for a batch of {x.shape[0]}")
            mask = self.member_mask(self.indices.to(x.device), x.shape[1])
            return x * mask.view(shape).to(x.dtype)
        keep, scale = self.eval_scale(x.shape[1])
        w = keep.to(device=x.device, dtype=x.dtype) * scale
        return x * w.view((1,) + shape[1:])


class StandardChannelDropout(_SiteDropout):
    """The baseline: channel dropout keeping a share ``p_gen + p_mem`` in training (scaled by its inverse).

    Evaluation: ``"all"`` (or ``"example"``) is the usual identity; ``"drop"`` zeroes the same
    channels that example-tied dropout treats as memorization channels and scales the rest by
    ``C / n_gen`` (the activation mass of the identity), so the two can be compared channel for
    channel.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self._shape(x)
        if self.training:
            keep = self.spec.p_gen + self.spec.p_mem
            if keep >= 1.0:
                return x
            m = torch.rand(shape, device=x.device) < keep
            return x * m.to(x.dtype) / keep
        if self.mode != "drop":
            return x
        c = x.shape[1]
        n_gen, _ = self.split(c)
        w = torch.zeros(c, device=x.device, dtype=x.dtype)
        w[:n_gen] = c / n_gen
        return x * w.view((1,) + shape[1:])


def _sites(model: nn.Module) -> list[_SiteDropout]:
    return [m for m in model.modules() if isinstance(m, _SiteDropout)]


def attach_dropout(model: nn.Module, spec: DropoutSpec, sites: Sequence[str]) -> nn.ModuleDict:
    """Mask the output of each module in ``sites`` (dotted paths) with a dropout of ``spec.kind``.

    The dropout modules live in ``model.memorization_dropout`` (no parameters or buffers, so
    the state dict is unchanged). Returns that container, keyed by site (dots as ``"__"``).
    """
    spec.validate()
    if getattr(model, CONTAINER, None) is not None:
        raise ValueError("this model already has dropout attached")
    named = dict(model.named_modules())
    missing = [s for s in sites if s not in named or not s]
    if missing:
        raise ValueError(f"dropout sites {missing} are not modules of the model; choose from its module paths, "
                         f"e.g. {[n for n in named if n and '.' not in n]}")
    cls = ExampleTiedDropout if spec.kind == "example-tied" else StandardChannelDropout
    box = nn.ModuleDict()
    for salt, site in enumerate(sites):
        drop = cls(spec, salt)
        box[site.replace(".", "__")] = drop
        # A plain attribute, not a child: the site's own forward (e.g. an nn.Sequential) must not
        # run it, and `copy.deepcopy(model)` keeps site and container pointing at the same copy.
        object.__setattr__(named[site], _SITE_ATTR, drop)
        named[site].register_forward_hook(_site_hook)
    setattr(model, CONTAINER, box)
    return box


def _site_hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return getattr(module, _SITE_ATTR)(output)


def default_sites(model: nn.Module) -> list[str]:
    """Where the recipes put dropout: after every stage but the last (the classifier head)."""
    stages = getattr(model, "stage_names", None)
    if not isinstance(stages, list) or len(stages) < 2:
        raise ValueError(f"{type(model).__name__} has no stages to put dropout after; give the sites "
                         "(module paths) to attach_dropout explicitly")
    return list(stages[:-1])


def dropout_card(model: nn.Module) -> dict[str, Any]:
    """``{"kind", "p_gen", "p_mem", "seed", "sites"}`` for a model card (see :func:`attach_from_card`)."""
    box = getattr(model, CONTAINER, None)
    if not isinstance(box, nn.ModuleDict) or not len(box):
        raise ValueError("this model has no dropout attached")
    first = next(iter(box.values()))
    assert isinstance(first, _SiteDropout)
    return {**first.spec.to_dict(), "sites": [k.replace("__", ".") for k in box.keys()]}


def attach_from_card(model: nn.Module, info: dict[str, Any]) -> nn.ModuleDict:
    """Re-attach the dropout a card records (``card["dropout"]``) to a freshly built model."""
    try:
        spec = DropoutSpec(str(info["kind"]), float(info["p_gen"]), float(info["p_mem"]), int(info.get("seed", 0)))
        sites = list(info["sites"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the card's dropout record {info!r} is incomplete ({err}); it needs kind, p_gen, "
                         "p_mem, seed and sites") from err
    return attach_dropout(model, spec, sites)


def has_example_tied(model: nn.Module) -> bool:
    return any(isinstance(m, ExampleTiedDropout) for m in model.modules())


@contextlib.contextmanager
def _set_on_sites(model: nn.Module, attr: str, value: object) -> Iterator[None]:
    """Within the block, every dropout site of ``model`` has ``attr`` set to ``value``."""
    sites = _sites(model)
    old = [getattr(s, attr) for s in sites]
    for s in sites:
        setattr(s, attr, value)
    try:
        yield
    finally:
        for s, o in zip(sites, old):
            setattr(s, attr, o)


def example_indices(model: nn.Module, indices: torch.Tensor | None) -> contextlib.AbstractContextManager[None]:
    """Within the block, the dropout sites see ``indices`` ``(N,) int64`` as the batch's example positions."""
    return _set_on_sites(model, "indices", indices)


def memorization_mode(model: nn.Module, mode: str) -> contextlib.AbstractContextManager[None]:
    """Within the block, evaluation uses ``mode``: ``"drop"`` (default), ``"example"`` or ``"all"``."""
    if mode not in MODES:
        raise ValueError(f"unknown memorization mode {mode!r}; use one of {list(MODES)}")
    return _set_on_sites(model, "mode", mode)
