"""Example-tied dropout (Maini et al., ICML 2023, section 4) and the standard-dropout baseline.

As the official code (``pratyushmaini/localizing-memorization``, ``models/dropout.py``) builds it.
Each site (a module whose output is masked, e.g. a residual stage) splits its ``C`` channels in
two: the first ``n_gen = int(p_gen * C)`` are *generalization* channels and are never dropped;
each of the other ``C - n_gen`` *memorization* channels is kept for training example ``i`` with
probability ``p_mem``, one draw per (example, channel), constant over height and width. The
draw is a hash of ``(seed, site, i, channel)``: the same in every epoch, and after a resume.
Training applies the mask without rescaling. At evaluation (:func:`memorization_mode`):

- ``"drop"`` (the default for example-tied sites, the paper's "drop"): memorization channels
  zeroed, generalization channels multiplied by ``(p_gen + p_mem) / p_gen``;
- ``"all"`` (the paper's "test"): generalization channels unchanged, memorization channels
  multiplied by ``p_mem`` (their expected mask in training);
- ``"example"``: each training example's own mask, as in training (needs its index).

Where the paper puts it (:func:`default_sites`): its ResNet-18 masks the outputs of ``layer2``
and ``layer3`` (128 and 256 channels at 1/2 and 1/4 resolution), not ``layer1`` or ``layer4``,
with ``p_gen = 0.5``, ``p_mem = 0.2``. The matching sites are ``res1`` and ``res2`` of
:class:`~workbench.models.ResNet9` (the same channels and resolutions) and ``chain2``/``chain3``
of a four-chain :class:`~workbench.models.ResNet`.

Masks are computed, not stored: the model's state dict is unchanged by the dropout, so the
weights load into the plain architecture too. The sites are attached with forward hooks, which
fire however the site is reached (``model(x)``, ``forward(start=..., stop=...)``).

Example:
    >>> from workbench.models import small_resnet
    >>> m = small_resnet()
    >>> _ = attach_dropout(m, DropoutSpec("example-tied", p_gen=0.5, p_mem=0.2), default_sites(m))
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
SITE_CHOICES = ("paper", "every")  # recipe.dropout_sites: the paper's placement, or after every stage but the head
MASK_RULE = "bernoulli-per-channel"  # recorded in cards: how the per-example masks are drawn
CONTAINER = "memorization_dropout"  # the child module holding the sites' dropout modules
_M31 = (1 << 31) - 1
_SITE_ATTR = "_workbench_site_dropout"


@dataclass(frozen=True)
class DropoutSpec:
    """What a model card records to rebuild the dropout.

    Attributes:
        kind: ``"example-tied"`` or ``"standard"`` (channel dropout keeping the same expected
            share of channels as example-tied dropout in training, the baseline).
        p_gen: share of each site's channels that are generalization channels (never dropped).
        p_mem: probability that a memorization channel is kept for an example (per example
            and channel, fixed for the run). A site keeps on average
            ``n_gen + p_mem * (C - n_gen)`` channels per example.
        seed: seed of the per-example masks.
    """

    kind: str = "example-tied"
    p_gen: float = 0.5
    p_mem: float = 0.2
    seed: int = 0

    def validate(self) -> DropoutSpec:
        if self.kind not in KINDS:
            raise ValueError(f"unknown dropout kind {self.kind!r} (--dropout); use one of {list(KINDS)} or 'none'")
        for name in ("p_gen", "p_mem"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0):
                raise ValueError(f"{name} (--{name.replace('_', '-')}) must lie in [0, 1], got {v!r}")
        if self.p_gen <= 0.0:
            raise ValueError("p_gen (--p-gen) must be > 0: with no generalization channels, evaluation with the "
                             "memorization channels dropped would zero every site")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def drop_scale(self) -> float:
        """The factor on the generalization channels in ``"drop"`` mode: ``(p_gen + p_mem) / p_gen``."""
        return (self.p_gen + self.p_mem) / self.p_gen


def _hash(a: torch.Tensor) -> torch.Tensor:
    """A 31-bit integer mix (Wang's hash): ``int64`` in ``[0, 2^31)`` -> same range; no overflow."""
    a = (a ^ 61) ^ (a >> 16)
    a = (a * 9) & _M31
    a = a ^ (a >> 4)
    a = (a * 0x27D4EB2D) & _M31
    return a ^ (a >> 15)


class _SiteDropout(nn.Module):
    """Common part: the channel split, the evaluation mode, the batch's example indices."""

    def __init__(self, spec: DropoutSpec, salt: int) -> None:
        super().__init__()
        self.spec = spec.validate()
        self.salt = int(salt)
        self.mode = "drop"
        self.indices: torch.Tensor | None = None

    def split(self, c: int) -> tuple[int, int]:
        """``(n_gen, n_mem)`` for a site with ``c`` channels: generalization channels first."""
        n_gen = max(1, int(self.spec.p_gen * c))
        return n_gen, c - n_gen

    def _shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if x.dim() < 2:
            raise ValueError(f"dropout site output must be (N, C, ...), got shape {tuple(x.shape)}")
        return (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)

    def member_mask(self, indices: torch.Tensor, c: int) -> torch.Tensor:
        """``(B, c) bool``: the generalization channels, plus each memorization channel that example
        ``indices[b]`` keeps (probability ``p_mem``, a pure function of seed, site, index, channel)."""
        n_gen, _ = self.split(c)
        idx = indices.detach().long().reshape(-1).to(torch.int64)
        if len(idx) and int(idx.min()) < 0:
            raise ValueError("example indices must be >= 0 (positions in the training set)")
        ch = torch.arange(n_gen, c, device=idx.device, dtype=torch.int64)
        key = _hash((_hash(torch.full_like(idx, self.spec.seed * 1009 + self.salt) & _M31) + (idx & _M31)) & _M31)
        draws = _hash((key[:, None] + _hash(ch[None, :] + 7919)) & _M31)  # uniform in [0, 2^31)
        mask = torch.ones(len(idx), c, dtype=torch.bool, device=idx.device)
        mask[:, n_gen:] = draws < int(self.spec.p_mem * (1 << 31))
        return mask

    def _check_indices(self, x: torch.Tensor) -> torch.Tensor:
        if self.indices is None:
            raise ValueError("example-tied dropout needs each example's index in the training set: run the "
                             "forward inside `with example_indices(model, idx):` (the trainer does this)")
        if len(self.indices) != x.shape[0]:
            raise ValueError(f"got {len(self.indices)} example indices for a batch of {x.shape[0]}")
        return self.indices.to(x.device)


class ExampleTiedDropout(_SiteDropout):
    """Example-tied dropout for one site. Input/output: ``(N, C, ...)``; indices ``(N,)`` int64.

    Training and mode ``"example"``: ``x * mask[i]`` (:meth:`member_mask`, no rescaling).
    Evaluation, mode ``"drop"``: memorization channels zeroed, the rest times
    ``(p_gen + p_mem) / p_gen``; mode ``"all"``: memorization channels times ``p_mem``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self._shape(x)
        if self.training or self.mode == "example":
            mask = self.member_mask(self._check_indices(x), x.shape[1])
            return x * mask.view(shape).to(x.dtype)
        return x * self.eval_weights(x.shape[1], x).view((1,) + shape[1:])

    def eval_weights(self, c: int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``(c,)`` per-channel factors of the ``"drop"`` or ``"all"`` mode."""
        n_gen, _ = self.split(c)
        kw: dict[str, Any] = {} if like is None else {"device": like.device, "dtype": like.dtype}
        w = torch.ones(c, **kw)
        if self.mode == "drop":
            w[:n_gen] = self.spec.drop_scale()
            w[n_gen:] = 0.0
        else:
            w[n_gen:] = self.spec.p_mem
        return w


class StandardChannelDropout(_SiteDropout):
    """The baseline: channel dropout keeping in training the share of channels that example-tied
    dropout keeps on average at this site, ``keep = (n_gen + p_mem * n_mem) / C``, scaled by ``1/keep``.

    Evaluation: ``"all"`` (the default, or ``"example"``) is the usual identity, so a loaded
    standard-dropout model predicts as torch's own dropout would; ``"drop"`` (asked for with
    :func:`memorization_mode`) zeroes the same channels that example-tied dropout treats as
    memorization channels and scales the rest by ``C / n_gen`` (the activation mass of the
    identity), so the two can be compared channel for channel.
    """

    def __init__(self, spec: DropoutSpec, salt: int) -> None:
        super().__init__(spec, salt)
        self.mode = "all"

    def keep_share(self, c: int) -> float:
        n_gen, n_mem = self.split(c)
        return (n_gen + self.spec.p_mem * n_mem) / c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = self._shape(x)
        c = x.shape[1]
        if self.training:
            keep = self.keep_share(c)
            if keep >= 1.0:
                return x
            m = torch.rand(shape, device=x.device) < keep
            return x * m.to(x.dtype) / keep
        if self.mode != "drop":
            return x
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
        drop = cls(spec, salt).train(model.training)  # follows the model's train/eval state
        box[site.replace(".", "__")] = drop
        # A plain attribute, not a child: the site's own forward (e.g. an nn.Sequential) must not
        # run it, and `copy.deepcopy(model)` keeps site and container pointing at the same copy.
        object.__setattr__(named[site], _SITE_ATTR, drop)
        named[site].register_forward_hook(_site_hook)
    setattr(model, CONTAINER, box)
    return box


def _site_hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return getattr(module, _SITE_ATTR)(output)


def every_stage_sites(model: nn.Module) -> list[str]:
    """After every stage but the last (the classifier head)."""
    stages = getattr(model, "stage_names", None)
    if not isinstance(stages, list) or len(stages) < 2:
        raise ValueError(f"{type(model).__name__} has no stages to put dropout after; give the sites "
                         "(module paths) to attach_dropout explicitly (--dropout-sites a,b)")
    return list(stages[:-1])


def default_sites(model: nn.Module) -> list[str]:
    """The paper's placement (module docstring): ``model.PAPER_DROPOUT_SITES`` where the model
    declares it (ResNet-9: ``res1``, ``res2``), else the middle chains of a chained ResNet
    (four chains: ``chain2``, ``chain3``, as the paper's ResNet-18)."""
    own = getattr(model, "PAPER_DROPOUT_SITES", None)
    if own:
        return list(own)
    chains = getattr(model, "chain_names", None)
    if isinstance(chains, list) and len(chains) >= 3:
        return list(chains[1:-1])
    raise ValueError(f"{type(model).__name__} has no known place for the paper's dropout (the outputs of its "
                     "middle residual stages); give the sites explicitly (--dropout-sites a,b, module paths)")


def resolve_sites(model: nn.Module, choice: str) -> list[str]:
    """``"paper"`` -> :func:`default_sites`; ``"every"`` -> :func:`every_stage_sites`; else a comma list."""
    if choice == "paper":
        return default_sites(model)
    if choice == "every":
        return every_stage_sites(model)
    sites = [s.strip() for s in choice.split(",") if s.strip()]
    if not sites:
        raise ValueError(f"dropout_sites (--dropout-sites) {choice!r} names no site; use one of "
                         f"{list(SITE_CHOICES)} or module paths separated by commas")
    return sites


def dropout_card(model: nn.Module) -> dict[str, Any]:
    """``{"kind", "p_gen", "p_mem", "seed", "sites", "mask_rule"}`` for a model card (see :func:`attach_from_card`)."""
    box = getattr(model, CONTAINER, None)
    if not isinstance(box, nn.ModuleDict) or not len(box):
        raise ValueError("this model has no dropout attached")
    first = next(iter(box.values()))
    assert isinstance(first, _SiteDropout)
    return {**first.spec.to_dict(), "sites": [k.replace("__", ".") for k in box.keys()], "mask_rule": MASK_RULE}


def attach_from_card(model: nn.Module, info: dict[str, Any]) -> nn.ModuleDict:
    """Re-attach the dropout a card records (``card["dropout"]``) to a freshly built model."""
    try:
        spec = DropoutSpec(str(info["kind"]), float(info["p_gen"]), float(info["p_mem"]), int(info.get("seed", 0)))
        sites = list(info["sites"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the card's dropout record {info!r} is incomplete ({err}); it needs kind, p_gen, "
                         "p_mem, seed and sites") from err
    if info.get("mask_rule") != MASK_RULE:
        raise ValueError(f"the card's dropout record {info!r} was drawn with another mask rule "
                         f"({info.get('mask_rule')!r}, not {MASK_RULE!r}); its example masks and drop scale cannot "
                         "be rebuilt: retrain the model with `python -m workbench train`, or load its weights "
                         "into the plain architecture (workbench.training.checkpoint.load_weights)")
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
    """Within the block, evaluation uses ``mode``: ``"drop"``, ``"example"`` or ``"all"``.

    Outside it, example-tied sites evaluate in ``"drop"`` and standard-dropout sites in ``"all"``
    (the identity)."""
    if mode not in MODES:
        raise ValueError(f"unknown memorization mode {mode!r}; use one of {list(MODES)}")
    return _set_on_sites(model, "mode", mode)
