"""Edit strength: the last applied edit's weight change, scaled (``weights = before + alpha * delta``).

The interpolation idea of model patching (PAINT, Ilharco et al. 2022), for one edit: ``alpha = 1``
is the edit as made, ``alpha = 0`` the weights before it. Both ends restore the saved tensors
(never ``before + 1 * delta`` in float), so they are bit-exact; between them the weights are
``torch.lerp(before, after, alpha)``. The stack keeps the edit as made beside the scaled one
(:attr:`~workbench.session.edit_record.EditRecord.full_after`), so the strength can move again,
and Undo restores the weights from before the edit exactly.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import TYPE_CHECKING, Mapping

import torch

from ..editing.editor import eval_mode
from ..editing.inputs import check_images
from ..models import ModelAdapter, forward_logits
from .data import SessionData
from .edit_record import EditRecord
from .stack import EditStack

if TYPE_CHECKING:
    from .persistence import Persistence

DEFAULT_TOL = 0.01  # the strength grid of smallest_fixing_strength (the slider's step): 9 forwards


def check_strength(alpha: object) -> float:
    """``alpha`` as a float in [0, 1]; TypeError / ValueError naming the fix otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"the edit strength must be a number from 0 to 1, got {type(alpha).__name__}")
    a = float(alpha)
    if not (math.isfinite(a) and 0.0 <= a <= 1.0):
        raise ValueError(f"the edit strength must be from 0 (before the edit) to 1 (the edit as made), got {alpha!r}")
    return a


def scaled(before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor], alpha: float
           ) -> dict[str, torch.Tensor]:
    """``before + alpha * (after - before)`` per tensor; ``alpha`` 0 and 1 return the given
    tensors themselves (bit-exact ends)."""
    if alpha == 0.0:
        return dict(before)
    if alpha == 1.0:
        return dict(after)
    return {n: torch.lerp(before[n], after[n], alpha) for n in after}


class EditStrength:
    """``set_strength``, ``edit_fixed`` and ``smallest_fixing_strength`` on one session's last edit.

    Args:
        adapter: the model's adapter (its model holds the current weights).
        stack: the edit stack (its top record is scaled).
        data: the split (the edited image, by index).
        persistence: autosaves each change, and forgets the hashes of the rewritten files.
    """

    def __init__(self, adapter: ModelAdapter, stack: EditStack, data: SessionData, persistence: Persistence) -> None:
        self.adapter, self.model, self.stack, self.data = adapter, adapter.model, stack, data
        self.persistence = persistence

    def _top(self) -> EditRecord:
        if not self.stack.history:
            raise ValueError("no edit is applied yet: make an edit first, then change its strength")
        return self.stack.history[-1]

    @property
    def strength(self) -> float | None:
        """The last applied edit's strength (None without an applied edit)."""
        return self.stack.history[-1].strength if self.stack.history else None

    def set_strength(self, alpha: float, *, preview: bool = False) -> EditRecord:
        """Set the last applied edit's weights to ``before + alpha * delta`` (``alpha`` in [0, 1]).

        The record's reports are dropped (``complete_reports`` scores the new weights); the redo
        stack is cleared, as by a new edit. ``preview`` (a slider moving): not autosaved; the
        next call without it is. Returns the new top record (the same ``uid``).

        Raises:
            ValueError, TypeError: no applied edit, or ``alpha`` outside [0, 1]; nothing changes.
            SessionBusy: another action is running; nothing changes.
        """
        a = check_strength(alpha)
        with self.stack.exclusive("changing the edit's strength"):
            rec = self._top()
            if a != rec.strength:
                full = rec.edit_after
                result = dataclasses.replace(rec.result, after=scaled(rec.result.before, full, a))
                rec = dataclasses.replace(rec, result=result, strength=a, full_after=None if a == 1.0 else full,
                                          report=None, step_report=None)
                self.stack.replace_top(rec)
                self.persistence.forget(rec.uid)
            if not preview:
                self.persistence.autosave()
            return rec

    def _images(self, rec: EditRecord, x: torch.Tensor | None) -> torch.Tensor:
        if x is None:
            if rec.index is None:
                raise ValueError("the last edit was on an image of your own: pass it as x")
            x = self.data.image(rec.index if isinstance(rec.index, int) else list(rec.index))
        return check_images(self.adapter, x)

    @torch.no_grad()
    def _fixes(self, xb: torch.Tensor, targets: torch.Tensor, params: Mapping[str, torch.Tensor] | None) -> bool:
        with eval_mode(self.model):
            preds = forward_logits(self.model, xb, params).argmax(-1).cpu()
        return bool((preds == targets).all())

    def edit_fixed(self, x: torch.Tensor | None = None) -> bool:
        """Does the current model predict the last edit's target(s) on its image(s)?

        ``x``: the edited image ``(C, H, W)`` or batch, needed only for an image of your own."""
        rec = self._top()
        return self._fixes(self._images(rec, x), torch.tensor(rec.result.y_ref), None)

    def smallest_fixing_strength(self, tol: float = DEFAULT_TOL, x: torch.Tensor | None = None) -> float:
        """The smallest strength on the grid ``0, tol, 2 tol, ... , 1`` at which the last edit
        still makes the model predict its target(s): bisection, ``ceil(log2(1 / tol)) + 2`` forwards
        of the edited image(s), without changing the weights.

        The result fixes and the grid point below it (``result - tol``) does not; when the fix
        holds from some strength on (the target's margin grows with the strength, as it does
        when the logits are linear in the edited weights), it is the smallest such grid point.

        Args:
            tol: the grid step, in (0, 0.5].
            x: the edited image(s), needed only for an image of your own.
        Raises:
            ValueError: no applied edit, a bad ``tol``, or an edit that does not fix its image
                at full strength (nothing to search).
        """
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0.0 < float(tol) <= 0.5:
            raise ValueError(f"tol must be a number in (0, 0.5], e.g. {DEFAULT_TOL}, got {tol!r}")
        rec = self._top()
        xb, targets = self._images(rec, x), torch.tensor(rec.result.y_ref)
        before, full = rec.result.before, rec.edit_after
        n = math.ceil(1.0 / float(tol) - 1e-9)
        grid = [min(k * float(tol), 1.0) for k in range(n + 1)]
        if not self._fixes(xb, targets, dict(full)):
            raise ValueError("the edit does not fix its image even at full strength: nothing to search")
        if self._fixes(xb, targets, dict(before)):
            return 0.0  # the weights before the edit predict the target already (a margin-seeking editor)
        lo, hi = 0, n  # invariant: grid[hi] fixes; grid[lo] does not (strength 0 is the weights before the edit)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._fixes(xb, targets, scaled(before, full, grid[mid])):
                hi = mid
            else:
                lo = mid
        return grid[hi]
