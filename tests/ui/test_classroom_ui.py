"""Two students on one server of the teaching page, at the same time, in two Chromium contexts
(``scripts/app.ipynb`` served as ``scripts/app.sh`` serves it: Voila with the repository's
``voila.json``, a preheated kernel pool and idle culling).

Each page has its own kernel: an edit in one page changes neither the other page's model nor its
list of mistakes, and each page's Save writes its own history holding only its own edit. The
first page then uses "Smallest strength that fixes", and the per-class chart (a plotly figure
updated with one message per edit) draws the edit's change. The load benchmark is
``benchmarks/classroom.py``; this checks isolation only.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LR = "0.01"  # the tiny test model needs a larger step than the shipped default


def _pick(page, k: int) -> int:
    """Pick the k-th listed mistake, its true label, and the tiny model's step size; returns its index."""
    page.locator(".wb-thumb-select").nth(k).click()
    header = page.locator(".wb-target-header")
    expect(header).to_contain_text(re.compile(r"#\d+"))
    index = int(re.search(r"#(\d+)", header.inner_text()).group(1))
    page.locator(".wb-advanced:has(.wb-lr) .lm-AccordionPanel-title, "
                 ".wb-advanced:has(.wb-lr) .jupyter-widget-Collapse-header").first.click()
    page.locator(".wb-lr input").fill(LR)
    page.locator(".wb-lr input").press("Enter")
    page.locator(".wb-target-true").click()
    page.wait_for_timeout(300)
    return index


def _edited(page) -> None:
    card = page.locator(".wb-card")
    expect(card).to_contain_text("Fixed ✓", timeout=120_000)
    expect(card).to_contain_text("other images changed", timeout=120_000)
    expect(page.locator(".wb-edit")).to_be_enabled(timeout=120_000)


def _save(page) -> str:
    page.locator(".wb-tabs .lm-TabBar-tab", has_text="History").first.click()
    name = page.locator(".wb-history-name input").input_value().strip()
    page.locator(".wb-save").click()
    expect(page.locator(".wb-history")).to_contain_text("Saved the history", timeout=60_000)
    return name


@pytest.mark.ui
def test_two_students_have_their_own_kernels_and_saves(browser, classroom):
    url, out = classroom
    a, b = (browser.new_context(viewport={"width": 1366, "height": 768}).new_page() for _ in range(2))
    try:
        for p in (a, b):
            p.set_default_timeout(60_000)
            p.goto(url, timeout=180_000, wait_until="commit")  # both open at once
        for p in (a, b):
            expect(p.locator(".wb-thumb-select").first).to_be_visible(timeout=180_000)
        ia, ib = _pick(a, 0), _pick(b, 1)
        assert ia != ib
        b_list, b_header = b.locator(".wb-page-label").inner_text(), b.locator(".wb-header").inner_text()
        a.locator(".wb-edit").click()
        _edited(a)
        # the other student's model and list are untouched
        expect(b.locator(".wb-card")).not_to_contain_text("Fixed")
        assert b.locator(".wb-page-label").inner_text() == b_list and b.locator(".wb-header").inner_text() == b_header
        b.locator(".wb-edit").click()
        _edited(b)
        for p, i in ((a, ia), (b, ib)):  # each history lists one edit: its own
            p.locator(".wb-tabs .lm-TabBar-tab", has_text="History").first.click()
            table = p.locator(".wb-history-table")
            expect(table).to_contain_text(f"#{i}")
            expect(table.locator("tr")).to_have_count(2)  # the header and one edit
            p.locator(".wb-tabs .lm-TabBar-tab", has_text="Mistakes").first.click()
        # the edit's strength, in the browser: the smallest strength that still fixes the image
        expect(a.locator(".wb-strength-slider")).to_be_visible()
        a.locator(".wb-strength-smallest").click()
        expect(a.locator(".wb-card")).to_contain_text(re.compile(r"At strength \d\.\d\d: fixed ✓"), timeout=60_000)
        expect(a.locator(".wb-card")).to_contain_text("other images changed", timeout=60_000)
        at = float(re.search(r"At strength (\d\.\d\d)", a.locator(".wb-card").inner_text()).group(1))
        step = 0.01 if at < 1 else -0.01
        a.locator(".wb-strength-slider .noUi-handle").press("ArrowRight" if step > 0 else "ArrowLeft")  # moves, rests
        expect(a.locator(".wb-card")).to_contain_text(f"At strength {at + step:.2f}", timeout=60_000)
        expect(a.locator(".wb-card")).to_contain_text("other images changed", timeout=60_000)  # the exact figure
        # the per-class chart drew the edit's change (its figure edits arrive as one message each)
        a.locator(".wb-tabs .lm-TabBar-tab", has_text="Details").first.click()
        bars = a.locator(".wb-metrics .trace.bars .point path")
        expect(bars.first).to_be_attached(timeout=30_000)
        a.wait_for_function("() => [...document.querySelectorAll('.wb-metrics .trace.bars .point path')]"
                            ".some(e => e.getBBox().height > 1)", timeout=30_000)
        names = {_save(a): ia, _save(b): ib}
        assert len(names) == 2  # two names: two folders
        for name, i in names.items():
            doc = json.loads((out / name / "history" / "history.json").read_text())
            assert [e["index"] for e in doc["applied"]] == [i]
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        for tag, p in (("a", a), ("b", b)):
            p.screenshot(path=str(ARTIFACTS / f"ui-classroom-{tag}.png"))
            p.context.close()
