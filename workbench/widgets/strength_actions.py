"""The strength slider's actions, part of the one :class:`~workbench.widgets.controller.Controller`.

The last applied edit at strength ``alpha`` (``weights = before + alpha * change``): while the
slider moves, the card shows fixed-or-not and the quick drawdown estimate
(:meth:`StrengthActions.preview_strength`); once it rests, the exact figures and every panel
(:meth:`StrengthActions.settle_strength`). "Smallest strength that fixes" bisects on the edited
image (:meth:`StrengthActions.smallest_strength`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .events import StrengthState

if TYPE_CHECKING:
    from ..session import EditRecord, EditSession
    from .events import Callbacks, Selection

__all__ = ["StrengthActions"]


class StrengthActions:
    """Mixed into the Controller: it supplies the attributes and helpers declared here."""

    if TYPE_CHECKING:
        session: EditSession
        callbacks: Callbacks
        selection: Selection | None
        target: int | None
        uploads: dict[str, torch.Tensor]

        def _refresh_selection(self) -> None: ...
        def _error_before_last(self) -> float: ...
        def _reports(self, record: EditRecord | None) -> None: ...
        def explain(self) -> None: ...

    def preview_strength(self, alpha: float) -> StrengthState:
        """The slider moves: the last edit at ``alpha`` (not autosaved), fixed or not, and the
        quick drawdown estimate."""
        self.session.set_strength(alpha, preview=True)
        state = self._strength_state(alpha, estimate=self.session.estimate_last())
        self.callbacks.strength(state)
        return state

    def settle_strength(self, alpha: float) -> StrengthState:
        """The slider rests (or a strength was chosen): the last edit at ``alpha``, autosaved, with
        the exact figures; the other panels follow (reports, attribution, probe)."""
        s, cb = self.session, self.callbacks
        s.set_strength(alpha)
        rec = s.complete_reports()
        state = self._strength_state(alpha, record=rec)
        cb.strength(state)
        self._reports(rec)
        self.explain()
        sel = self.selection
        edited = rec is not None and sel is not None and (
            sel.index == rec.index if rec.index is not None else self.uploads.get(rec.uid) is sel.raw)
        if edited and sel is not None and rec is not None and cb.probe_views > 0:  # the probe is of the edited image
            cb.probe(s.generalization(sel.x, rec.target, n_views=cb.probe_views), sel, state.target)
        return state

    def smallest_strength(self) -> StrengthState:
        """Find the smallest strength that still fixes the last edit's image, and use it."""
        return self.settle_strength(self.session.smallest_fixing_strength(x=self._edited_image()))

    def _edited_image(self) -> torch.Tensor | None:
        """The last edit's image when it is one of the user's own (None: the split's, by index)."""
        rec = self.session.history[-1] if self.session.history else None
        if rec is None or rec.index is not None:
            return None
        raw = self.uploads.get(rec.uid)
        if raw is None:
            raise ValueError("the last edit was on an image of your own that is no longer at hand: upload it again")
        return self.session.normalize(raw)

    def _strength_state(self, alpha: float, **kw: Any) -> StrengthState:
        s = self.session
        self._refresh_selection()
        rec = s.history[-1]
        target = rec.target if isinstance(rec.target, int) else rec.target[0]
        try:
            x = self._edited_image()
        except ValueError:  # an image of one's own no longer at hand: the figures still follow
            return StrengthState(alpha, None, None, target, error_before=self._error_before_last(), **kw)
        if x is None:
            assert rec.index is not None  # _edited_image returns an image of one's own
            x = s.image(rec.index if isinstance(rec.index, int) else list(rec.index))
        xi = x
        probs = s.probabilities(xi)
        preds = probs.argmax(-1).reshape(-1)
        fixed = bool((preds == torch.tensor(rec.result.y_ref)).all())
        return StrengthState(alpha, fixed, int(preds[0]), target, error_before=self._error_before_last(), **kw)
