"""The comparison's verdict line and its error list: which model paid less for the same fix,
and which model gets each listed image wrong.

Pure functions (markup from the two sides' attempts and error lists); the
:class:`~workbench.widgets.comparison.Comparison` shows what they return.
"""
from __future__ import annotations

from typing import Sequence

from .events import Attempt
from .glossary import term
from .markup import Markup, join, markup

__all__ = ["error_notes", "union_errors", "verdict_html"]


def union_errors(left: list, right: list) -> list:
    """Mistakes of either model, one entry per image (the left model's entry when both err)."""
    out = {e.index: e for e in right}
    out.update({e.index: e for e in left})
    return [out[i] for i in sorted(out)]


def error_notes(left: list, right: list, names: Sequence[str]) -> dict[int, str]:
    """Which model gets each image of :func:`union_errors` wrong (a line under its thumbnail)."""
    wrong = [{e.index for e in left}, {e.index for e in right}]
    return {i: "both wrong" if i in wrong[0] and i in wrong[1] else
            f"only {names[0] if i in wrong[0] else names[1]} wrong" for i in wrong[0] | wrong[1]}


def _pp(x: float) -> str:
    return f"{x:+.2f} pp".replace("-", "−")


def verdict_html(names: Sequence[str], attempts: Sequence[Attempt], totals: Sequence[float] | None,
                 classes: Sequence[str], *, exact: bool) -> Markup:
    """The summary line: which model paid less for one click's edit.

    Args:
        names: the two models' titles. attempts: each side's :class:`Attempt` of the click.
        totals: each side's drawdown of all applied edits so far, in pp (shown when exact).
        exact: the figures are the exact reports (``attempt.record``); else the estimates
            (``attempt.estimate``), or only the outcomes while no estimate is there yet.

    A side that was not fixed (or refused) is named as such, with no figure: its weights did
    not change, so there is no cost to compare. A side that already predicted the target
    needed no edit: it paid 0 pp.
    """
    target = classes[attempts[0].target] if 0 <= attempts[0].target < len(classes) else "?"

    def cost(a: Attempt) -> float | None:
        if a.outcome.status == "noop":
            return 0.0
        if exact and a.record is not None and a.record.step_report is not None:
            return a.record.step_report.drawdown * 100
        if not exact and a.estimate is not None:
            return a.estimate.drawdown * 100
        return None

    def figure(k: int) -> Markup:
        a, c = attempts[k], cost(attempts[k])
        if a.outcome.status == "noop":
            return markup("{} 0 pp (no edit needed: it already predicts {})", names[k], target)
        return markup("{} {}{}", names[k], "" if exact else "≈ ", _pp(c) if c is not None else "…")

    def short(k: int) -> Markup:  # "Fixed ✓" of the card's title (markup already)
        return markup("{}", attempts[k].outcome.title).split(" — ")[0]

    failed = [k for k, a in enumerate(attempts) if a.outcome.status == "failed"]
    costs = [cost(a) for a in attempts]
    if failed:
        text = join((markup("<b>{}: {}</b> (its weights are unchanged)", names[k], short(k)) for k in failed), "; ")
        rest = [k for k in range(2) if k not in failed]
        text += (markup(". No cost to compare for this image; {} of {}", term("drawdown"), figure(rest[0])) if rest
                 else markup(". Neither model was changed, so there is no cost to compare"))
        text += markup(". Allow more steps or a larger step size in Editor settings, or pick another image.")
    elif any(c is None for c in costs):
        text = markup("Both models edited ({}); working out what each paid…",
                      join((markup("{}: {}", names[k], short(k)) for k in range(2)), ", "))
    else:
        c0, c1 = costs
        assert c0 is not None and c1 is not None
        who = (markup("Both models paid the same") if abs(c0 - c1) < 0.005
               else markup("<b>{} paid less</b>", names[0 if c0 < c1 else 1]))
        how = (markup("exact, on every test image") if exact
               else markup("{}; the exact figures follow…", term("estimate")))
        text = markup("{}{} for this fix: {} {}, {} ({}).", "" if exact else "≈ ", who, term("drawdown"), figure(0),
                      figure(1), how)
    if exact and totals is not None:
        text += markup("<br><span style='color:#555'>All edits so far: {} {}, {} {}.</span>", names[0],
                       _pp(totals[0]), names[1], _pp(totals[1]))
    state = "final" if exact else "pending"
    return markup("<div class='wb-verdict-text wb-verdict-{}' style='font-size:1.05em;padding:4px'>{}</div>",
                  state, text)
