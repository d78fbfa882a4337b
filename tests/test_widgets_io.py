"""Your own image, Save / Load / Export / Report: simulated clicks (the comparison: test_widgets_compare)."""
from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from PIL import Image  # noqa: E402

from workbench.widgets import Workbench  # noqa: E402

LIMIT = 300
LR = 1e-2


@pytest.fixture()
def wb(tiny_model_dir, fashion_small, tmp_path):
    w = Workbench.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=0,
                                  output_dir=tmp_path / "out")
    w.panel.lr.value = LR
    return w


def _png(arr, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _edit(wb, k):
    wb.browser.cells[k].button.click()
    i = wb.controller.selection.index
    wb.picker.buttons[int(wb.session.labels[i])].click()
    wb.panel.buttons["edit"].click()
    return wb.session.history[-1].index == i if wb.session.history else False


def test_upload_a_good_image_and_edit_it(wb):
    # a test image drawn larger, in RGB, dark object on light ground (as a photo would be)
    raw = wb.images[wb.browser.visible[0].index][0].numpy()
    big = Image.fromarray(255 - raw).resize((96, 96)).convert("RGB")
    data = _png(__import__("numpy").asarray(big), "JPEG")
    assert wb.upload.load(data, "my-shirt.jpg") and wb.upload.messages.level == "success"
    sel = wb.controller.selection
    assert sel.index is None and sel.raw.shape == (1, 28, 28) and sel.raw.dtype == torch.uint8
    assert abs(sel.raw.float().mean() - torch.from_numpy(raw).float().mean()) < 40  # inverted back to light-on-dark
    assert torch.allclose(torch.tensor(wb.picker.figure.data[0].y), wb.session.probabilities(sel.x), atol=1e-6)
    assert "your image" in wb.picker.header.value and "my-shirt.jpg" in wb.picker.header.value
    target = wb.controller.target
    assert target != sel.pred
    wb.panel.buttons["edit"].click()
    assert wb.messages.level != "error", wb.messages.text
    if wb.session.history:
        rec = wb.session.history[-1]
        assert rec.index is None and rec.target == target and wb.controller.selection.pred == target
        assert "Fixed ✓" in wb.card.widget.value and rec.uid in wb.uploads
    else:
        assert wb.card.status == "failed"


@pytest.mark.parametrize("name,data,words", [
    ("notes.txt", b"hello", "PNG or JPEG"),
    ("broken.png", b"\x89PNG\r\n\x1a\n not really", "could not be read"),
    ("anim.gif", _png(__import__("numpy").zeros((8, 8), dtype="uint8"), "GIF"), "PNG or JPEG"),
])
def test_upload_a_bad_file_gets_a_clear_message(wb, name, data, words):
    wb.browser.cells[0].button.click()
    before = wb.controller.selection
    assert not wb.upload.load(data, name)
    m = wb.upload.messages
    assert m.level == "error" and words in m.text and name in m.text and "Error" not in m.text.split(":")[0]
    assert wb.controller.selection is before  # nothing changed


def test_upload_widget_value_triggers_the_load(wb):
    data = _png(__import__("numpy").full((28, 28), 200, dtype="uint8"))
    import datetime

    wb.upload.button.value = ({"name": "plain.png", "type": "image/png", "size": len(data),
                               "content": memoryview(data),
                               "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert wb.controller.selection is not None and wb.controller.selection.name == "plain.png"


class _Edits(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images, self.stack = 0, 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.sections += tag == "section" and a.get("class") == "edit"
        self.images += tag == "img" and a.get("src", "").startswith("data:image/png;base64,")
        if tag not in ("img", "meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def test_save_export_and_report_stay_in_the_folder(wb, tmp_path):
    assert _edit(wb, 0) and _edit(wb, 1)
    n = len(wb.session.history)
    wb.history.name.value = "lesson-1"
    for key in ("save", "export", "report"):
        wb.history.buttons[key].click()
        assert wb.history.messages.level == "success", wb.history.messages.text
    root = tmp_path / "out" / "lesson-1"
    assert (root / "history" / "history.json").exists()
    card = json.loads((root / "model" / "card.json").read_text())
    assert (root / "model" / "model.safetensors").exists() and len(card["edits"]) == n
    assert [e["index"] for e in card["edits"]] == [r.index for r in wb.session.history]
    text = (root / "report.html").read_text()
    p = _Edits()
    p.feed(text)
    p.close()
    assert p.sections == n and p.images >= n + 2 and not p.stack  # every edit, its image, the two plots
    for r in wb.session.history:
        assert f"test image #{r.index}" in text and f"{r.step_report.drawdown * 100:+.2f} pp" in text
    assert "data:text/html" in wb.history.download.value and "download=" in wb.history.download.value
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(w).startswith("out/lesson-1/") for w in written)  # nothing outside the folder
    # load it back after a reset
    weights = {k: v.clone() for k, v in wb.session.model.state_dict().items()}
    wb.panel.buttons["reset"].click()
    wb.history.buttons["load"].click()
    assert wb.history.messages.level == "success" and len(wb.session.history) == n
    assert all(torch.equal(v, wb.session.model.state_dict()[k]) for k, v in weights.items())


@pytest.mark.parametrize("name", ["../escape", "/abs", "", "a/b", ".."])
def test_bad_names_write_nothing(wb, tmp_path, name):
    wb.history.name.value = name
    wb.history.buttons["save"].click()
    assert wb.history.messages.level == "error" and "name" in wb.history.messages.text
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_load_of_an_unknown_name_says_so(wb):
    wb.history.name.value = "never-saved"
    wb.history.buttons["load"].click()
    assert wb.history.messages.level == "error" and "no history saved" in wb.history.messages.text.lower()
