"""Editor tuning, the paper's protocol: the learning rate (and beta) with the least drawdown
among the settings that keep >= 95 % success within k steps, measured on a validation slice.

Each grid point runs the same seeded random-label edits of validation images. Phase 1 runs
only the edits (cheap) and stops as soon as too many have failed for the point to reach the
success target; phase 2 scores the edited weights of the points that did, on the validation
slice, with the :class:`Evaluator`.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch

from ..editing import EditorConfig, EditResult, edit, get_method
from ..editing.editor_defaults import DEFAULT_MAX_STEPS, DEFAULTS
from .evaluator import Evaluator
from .reports import group_name
from .protocols import random_label_edits

BETA_GRID: dict[str, tuple[float, ...]] = {"rmsprop": (0.5, 0.9), "momentum": (0.5, 0.9), "adam": (0.9, 0.5)}
LR_EXPONENTS = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)  # decades around the current default


def default_grid(method: str, lr0: float | None = None) -> tuple[tuple[float, ...], tuple[float | None, ...]]:
    """``(lrs, betas)``: 7 half-decade steps around ``lr0`` (default: the method's current default
    lr in ``editing.editor_defaults``) and its betas (``(None,)`` for methods without one)."""
    m = get_method(method)
    lr0 = float(lr0 if lr0 is not None else (DEFAULTS[m.name]["lr"] or 1e-3))
    lrs = tuple(float(f"{lr0 * 10 ** e:.3g}") for e in LR_EXPONENTS)
    return lrs, (BETA_GRID.get(m.name, (0.5,)) if m.beta_range else (None,))


@dataclass(frozen=True)
class TunePoint:
    """One grid point. ``drawdown_*`` are None when it was not scored (success target missed)."""

    lr: float
    beta: float | None
    success_rate: float
    mean_steps: float
    drawdown_abs: float | None
    drawdown_signed: float | None
    edits_run: int
    feasible: bool
    seconds: float


@dataclass(frozen=True)
class TuneResult:
    """The grid, the winner (None if no point met the target) and how it was measured.

    ``reference`` is the point of the editor the model learned (``editing.choose_editor``), when
    tuning was given one; it is also one of ``points`` and may be the winner.
    """

    editor: str
    layers: str
    split: str
    examples: int
    edits: int
    max_steps: int
    target_success: float
    base_error: float
    points: tuple[TunePoint, ...]
    best: TunePoint | None
    seconds: float
    reference: TunePoint | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Markdown table of the grid; the winner is marked with ``*``, the reference with ``L``."""
        def pct(v: float | None) -> str:
            return "not scored" if v is None else f"{100 * v:.2f}%"
        lines = ["| | lr | beta | success@k | mean steps | drawdown (abs) | drawdown (signed) | edits run |",
                 "|---|---|---|---|---|---|---|---|"]
        for p in self.points:
            mark = ("*" if p is self.best else "") + ("L" if p is self.reference else "")
            beta = "-" if p.beta is None else f"{p.beta:g}"
            lines.append(f"| {mark} | {p.lr:.3g} | {beta} | {100 * p.success_rate:.1f}% | {p.mean_steps:.2f} "
                         f"| {pct(p.drawdown_abs)} | {pct(p.drawdown_signed)} | {p.edits_run} |")
        return "\n".join(lines)


