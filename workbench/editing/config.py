"""``EditorConfig``: how to edit (method, hyperparameters, step budget, editable group).

Every editor argument is checked here, once: a config cannot be built with a wrong type
(``lr="0.1"``, ``layers=None``), and :meth:`EditorConfig.resolved` checks the ranges once the
tuned defaults are filled in. Each message names the argument and how to fix it.
:func:`with_overrides` applies keyword overrides (``edit(..., lr=...)``; None means the default)
and refuses unknown ones. ``edit()``, ``EditSession.edit`` and ``choose_editor`` all go through this module.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from .editor_defaults import DEFAULT_GROUP, DEFAULT_MAX_STEPS, DEFAULT_METHOD, MAX_STEPS_LIMIT, default_for
from .optimizers import get_method

FIELDS = ("method", "lr", "beta", "beta2", "max_steps", "layers")


def _got(v: object) -> str:
    return f"{v!r} ({type(v).__name__})"


def _string_hint(name: str, v: object) -> str:
    """``; pass lr=0.1, not '0.1'`` for a string that holds a number, else ``""``."""
    if isinstance(v, str):
        try:
            num = float(v) if name != "max_steps" else int(v)
        except ValueError:
            return ""
        return f"; pass {name}={num!r}, not {v!r}"
    return ""


def _check_number(name: str, what: str, v: object, *, optional: bool, example: str) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        unset = " or None (the tuned default)" if optional else ""
        raise TypeError(f"{name} ({what}) must be a number such as {example}{unset}, got {_got(v)}"
                        + _string_hint(name, v))


def _check_layers(layers: object) -> None:
    fix = (f"name an editable group such as {DEFAULT_GROUP!r} or a list of groups "
           "(model.groups() or session.group_names() lists them); leave layers out (None) for the model's "
           "default group")
    if layers is None:
        return
    if isinstance(layers, str):
        if not layers:
            raise ValueError(f"layers is an empty string; {fix}")
        return
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a group name or a list of group names, got {_got(layers)}; {fix}")
    if not layers:
        raise ValueError(f"layers is an empty list; give at least one group: {fix}")
    bad = [g for g in layers if not isinstance(g, str) or not g]
    if bad:
        raise TypeError(f"layers must hold group names (non-empty strings), got {bad[0]!r} in {list(layers)!r}; {fix}")


def _check_steps(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= MAX_STEPS_LIMIT:
        raise ValueError(f"max_steps (k) must be an integer in 1..{MAX_STEPS_LIMIT}, got {k!r}"
                         f"{_string_hint('max_steps', k)} (the paper uses k={DEFAULT_MAX_STEPS}; "
                         "editing.editor_defaults.MAX_STEPS_LIMIT says why)")


@dataclass(frozen=True)
class EditorConfig:
    """How to edit: method, hyperparameters, step budget and editable group(s).

    ``layers`` is the edit group (a module path, parameter name, alias, ``"all"``, or a list of
    them; see :class:`~workbench.models.ModelAdapter`). None (the default) means the default
    group of the model it edits: the session's (``session.config.layers``, the learned editor's
    group or :func:`~workbench.evaluation.editor_resolver.default_group`), ``chain3`` for the
    project's ResNets, the middle block of any other model's trunk. The field keeps the name
    that saved histories, model cards and ``--layers`` use (they always store a group);
    ``edit()``, ``EditSession.edit`` and ``choose_for_config`` also take it as ``group=``.
    ``lr``/``beta`` left as None take the method's tuned default for ``layers``
    (``editing.editor_defaults.default_for``).
    ``beta`` is RMSProp/Momentum's decay and Adam's beta1 (restricted to [0.1, 1]).
    Building a config with an argument of the wrong type raises TypeError naming it.
    """

    method: str = DEFAULT_METHOD
    lr: float | None = None
    beta: float | None = None
    beta2: float = 0.999
    max_steps: int = DEFAULT_MAX_STEPS
    layers: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str):
            raise TypeError(f"method must be an editor's name such as 'rmsprop', got {_got(self.method)}")
        get_method(self.method)  # an unknown name: ValueError listing the editors
        _check_number("lr", "the learning rate", self.lr, optional=True, example="0.001")
        _check_number("beta", "the decay of rmsprop/momentum, adam's beta1", self.beta, optional=True,
                      example="0.5")
        _check_number("beta2", "adam's second-moment decay", self.beta2, optional=False, example="0.999")
        _check_steps(self.max_steps)
        _check_layers(self.layers)

    @property
    def group(self) -> str | tuple[str, ...]:
        """The edit group: ``layers``, or ``DEFAULT_GROUP`` where it is unset (a resolved config
        always sets it: use :meth:`resolved` with the model's default group first)."""
        return DEFAULT_GROUP if self.layers is None else self.layers

    def resolved(self, group: str | tuple[str, ...] | None = None) -> "EditorConfig":
        """A copy with the method name canonical, lr/beta filled from the defaults and an unset
        ``layers`` set to ``group`` (the model's default group; without one, ``DEFAULT_GROUP``,
        the project's ResNets'); validated."""
        m = get_method(self.method)
        layers = self.layers if self.layers is not None else (group if group is not None else DEFAULT_GROUP)
        layers = layers if isinstance(layers, str) else tuple(layers)
        d = default_for(m.name, layers)
        lr = d["lr"] if self.lr is None else self.lr
        beta = (d["beta"] if self.beta is None else self.beta) if m.beta_range else None
        cfg = EditorConfig(m.name, float(lr), None if beta is None else float(beta),  # type: ignore[arg-type]
                           float(self.beta2), int(self.max_steps), layers)
        cfg._check()
        return cfg

    def _check(self) -> None:
        """Ranges of a resolved config (types were checked when it was built)."""
        m = get_method(self.method)
        if self.lr is None or not math.isfinite(self.lr) or self.lr < 0:
            raise ValueError(f"lr (the learning rate) must be a finite number >= 0, got {self.lr!r}; "
                             "leave it out for the tuned default")
        if m.beta_range is not None:
            lo, hi = m.beta_range
            if self.beta is None or not (lo <= self.beta <= hi):
                raise ValueError(f"beta for {m.name} must lie in [{lo}, {hi}], got {self.beta!r}; "
                                 "leave it out for the tuned default")
        if not math.isfinite(self.beta2) or not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"beta2 must lie in [0, 1), got {self.beta2!r} (adam's default is 0.999)")

    def to_dict(self) -> dict:
        return {"method": self.method, "lr": self.lr, "beta": self.beta, "beta2": self.beta2,
                "max_steps": self.max_steps,
                "layers": self.layers if isinstance(self.layers, str) or self.layers is None else list(self.layers)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EditorConfig":
        """The config :meth:`to_dict` wrote (a card's or a history's ``config``); checked as built.
        A record without ``layers`` edits ``DEFAULT_GROUP`` (records always store their group)."""
        layers = d.get("layers", DEFAULT_GROUP)
        return cls(d.get("method", "rmsprop"), d.get("lr"), d.get("beta"), d.get("beta2", 0.999),
                   d.get("max_steps", DEFAULT_MAX_STEPS), tuple(layers) if isinstance(layers, list) else layers)


def group_as_layers(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` with ``group=`` (the preferred spelling of the edit group) given as ``layers=``,
    the field's name in saved histories, model cards and ``--layers``; TypeError when both are given."""
    out = dict(overrides)
    if "group" in out:
        if "layers" in out:
            raise TypeError("group= and layers= name the same thing (the edit group); give one of them")
        out["layers"] = out.pop("group")
    return out


def check_override_names(overrides: Mapping[str, Any]) -> None:
    """TypeError for a keyword that is not an editor argument (``learning_rate=``...)."""
    unknown = set(overrides) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown edit option(s) {sorted(unknown)}; use {sorted(FIELDS)}")


def check_overrides(config: object, overrides: Mapping[str, Any]) -> None:
    """Check ``config`` and keyword ``overrides`` before any work, a None override meaning unset
    (``EditSession.edit`` then takes the learned or tuned value); TypeError/ValueError name the
    argument."""
    check_override_names(overrides)
    if config is not None and not isinstance(config, EditorConfig):
        raise TypeError(f"config must be an EditorConfig, got {_got(config)}; pass e.g. "
                        "EditorConfig(method='rmsprop', lr=1e-3), or the settings as keywords")
    EditorConfig(**{k: v for k, v in overrides.items() if v is not None})


def with_overrides(config: EditorConfig | None, **overrides: Any) -> EditorConfig:
    """``config`` (default ``EditorConfig()``) with keyword ``overrides`` of its fields, checked.

    An override of None means the default, as in ``EditSession.edit``: the tuned lr/beta, and
    ``EditorConfig()``'s method, k, beta2 and group (None: the model's default group, which
    ``edit(model, x, 3, layers=None)`` fills in). ``group=`` is accepted for ``layers=``."""
    overrides = group_as_layers(overrides)
    check_overrides(config, {})
    check_override_names(overrides)
    base = EditorConfig() if config is None else config
    given = {k: getattr(_DEFAULT, k) if v is None else v for k, v in overrides.items()}
    return EditorConfig(**{**base.__dict__, **given}) if given else base


_DEFAULT = EditorConfig()
