"""Step sizes for a model without a tuned default: a short search on a few validation edits.

The tuned defaults (``editing/editor_defaults.json``) were measured on the project's Fashion-MNIST
ResNet; borrowed by another model they can fail every edit or wreck the model (GD at the
borrowed lr cost 18.7% drawdown on torchvision resnet18's ``fc``). :func:`calibrate` applies the
paper's rule on the model at hand: among learning rates that keep at least ``target_success``
of the edits successful within k steps, the one with the least drawdown.

The search, for one method and group, on ``edits`` seeded random-label edits of validation
images (scored on the evaluator's validation slice):

1. learning rates one decade apart (:data:`CALIBRATION_LRS`), smallest first, edits only, each
   point stopped as soon as it cannot reach the success target; the walk stops at the first
   point that does, plus one more (drawdown grows with the lr, so larger ones are not tried);
2. ``refine`` bisections (geometric means) between the largest failing lr and the smallest
   qualifying one;
3. every qualifying point is scored; the least drawdown wins.

When no lr qualifies, the most successful point is returned with ``feasible=False``: the
points resume their edits and run them all (or stop once they provably cannot beat the best
so far, :func:`~workbench.evaluation.tuning.most_successful`), so the reported success rate is
the rate over every validation edit, not over a run cut short at its first failures.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch

from ..editing import EditorConfig, get_method
from ..editing.editor_defaults import DEFAULT_MAX_STEPS, DEFAULT_METHOD, default_for
from .evaluator import Evaluator
from .reports import group_name
from .protocols import random_label_edits
from .tuning import TunePoint, most_successful, run_point

CALIBRATION_LRS: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
CALIBRATION_EDITS = 20
CALIBRATION_VAL_LIMIT = 500
TARGET_SUCCESS = 0.95

__all__ = ["CALIBRATION_EDITS", "CALIBRATION_LRS", "CALIBRATION_VAL_LIMIT", "Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """A calibrated step size and how it was measured.

    Attributes:
        method, layers: the editor and group it holds for (``layers`` as the config names it).
        lr, beta: the chosen values (``beta`` is the method's default, not searched).
        success_rate, mean_steps, drawdown_abs: of the chosen point on the validation edits.
        feasible: whether it met ``target_success``.
        edits, examples: validation edits run, validation images scored.
        points: every point tried, ``(lr, success, drawdown or None)``.
    """

    method: str
    layers: str | tuple[str, ...]
    lr: float
    beta: float | None
    success_rate: float
    mean_steps: float
    drawdown_abs: float | None
    feasible: bool
    edits: int
    examples: int
    max_steps: int
    target_success: float
    seconds: float
    points: tuple[tuple[float, float, float | None], ...] = ()

    def config(self) -> EditorConfig:
        return EditorConfig(self.method, self.lr, self.beta, max_steps=self.max_steps, layers=self.layers).resolved()

    def note(self) -> str:
        """One line for the UI and the CLI."""
        beta = "" if self.beta is None else f" beta={self.beta:g}"
        dd = "not scored" if self.drawdown_abs is None else f"{100 * self.drawdown_abs:.2f}%"
        head = (f"calibrated {self.method} lr={self.lr:.3g}{beta} on {group_name(self.layers)}: success "
                f"{100 * self.success_rate:.0f}%, drawdown {dd} on {self.edits} random-label validation edits "
                f"({self.examples} images, {self.seconds:.1f} s)")
        if not self.feasible:
            head += (f"; no lr reached {100 * self.target_success:.0f}% success within k={self.max_steps}: "
                     "try another group or method")
        return head + " (no tuned default for this model and group)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = self.layers if isinstance(self.layers, str) else list(self.layers)
        d["points"] = [list(p) for p in self.points]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibration":
        layers = d["layers"]
        return cls(**{**d, "layers": layers if isinstance(layers, str) else tuple(layers),  # type: ignore[arg-type]
                      "points": tuple(tuple(p) for p in d.get("points", ()))})


def calibrate(evaluator: Evaluator, method: str = DEFAULT_METHOD, layers: str | Sequence[str] | None = None, *,
              beta: float | None = None, edits: int = CALIBRATION_EDITS, seed: int = 0,
              max_steps: int = DEFAULT_MAX_STEPS, target_success: float = TARGET_SUCCESS, refine: int = 2,
              lrs: Sequence[float] = CALIBRATION_LRS,
              edit_set: tuple[torch.Tensor, torch.Tensor] | None = None) -> Calibration:
    """Search ``method``'s lr on ``evaluator``'s split (a validation slice); see the module docstring.

    Args:
        evaluator: bound to the model's current weights and a validation split.
        layers: the edited group (default: the evaluator's).
        beta: kept fixed (default: the method's default).
        edits: random-label validation edits per point.
        edit_set: ``(x (n, C, H, W), y (n,))`` edits to run instead of the seeded random-label
            ones (``edits`` is then ``n``).
    Returns:
        :class:`Calibration`.
    """
    m = get_method(method)
    group = evaluator.layers if layers is None else (layers if isinstance(layers, str) else tuple(layers))
    if not isinstance(edits, int) or edits < 1:
        raise ValueError(f"edits must be a positive integer, got {edits!r}")
    b = beta if beta is not None else (default_for(m.name, group)["beta"] if m.beta_range else None)

    def cfg(lr: float) -> EditorConfig:
        return EditorConfig(m.name, lr, b, max_steps=max_steps, layers=group).resolved()

    t0 = time.perf_counter()
    x, y = random_label_edits(evaluator, edits, seed) if edit_set is None else edit_set
    edits = len(x)
    allowed = math.floor((1 - target_success) * edits + 1e-9)
    points: list[TunePoint] = []
    runs: dict[float, list] = {}
    extra = 0
    for lr in sorted(lrs):
        points.append(run_point(evaluator, cfg(lr), x, y, allowed, done=runs.setdefault(lr, [])))
        if points[-1].feasible:
            extra += 1
            if extra == 2:
                break
    for _ in range(refine):
        good = [p.lr for p in points if p.feasible]
        bad = [p.lr for p in points if not p.feasible and good and p.lr < min(good)]
        if not good or not bad:
            break
        lr = float(f"{math.sqrt(max(bad) * min(good)):.3g}")
        if lr in (max(bad), min(good)):
            break
        points.append(run_point(evaluator, cfg(lr), x, y, allowed, done=runs.setdefault(lr, [])))
    ok = [p for p in points if p.feasible]
    if ok:
        best = min(ok, key=lambda p: (p.drawdown_abs, p.mean_steps))
    else:  # none qualifies: compare success rates over all the edits, not cut-short ones
        best, points = most_successful(evaluator, points, runs, cfg, x, y, allowed)
    points.sort(key=lambda p: p.lr)
    return Calibration(m.name, group, best.lr, b, best.success_rate, best.mean_steps, best.drawdown_abs,
                       bool(ok), edits, len(evaluator), max_steps, target_success, time.perf_counter() - t0,
                       tuple((p.lr, p.success_rate, p.drawdown_abs) for p in points))
