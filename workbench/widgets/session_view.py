"""SessionView: the panels that belong to one EditSession (one model).

A :class:`Workbench` has one, a comparison has two (baseline and editable model) driven by
the same selection and the same editor settings. The view turns the session's records
(``EditRecord``, ``EditReport``, ``GeneralizationReport``) into panel updates; it holds no
model state of its own.
"""
from __future__ import annotations

import html
import time
from typing import Callable

import ipywidgets as W
import torch

from ..probe import generalization
from .common import css
from .metrics_panel import MetricsPanel
from .probe_panel import ProbePanel
from .target_picker import TargetPicker

__all__ = ["SessionView", "current_errors", "errors_from_logits"]


def errors_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> list:
    """Misclassified examples from ``(N, C)`` logits and ``(N,)`` labels (CPU tensors).

    Returns:
        ``list[Misclassified]`` in index order; confidence = softmax of the prediction,
        margin = ``logit(pred) - logit(true)``.
    """
    from ..evaluation import Misclassified

    preds = logits.argmax(1)
    wrong = torch.nonzero(preds != labels).flatten()
    lg = logits[wrong]
    p, t = preds[wrong].view(-1, 1), labels[wrong].view(-1, 1)
    conf = lg.softmax(1).gather(1, p).flatten()
    margin = (lg.gather(1, p) - lg.gather(1, t)).flatten()
    return [Misclassified(int(i), int(a), int(b), float(c), float(m)) for i, a, b, c, m in
            zip(wrong.tolist(), t.flatten().tolist(), p.flatten().tolist(), conf.tolist(), margin.tolist())]


def current_errors(session) -> list:
    """The current model's misclassified examples of the session's split.

    Before any edit these are the evaluator's cached base errors; after edits the evaluator
    scores the current parameters (``Evaluator.logits_for`` reuses the logits it computed
    for the edit's report when the parameters are the same tensors).
    Returns:
        ``list[Misclassified]``.
    """
    ev = session.evaluator
    if not session.history:
        return list(ev.misclassified())
    return errors_from_logits(ev.logits_for(session.params_at()), ev.labels.cpu())


