"""Time one Edit click in the Comparison (baseline vs editable), beside the single Workbench.

Kernel side, no browser. Opens ``Comparison.from_checkpoints`` on the shipped models
(``assets/models/fashion-baseline`` and ``fashion-editable``) and, for each of N clicks on
different mistakes of the union list (target = true label; Undo in between, so each edit
starts from the base weights), presses the Edit button and records the time from the click
to the moment each widget value is set (which is when ipywidgets sends it to the browser):

* outcome <side>:  that side's outcome card shows fixed / not fixed, the new prediction;
* estimate <side>: that side's card shows the drawdown estimate with its 95% interval;
* exact <side>:    that side's card shows the exact drawdown on the whole split;
* verdict:         the summary line names which model paid less (exact figures);
* all panels:      the click handler returned (error browser, per-class plots, attribution);
* undo:            the Undo click that follows (both sides back to the base weights).

In the same run it times the same clicks in a single ``Workbench`` on the editable model
(outcome, estimate, exact, all panels), so the ratio comparison / single is visible.
One untimed warm-up click each.

    OMP_NUM_THREADS=1 python benchmarks/compare_latency.py                 # 10,000 test images
    OMP_NUM_THREADS=1 python benchmarks/compare_latency.py --clicks 5 --limit 2000
    OMP_NUM_THREADS=1 python benchmarks/compare_latency.py --profile 1     # cProfile of one click

The last line is
``compare click: outcome <s>s, verdict <s>s, all panels <s>s (median of <n>)``.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import statistics
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

OUTCOME = re.compile(r"Fixed|Not fixed|Nothing to fix|Refused")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default=None, help="baseline model folder (default: assets/models/fashion-baseline)")
    p.add_argument("--editable", default=None, help="editable model folder (default: assets/models/fashion-editable)")
    p.add_argument("--clicks", type=int, default=5, help="timed clicks (different mistakes of the union list)")
    p.add_argument("--limit", type=int, default=None, help="first LIMIT test images (default: all)")
    p.add_argument("--device", default=None, help="default: CUDA when present, else CPU")
    p.add_argument("--no-single", action="store_true", help="skip the single-Workbench clicks")
    p.add_argument("--profile", type=int, default=0, help="print a cProfile of this many extra comparison clicks")
    return p


class Clock:
    """Seconds from ``start()`` to the first time each named event is noted."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.seen: dict[str, float] = {}

    def start(self) -> None:
        self.t0, self.seen = time.perf_counter(), {}

    def note(self, name: str) -> None:
        if self.t0 is not None and name not in self.seen:
            self.seen[name] = time.perf_counter() - self.t0

    def watch_card(self, card, side: str) -> None:
        """Note ``<event> <side>`` when the card's HTML first shows each part (as the browser benchmark does)."""
        def changed(_change) -> None:
            if OUTCOME.search(card.parts.get("title", "")):
                self.note(f"outcome {side}".strip())
            for part in ("estimate", "exact"):
                if card.parts.get(part):
                    self.note(f"{part} {side}".strip())
        card.widget.observe(changed, names="value")

    def watch_verdict(self, verdict_widget) -> None:
        """Note ``verdict`` when the summary line first holds the exact figures (or says why there are none)."""
        verdict_widget.observe(lambda c: self.note("verdict") if "wb-verdict-final" in c["new"] else None,
                               names="value")


def _click(view, clock: Clock, index: int, label: int) -> float:
    """Select ``index``, target ``label`` (the view's controller), press Edit; seconds until the handler returned."""
    actions = view.lockstep if hasattr(view, "lockstep") else view.controller
    actions.select(index)
    actions.set_target(label)
    clock.start()
    view.panel.buttons["edit"].click()
    total = time.perf_counter() - clock.t0
    clock.t0 = None
    if view.messages.level == "error":
        raise RuntimeError(view.messages.text)
    return total


def _undo(view) -> float | None:
    """Press Undo (when enabled); seconds the click took."""
    if view.panel.buttons["undo"].disabled:
        return None
    t0 = time.perf_counter()
    view.panel.buttons["undo"].click()
    if view.messages.level == "error":
        raise RuntimeError(view.messages.text)
    return time.perf_counter() - t0


def _fmt(v: float | None) -> str:
    return f"{v:>9.3f}s" if v is not None else f"{'-':>10}"


