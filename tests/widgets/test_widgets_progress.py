"""The workbench while the session scores in the background: the error browser's bar fills to the
total and the list grows to every mistake; with an event loop, an Edit click shows the outcome,
then the estimate, then the exact figures from a background pass.

A fake event loop (a queue run by the test on the main thread) stands in for the kernel's.
"""
from __future__ import annotations

import collections

import pytest
import torch

from tests.support.progressive import NORM, N, held_session, small_cnn, write_folder
from workbench.editing import EditorConfig
from workbench.session import EditSession

pytest.importorskip("ipywidgets")

from workbench.widgets.marshal import MainThread  # noqa: E402
from workbench.widgets.workbench import Workbench  # noqa: E402


class FakeLoop:
    """``add_callback`` from any thread; :meth:`run` on the main thread (as the kernel's loop)."""

    def __init__(self) -> None:
        self.queue: collections.deque = collections.deque()

    def add_callback(self, fn) -> None:
        self.queue.append(fn)

    def run(self) -> None:
        while self.queue:
            self.queue.popleft()()


def test_the_error_browser_shows_a_bar_that_reaches_the_total(tmp_path):
    s, gate = held_session(tmp_path)
    wb = Workbench(s, probe_views=0, page_size=4)
    bar = wb.browser.progress
    scored = s.scoring_progress()[0]
    assert bar.layout.display == "" and bar.value == scored and bar.max == N
    assert len(wb.browser.errors) == len(s.current_errors(partial=True)) > 0
    assert all(e.index < scored for e in wb.browser.errors)
    gate.release.set()
    assert s.wait_scored(30)
    wb.controller.sync()  # no kernel here: the updates queued by the scoring thread run on this thread
    assert bar.value == bar.max == N and bar.layout.display == "none"
    assert wb.browser.errors == s.current_errors() and len(wb.browser.errors) > len([e for e in s.current_errors()
                                                                                      if e.index < scored])
    assert "scoring" not in wb.header.value and "base accuracy" in wb.header.value


def test_an_edit_click_shows_outcome_then_estimate_then_exact_from_a_background_pass(tmp_path):
    root = tmp_path / "data"
    write_folder(root)
    s = EditSession(small_cnn(), str(root), device="cpu", background=False, **NORM)
    wb = Workbench(s, probe_views=0, page_size=4)
    loop = FakeLoop()
    c = wb.controller
    c.main, c.background = MainThread(loop), True
    wrong = torch.nonzero(s.base_preds != s.labels).flatten().tolist()
    c.select(wrong[0])
    c.edit(EditorConfig(method="gd", lr=0.01, layers="2"))
    assert wb.card.parts["estimate"] and not wb.card.parts["exact"]  # outcome and estimate, the exact pass runs
    assert s.scoring.pending is not None and s.scoring.pending.wait(60)
    loop.run()  # the kernel's loop delivers the pass's progress and its figures
    assert wb.card.parts["exact"] and not wb.card.parts["estimate"] and s.history[-1].report is not None
    assert wb.browser.errors == s.current_errors()
