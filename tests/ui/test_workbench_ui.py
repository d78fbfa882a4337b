"""The workbench in a real browser at 1366x768: JupyterLab and the Voila page (Debian chromium).

JupyterLab: run the notebook, pick a mistake; the Edit button and the outcome card are then
wholly in the viewport (one screen). Edit: the card says "Fixed ✓" and gives the exact
figures; Undo brings back the base model's accuracy and mistakes; presentation mode then
shows a larger image and fonts and hides the editor settings (as the browser computes them);
after Redo, "Download report" saves the HTML file.
Voila: the page has no code, loads the workbench, an edit works and Undo works.
Screenshots go to ``test-artifacts/`` (also on failure). Run alone with ``pytest -m ui``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LR = "0.01"  # the tiny test model needs a larger step than the shipped default


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def _edit_and_undo(page, root) -> None:
    """Pick the first mistake, check the one-screen layout, edit it, undo."""
    thumbs = root.locator(".wb-thumb-select")
    expect(thumbs.first).to_be_visible(timeout=180_000)
    root.locator(".wb-root").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    errors_before = root.locator(".wb-page-label").inner_text()  # "page 1 / 27  (270 of 270 errors)"
    thumbs.first.click()
    header = root.locator(".wb-target-header")
    expect(header).to_contain_text(re.compile(r"#\d+"))
    # one screen: after the pick, the image, the Edit button and the outcome card are wholly in the viewport
    for what in (".wb-edit", ".wb-undo", ".wb-card", ".wb-picked-image", ".wb-target-true"):
        expect(root.locator(what)).to_be_in_viewport(ratio=1)
    # plotly draws: the chart whose model carries plotly's bundle and one that waits for it
    expect(root.locator(".wb-probabilities .trace.bars path")).to_have_count(10)
    expect(root.locator(".wb-confusion .heatmaplayer image")).to_have_count(1)
    # the tiny model needs a larger step: open the editor settings
    root.locator(".wb-advanced:has(.wb-lr) .lm-AccordionPanel-title, .wb-advanced:has(.wb-lr) .jupyter-widget-Collapse-header").first.click()
    lr = root.locator(".wb-lr input")
    lr.fill(LR)
    lr.press("Enter")
    name = re.search(r"true: (.+?), predicted", header.inner_text()).group(1).strip()
    root.locator(".wb-target-true").click()
    expect(root.locator(".wb-target-name")).to_have_text(name)
    root.locator(".wb-edit").click()
    card = root.locator(".wb-card")
    expect(card).to_contain_text("Fixed ✓", timeout=60_000)
    expect(card).to_contain_text(re.compile(r"Test accuracy \d+\.\d% → \d+\.\d% \([−+]\d+\.\d\d pp"), timeout=60_000)
    expect(card).to_contain_text("other images changed")
    expect(root.locator(".wb-edit")).to_be_enabled(timeout=60_000)  # after the probe, the last step
    expect(root.locator(".wb-undo")).to_be_enabled(timeout=60_000)
    root.locator(".wb-undo").click()
    expect(card).to_contain_text("Undone")
    base = re.search(r"base accuracy (\d+\.\d%)", root.locator(".wb-header").inner_text()).group(1)
    expect(card).to_contain_text(f"Test accuracy {base} (base model)")  # the base weights' numbers again
    expect(card).to_contain_text("0 edit(s) applied")
    expect(root.locator(".wb-page-label")).to_have_text(errors_before)  # the base model's mistakes again
    expect(root.locator(".wb-redo")).to_be_enabled()


@pytest.mark.ui
def test_workbench_one_screen_in_jupyterlab(page, lab_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab_url}/lab/workspaces/e2e/tree/01_workbench.ipynb?reset")
        page.locator("#jupyterlab-splash").wait_for(state="detached")
        page.locator("#jp-main-statusbar").get_by_text(re.compile(r"Python 3.*\| Idle")).wait_for()
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news prompt
        out = page.locator(".jp-OutputArea-output")
        expect(out.locator(".wb-thumb-select").first).to_be_visible(timeout=180_000)
        if news.count():
            news.first.click()
        _edit_and_undo(page, out)
        _presentation(out)
        _redo_and_download_report(page, out)
        assert not errors, f"errors in the page: {errors}"
    finally:
        _shot(page, "ui-workbench-lab.png")


def _font_px(locator) -> float:
    return float(locator.evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))


def _presentation(root) -> None:
    """Presentation mode as the browser draws it: a larger image and fonts, no editor settings, the legend."""
    title, image = root.locator(".wb-card .wb-card-title"), root.locator(".wb-picked-image")
    before = (_font_px(title), _font_px(root.locator(".wb-root")), image.bounding_box()["width"])
    expect(root.locator(".wb-legend")).to_be_hidden()
    expect(root.locator(".wb-edit-panel .wb-advanced")).to_be_visible()
    root.locator(".wb-present-toggle").click()
    expect(root.locator(".wb-root.wb-present")).to_have_count(1)
    expect(root.locator(".wb-legend")).to_be_visible()
    expect(root.locator(".wb-legend")).to_contain_text("drawdown")
    expect(root.locator(".wb-edit-panel .wb-advanced")).to_be_hidden()
    expect(root.locator(".wb-attr-controls")).to_be_hidden()
    expect(image).to_have_css("width", re.compile(r"(1[6-9]\d|[2-9]\d\d)(\.\d+)?px"))
    after = (_font_px(title), _font_px(root.locator(".wb-root")), image.bounding_box()["width"])
    assert after[0] > before[0] and after[1] > before[1] and after[2] >= 160 > before[2], (before, after)
    root.locator(".wb-present-toggle").click()  # back to the full workbench: History is no lesson tab
    expect(root.locator(".wb-root.wb-present")).to_have_count(0)


def _redo_and_download_report(page, root) -> None:
    """Redo, then "Download report" in the History tab: the browser saves one self-contained HTML file."""
    root.locator(".wb-redo").click()
    expect(root.locator(".wb-card")).to_contain_text("Redone")
    root.locator(".wb-tabs .lm-TabBar-tab", has_text="History").click()
    root.locator(".wb-report").click()
    link = root.locator(".wb-download a")
    expect(link).to_be_visible()
    with page.expect_download() as d:
        link.click()
    text = Path(d.value.path()).read_text(encoding="utf-8")
    assert d.value.suggested_filename.endswith(".html") and text.count("<section class='edit'>") == 1
    assert "data:image/png;base64," in text and not re.search(r"(src|href)=['\"]?(https?:)?//", text)


@pytest.mark.ui
def test_voila_page_has_no_code_and_edits(page, voila_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    try:
        page.goto(voila_url, timeout=180_000)
        body = page.locator("body")
        expect(body.locator(".wb-thumb-select").first).to_be_visible(timeout=180_000)
        assert "show(CHECKPOINT" not in page.content() and "CHECKPOINT =" not in page.content()  # no code
        _edit_and_undo(page, body)
        assert not [e for e in errors if "font" not in e.lower()], f"errors in the page: {errors}"
    finally:
        _shot(page, "ui-workbench-voila.png")
