"""Records kept by an :class:`~workbench.session.EditSession`."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..editing.editor import EditResult
from ..editing.guard import COST_WARNING_PP

if TYPE_CHECKING:  # the evaluator is optional at run time
    from ..evaluation import EditReport

Index = "int | tuple[int, ...] | None"


def new_uid() -> str:
    """A short unique id naming an edit's tensor file."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, eq=False)
class EditRecord:
    """One edit as the session saw it.

    Attributes:
        result: the editor's :class:`~workbench.editing.EditResult` (``before``/``after`` hold the
            edited parameters, on the session's device).
        index: index of the edited image in the evaluator's split, a tuple for a batch edit,
            or None for a custom image.
        target: the target label (a tuple for a batch edit).
        report: cumulative score of the weights after this edit against the base weights
            (None without an evaluator, or for a failed attempt).
        step_report: this edit alone: the weights after it against the weights before it
            (``error_before`` = error of the state before this edit).
        timestamp: ``time.time()`` when the edit was made.
        uid: stable id of the record (names its tensor file in a saved history).
        strength: the share ``alpha`` in [0, 1] of the edit's weight change applied
            (``EditSession.set_strength``): ``result.after`` holds ``before + alpha * delta``;
            1 is the edit as made.
        full_after: the edited parameters of the edit as made, when ``strength`` is not 1
            (None: ``result.after`` is the edit as made).
    """

    result: EditResult
    index: int | tuple[int, ...] | None
    target: int | tuple[int, ...]
    report: EditReport | None = None
    step_report: EditReport | None = None
    timestamp: float = 0.0
    uid: str = field(default_factory=new_uid)
    strength: float = 1.0
    full_after: dict[str, torch.Tensor] | None = None

    @property
    def edit_after(self) -> dict[str, torch.Tensor]:
        """The edited parameters of the edit as made (strength 1), whatever its strength now."""
        return self.full_after if self.full_after is not None else self.result.after

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def cost_pp(self) -> float | None:
        """This edit's accuracy cost on the evaluator's split, in percentage points
        (``100 * step_report.drawdown``: > 0 means accuracy fell); None without a report."""
        return None if self.step_report is None else 100.0 * self.step_report.drawdown

    @property
    def cost_warning(self) -> bool:
        """Accuracy fell by more than :data:`~workbench.editing.guard.COST_WARNING_PP` points
        with this edit (the UI shows the cost in a warning colour)."""
        return self.cost_pp is not None and self.cost_pp > COST_WARNING_PP

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no tensors): what an export card or a table shows."""
        cfg = self.result.config
        out: dict[str, Any] = {
            "index": list(self.index) if isinstance(self.index, tuple) else self.index,
            "target": list(self.target) if isinstance(self.target, tuple) else self.target,
            "method": cfg.method, "lr": cfg.lr, "beta": cfg.beta, "max_steps": cfg.max_steps,
            "layers": cfg.group if isinstance(cfg.group, str) else list(cfg.group),
            "steps": self.result.steps, "success": self.result.success,
            "seconds": round(self.result.seconds, 4), "timestamp": self.timestamp,
        }
        if self.report is not None:
            out["test_error_after"] = self.report.error_after
            out["drawdown"] = self.report.drawdown
        if self.result.wrecked:
            out["wrecked"] = True
        if self.strength != 1.0:
            out["strength"] = self.strength
        return out


def target_of(y: tuple[int, ...], batch: bool) -> int | tuple[int, ...]:
    """The record's ``target``: the int for a single edit, the tuple for a batch."""
    return y if batch else y[0]
