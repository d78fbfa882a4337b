"""Calibrated step sizes of an :class:`~workbench.session.EditSession` (see
:mod:`workbench.evaluation.calibration`): run once per (method, group) that has no tuned
default, kept in the session and written into exported cards (``editor_calibrations``)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn as nn

from ..editing.defaults import has_tuned_default
from ..editing.choice import EditorChoice
from ..editing.editor import EditorConfig

if TYPE_CHECKING:
    from ..data import DataBundle
    from ..evaluation.calibration import Calibration

log = logging.getLogger("workbench")
CARD_KEY = "editor_calibrations"


def _key(method: str, layers: str | Sequence[str]) -> tuple[str, str]:
    return method, layers if isinstance(layers, str) else "+".join(layers)


class CalibrationMixin:
    """``calibrate()`` and the calibrated config used by ``edit()`` when no lr was given."""

    model: nn.Module
    bundle: DataBundle | None
    device: torch.device
    card: dict[str, Any]
    calibrations: dict[tuple[str, str], Calibration]
    calibration_settings: dict[str, int]
    editor_note: str
    editor_choice: EditorChoice

    def _init_calibration(self, edits: int | None = None, val_limit: int | None = None) -> None:
        from ..evaluation.calibration import CALIBRATION_EDITS, CALIBRATION_VAL_LIMIT, Calibration

        self.calibrations = {}
        self.calibration_settings = {"edits": edits or CALIBRATION_EDITS, "val_limit": val_limit or CALIBRATION_VAL_LIMIT}
        self.editor_note = ""
        for d in self.card.get(CARD_KEY) or []:
            try:
                cal = Calibration.from_dict(d)
            except (KeyError, TypeError, ValueError):
                continue
            self.calibrations[_key(cal.method, cal.layers)] = cal

    def needs_calibration(self, config: EditorConfig) -> bool:
        """Whether ``config``'s (method, group) has neither a tuned default nor a calibration yet."""
        return not has_tuned_default(self.model, config.layers) and \
            _key(config.method, config.layers) not in self.calibrations

    def calibrate(self, method: str | None = None, layers: str | Sequence[str] | None = None, *,
                  edits: int | None = None, val_limit: int | None = None, force: bool = False) -> Calibration:
        """The step size for ``method`` on ``layers`` (default: the session's), searched on the
        validation split's current weights (see :func:`workbench.evaluation.calibrate`), kept in
        ``session.calibrations``. A kept one is returned unless ``force``."""
        from ..editing.optimizers import get_method
        from ..evaluation import Evaluator
        from ..evaluation.calibration import calibrate

        cfg: EditorConfig = self.config  # type: ignore[attr-defined]
        m = get_method(method or cfg.method).name
        group = cfg.layers if layers is None else (layers if isinstance(layers, str) else tuple(layers))
        key = _key(m, group)
        if key in self.calibrations and not force:
            return self.calibrations[key]
        if self.bundle is None:
            raise ValueError("calibrating a step size needs data: build the session with a data set, or pass lr=")
        split = "val" if len(self.bundle.val_y) else "test"
        ev = Evaluator(self.model, self.bundle, split=split, layers=group, device=self.device,
                       limit=val_limit or self.calibration_settings["val_limit"])
        cal = calibrate(ev, m, group, edits=edits or self.calibration_settings["edits"], max_steps=cfg.max_steps)
        self.calibrations[key] = cal
        self.editor_note = cal.note() + ("" if split == "val" else " [no validation split: calibrated on test images]")
        log.warning(self.editor_note)
        return cal

    def _calibrated_choice(self, choice: EditorChoice) -> EditorChoice:
        """``choice`` with a calibrated lr (and beta) where it fell back to a tuned default that
        does not exist for this model and group; learned or given values are kept."""
        cfg = choice.config
        if choice.sources.get("lr") != "tuned default" or has_tuned_default(self.model, cfg.layers):
            return choice
        cal = self.calibrate(cfg.method, cfg.layers)
        beta_cal = choice.sources.get("beta") == "tuned default" and cal.beta is not None
        new = EditorConfig(cfg.method, cal.lr, cal.beta if beta_cal else cfg.beta, cfg.beta2, cfg.max_steps,
                           cfg.layers).resolved()
        sources = {k: ("calibrated" if v == "tuned default" else v) for k, v in choice.sources.items()}
        kinds = set(sources.values())
        return EditorChoice(new, kinds.pop() if len(kinds) == 1 else "given", sources, cal.note())

    def _ensure_calibrated(self) -> None:
        """Calibrate the session's own editor (``session.config``) if it needs it."""
        choice = self._calibrated_choice(self.editor_choice)
        if choice is not self.editor_choice:
            self.editor_choice, self.config = choice, choice.config  # type: ignore[attr-defined]

    def prepare_editor(self) -> EditorChoice:
        """The session's editor, calibrated now if its (method, group) has no tuned default
        (otherwise that happens at the first edit); for UIs that show the step size up front."""
        self._ensure_calibrated()
        return self.editor_choice

    def calibration_card(self) -> dict[str, Any]:
        """``{"editor_calibrations": [...]}`` for an exported card (empty when none ran)."""
        return {CARD_KEY: [c.to_dict() for c in self.calibrations.values()]} if self.calibrations else {}
