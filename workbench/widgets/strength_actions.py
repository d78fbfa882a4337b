"""The strength slider's actions: a part of the one :class:`~workbench.widgets.controller.Controller`
(``controller.strength``).

The last applied edit at strength ``alpha`` (``weights = before + alpha * change``): while the
slider moves, the card shows fixed-or-not and the quick drawdown estimate
(:meth:`StrengthActions.preview`); once it rests, the exact figures and every panel
(:meth:`StrengthActions.settle`). "Smallest strength that fixes" bisects on the edited
image (:meth:`StrengthActions.smallest`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .events import StrengthState

if TYPE_CHECKING:
    from .controller_core import ControllerCore

__all__ = ["StrengthActions"]


class StrengthActions:
    """The edit strength of the last applied edit, on the ``controller`` that composes this part."""

    def __init__(self, controller: ControllerCore) -> None:
        self.controller = controller

    def preview(self, alpha: float) -> StrengthState:
        """The slider moves: the last edit at ``alpha`` (not autosaved), fixed or not, and the
        quick drawdown estimate."""
        c = self.controller
        c.session.set_strength(alpha, preview=True)
        state = self._state(alpha, estimate=c.session.estimate_last())
        c.callbacks.strength(state)
        return state

    def settle(self, alpha: float) -> StrengthState:
        """The slider rests (or a strength was chosen): the last edit at ``alpha``, autosaved, with
        the exact figures; the other panels follow (reports, attribution, probe)."""
        c = self.controller
        s, cb = c.session, c.callbacks
        s.set_strength(alpha)
        rec = s.complete_reports()
        state = self._state(alpha, record=rec)
        cb.strength(state)
        c.show_reports(rec)
        c.explain()
        sel = c.selection
        edited = rec is not None and sel is not None and (
            sel.index == rec.index if rec.index is not None else c.uploads.get(rec.uid) is sel.raw)
        if edited and sel is not None and rec is not None and cb.probe_views > 0:  # the probe is of the edited image
            cb.probe(s.generalization(sel.x, rec.target, n_views=cb.probe_views), sel, state.target)
        return state

    def smallest(self) -> StrengthState:
        """Find the smallest strength that still fixes the last edit's image, and use it."""
        return self.settle(self.controller.session.smallest_fixing_strength(x=self._edited_image()))

    def _edited_image(self) -> torch.Tensor | None:
        """The last edit's image when it is one of the user's own (None: the split's, by index)."""
        s = self.controller.session
        rec = s.history[-1] if s.history else None
        if rec is None or rec.index is not None:
            return None
        raw = self.controller.uploads.get(rec.uid)
        if raw is None:
            raise ValueError("the last edit was on an image of your own that is no longer at hand: upload it again")
        return s.normalize(raw)

    def _state(self, alpha: float, **kw: Any) -> StrengthState:
        c = self.controller
        s = c.session
        c.refresh_selection()
        rec = s.history[-1]
        target = rec.target if isinstance(rec.target, int) else rec.target[0]
        try:
            x = self._edited_image()
        except ValueError:  # an image of one's own no longer at hand: the figures still follow
            return StrengthState(alpha, None, None, target, error_before=c.error_before_last(), **kw)
        if x is None:
            assert rec.index is not None  # _edited_image returns an image of one's own
            x = s.image(rec.index if isinstance(rec.index, int) else list(rec.index))
        xi = x
        probs = s.probabilities(xi)
        preds = probs.argmax(-1).reshape(-1)
        fixed = bool((preds == torch.tensor(rec.result.y_ref)).all())
        return StrengthState(alpha, fixed, int(preds[0]), target, error_before=c.error_before_last(), **kw)
