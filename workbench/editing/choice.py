"""Which editor to edit a model with, and where its values come from.

Editable Training learns the editor's ``lr`` and ``beta`` and records them in the model's card
(``card["editor"]``, with ``"learned": true``). The model was trained to be edited by exactly that
editor, so it is the default for that model: :func:`choose_editor` holds the rules that turn a card
(plus whatever the user gave explicitly) into an :class:`EditorConfig`, without looking at the
model. Whatever edits a model (the CLI's ``evaluate`` and ``tune-editor``,
:class:`workbench.session.EditSession` and, through it, the workbench's editor panel) calls
:class:`workbench.evaluation.editor_resolver.EditorResolver`, which applies these rules and adds
a calibrated step size where the tuned default was not measured for that model and group.

Rules:

* A value given explicitly (``method``, ``lr``, ``beta``, ``max_steps``, ``layers``) always wins.
* The learned values apply only to the method *and* group they were learned for (the card's
  ``editor.method`` and ``editor.layers``). Unset ``method``/``layers`` take the card's. For any
  other method or group (``--layers all``, ``--editor gd``) lr and beta that were not given take
  the tuned default (``editing.editor_defaults.default_for``): an lr learned for chain3 says nothing
  about the whole model.
* ``source`` names where lr/beta came from: ``"learned"``, ``"tuned default"`` or ``"given"``
  (both given, or one given and the other filled in: ``sources`` then says which is which).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .config import EditorConfig, check_override_names, group_as_layers
from .editor_defaults import DEFAULT_GROUP, DEFAULT_MAX_STEPS, DEFAULT_METHOD
from .optimizers import get_method

SOURCES = ("learned", "tuned default", "given", "calibrated")  # calibrated: workbench.evaluation.calibrate


@dataclass(frozen=True)
class EditorChoice:
    """A resolved editor and the provenance of its hyperparameters.

    Attributes:
        config: the resolved :class:`EditorConfig`.
        source: ``"learned"`` | ``"tuned default"`` | ``"given"`` | ``"calibrated"`` (see the module
            docstring; calibrated: searched for this model by ``EditSession.calibrate``).
        sources: per hyperparameter, ``{"lr": ..., "beta": ...}`` (``beta`` absent for methods
            without one).
        note: one human-readable line, e.g. ``"editor rmsprop lr=0.000973 beta=0.496 on chain3
            (learned by Editable Training, from the card)"``.
    """

    config: EditorConfig
    source: str
    sources: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """``{"editor_config": ..., "editor_source": ..., "editor_sources": ...}`` for result files."""
        return {"editor_config": self.config.to_dict(), "editor_source": self.source,
                "editor_sources": dict(self.sources)}


def learned_editor(card: Mapping[str, Any] | None) -> EditorConfig | None:
    """The editor Editable Training learned for this model (``card["editor"]``), or None.

    A card whose editor was held fixed in training (``"learned": false``) gives None.
    """
    ed = (card or {}).get("editor") or {}
    if not isinstance(ed, Mapping) or "method" not in ed or ed.get("learned", True) is False:
        return None
    try:
        return EditorConfig.from_dict(ed).resolved()
    except (TypeError, ValueError) as err:
        raise ValueError(f"the card's editor record {dict(ed)!r} is not valid ({err}); "
                         "fix card.json or pass the editor explicitly") from err


def _key(layers: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    return layers if isinstance(layers, str) else tuple(layers)


def choose_editor(card: Mapping[str, Any] | None = None, *, method: str | None = None, lr: float | None = None,
                  beta: float | None = None, max_steps: int | None = None,
                  layers: str | tuple[str, ...] | None = None) -> EditorChoice:
    """The editor for a model with this card, given what the user set explicitly (None: unset).

    Args:
        card: the model's card (``load_model(...)[1]``), or None for no card.
        method, lr, beta, max_steps, layers: explicit choices; None takes the learned editor's
            value where it applies (same method and group), else the default.
    Returns:
        :class:`EditorChoice` with a resolved, validated config.

    Example:
        >>> choose_editor(card).source                    # the editable model's card
        'learned'
        >>> choose_editor(card, layers="all").source      # learned for chain3 only
        'tuned default'
    """
    learned = learned_editor(card)
    m = get_method(method if method is not None else (learned.method if learned else DEFAULT_METHOD)).name
    group = _key(layers) if layers is not None else (learned.group if learned else DEFAULT_GROUP)
    applies = learned is not None and get_method(learned.method).name == m and _key(learned.group) == _key(group)
    fallback = "learned" if applies else "tuned default"
    has_beta = get_method(m).beta_range is not None
    sources = {"lr": "given" if lr is not None else fallback}
    if has_beta:
        sources["beta"] = "given" if beta is not None else fallback
    if applies:
        assert learned is not None
        lr = learned.lr if lr is None else lr
        beta = learned.beta if beta is None else beta
        max_steps = learned.max_steps if max_steps is None else max_steps
    cfg = EditorConfig(m, lr, beta if has_beta else None, learned.beta2 if applies and learned else 0.999,
                       DEFAULT_MAX_STEPS if max_steps is None else max_steps, group).resolved()
    kinds = set(sources.values())
    source = kinds.pop() if len(kinds) == 1 else "given"
    return EditorChoice(cfg, source, sources, _note(cfg, sources, learned, applies))


def _note(cfg: EditorConfig, sources: dict[str, str], learned: EditorConfig | None, applies: bool) -> str:
    group = cfg.group if isinstance(cfg.group, str) else "+".join(cfg.group)
    beta = "" if cfg.beta is None else f" beta={cfg.beta:.4g}"
    head = f"editor {cfg.method} lr={cfg.lr:.4g}{beta} on {group}, k={cfg.max_steps}"
    kinds = set(sources.values())
    if kinds == {"learned"}:
        why = "learned by Editable Training, from the model's card"
    elif kinds == {"given"}:
        why = "as given"
    elif kinds == {"tuned default"}:
        why = "the tuned default (workbench/editing/editor_defaults.json)"
    else:
        why = ", ".join(f"{k} {v}" for k, v in sources.items())
    if learned is not None and not applies:
        lg = learned.group if isinstance(learned.group, str) else "+".join(learned.group)
        why += (f"; the model's learned editor ({learned.method} on {lg}, lr={learned.lr:.4g}) "
                "applies only to that method and group")
    return f"{head} ({why})"


def choose_for_config(card: Mapping[str, Any] | None, config: EditorConfig | None = None,
                      **overrides: Any) -> EditorChoice:
    """:func:`choose_editor` for an :class:`EditorConfig` whose ``lr``/``beta`` may be None (unset),
    with keyword ``overrides`` of its fields (as :func:`workbench.editing.edit` takes them).

    Without ``config``, nothing but the overrides counts as given. ``group=`` is accepted for ``layers=``.
    """
    overrides = group_as_layers(overrides)
    check_override_names(overrides)
    given: dict[str, Any] = {} if config is None else {
        "method": config.method, "lr": config.lr, "beta": config.beta, "max_steps": config.max_steps,
        "layers": config.layers}
    given.update({k: v for k, v in overrides.items() if k != "beta2"})
    choice = choose_editor(card, **given)
    beta2 = overrides.get("beta2", None if config is None else config.beta2)
    if beta2 is not None and beta2 != choice.config.beta2:
        cfg = EditorConfig(**{**choice.config.__dict__, "beta2": float(beta2)}).resolved()
        choice = EditorChoice(cfg, choice.source, choice.sources, choice.note)
    return choice
