"""What the controller and the view hand each other: the selection, one click's attempt, and
the callbacks through which the controller tells the view what to show.

No widgets here: :class:`Callbacks` is a table of plain callables, each filled by the view
(:class:`~workbench.widgets.workbench.Workbench`, a side of the
:class:`~workbench.widgets.comparison.Comparison`) with the panel update it stands for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

if TYPE_CHECKING:
    from ..editing import EditorConfig, EditResult
    from ..evaluation.estimate import DrawdownEstimate
    from ..session import EditRecord, EditSession
    from .wording import Outcome

__all__ = ["Attempt", "Callbacks", "Selection", "StrengthState", "attribution_rows"]


@dataclass(frozen=True, eq=False)
class Selection:
    """The image being edited.

    Attributes:
        index: position in the session's split, or None for an uploaded image.
        raw: ``(C, H, W) uint8`` for display; x: ``(C, H, W)`` normalised model input.
        true: the true label (None when unknown: an uploaded image).
        base_pred: the base model's prediction; probs: ``(C,)`` of the current weights.
        name: what to call it (``#123`` or the file name).
    """

    index: int | None
    raw: torch.Tensor
    x: torch.Tensor
    true: int | None
    base_pred: int
    probs: torch.Tensor
    name: str

    @property
    def pred(self) -> int:
        return int(self.probs.argmax())

    @classmethod
    def of_index(cls, session: EditSession, index: int, images: torch.Tensor) -> Selection:
        """Test image ``index`` of ``session``'s split (``images``: its display images)."""
        n = len(session.labels)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ValueError(f"there is no test image #{index!r}: pick one of 0..{n - 1}")
        x = session.image(index)
        return cls(index, images[index], x, int(session.labels[index]), int(session.base_preds[index]),
                   session.probabilities(x), f"#{index}")

    @classmethod
    def of_upload(cls, session: EditSession, data: bytes, name: str) -> Selection:
        """An image of the user's own (PNG or JPEG bytes), read and resized by ``session``."""
        raw = session.image_from_bytes(data, name)
        x = session.normalize(raw)
        return cls(None, raw, x, None, int(session.base_probabilities(x).argmax()), session.probabilities(x), name)


@dataclass(eq=False)
class Attempt:
    """One click's edit, filled in phase by phase (see :meth:`~workbench.widgets.controller.Controller.edit`).

    Attributes:
        result: the editor's result (None: a no-op, the model already predicts the target).
        applied: the edit was accepted and pushed on the session's history
            (``session.applied_record(result)`` says so).
        outcome: the card's plain words; target: the label asked for; t0: ``perf_counter()`` at the click.
        estimate: the quick drawdown estimate (after ``Controller.estimate``).
        record: the pushed record with its exact reports (after ``Controller.score``).
    """

    result: EditResult | None
    applied: bool
    outcome: Outcome
    target: int
    t0: float
    estimate: DrawdownEstimate | None = None
    record: EditRecord | None = None


@dataclass(frozen=True, eq=False)
class StrengthState:
    """The last applied edit at a strength (``Controller.preview_strength`` / ``settle_strength``).

    Attributes:
        alpha: the strength in [0, 1]; fixed: the model predicts the edit's target(s) on its image(s)
            at this strength (None: an image of your own that is no longer at hand).
        pred: the edited image's predicted class now (the first, for a batch); target: the edit's target.
        estimate: the quick drawdown estimate (while the slider moves), else None.
        record: the last applied ``EditRecord`` with its exact reports (once the slider rests), else None.
        error_before: test error of the weights before the edit.
    """

    alpha: float
    fixed: bool | None
    pred: int | None
    target: int
    estimate: DrawdownEstimate | None = None
    record: EditRecord | None = None
    error_before: float = 0.0


def _nop(*_a: Any) -> None:
    return None


@dataclass
class Callbacks:
    """What the controller tells the view (every field is optional), and the view state it asks for.

    Told: ``selected`` (a new or refreshed selection), ``target``, ``phase`` (what runs now, ``""``
    when idle), ``outcome``, ``estimate``, ``attribution``, ``reports`` (the exact reports of the
    weights as they are: the last applied ``EditRecord`` or None), ``probe``, ``history`` (after
    Undo / Redo / Reset / Load: what happened), ``localized`` (the selection's critical-neuron
    result, None: not searched yet), ``scores`` (per-image scores for the error browser's filters;
    None: not wanted, nothing is computed), ``mislabeled`` (the session's ``LabelScores`` for the
    "likely mislabeled" sort; None: not wanted), ``group`` (the edit group to use), ``scoring``
    (the base scoring's progress, ``(scored, total)``, while it runs in the background),
    ``strength`` (the last edit at a new strength: a :class:`StrengthState`).

    Asked: ``editor_config`` (the edit panel's settings; None: the session's), ``attribution_options``
    (keyword arguments for ``EditSession.explain``; None: no maps now), ``localize_quick`` (the
    quick search setting). ``attribution_error``: where a failed map is shown (None: it raises).
    ``probe_views``: augmented views per kind for the generalization probe (0: off).
    """

    selected: Callable[[Selection], None] = _nop
    target: Callable[[int], None] = _nop
    phase: Callable[[str], None] = _nop
    outcome: Callable[[Outcome, Any], None] = _nop
    estimate: Callable[[Any, float], None] = _nop
    attribution: Callable[[Any, Selection, dict[str, int]], None] = _nop
    reports: Callable[[Any], None] = _nop
    probe: Callable[[Any, Selection, int], None] = _nop
    history: Callable[[str], None] = _nop
    localized: Callable[[int | None, Any], None] = _nop
    scores: Callable[[str, Mapping[int, float]], None] | None = None
    mislabeled: Callable[[Any], None] | None = None
    group: Callable[[str], None] = _nop
    scoring: Callable[[int, int], None] = _nop
    strength: Callable[[StrengthState], None] = _nop
    editor_config: Callable[[], EditorConfig | None] = lambda: None
    attribution_options: Callable[[], dict[str, Any] | None] = lambda: None
    localize_quick: Callable[[], bool] = lambda: True
    attribution_error: Callable[[BaseException], None] | None = None
    probe_views: int = 16


def attribution_rows(sel: Selection, target: int, classes: tuple[str, ...]) -> dict[str, int]:
    """Row title -> class for the attribution grid: at most two *different* labels.

    The base model's prediction and the target first; when they are the same class (e.g.
    an image that an edit broke, targeted back to its label), the current prediction or
    the true label takes the second row, so the two rows never show the same map twice.
    """
    named = [("base prediction", sel.base_pred), ("target", target), ("now predicted", sel.pred),
             ("true label", sel.true)]
    rows: dict[str, int] = {}
    for what, c in named:
        if c is None or c in rows.values():
            continue
        also = [w for w, v in named if v == c and w != what and v is not None]
        title = f"{what}{' = ' + ' = '.join(also) if also else ''}: {classes[c]}"
        rows[title] = int(c)
        if len(rows) == 2:
            break
    return rows
