"""The editor's gradient methods as pure step functions over dicts of tensors.

Each method is ``step(params, grads, state, hp) -> (new_params, new_state)``. Nothing is
updated in place, so with ``create_graph=True`` gradients flow through every step, and the
hyperparameters (``lr``, ``beta``) may be tensors that require grad (Editable Training
learns them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import torch

Tensors = Dict[str, torch.Tensor]
State = Dict[str, Tensors]
StepFn = Callable[[Tensors, Tensors, State, "Hyper"], Tuple[Tensors, State]]

EPS = 1e-6


@dataclass
class Hyper:
    """Editor hyperparameters as tensors (scalars)."""

    lr: torch.Tensor
    beta: torch.Tensor
    beta2: torch.Tensor
    t: int = 0  # 1-based step counter, set by the editor loop


def _safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """``sqrt(t)`` for ``t >= 0`` with a finite derivative at 0 (where ``torch.sqrt``'s is inf).

    The forward value is exactly ``torch.sqrt(t)``; at ``t == 0`` the gradient is 0 instead of
    ``inf * 0 = nan``, so second-order Editable Training through RMSProp/Adam stays finite when a
    gradient entry is exactly zero (e.g. behind a dead ReLU).
    """
    pos = t > 0
    return torch.where(pos, t, torch.ones_like(t)).sqrt() * pos


def _gd(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    return {n: p[n] - h.lr * g[n] for n in p}, s


def _scaled_gd(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    # GD on the direction of the gradient: the step has length lr in parameter space.
    norm = torch.sqrt(sum((gi * gi).sum() for gi in g.values()))  # type: ignore[arg-type]
    scale = h.lr / (norm + EPS)
    return {n: p[n] - scale * g[n] for n in p}, s


def _sign(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    # RProp without per-weight step adaptation, i.e. sign-SGD: every weight moves by lr.
    return {n: p[n] - h.lr * torch.sign(g[n]) for n in p}, s


def _mean_sq(p: Tensors, g: Tensors, s: State, h: Hyper) -> Tensors:
    """RMSProp's running mean of g^2, ``v_1 = g_1^2``, ``v_t = beta v_{t-1} + (1 - beta) g_t^2``."""
    prev = s.get("sq")
    return {n: g[n] * g[n] if prev is None else h.beta * prev[n] + (1 - h.beta) * g[n] * g[n] for n in p}


def _rmsprop(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    """RMSProp, eps outside the root: ``p -= lr * g / (sqrt(v) + eps)``.

    The running mean ``v`` starts at g^2, so the first step is ``lr * g / (|g| + eps)``, about
    ``lr * sign(g)`` for every weight whose |g| is well above eps = 1e-6.
    """
    sq = _mean_sq(p, g, s, h)
    return {n: p[n] - h.lr * g[n] / (_safe_sqrt(sq[n]) + EPS) for n in p}, {"sq": sq}


def _rmsprop_official(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    """RMSProp as the official Editable Neural Networks code (xtinkt/editable) has it, eps inside
    the root: ``p -= lr * g / sqrt(v + eps)``, with the same ``v`` (starting at g^2).

    The first step is ``lr * g / sqrt(g^2 + eps)``: about ``lr * sign(g)`` where |g| >> 1e-3 =
    sqrt(eps), but shorter where |g| is near or below 1e-3 (at |g| = 7.5e-4, 0.6 lr instead of
    0.9987 lr), so weights with small gradients move less than with ``rmsprop``.
    """
    sq = _mean_sq(p, g, s, h)
    return {n: p[n] - h.lr * g[n] / torch.sqrt(sq[n] + EPS) for n in p}, {"sq": sq}


def _momentum(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    prev = s.get("m")
    m = {n: g[n] if prev is None else h.beta * prev[n] + g[n] for n in p}
    return {n: p[n] - h.lr * m[n] for n in p}, {"m": m}


def _adam(p: Tensors, g: Tensors, s: State, h: Hyper) -> tuple[Tensors, State]:
    m0, v0 = s.get("m"), s.get("v")
    b1, b2 = h.beta, h.beta2
    m = {n: (1 - b1) * g[n] if m0 is None else b1 * m0[n] + (1 - b1) * g[n] for n in p}
    v = {n: (1 - b2) * g[n] * g[n] if v0 is None else b2 * v0[n] + (1 - b2) * g[n] * g[n] for n in p}
    c1, c2 = 1 - b1 ** h.t, 1 - b2 ** h.t
    return {n: p[n] - h.lr * (m[n] / c1) / (_safe_sqrt(v[n] / c2) + EPS) for n in p}, {"m": m, "v": v}


@dataclass(frozen=True)
class Method:
    """A registered editor method and the range its beta must lie in (None: no beta)."""

    name: str
    step: StepFn
    beta_range: tuple[float, float] | None
    description: str


METHODS: dict[str, Method] = {
    "gd": Method("gd", _gd, None, "gradient descent: p -= lr * g"),
    "scaled_gd": Method("scaled_gd", _scaled_gd, None, "GD with the step normalised to length lr"),
    "sign": Method("sign", _sign, None, "RProp / sign-SGD: p -= lr * sign(g)"),
    "rmsprop": Method("rmsprop", _rmsprop, (0.0, 1.0),
                      "RMSProp, running mean v of g^2 with decay beta: p -= lr * g / (sqrt(v) + 1e-6)"),
    "rmsprop_official": Method("rmsprop_official", _rmsprop_official, (0.0, 1.0),
                               "RMSProp as in the official xtinkt/editable code: p -= lr * g / sqrt(v + 1e-6)"),
    "momentum": Method("momentum", _momentum, (0.0, 1.0), "heavy-ball momentum with decay beta"),
    "adam": Method("adam", _adam, (0.1, 1.0), "Adam; beta is beta1, restricted to [0.1, 1]"),
}
ALIASES = {"rprop": "sign", "sign-sgd": "sign", "sgd": "gd", "scaled-gd": "scaled_gd",
           "rmsprop-official": "rmsprop_official"}


def get_method(name: str) -> Method:
    key = ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else name
    if key not in METHODS:
        raise ValueError(f"unknown editor {name!r}; choose one of {sorted(METHODS)} "
                         f"(aliases: {sorted(ALIASES)})")
    return METHODS[key]
