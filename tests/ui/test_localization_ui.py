"""The "Where is it stored?" panel in a real browser (JupyterLab + Debian chromium via Playwright).

Selects a misclassified image, runs the search, and checks that the count, the cost line and
the per-layer bar chart (a plotly FigureWidget updated in place) appear, and that "edit this
group" sets the edit panel's group in the page. Screenshot: ``test-artifacts/ui-localization.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.mark.ui
def test_where_is_it_stored_in_browser(page, lab_url):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab_url}/lab/workspaces/e2e-loc/tree/01_workbench.ipynb?reset")
        page.locator("#jupyterlab-splash").wait_for(state="detached")
        page.locator("#jp-main-statusbar").get_by_text(re.compile(r"Python 3.*\| Idle")).wait_for()
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        out = page.locator(".jp-OutputArea-output")
        thumbs = out.locator(".wb-thumb-select")
        expect(thumbs.first).to_be_visible(timeout=150_000)
        news = page.get_by_role("button", name="No", exact=True)
        if news.count():
            news.first.click()
        run = out.locator(".wb-loc-run")
        expect(run).to_be_disabled()
        index = re.search(r"#(\d+)", out.locator(".wb-thumb-caption").first.inner_text()).group(1)
        thumbs.first.click()
        out.locator(".wb-tabs .lm-TabBar-tab", has_text="Where is it stored?").click()  # the panel's tab
        expect(run).to_have_text(f"Where is #{index} stored?")
        run.click()
        expect(out.locator(".wb-loc-count")).to_have_text(re.compile(r"^\d+(\.\d+)?$"), timeout=60_000)
        expect(out.locator(".wb-loc-cost")).to_contain_text("points")
        page.wait_for_function("""() => {  // the bar chart holds the per-layer counts
            const el = document.querySelector('.wb-localization-panel .js-plotly-plot');
            return el && el.data && el.data[0].y && el.data[0].y.length > 0
                && el.data[0].y.reduce((a, b) => a + b, 0) > 0; }""", timeout=20_000)
        button = out.locator(".wb-loc-edit-group")
        expect(button).to_be_enabled()
        group = re.search(r"edit this group: (\S+)", button.inner_text()).group(1)
        button.click()
        expect(out.locator(".wb-group select")).to_have_value(group)
        expect(out.locator(".wb-message-localization")).not_to_contain_text("did not work")  # its own message line
        assert not errors, f"errors in the page: {errors}"
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        panel = page.locator(".jp-OutputArea-output .wb-localization-panel")
        (panel.first if panel.count() else page).screenshot(path=str(ARTIFACTS / "ui-localization.png"))