def run_point(evaluator: Evaluator, cfg: EditorConfig, x: torch.Tensor, y: torch.Tensor,
               allowed_failures: int, *, done: list[EditResult] | None = None,
               beat: int | None = None) -> TunePoint:
    """One grid point: the edits, then their drawdown if it qualifies.

    The edits stop once more than ``allowed_failures`` failed (the point cannot qualify) and,
    with ``beat``, once it also cannot succeed on more than ``beat`` edits (it cannot beat the
    best point so far): so the success rate of a point that was not cut short, and of any
    point that beats ``beat``, is its rate over all ``len(x)`` edits (``edits_run`` says how
    many ran). ``done`` holds this point's results so far: the run resumes after them and
    appends to it.
    """
    t1 = time.perf_counter()
    results: list[EditResult] = done if done is not None else []
    t_done = sum(r.seconds for r in results)
    while len(results) < len(x):  # phase 1: edits only, stop once the outcome cannot matter
        failures = sum(not r.accepted for r in results)  # a wrecked edit (editing.guard) is a failure
        if failures > allowed_failures and (beat is None or len(x) - failures <= beat):
            break
        i = len(results)
        results.append(edit(evaluator.model, x[i], int(y[i]), cfg))
    failures = sum(not r.accepted for r in results)
    n_run = len(results)
    success = (n_run - failures) / n_run
    steps = sum(r.steps if r.accepted else cfg.max_steps for r in results) / n_run
    feasible = failures <= allowed_failures
    dd_abs = dd_signed = None
    if feasible:  # phase 2: score every edit of a qualifying point on the whole split
        dds = []
        for r in results:
            preds = evaluator.base_preds if r.steps == 0 or not r.finite else evaluator.preds_for(r.after)
            dds.append(float((preds != evaluator.labels).float().mean()) - evaluator.base_error)
        dd_abs, dd_signed = sum(map(abs, dds)) / n_run, sum(dds) / n_run
    return TunePoint(float(cfg.lr), cfg.beta, success, steps, dd_abs, dd_signed, n_run, feasible,  # type: ignore[arg-type]
                     time.perf_counter() - t1 + t_done)


def most_successful(evaluator: Evaluator, points: Sequence[TunePoint], runs: dict[float, list[EditResult]],
                    config: Callable[[float], EditorConfig], x: torch.Tensor, y: torch.Tensor,
                    allowed_failures: int) -> tuple[TunePoint, list[TunePoint]]:
    """``(best, points)``: the point with the most successful edits over all of ``x`` (ties: the
    smaller lr), for when none qualified, and ``points`` with their runs extended.

    Each point's edits resume from ``runs[lr]`` and run to the end, or stop once the point
    provably cannot beat the best so far (the most promising points run first). The best
    point's ``success_rate`` is therefore its rate over every edit, never a cut-short one.
    """
    best: TunePoint | None = None
    done: dict[float, TunePoint] = {}
    for p in sorted(points, key=lambda p: (-sum(r.accepted for r in runs[p.lr]), p.lr)):
        wins = 0 if best is None else round(best.success_rate * best.edits_run)
        beat = -1 if best is None else (wins - 1 if p.lr < best.lr else wins)  # a tie goes to the smaller lr
        q = done[p.lr] = run_point(evaluator, config(p.lr), x, y, allowed_failures, done=runs[p.lr], beat=beat)
        if q.edits_run == len(x) and (best is None or (round(q.success_rate * len(x)), -q.lr) > (wins, -best.lr)):
            best = q
    if best is None:
        raise ValueError("most_successful needs at least one point")
    return best, [done[p.lr] for p in points]


