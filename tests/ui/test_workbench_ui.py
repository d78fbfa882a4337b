"""The workbench in a real browser: JupyterLab + Debian chromium via Playwright.

Runs the notebook, selects a misclassified image, picks its true label, presses Edit and
checks the success text and the drawdown numbers in the DOM (they appear, change with a
second edit and come back exactly after Undo). A screenshot is saved to
``test-artifacts/ui-workbench.png`` (also on failure). Run alone with ``pytest -m ui``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PP = re.compile(r"[+-]\d+\.\d\d pp")


@pytest.mark.ui
def test_workbench_edit_in_browser(page, lab_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    try:
        _run(page, lab_url, errors)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        wb = page.locator(".jp-OutputArea-output .wb-workbench")
        if wb.count():
            wb.first.screenshot(path=str(ARTIFACTS / "ui-workbench.png"))
        else:
            page.screenshot(path=str(ARTIFACTS / "ui-workbench.png"))


def _run(page, lab_url: str, errors: list[str]) -> None:
    page.goto(f"{lab_url}/lab/workspaces/e2e/tree/01_workbench.ipynb?reset")
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"Python 3.*\| Idle")).wait_for()
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    out = page.locator(".jp-OutputArea-output")
    thumbs = out.locator(".wb-thumb-select")
    expect(thumbs.first).to_be_visible(timeout=150_000)
    news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news prompt covers a corner
    if news.count():
        news.first.click()
    expect(out.locator(".wb-drawdown")).to_contain_text("no edit")
    lr = out.locator(".wb-lr input")
    lr.fill("0.01")  # the tiny test model needs a larger step than the shipped default
    lr.press("Enter")

    status, drawdown = out.locator(".wb-edit-status"), out.locator(".wb-drawdown-total")

    def edit(k: int, applied: int) -> str:
        thumb = thumbs.nth(k)
        index = re.search(r"#(\d+)", thumb.inner_text()).group(1)
        thumb.click()
        header = out.locator(".wb-target-header")
        expect(header).to_contain_text(re.compile(rf"#{index} true: .+, predicted"))  # the picker shows it
        name = re.search(r"true: (.+?), predicted", header.inner_text()).group(1).strip()
        true = out.locator(".wb-target-true")
        expect(true).to_have_text(name)
        true.click()
        expect(out.locator(".wb-target-name")).to_have_text(name)
        out.locator(".wb-edit").click()
        expect(status).to_contain_text("success", timeout=60_000)
        expect(status).to_contain_text(f"{applied} edit(s) applied")
        expect(drawdown).to_have_text(PP)
        expect(out.locator(".wb-edit")).to_be_enabled()  # the busy state is released in the browser too
        return drawdown.inner_text()

    first = edit(0, 1)
    expect(out.locator(".wb-drawdown-step")).to_have_text(PP)
    expect(out.locator(".wb-message")).not_to_contain_text("failed")
    expect(out.locator(".wb-probe-after")).to_have_text(re.compile(r"\d+%"))
    edit(1, 2)
    out.locator(".wb-undo").click()
    expect(status).to_contain_text("undo: 1 edit(s) applied")
    expect(drawdown).to_have_text(first)  # back to the first edit's session drawdown, exactly
    expect(out.locator(".wb-redo")).to_be_enabled()
    # plotly FigureWidgets updated in place: timeline markers (base + 1 edit) and the picker's bars
    expect(out.locator(".wb-metrics .scatterlayer .point")).to_have_count(2)
    page.wait_for_function("""() => {  // the probability bars hold the selected image's softmax
        const el = document.querySelector('.wb-target-picker .js-plotly-plot');
        return el && el.data && Math.abs(el.data[0].y.reduce((a, b) => a + b, 0) - 1) < 1e-3; }""", timeout=10_000)
    assert not errors, f"errors in the page: {errors}"
