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
from .config import EditorConfig, with_overrides
from .editor_defaults import DEFAULT_GROUP
from .guard import check_edit
from .inputs import check_inputs
from .optimizers import Hyper, get_method
from .reach import unreachable_target

Layers = "str | tuple[str, ...]"


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
    names = adapter.params(cfg.group)
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


def _default_group(adapter: ModelAdapter) -> str:
    """The group an edit with no ``layers`` changes: ``DEFAULT_GROUP`` where the model has it,
    else the middle block of its trunk (:meth:`ModelAdapter.default_group`)."""
    try:
        return adapter.default_group(prefer=DEFAULT_GROUP)
    except (TypeError, ValueError):
        return DEFAULT_GROUP


def edit(model: nn.Module | ModelAdapter, x: torch.Tensor, y_ref: int | Sequence[int] | torch.Tensor,
         config: EditorConfig | None = None, **overrides) -> EditResult:
    """Edit ``model`` so that it predicts ``y_ref`` for ``x``; the model is not modified.

    Args:
        model: any classifier ``nn.Module`` (or its :class:`~workbench.models.ModelAdapter`).
        x: ``(C, H, W)`` or ``(N, C, H, W)`` float32, normalised.
        y_ref: target label(s), one per image.
        config: an :class:`EditorConfig`; keyword ``overrides`` replace its fields
            (``method=``, ``lr=``, ``beta=``, ``max_steps=``, ``layers=`` or ``group=``: the edit group;
            unset, the model's default group, :meth:`~workbench.models.ModelAdapter.default_group`).
    Returns:
        :class:`EditResult`. Apply it with ``result.apply(model)``.

    Example:
        >>> res = edit(model, x, 3, method="rmsprop", layers="chain3")
        >>> res.success, res.steps
    """
    cfg = with_overrides(config, **overrides)
    adapter = adapt(model)
    cfg = cfg.resolved(_default_group(adapter) if cfg.layers is None else None)
    model = adapter.model
    names = adapter.params(cfg.group)  # validates the group before any work
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
