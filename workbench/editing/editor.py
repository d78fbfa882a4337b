"""``edit()``: run at most k steps of a gradient method on a group of layers until the
model predicts ``y_ref`` for ``x``. Pure: the model given is never modified."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
import torch.nn as nn

from ..models.adapter import ModelAdapter, adapt, check_logits
from .constraint import edit_loss, satisfied
from .guard import check_edit
from .editor_defaults import DEFAULT_GROUP, DEFAULT_MAX_STEPS, DEFAULT_METHOD, MAX_STEPS_LIMIT, default_for
from .optimizers import Hyper, get_method
from .reach import unreachable_target

Layers = "str | tuple[str, ...]"


@dataclass(frozen=True)
class EditorConfig:
    """How to edit: method, hyperparameters, step budget and editable group(s).

    ``layers`` is the edit group (a module path, parameter name, alias, ``"all"``, or a list of
    them; see :class:`~workbench.models.ModelAdapter`); it keeps the name that saved histories,
    model cards and ``--layers`` use.
    ``lr``/``beta`` left as None take the method's tuned default for ``layers``
    (``editing.editor_defaults.default_for``).
    ``beta`` is RMSProp/Momentum's decay and Adam's beta1 (restricted to [0.1, 1]).
    """

    method: str = DEFAULT_METHOD
    lr: float | None = None
    beta: float | None = None
    beta2: float = 0.999
    max_steps: int = DEFAULT_MAX_STEPS
    layers: str | tuple[str, ...] = DEFAULT_GROUP

    def resolved(self) -> "EditorConfig":
        """A copy with the method name canonical and lr/beta filled from the defaults; validated."""
        m = get_method(self.method)
        d = default_for(m.name, self.layers)
        lr = d["lr"] if self.lr is None else self.lr
        beta = (d["beta"] if self.beta is None else self.beta) if m.beta_range else None
        layers = self.layers if isinstance(self.layers, str) else tuple(self.layers)
        cfg = EditorConfig(m.name, float(lr), None if beta is None else float(beta),  # type: ignore[arg-type]
                           float(self.beta2), self.max_steps, layers)
        cfg._check()
        return cfg

    def _check(self) -> None:
        m = get_method(self.method)
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or \
                not 1 <= self.max_steps <= MAX_STEPS_LIMIT:
            raise ValueError(f"max_steps (k) must be an integer in 1..{MAX_STEPS_LIMIT}, got {self.max_steps!r} "
                             f"(the paper uses k={DEFAULT_MAX_STEPS}; editing.editor_defaults.MAX_STEPS_LIMIT says why)")
        if self.lr is None or not math.isfinite(self.lr) or self.lr < 0:
            raise ValueError(f"learning rate must be a finite number >= 0, got {self.lr!r}")
        if m.beta_range is not None:
            lo, hi = m.beta_range
            if self.beta is None or not (lo <= self.beta <= hi):
                raise ValueError(f"beta for {m.name} must lie in [{lo}, {hi}], got {self.beta!r}")
        if not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"beta2 must lie in [0, 1), got {self.beta2!r}")
        if isinstance(self.layers, str):
            if not self.layers:
                raise ValueError("layers must name a group such as 'chain3'")
        elif not self.layers:
            raise ValueError("layers must name at least one group such as 'chain3'")

    def to_dict(self) -> dict:
        return {"method": self.method, "lr": self.lr, "beta": self.beta, "beta2": self.beta2,
                "max_steps": self.max_steps,
                "layers": self.layers if isinstance(self.layers, str) else list(self.layers)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EditorConfig":
        layers = d.get("layers", DEFAULT_GROUP)
        return cls(d.get("method", DEFAULT_METHOD), d.get("lr"), d.get("beta"), d.get("beta2", 0.999),
                   int(d.get("max_steps", DEFAULT_MAX_STEPS)),
                   layers if isinstance(layers, str) else tuple(layers))


@dataclass(frozen=True, eq=False)
class EditResult:
    """The outcome of one edit (one constraint or a batch of them).

    Attributes:
        success: the model predicts every ``y_ref`` after the edit.
        steps: gradient steps taken (0 if the model already predicted ``y_ref``).
        losses: ``l_e`` (max over the batch) before each step, ``steps + 1`` values.
        seconds: wall time of the edit.
        before, after: edited parameters, name -> tensor, before and after the edit.
        config: the resolved :class:`EditorConfig`.
        y_ref: target labels.
        message: human-readable outcome (why it failed, when it did; a target no gradient can
            reach says so, with the way out: :mod:`workbench.editing.reach`).
        finite: False if the edit was abandoned because of non-finite values.
        extra: ``{"unreachable_target": True}`` when the failed edit's target logit gets no
            gradient from the edited group (the message says why and what to do).
        wrecked: the edit guard flagged it (:mod:`workbench.editing.guard`): the constraint may
            hold, but the weights changed out of all proportion or hold NaN/inf. A session
            refuses such an edit; see :attr:`accepted`.
        relative_change: ``||after - before|| / ||before||`` over the edited group.
    """

    success: bool
    steps: int
    losses: tuple[float, ...]
    seconds: float
    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]
    config: EditorConfig
    y_ref: tuple[int, ...]
    message: str = ""
    finite: bool = True
    extra: dict = field(default_factory=dict)
    wrecked: bool = False
    relative_change: float = 0.0

    @property
    def accepted(self) -> bool:
        """The constraint holds and the guard did not flag the edit: safe to apply."""
        return self.success and not self.wrecked

    @property
    def delta(self) -> dict[str, torch.Tensor]:
        """``after - before`` for every edited parameter."""
        return {n: self.after[n] - self.before[n] for n in self.after}

    @property
    def param_names(self) -> list[str]:
        return list(self.after)

    def apply(self, model: nn.Module, check: bool = True) -> None:
        """Write the edited weights into ``model`` (in place).

        With ``check`` the model must currently hold the weights the edit started from.
        """
        self._copy(model, self.before if check else None, self.after, "apply")

    def revert(self, model: nn.Module, check: bool = True) -> None:
        """Restore the weights from before the edit, bit for bit."""
        self._copy(model, self.after if check else None, self.before, "revert")

    def _copy(self, model: nn.Module, expect: dict[str, torch.Tensor] | None,
              values: dict[str, torch.Tensor], verb: str) -> None:
        params = dict(model.named_parameters())
        missing = [n for n in values if n not in params]
        if missing:
            raise ValueError(f"cannot {verb}: the model has no parameters {missing[:3]}; "
                             "was this edit made on another architecture?")
        if expect is not None:
            for n, v in expect.items():
                if params[n].shape != v.shape or not torch.equal(params[n].detach(), v.to(params[n].device)):
                    raise ValueError(f"cannot {verb}: the model's {n} does not hold the weights this edit "
                                     f"expects (it was changed since). Pass check=False to force it.")
        with torch.no_grad():
            for n, v in values.items():
                params[n].copy_(v.to(params[n].device))


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Temporarily put ``model`` in eval mode (BatchNorm uses running stats and keeps them)."""
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _model_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    p = next(model.parameters())
    return p.dtype, p.device


