"""The one resolver of the editor a model is edited with: learned > tuned > calibrated > given.

Every caller that turns "what the user set" into an :class:`EditorConfig` goes through
:class:`EditorResolver`: :class:`workbench.session.EditSession` (its editor, each edit's
overrides, and the workbench's editor panel through ``session.resolve_editor``) and the CLI
(``evaluate``, ``tune-editor``). The rules, in order:

* a value given explicitly (``method``, ``lr``, ``beta``, ``max_steps``, ``layers``) always wins;
* the editor the model learned in Editable Training (the card's ``editor``), for its method and
  group only (:func:`workbench.editing.choose_editor`);
* the tuned default (``editing/editor_defaults.json``) where it was measured for this kind of
  model and group (:func:`workbench.editing.editor_defaults.has_tuned_default`);
* else a step size calibrated on a few validation edits of this model (:func:`calibrate`), kept
  per (method, group) and written into exported cards (``editor_calibrations``).

Without a named group and without a learned editor, the group is the tuned one
(``DEFAULT_GROUP``) where the model has it, else the last group before the head.
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ..editing.choice import EditorChoice, choose_for_config, learned_editor
from ..editing.editor_defaults import DEFAULT_GROUP, has_tuned_default
from ..editing.editor import EditorConfig
from ..editing.optimizers import get_method
from ..models import ModelAdapter, adapt
from .calibration import CALIBRATION_EDITS, CALIBRATION_VAL_LIMIT, Calibration, calibrate

log = logging.getLogger("workbench")
CARD_KEY = "editor_calibrations"

__all__ = ["CARD_KEY", "EditorResolver", "default_group"]


def _key(method: str, layers: str | Sequence[str]) -> tuple[str, str]:
    return method, layers if isinstance(layers, str) else "+".join(layers)


def _same(field: str, value: Any, config: EditorConfig) -> bool:
    """Whether an override of ``field`` (``method`` or ``layers``) names what ``config`` has."""
    if field == "method":
        return isinstance(value, str) and get_method(value).name == get_method(config.method).name
    return isinstance(value, (str, list, tuple)) and _key("", value) == _key("", config.group)


def default_group(model: nn.Module | ModelAdapter) -> str:
    """The group edited when none is named: ``DEFAULT_GROUP`` (the tuned one) where the model has
    it, else :meth:`~workbench.models.ModelAdapter.default_group` (the middle block of the model's
    trunk, never the head: ``layer3`` of a torchvision ResNet, ``blocks.6`` of a 12-block ViT)."""
    try:
        return adapt(model).default_group(prefer=DEFAULT_GROUP)
    except (TypeError, ValueError):
        return DEFAULT_GROUP


class EditorResolver:
    """Resolves editors for one model (and its card and data), calibrating where needed.

    Args:
        model: the model being edited (calibration edits copies of its *current* weights).
        card: its card (the learned editor, kept calibrations).
        bundle: its data (calibration uses the validation split, else the test split).
        config: the default editor (``lr``/``beta`` None: unset); ``choice`` holds it resolved.
        device, batch_size, seed: of the calibration's evaluator and its seeded edits.
        edits, val_limit: the calibration's size (``settings``; defaults 20 and 500).

    Example:
        >>> r = EditorResolver(model, card, bundle)
        >>> r.resolve(method="gd", layers="head").source     # no tuned default for head
        'calibrated'
    """

    def __init__(self, model: nn.Module | ModelAdapter, card: Mapping[str, Any] | None = None, bundle: Any = None,
                 *, config: EditorConfig | None = None, device: str | torch.device | None = None,
                 batch_size: int | None = None, seed: int = 0, edits: int | None = None,
                 val_limit: int | None = None) -> None:
        self.model = model.model if isinstance(model, ModelAdapter) else model
        self.card: dict[str, Any] = dict(card or {})
        self.bundle, self.device, self.batch_size, self.seed = bundle, device, batch_size, seed
        self.settings: dict[str, int] = {"edits": edits or CALIBRATION_EDITS,
                                         "val_limit": val_limit or CALIBRATION_VAL_LIMIT}
        self.calibrations: dict[tuple[str, str], Calibration] = {}
        self.note = ""  # the last edit's editor line, or the last calibration's ("" until either)
        self.last: EditorChoice | None = None  # the editor of the last edit (None before the first)
        self._lines: dict[tuple[str, str], str] = {}  # calibration lines, as reported
        for d in self.card.get(CARD_KEY) or []:
            try:
                cal = Calibration.from_dict(d)
            except (KeyError, TypeError, ValueError):
                continue
            self.calibrations[_key(cal.method, cal.layers)] = cal
        self.choice: EditorChoice = self.resolve(config, calibrate=False)

    @property
    def config(self) -> EditorConfig:
        """The default editor's config (``choice.config``)."""
        return self.choice.config

    def resolve(self, config: EditorConfig | None = None, *, calibrate: bool = True, **given: Any) -> EditorChoice:
        """The editor for ``config`` (its ``lr``/``beta`` may be None) with ``given`` fields
        (``method=``, ``lr=``, ... ; None: unset), calibrated where it fell back to a tuned default
        this model and group lack (``calibrate=False``: not yet; see :meth:`calibrated`)."""
        unset = config is None or config.layers is None  # EditorConfig(lr=...) names no group
        if unset and given.get("layers") is None and learned_editor(self.card) is None:
            given["layers"] = default_group(self.model)
        choice = choose_for_config(self.card, config, **given)
        return self.calibrated(choice) if calibrate else choice

    def for_edit(self, config: EditorConfig | None, overrides: Mapping[str, Any]) -> EditorConfig:
        """The editor of one edit: ``config`` (None: the default editor) with ``overrides``.

        Only the group the edit changes is calibrated, and only when no lr is given, learned or
        tuned for it: an edit of another group or method (``layers=``, ``method=``) never
        calibrates the default one, and an edit with ``lr=`` never calibrates. The default
        editor's lr/beta (given, learned or calibrated) hold only while the method and group
        stay. ``last`` and ``note`` then describe this edit's editor.
        """
        if config is None:
            same = all(overrides.get(k) is None or _same(k, overrides[k], self.config) for k in ("method", "layers"))
            if same and overrides.get("lr") is None:
                self.prepare()  # the default editor is the one used: calibrated now (once) if it needs it
                if not overrides:
                    return self._used(self.choice)
            c = self.config  # a given lr/beta carries over; learned and calibrated ones are found again
            lr, beta = (v if same and self.choice.sources.get(k) == "given" else None
                        for k, v in (("lr", c.lr), ("beta", c.beta)))
            config = EditorConfig(c.method, lr, beta, c.beta2, c.max_steps, c.layers)
        return self._used(self.resolve(config, **overrides))

    def _used(self, choice: EditorChoice) -> EditorConfig:
        """Record ``choice`` as the last edit's editor (``last``, ``note``); its config."""
        self.last, self.note = choice, choice.note
        return choice.config

    def prepare(self) -> EditorChoice:
        """The default editor, calibrated now if it needs it (else that happens at its first use)."""
        self.choice = self.calibrated(self.choice)
        return self.choice

    def needs_calibration(self, config: EditorConfig) -> bool:
        """Whether ``config``'s (method, group) has neither a tuned default nor a calibration yet."""
        return not has_tuned_default(self.model, config.layers) and \
            _key(config.method, config.group) not in self.calibrations

    def calibrate(self, method: str | None = None, layers: str | Sequence[str] | None = None, *,
                  edits: int | None = None, val_limit: int | None = None, force: bool = False) -> Calibration:
        """The step size for ``method`` on ``layers`` (default: the default editor's), searched on
        the validation split with the model's current weights (see :func:`calibrate`), kept in
        ``calibrations``. A kept one is returned unless ``force``."""
        from .evaluator import Evaluator

        cfg = self.config
        m = get_method(method or cfg.method).name
        group = cfg.group if layers is None else (layers if isinstance(layers, str) else tuple(layers))
        key = _key(m, group)
        if key in self.calibrations and not force:
            return self.calibrations[key]
        if self.bundle is None:
            raise ValueError("calibrating a step size needs data: build the session with a data set, or pass lr=")
        split = "val" if len(self.bundle.val_y) else "test"
        ev = Evaluator(self.model, self.bundle, split=split, layers=group, device=self.device,
                       batch_size=self.batch_size, limit=val_limit or self.settings["val_limit"])
        cal = calibrate(ev, m, group, edits=edits or self.settings["edits"], max_steps=cfg.max_steps, seed=self.seed)
        self.calibrations[key] = cal
        self.note = self._lines[key] = cal.note() + ("" if split == "val" else
                                                     " [no validation split: calibrated on test images]")
        log.warning(self.note)
        return cal

    def calibrated(self, choice: EditorChoice) -> EditorChoice:
        """``choice`` with a calibrated lr (and beta) where it fell back to a tuned default that does
        not exist for this model and group; learned or given values are kept."""
        cfg = choice.config
        if choice.sources.get("lr") != "tuned default" or has_tuned_default(self.model, cfg.layers):
            return choice
        cal = self.calibrate(cfg.method, cfg.layers)
        beta_cal = choice.sources.get("beta") == "tuned default" and cal.beta is not None
        new = EditorConfig(cfg.method, cal.lr, cal.beta if beta_cal else cfg.beta, cfg.beta2, cfg.max_steps,
                           cfg.layers).resolved()
        sources = {k: ("calibrated" if v == "tuned default" else v) for k, v in choice.sources.items()}
        kinds = set(sources.values())
        note = self._lines.get(_key(cal.method, cal.layers), cal.note())
        return EditorChoice(new, kinds.pop() if len(kinds) == 1 else "given", sources, note)

    def card_entry(self) -> dict[str, Any]:
        """``{"editor_calibrations": [...]}`` for an exported card (empty when none ran)."""
        return {CARD_KEY: [c.to_dict() for c in self.calibrations.values()]} if self.calibrations else {}