class SessionView:
    """Target picker, metrics, probe and status line of one session.

    Args:
        session: an ``EditSession`` with an evaluator (built from a data set).
        title: shown above the panels (e.g. the model's name).
        on_select: called with a test index when an image is opened from the flipped strip.
        on_target: called with a class index when a target button is clicked.
        probe_views: augmented views per kind for the generalization probe (0 = off).
    """

    def __init__(self, session, *, title: str = "", on_select: Callable[[int], None] | None = None,
                 on_target: Callable[[int], None] | None = None, probe_views: int = 16,
                 metrics_width: int = 640) -> None:
        ev = session.evaluator
        if ev is None:
            raise ValueError("the workbench needs a session with a data set (an Evaluator); build it with "
                             "EditSession.from_checkpoint(folder) or EditSession(model, bundle)")
        self.session, self.title, self.probe_views = session, title, probe_views
        self.classes = tuple(ev.classes)
        self.labels = ev.labels.cpu()
        n = len(self.labels)
        self.images = session.bundle.display_images(session.bundle.split(session.split)[0][:n]) \
            if session.bundle is not None else \
            torch.stack([ev.raw_image(i) for i in range(n)])
        self.index: int | None = None
        self.timings: dict[str, float] = {}
        self.picker = TargetPicker(self.classes, on_target=on_target,
                                   title=f"{title}: class probabilities" if title else "Class probabilities")
        self.base_error = float(ev.base_error)
        self.metrics = MetricsPanel(self.images, self.labels, self.classes, on_select=on_select, title=title,
                                    base_error=self.base_error, width=metrics_width)
        self.probe = ProbePanel(self.classes)
        self.status = css(W.HTML("<i>no edit yet</i>"), "wb-edit-status")
        self.refresh()

    # -- actions (called by the workbench) -------------------------------------------------
    def select(self, index: int) -> None:
        """Show image ``index``: its probabilities under the current weights."""
        self.index = int(index)
        probs = self.session.probabilities(self.index)
        self.picker.show(self.index, self.images[self.index], probs.tolist(), int(self.labels[self.index]))

    def edit(self, index: int, target: int, config):
        """Edit image ``index`` towards ``target``; refresh on success. Returns the EditResult."""
        t0 = time.perf_counter()
        result = self.session.edit_index(index, target, config)
        t1 = time.perf_counter()
        hist = self.session.history
        rec = hist[-1] if hist and hist[-1].result is result else None  # None: not applied (failed, refused, no-op)
        score_s = sum(r.seconds for r in (rec.report, rec.step_report) if r is not None) if rec else 0.0
        self.timings = {"edit": result.seconds, "drawdown": score_s,
                        "session_other": max(0.0, t1 - t0 - result.seconds - score_s)}
        self.show_result(result, rec)
        if rec is not None:
            t2 = time.perf_counter()
            if self.probe_views:
                rep = generalization(self.session.model, self.session.image(index), target, result.before, None,
                                     n_views=self.probe_views)
                self.probe.show(rep, index, target)
            self.timings["probe"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            self.refresh()
            if self.index is not None:
                self.select(self.index)
            self.timings["redraw"] = time.perf_counter() - t3
        return result

    def after_history_change(self, what: str) -> None:
        """Refresh after undo / redo / reset / load (the probe refers to an edit: clear it)."""
        self.probe.clear(f"generalization probe: cleared by {what}")
        n = len(self.session.history)
        self.status.value = f"{html.escape(what)}: {n} edit(s) applied"
        self.refresh()
        if self.index is not None:
            self.select(self.index)

    # -- view ------------------------------------------------------------------------------
    def show_result(self, result, rec=None) -> None:
        """Outcome of an edit in the status line (CSS class ``wb-edit-status``); ``rec`` is the
        session's record when the edit was applied. Its accuracy cost sits next to "success",
        in a warning colour above ``COST_WARNING_PP`` (``rec.cost_warning``)."""
        ms = result.seconds * 1000
        if rec is not None:
            cost = ""
            if rec.cost_pp is not None:
                before = 100 * (1 - rec.step_report.error_before)
                color = "#e65100" if rec.cost_warning else "#1b5e20"
                cost = (f", <span class='wb-cost{' wb-cost-warning' if rec.cost_warning else ''}' "
                        f"style='color:{color}'>cost: test accuracy {before:.1f}% &rarr; {before - rec.cost_pp:.1f}% "
                        f"({-rec.cost_pp:+.2f} pp)</span>")
            self.status.value = (f"<span class='wb-success' style='color:#1b5e20'><b>success</b></span>{cost} in "
                                 f"<span class='wb-steps'>{result.steps}</span> step(s), {ms:.0f} ms "
                                 f"({len(self.session.history)} edit(s) applied)")
        elif result.success and result.steps == 0 and not result.wrecked:
            self.status.value = (f"<span class='wb-noop'><b>nothing to change</b></span>: "
                                 f"{html.escape(result.message)} (no edit recorded)")
        elif result.wrecked:
            self.status.value = (f"<span class='wb-failure wb-wrecked' style='color:#b71c1c'><b>refused</b></span>: "
                                 f"{html.escape(result.message)}")
        else:
            self.status.value = (f"<span class='wb-failure' style='color:#b71c1c'><b>failed</b></span> after "
                                 f"<span class='wb-steps'>{result.steps}</span> step(s), {ms:.0f} ms: "
                                 f"{html.escape(result.message)} (weights unchanged)")

    def refresh(self) -> None:
        """Metrics from the session's history (plots updated in place)."""
        hist = self.session.history
        last = hist[-1] if hist else None
        timeline = [r.report.error_after for r in hist if r.report is not None]
        self.metrics.show(self.base_error, timeline, last.step_report if last else None,
                          last.report if last else None)

    def errors(self) -> tuple[list, torch.Tensor]:
        """(misclassified list, ``(C, C)`` confusion) of the current weights."""
        ev = self.session.evaluator
        rep = self.session.current_report()
        return current_errors(self.session), ev.confusion(rep.preds_after if rep is not None else None)