def tune_editor(evaluator: Evaluator, method: str, *, edits: int = 100, seed: int = 0,
                lrs: Sequence[float] | None = None, betas: Sequence[float | None] | None = None,
                layers: str | tuple[str, ...] | None = None, max_steps: int = DEFAULT_MAX_STEPS,
                target_success: float = 0.95, refine: int = 2, progress: bool = True,
                reference: EditorConfig | None = None) -> TuneResult:
    """Grid-search ``method``'s lr (and beta) on ``evaluator``'s split (normally a val slice).

    Args:
        evaluator: scores on its split; edits are ``edits`` random-label images of that split.
        method: editor name (see ``editing.METHODS``).
        lrs, betas: the grid (default :func:`default_grid`).
        layers: edited group(s) (default: the evaluator's).
        target_success: minimum success rate within ``max_steps`` for a point to qualify.
        reference: an editor to score beside the grid (normally the one the model learned in
            Editable Training); without ``lrs`` the default grid is centred on its lr.
        refine: per beta, bisection steps (geometric mean) between the largest failing lr below
            the smallest qualifying lr and that lr: drawdown grows with lr, so the best
            setting usually sits just above the success boundary.
    Returns:
        :class:`TuneResult`; ``best`` has the least absolute drawdown among qualifying points.
        ``points`` are ordered by beta, then lr.
    """
    m = get_method(method)
    ref = None if reference is None else reference.resolved()
    if ref is not None and get_method(ref.method).name != m.name:
        raise ValueError(f"the reference editor is {ref.method}, but tuning {m.name}; pass a reference of the same method")
    d_lrs, d_betas = default_grid(m.name, None if ref is None else ref.lr)
    lrs = tuple(float(v) for v in (lrs or d_lrs))
    betas = tuple(betas) if betas else d_betas
    if m.beta_range is None:
        betas = (None,)
    if not 0 < target_success <= 1:
        raise ValueError(f"target_success must lie in (0, 1], got {target_success}")
    if not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be an integer >= 0, got {refine!r}")
    layers = evaluator.layers if layers is None else layers

    def config(lr: float, beta: float | None) -> EditorConfig:
        return EditorConfig(m.name, lr, beta, max_steps=max_steps, layers=layers).resolved()

    grid = [config(lr, beta) for beta in betas for lr in sorted(lrs)]  # validates every point up front
    x, y = random_label_edits(evaluator, edits, seed)
    allowed_failures = math.floor((1 - target_success) * edits + 1e-9)
    from tqdm import tqdm

    t0 = time.perf_counter()
    points: list[TunePoint] = []
    bar = tqdm(total=len(grid) + refine * len(betas), desc=f"tuning {m.name}", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    for cfg in grid:
        points.append(run_point(evaluator, cfg, x, y, allowed_failures))
        bar.update(1)
        bar.set_postfix(lr=f"{cfg.lr:.3g}", success=f"{100 * points[-1].success_rate:.0f}%")
    for beta in betas:
        for _ in range(refine):
            mine = [p for p in points if p.beta == (None if beta is None else float(beta))]
            good = [p.lr for p in mine if p.feasible]
            if not good:
                break
            bad = [p.lr for p in mine if not p.feasible and p.lr < min(good)]
            if not bad:
                break
            lr = float(f"{math.sqrt(max(bad) * min(good)):.3g}")
            if lr in (max(bad), min(good)):
                break
            points.append(run_point(evaluator, config(lr, beta), x, y, allowed_failures))
            bar.update(1)
    ref_point = None
    if ref is not None:
        ref_beta = None if m.beta_range is None else ref.beta
        ref_point = next((p for p in points if p.lr == ref.lr and p.beta == ref_beta), None)
        if ref_point is None:
            ref_point = run_point(evaluator, config(float(ref.lr), ref_beta), x, y, allowed_failures)  # type: ignore[arg-type]
            points.append(ref_point)
    bar.close()
    order = {b: i for i, b in enumerate(betas)}
    points.sort(key=lambda p: (order.get(p.beta, len(order)), p.lr))
    ok = [p for p in points if p.feasible]
    best = min(ok, key=lambda p: (p.drawdown_abs, p.mean_steps)) if ok else None
    return TuneResult(m.name, group_name(layers), evaluator.split, len(evaluator), edits, max_steps,
                      target_success, evaluator.base_error, tuple(points), best, time.perf_counter() - t0,
                      ref_point)


def _check_grid_values(name: str, values: Sequence[float]) -> None:
    for v in values:
        if not (isinstance(v, float) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must hold positive finite numbers, got {v!r}")


def parse_floats(text: str | None, name: str) -> tuple[float, ...] | None:
    """``"1e-4,3e-4"`` -> ``(1e-4, 3e-4)``; None stays None."""
    if text is None:
        return None
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise ValueError(f"{name} must be a comma-separated list of numbers, got {text!r}") from err
    if not vals:
        raise ValueError(f"{name} is empty; give numbers such as 1e-4,3e-4")
    _check_grid_values(name, vals)
    return vals


