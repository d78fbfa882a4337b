"""Names from data never run as HTML in a real browser (JupyterLab and Voila, Debian chromium).

JupyterLab: a workbench whose ten class names and model name are HTML that runs script when
rendered (``<img src=x onerror=alert(k)>``, ``<script>alert(k)</script>``). An edit (the card,
the error list, the probability chart, the history) and a refused history name (a message)
show them as text; the test fails if any dialog opens. Voila (as scripts/app.sh serves it):
an error message carries no traceback. Screenshot: ``test-artifacts/ui-html-injection.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NOTEBOOK = "hostile_names.ipynb"
HOSTILE_NAME = "<img src=x onerror=alert('model')>"
HISTORY_NAME = "<script>alert('history')</script>"
LIMIT = 500
CLASS = re.compile(r"<img src=x onerror=alert\(\d\)>|<script>alert\(\d\)</script>")


def _write_notebook(root: Path, checkpoint: Path, limit: int) -> None:
    import nbformat

    code = f"""from workbench.data import as_bundle, load_fashion_mnist
from workbench.widgets import show

HOSTILE = [f"<img src=x onerror=alert({{k}})>" if k % 2 == 0 else f"<script>alert({{k}})</script>" for k in range(10)]
bundle = as_bundle(load_fashion_mnist().subset(train=64, val=64, test={limit}), classes=HOSTILE)
wb = show({str(checkpoint)!r}, limit={limit}, bundle=bundle, probe_views=0, name={HOSTILE_NAME!r})"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / NOTEBOOK)


@pytest.mark.ui
def test_hostile_names_never_run_in_jupyterlab(page, lab_url, ui_root, tiny_model_dir):
    _write_notebook(ui_root, Path(tiny_model_dir), LIMIT)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab_url}/lab/workspaces/e2e-html/tree/{NOTEBOOK}?reset")
        page.locator("#jupyterlab-splash").wait_for(state="detached")
        page.locator("#jp-main-statusbar").get_by_text(re.compile(r"Python 3.*\| Idle")).wait_for()
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        out = page.locator(".jp-OutputArea-output")
        thumbs = out.locator(".wb-thumb-select")
        expect(thumbs.first).to_be_visible(timeout=180_000)
        news = page.get_by_role("button", name="No", exact=True)  # JupyterLab's news prompt
        if news.count():
            news.first.click()
        expect(out.locator(".wb-header")).to_contain_text(HOSTILE_NAME)
        expect(out.locator(".wb-thumb-caption").first).to_contain_text(CLASS)
        thumbs.first.click()
        expect(out.locator(".wb-target-header")).to_contain_text(CLASS)
        out.locator(".wb-advanced:has(.wb-lr) .lm-AccordionPanel-title, .wb-advanced:has(.wb-lr) .jupyter-widget-Collapse-header").first.click()
        lr = out.locator(".wb-lr input")
        lr.fill("0.01")
        lr.press("Enter")
        out.locator(".wb-target-true").click()
        out.locator(".wb-edit").click()
        card = out.locator(".wb-card")
        fixed = re.compile(r"Fixed ✓ — now predicts (" + CLASS.pattern + r")\.")
        expect(card).to_contain_text(fixed, timeout=60_000)
        expect(card).to_contain_text("other images changed", timeout=60_000)
        ticks = out.locator(".wb-probabilities .xtick text")
        expect(ticks.first).to_have_text(CLASS)  # plotly draws the name as text
        out.locator(".wb-tabs .lm-TabBar-tab", has_text="History").click()
        expect(out.locator(".wb-history-table")).to_contain_text(CLASS)
        name = out.locator(".wb-history-name input")
        name.fill(HISTORY_NAME)
        name.press("Enter")
        out.locator(".wb-load").click()
        expect(out.locator(".wb-message-history")).to_contain_text("cannot be used as a name")
        expect(out.locator(".wb-message-history")).to_contain_text(HISTORY_NAME)
        expect(out.locator(".wb-message-history details")).to_have_count(1)  # JupyterLab keeps the traceback
        assert page.locator(".wb-root script, .wb-root [onerror]").count() == 0
    finally:
        page.wait_for_timeout(1500)  # an <img src=x> has failed to load by now, and its onerror run
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui-html-injection.png"))
        assert not dialogs, f"a dialog opened: {dialogs}"  # checked first, whatever else failed


@pytest.mark.ui
def test_an_error_in_the_voila_page_shows_no_traceback(page, voila_url):
    page.set_default_timeout(60_000)
    page.goto(voila_url, timeout=180_000)
    body = page.locator("body")
    expect(body.locator(".wb-thumb-select").first).to_be_visible(timeout=180_000)
    body.locator(".wb-tabs .lm-TabBar-tab", has_text="History").click()
    name = body.locator(".wb-history-name input")
    name.fill("no such/name")
    name.press("Enter")
    body.locator(".wb-load").click()
    message = body.locator(".wb-message-history")
    expect(message).to_contain_text("cannot be used as a name")
    expect(message.locator("details")).to_have_count(0)
    assert "Traceback" not in message.inner_text() and "Traceback" not in page.content()
