"""The teaching page as ``scripts/app.sh`` serves it (Voila, ``scripts/app.ipynb``) in Debian's chromium.

At 1024×768 and 1366×768, in normal and presentation mode: after a pick the picked image, the
label buttons, Edit / Undo and the whole outcome card are in the viewport without scrolling;
no button, toggle, tab title or label is cut (``scrollWidth <= clientWidth``); after an edit
the error list keeps its place and marks the fixed image; presentation mode shows text of at
least 18 px, chart labels of at least 16 px and only the lesson's panels. Lesson mode steps
through to the end (at 1024×768, presentation mode). Screenshots: ``test-artifacts/ui-app-*.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LR = "0.01"  # the tiny test model needs a larger step than the shipped default
SIZES = [(1024, 768), (1366, 768)]
IN_VIEW = (".wb-picked-image", ".wb-target-buttons", ".wb-edit", ".wb-undo", ".wb-card")
# every visible button, toggle, tab title, label and slider value whose text is wider than its box
CUT = """() => [...document.querySelectorAll('.wb-root button, .wb-root .lm-TabBar-tabLabel, .wb-root .widget-label,'
  + ' .wb-root .widget-readout')]
  .filter(e => e.getClientRects().length && e.scrollWidth > e.clientWidth)
  .map(e => `${e.className}: '${e.textContent.trim()}' ${e.scrollWidth} > ${e.clientWidth}`)"""
# the smallest font of the visible text (HTML, buttons, labels, tab titles, slider values) under the page's root
SMALLEST = """() => { let m = [1e9, '']; for (const e of document.querySelectorAll(
  '.wb-root .widget-html-content *, .wb-root .widget-html-content, .wb-root button, .wb-root .widget-label,'
  + ' .wb-root .lm-TabBar-tabLabel, .wb-root .widget-readout')) {
  if (!e.getClientRects().length || !e.textContent.trim() || e.closest('.js-plotly-plot, .wb-advanced')) continue;
  const f = parseFloat(getComputedStyle(e).fontSize); if (f < m[0]) m = [f, e.textContent.trim().slice(0, 40)]; }
  return m; }"""


def _open(page, url: str, size: tuple[int, int]):
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.set_default_timeout(60_000)
    page.goto(url, timeout=180_000)
    body = page.locator("body")
    expect(body.locator(".wb-thumb").first).to_be_visible(timeout=180_000)
    return body


def _set_lr(body) -> None:
    """The tiny model needs a larger step: the editor settings (normal mode only)."""
    title = body.locator(".wb-edit-panel .wb-advanced").locator(".lm-AccordionPanel-title, "
                                                                ".jupyter-widget-Collapse-header").first
    title.click()
    lr = body.locator(".wb-lr input")
    lr.fill(LR)
    lr.press("Enter")
    title.click()


def _all_in_view(body, where: str) -> None:
    body.page.evaluate("() => window.scrollTo(0, 0)")
    for sel in IN_VIEW:
        expect(body.locator(sel), f"{sel} ({where})").to_be_in_viewport(ratio=1)


def _nothing_cut(body, where: str) -> None:
    cut = body.page.evaluate(CUT)
    assert not cut, f"cut text ({where}): {cut}"


def _thumb_numbers(body) -> list[str]:
    return [re.search(r"#(\d+)", t).group(1) for t in body.locator(".wb-thumb-caption").all_inner_texts()
            if re.search(r"#(\d+)", t)]


@pytest.mark.ui
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_app_page_in_view_uncut_steady_and_presentation(page, app_url, size):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    name = f"ui-app-{size[0]}x{size[1]}"
    try:
        body = _open(page, app_url, size)
        header = body.locator(".wb-header")
        expect(header).to_contain_text(re.compile(r"model \S+ · data \S+, 500 test images"))
        assert "app_from_env" not in page.content() and body.locator(".jp-MarkdownOutput").count() == 0  # no prose
        expect(body.locator(".wb-probabilities")).to_contain_text("Pick an image")  # words, not empty axes
        _set_lr(body)
        body.locator(".lm-TabBar-tab", has_text="Where is it stored?").click()
        expect(body.locator(".wb-loc-summary")).to_contain_text("Pick an image")
        assert body.locator(".wb-localization-panel .js-plotly-plot").count() == 0
        body.locator(".lm-TabBar-tab", has_text="Mistakes").click()
        page_label = body.locator(".wb-page-label")
        body.locator(".wb-next").click()  # page 2 of the list
        expect(page_label).to_contain_text("page 2 /")
        before = _thumb_numbers(body)
        thumb = body.locator(".wb-thumb", has_text=f"#{before[1]}")
        box = thumb.bounding_box()
        thumb.click(position={"x": box["width"] / 2, "y": box["height"] - 12})  # a click on the caption opens it
        expect(body.locator(".wb-target-header")).to_contain_text(f"#{before[1]}")
        _all_in_view(body, "normal, picked")
        _nothing_cut(body, "normal")
        page.screenshot(path=str(ARTIFACTS / f"{name}-picked.png"))
        body.locator(".wb-target-true").click()
        body.locator(".wb-edit").click()
        card = body.locator(".wb-card")
        expect(card).to_contain_text("Fixed ✓", timeout=60_000)
        expect(card).to_contain_text("other images changed", timeout=60_000)
        expect(body.locator(".wb-edit")).to_be_enabled(timeout=60_000)
        # the list keeps its place: same page, same images in the same order; the fixed one marked
        expect(page_label).to_contain_text("page 2 /")
        expect(page_label).to_contain_text("fixed ✓")
        assert _thumb_numbers(body) == before
        expect(body.locator(".wb-thumb").nth(1)).to_contain_text("fixed ✓")
        expect(body.locator(".wb-thumb").nth(1)).to_have_class(re.compile(r"\bwb-thumb-fixed\b"))
        _all_in_view(body, "normal, after the edit")
        # presentation mode
        body.locator(".wb-present-toggle").click()
        expect(body.locator(".wb-root.wb-present")).to_have_count(1)
        expect(body.locator(".lm-TabBar-tab")).to_have_text(["Mistakes", "What the edit changed",
                                                             "Where is it stored?"])
        for hidden in (".wb-attribution", ".wb-confusion", ".wb-advanced", ".wb-probabilities", ".wb-upload-panel"):
            expect(body.locator(hidden).first).to_be_hidden()
        _all_in_view(body, "presentation")
        _nothing_cut(body, "presentation")
        smallest = page.evaluate(SMALLEST)
        assert smallest[0] >= 18, f"text smaller than 18 px in presentation mode: {smallest}"
        page.screenshot(path=str(ARTIFACTS / f"{name}-presentation.png"))
        body.locator(".lm-TabBar-tab", has_text="What the edit changed").click()
        ticks = body.locator(".wb-per-class .xtick text")
        expect(ticks.first).to_be_visible()
        sizes = [float(s) for s in ticks.evaluate_all("els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")]
        assert len(sizes) == 10 and min(sizes) >= 16, sizes  # every class name, readable from the back
        _nothing_cut(body, "presentation, what the edit changed")
        expect(body.locator(".wb-flipped-label")).to_contain_text("other images changed")
        body.locator(".wb-per-class").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{name}-presentation-changed.png"))
        assert not [e for e in errors if "font" not in e.lower()], f"errors in the page: {errors}"
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-last.png"))


@pytest.mark.ui
def test_lesson_mode_steps_to_the_end(page, app_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        body = _open(page, app_url, (1024, 768))
        _set_lr(body)
        body.locator(".wb-present-toggle").click()
        body.locator(".wb-lesson-toggle").click()
        strip = body.locator(".wb-lesson")
        expect(strip).to_be_visible()
        expect(body.locator(".wb-lesson-back")).to_be_disabled()
        nxt, result = body.locator(".wb-lesson-next"), body.locator(".wb-lesson-result")
        for k in range(1, 6):
            nxt.click()
            expect(body.locator(".wb-lesson-step")).to_contain_text(f"step {k} of 5", timeout=120_000)
            expect(result).not_to_contain_text("working", timeout=120_000)
            expect(body.locator(".wb-message-lesson")).to_have_text("")
            if k == 1:
                expect(result).to_contain_text(re.compile(r"#\d+ is fixed"))
                _all_in_view(body, "lesson step 1")
            if k == 4:
                expect(body.locator(".wb-comparison")).to_be_visible()
                expect(result).to_contain_text("The same fix of #")
                page.screenshot(path=str(ARTIFACTS / "ui-app-lesson-compare.png"))
            _nothing_cut(body, f"lesson step {k}")
        expect(body.locator(".wb-comparison")).to_be_hidden()
        expect(body.locator(".wb-loc-count")).to_be_visible()
        expect(result).to_contain_text("critical neuron")
        expect(result).to_contain_text("End of the lesson")
        expect(nxt).to_be_disabled()
        expect(body.locator(".wb-lesson-back")).to_be_enabled()
        assert not [e for e in errors if "font" not in e.lower()], f"errors in the page: {errors}"
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-app-lesson.png"))