def check_inputs(model: nn.Module | ModelAdapter, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate and normalise edit inputs.

    Args:
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float, normalised as the model expects.
        y_ref: an int, a sequence of N ints, or an ``(N,)`` integer tensor.
    Returns:
        ``(x (N, C, H, W), y (N,) int64)`` on the model's device and dtype.
    """
    adapter = adapt(model)
    dtype, device = _model_dtype_device(adapter.model)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dtype == torch.uint8 or not torch.is_floating_point(x):
        raise TypeError(f"x has dtype {x.dtype}; the model takes normalised float images: "
                        "use bundle.normalize(x) on uint8 images first")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    expected = adapter.input_shape or tuple(x.shape[1:])
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(expected):
        raise ValueError(f"x has shape {tuple(x.shape)}; this model takes (N, {', '.join(map(str, expected))}) "
                         f"or a single image {expected}")
    if x.shape[0] == 0:
        raise ValueError("empty batch: give at least one image and one target label")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf values; check the image and its normalisation")
    if isinstance(y_ref, torch.Tensor):
        if y_ref.dtype.is_floating_point or y_ref.dtype == torch.bool:
            raise TypeError(f"y_ref must hold integer labels, got dtype {y_ref.dtype}")
        y = y_ref.reshape(-1).long()
    elif isinstance(y_ref, (int,)) and not isinstance(y_ref, bool):
        y = torch.tensor([y_ref])
    elif isinstance(y_ref, Sequence) and not isinstance(y_ref, str) and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in y_ref):
        y = torch.tensor(list(y_ref), dtype=torch.long)
    else:
        raise TypeError(f"y_ref must be an int label, a list of ints or an integer tensor, got {y_ref!r}")
    if y.numel() != x.shape[0]:
        raise ValueError(f"{x.shape[0]} image(s) but {y.numel()} target label(s); give one label per image")
    n_cls = adapter.num_classes
    if n_cls is not None and (bool((y < 0).any()) or bool((y >= n_cls).any())):
        raise ValueError(f"target label(s) {y.tolist()} out of range: this model has classes 0..{n_cls - 1}")
    return x.to(device=device, dtype=dtype), y.to(device)


@dataclass
class EditTrace:
    """Internal result of :func:`run_editor`, keeping tensors attached to the graph."""

    params: dict[str, torch.Tensor]  # edited params after the edit (graph kept if differentiable)
    success: bool
    steps: int
    losses: list[float]
    finite: bool
    message: str
    logits: torch.Tensor | None = None  # logits of x after the edit


def _as_tensor(v: float | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=device, dtype=dtype)


def run_editor(model: nn.Module | ModelAdapter, x: torch.Tensor, y: torch.Tensor, cfg: EditorConfig, *,
               params: Mapping[str, torch.Tensor] | None = None, differentiable: bool = False,
               lr: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> EditTrace:
    """The editor loop over a parameter dict (no validation; see :func:`edit`).

    Args:
        model: any classifier (or its :class:`ModelAdapter`) in the mode the edit should run in
            (normally eval). Only the suffix after the group's cut is rerun at each step
            (``ModelAdapter.split``).
        x: ``(N, C, H, W)`` float on the model's device; y: ``(N,)`` int64.
        cfg: a *resolved* config.
        params: starting parameters (default: the model's own, detached). For Editable
            Training pass the live parameters and ``differentiable=True``.
        lr, beta: tensor overrides of ``cfg.lr``/``cfg.beta`` (learnable in training).
    """
    method = get_method(cfg.method)
    adapter = adapt(model)
    model = adapter.model
    names = adapter.params(cfg.layers)
    split = adapter.split(names)
    base = dict(params) if params is not None else {n: p.detach() for n, p in model.named_parameters()}
    dtype, device = x.dtype, x.device
    hyper = Hyper(lr=_as_tensor(cfg.lr if lr is None else lr, device, dtype),  # type: ignore[arg-type]
                  beta=_as_tensor(cfg.beta if beta is None else beta, device, dtype) if (cfg.beta is not None or beta is not None) else torch.tensor(0.0),  # type: ignore[arg-type]
                  beta2=torch.tensor(cfg.beta2, device=device, dtype=dtype))
    frozen = {n: v for n, v in base.items() if n not in names}
    edited = {n: base[n] if differentiable else base[n].detach().clone().requires_grad_(True) for n in names}
    # Everything before the first edited module does not change during the edit: run it once.
    with torch.set_grad_enabled(differentiable):
        carry = split.prefix(x, base)
    state: dict = {}
    losses: list[float] = []
    success, finite, message, logits = False, True, "", None
    steps = 0
    for t in range(cfg.max_steps + 1):
        with torch.enable_grad():
            logits = split.suffix(carry, {**frozen, **edited})
            if t == 0:
                _check_first_logits(adapter, logits, y)
            le = edit_loss(logits, y)
        cur = float(le.detach().max())
        losses.append(cur)
        if not math.isfinite(cur):
            finite, message = False, f"the edit produced non-finite outputs at step {t} (learning rate too large?)"
            break
        if bool(satisfied(logits, y).all()):
            success = True
            break
        if t == cfg.max_steps:
            message = f"constraint not met within k={cfg.max_steps} steps (final l_e={cur:.4g})"
            break
        grads = torch.autograd.grad(le.mean(), list(edited.values()), create_graph=differentiable)
        if not all(bool(torch.isfinite(g).all()) for g in grads):
            finite, message = False, f"non-finite gradient at step {t}; the edit was abandoned"
            break
        hyper.t = t + 1
        new, state = method.step(edited, dict(zip(edited, grads)), state, hyper)
        if not differentiable:
            new = {n: v.detach().requires_grad_(True) for n, v in new.items()}
            state = {k: {n: v.detach() for n, v in d.items()} for k, d in state.items()}
        steps += 1
        edited = new
    if not finite:
        edited = {n: base[n] for n in names}
    return EditTrace(edited, success, steps, losses, finite, message or "edit succeeded", logits)


def _check_first_logits(adapter: ModelAdapter, logits: torch.Tensor, y: torch.Tensor) -> None:
    """The model returns ``(N, classes)`` logits and every target is one of the classes."""
    check_logits(logits, int(y.shape[0]), adapter.num_classes)
    c = int(logits.shape[1])
    if bool((y < 0).any()) or bool((y >= c).any()):
        raise ValueError(f"target label(s) {y.tolist()} out of range: this model has classes 0..{c - 1}")


def edit(model: nn.Module | ModelAdapter, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor,
         config: EditorConfig | None = None, **overrides) -> EditResult:
    """Edit ``model`` so that it predicts ``y_ref`` for ``x``; the model is not modified.

    Args:
        model: any classifier ``nn.Module`` (or its :class:`~workbench.models.ModelAdapter`).
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float32, normalised.
        y_ref: target label(s), one per image.
        config: an :class:`EditorConfig`; keyword ``overrides`` replace its fields
            (``method=``, ``lr=``, ``beta=``, ``max_steps=``, ``layers=``).
    Returns:
        :class:`EditResult`. Apply it with ``result.apply(model)``.

    Example:
        >>> res = edit(model, x, 3, method="rmsprop", layers="chain3")
        >>> res.success, res.steps
    """
    if config is None:
        config = EditorConfig()
    if overrides:
        unknown = set(overrides) - set(EditorConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown edit option(s) {sorted(unknown)}; "
                            f"use {sorted(EditorConfig.__dataclass_fields__)}")
        config = EditorConfig(**{**config.__dict__, **overrides})
    cfg = config.resolved()
    adapter = adapt(model)
    model = adapter.model
    names = adapter.params(cfg.layers)  # validates the group before any work
    xb, y = check_inputs(adapter, x, y_ref)
    t0 = time.perf_counter()
    with eval_mode(model):
        trace = run_editor(adapter, xb, y, cfg)
    if xb.is_cuda:
        torch.cuda.synchronize(xb.device)
    seconds = time.perf_counter() - t0
    own = dict(model.named_parameters())
    before = {n: own[n].detach().clone() for n in names}
    after = {n: trace.params[n].detach().clone() for n in names}
    verdict = check_edit(before, after)
    message, extra = trace.message, {}
    if verdict.wrecked:
        message = f"flagged by the edit guard: {verdict.reason}"
    elif trace.success and trace.steps == 0:
        message = "the model already predicts the target: nothing to change"
    elif not trace.success and trace.finite:
        with eval_mode(model):
            dead = unreachable_target(adapter, xb, y, after)
        if dead:
            message, extra = f"{message}; {dead}", {"unreachable_target": True}
    return EditResult(trace.success, trace.steps, tuple(trace.losses), seconds, before, after, cfg,
                      tuple(int(v) for v in y.tolist()), message, trace.finite, extra,
                      wrecked=verdict.wrecked, relative_change=verdict.relative_change)