def main(args: argparse.Namespace) -> None:
    import torch

    from workbench.paths import shipped_model
    from workbench.session.opening import open_session
    from workbench.widgets import Comparison, Workbench

    t0 = time.perf_counter()
    cmp = Comparison.from_checkpoints(args.baseline, args.editable, limit=args.limit, device=args.device)
    names = cmp.names
    left, right = (s.session for s in cmp.sides)
    print(f"comparison {names[0]} vs {names[1]}: {len(left.labels)} test images, base error "
          f"{left.base_error:.2%} vs {right.base_error:.2%}, device {left.device}, torch threads "
          f"{torch.get_num_threads()}, cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; "
          f"opened in {time.perf_counter() - t0:.1f} s")
    cclock = Clock()
    for side, short in zip(cmp.sides, ("L", "R")):
        cclock.watch_card(side.card, short)
    cclock.watch_verdict(cmp.verdict)
    union = [e.index for e in cmp.browser.errors]
    wrong = [{e.index for e in s.current_errors()} for s in (left, right)]
    both = [i for i in union if i in wrong[0] and i in wrong[1]]
    step = max(1, len(both) // (args.clicks + 2))
    candidates = both[::step]  # the same images whatever --profile is
    profiled = [i for i in both[step // 2::step] if i not in candidates]
    print(f"union of both models' mistakes: {len(union)} images ({len(union) - len(wrong[0])} only the editable "
          f"model gets wrong, {len(union) - len(wrong[1])} only the baseline); clicking every {step}th of the "
          f"{len(both)} both get wrong (so that both sides edit and the single click is no no-op)")

    wb = wclock = None
    if not args.no_single:
        t1 = time.perf_counter()
        session, _ = open_session(args.editable if args.editable is not None else shipped_model("fashion-editable"),
                                  limit=args.limit, device=args.device)
        wb = Workbench(session, probe_views=16)  # no progress line to display (show() would print it)
        wb.panel.method.value, wb.panel.group.value = cmp.panel.method.value, cmp.panel.group.value
        wb.panel.lr.value = cmp.panel.lr.value  # the same editor as the comparison's
        wclock = Clock()
        wclock.watch_card(wb.card, "")
        print(f"single Workbench on {names[1]} opened in {time.perf_counter() - t1:.1f} s (probe: 16 views)")

    cols = ("outcome L", "outcome R", "estimate L", "estimate R", "exact L", "exact R", "verdict", "all", "undo")
    scols = ("outcome", "estimate", "exact", "all", "undo")
    print(f"{'image':>6} | " + " ".join(f"{c:>10}" for c in cols) + (" | single: " + " ".join(f"{c:>10}" for c in scols)
                                                                       if wb is not None else ""))
    rows, srows = [], []
    for k, index in enumerate(candidates[:args.clicks + 1]):
        label = int(left.labels[index])
        total = _click(cmp, cclock, index, label)
        row = {**cclock.seen, "all": total}
        undo = _undo(cmp)
        if undo is not None:
            row["undo"] = undo
        line = f"{index:>6} | " + " ".join(_fmt(row.get(c)) for c in cols)
        if wb is not None:
            st = _click(wb, wclock, index, label)
            srow = {**wclock.seen, "all": st}
            undo = _undo(wb)
            if undo is not None:
                srow["undo"] = undo
            line += " | single: " + " ".join(_fmt(srow.get(c)) for c in scols)
        print(line + ("  (warm-up)" if k == 0 else ""))
        if k > 0:
            rows.append(row)
            if wb is not None:
                srows.append(srow)
    if not rows:
        sys.exit("no click was timed")

    def med(rs: list[dict[str, float]], c: str) -> float | None:
        vals = [r[c] for r in rs if c in r]
        return statistics.median(vals) if vals else None

    m = {c: med(rows, c) for c in cols}
    print(f"{'median':>6} | " + " ".join(_fmt(m[c]) for c in cols)
          + (" | single: " + " ".join(_fmt(med(srows, c)) for c in scols) if srows else ""))
    if srows:
        s_all = med(srows, "all")
        s_out = med(srows, "outcome")
        out = max(v for v in (m["outcome L"], m["outcome R"]) if v is not None)
        print(f"ratio comparison / single: outcome (both cards) {out / s_out:.2f}x, all panels "
              f"{m['all'] / s_all:.2f}x (goal: <= 2x)")
    print("seconds from the click (cumulative); L = " + names[0] + ", R = " + names[1]
          + f"; cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    if args.profile:
        prof = cProfile.Profile()
        for index in profiled[:args.profile]:
            cmp.lockstep.select(index)
            cmp.lockstep.set_target(int(left.labels[index]))
            prof.enable()
            cmp.panel.buttons["edit"].click()
            prof.disable()
            _undo(cmp)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    outcome = max(v for v in (m["outcome L"], m["outcome R"]) if v is not None)
    verdict = m["verdict"] if m["verdict"] is not None else float("nan")
    print(f"compare click: outcome {outcome:.2f}s, verdict {verdict:.2f}s, all panels {m['all']:.2f}s "
          f"(median of {len(rows)})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
