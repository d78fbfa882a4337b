"""Plain words for an edit: its outcome, the drawdown estimate and the exact figures.

Pure functions from records to :class:`~workbench.widgets.markup.Markup` (class names
escaped by :func:`~workbench.widgets.markup.markup`), no widgets: the controller describes an
attempt with :func:`describe_edit`, the outcome card and the comparison's verdict show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .glossary import term
from .markup import Markup, markup

__all__ = ["EARLIER_EDIT_NOTE", "Outcome", "describe_edit", "describe_strength", "estimate_line", "exact_line", "pp"]

# What the detail panels say after an attempt that changed nothing (they show the applied edit before it).
EARLIER_EDIT_NOTE = "the last attempt changed nothing; this is the edit before it"


@dataclass(frozen=True)
class Outcome:
    """The first part of the card. status: ``fixed``, ``failed`` or ``noop``; title and
    detail are HTML (:class:`~workbench.widgets.markup.Markup`, data escaped)."""

    status: str
    title: Markup
    detail: Markup
    steps: int
    seconds: float


def describe_edit(result: Any, classes: Sequence[str], pred_before: int, pred_after: int,
                  target: int) -> Outcome:
    """Plain words for an :class:`~workbench.editing.EditResult`.

    Args:
        pred_before, pred_after: the edited image's predicted class before and after the click.
        target: the label the edit asked for.
    """
    name = lambda c: classes[c] if 0 <= c < len(classes) else str(c)  # noqa: E731
    steps, secs = int(result.steps), float(result.seconds)
    if getattr(result, "wrecked", False):
        return Outcome("failed", markup("Refused ✗ — this edit would wreck the model, so it was not applied."),
                       markup("The weights are unchanged ({}). Lower the learning rate in Editor settings.",
                              result.message), steps, secs)
    if result.success and steps == 0:
        return Outcome("noop", markup("Nothing to fix — the model already predicts {}.", name(target)),
                       markup("No weight was changed and no edit was added to the history."), 0, secs)
    if result.success:
        return Outcome("fixed", markup("Fixed ✓ — now predicts {}.", name(pred_after)),
                       markup("{} {} of the editor.", steps, term("steps")), steps, secs)
    k = int(getattr(result.config, "max_steps", steps) or steps)
    if not getattr(result, "finite", True):
        why = markup("the update blew up (non-finite numbers): the learning rate is far too large.")
        fix = "Lower the learning rate in Editor settings and try again."
    else:
        why = markup("after {} of {} steps the model still prefers {} to {}.", steps, k, name(pred_after),
                     name(target))
        fix = "Allow more steps or a larger learning rate in Editor settings, or pick another target."
    return Outcome("failed", markup("Not fixed ✗ — {}", why), markup("The weights are unchanged. {}", fix),
                   steps, secs)


def describe_strength(alpha: float, fixed: bool | None, classes: Sequence[str], pred: int | None,
                      target: int) -> Outcome:
    """Plain words for the last edit at strength ``alpha``: fixed or not (``fixed`` None: unknown)."""
    name = lambda c: classes[c] if c is not None and 0 <= c < len(classes) else "?"  # noqa: E731
    at = f"At strength {alpha:.2f}"
    detail = markup("Strength 1 is the edit as made, 0 the model before it.")
    if fixed is None:
        return Outcome("info", markup("{} of the edit.", at), detail, 0, 0.0)
    if fixed:
        return Outcome("fixed", markup("{}: fixed ✓ — predicts {}.", at, name(target)), detail, 0, 0.0)
    return Outcome("failed", markup("{}: not fixed ✗ — predicts {}, not {}.", at, name(pred), name(target)),
                   detail, 0, 0.0)


def pp(x: float) -> str:
    """A change given as a fraction, in signed percentage points (``−0.13 pp``)."""
    return f"{x * 100:+.2f} pp".replace("-", "−")


def estimate_line(est: Any, error_before: float) -> Markup:
    """``≈ 93.0% → 92.9% (−0.13 pp, 95% interval −0.30 to +0.04 pp), estimate from 1,000 images``."""
    acc0 = 1 - error_before
    acc1 = acc0 - est.drawdown
    return markup("Test accuracy ≈ {:.1%} → {:.1%} ({}; {} {} to {}), {} from {:,} of {:,} images; "
                  "exact figure follows…", acc0, acc1, pp(-est.drawdown), term("95% interval"), pp(-est.high),
                  pp(-est.low), term("estimate"), est.sample, est.total)


def exact_line(step: Any, seconds: float | None = None, index: int | None = None) -> Markup:
    """``Test accuracy 93.0% → 92.9% (−0.13 pp); 127 other images changed; 21 ms``.

    ``index``: the edited test image (not counted among the "other" images changed).
    """
    flipped = step.flipped.tolist() if hasattr(step.flipped, "tolist") else list(step.flipped)
    n = len(flipped) - (1 if index is not None and index in flipped else 0)
    tail = f"; {seconds * 1000:.0f} ms" if seconds is not None else ""
    return markup("Test accuracy {:.1%} → {:.1%} ({}; {} {:.2f} {}); {:,} {}{}", 1 - step.error_before,
                  1 - step.error_after, pp(-step.drawdown), term("drawdown"), step.drawdown * 100, term("pp"), n,
                  term("other images changed"), tail)
