"""Your own image, Save / Load / Export / Report: simulated clicks (the comparison: test_widgets_compare)."""
from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from PIL import Image  # noqa: E402

from bs4 import BeautifulSoup  # noqa: E402  (installed with jupyterlab, through nbconvert)

from tests.support.clicks import apply_fixes, edit_error  # noqa: E402
from tests.support.settings import LIMIT  # noqa: E402
from workbench.widgets import show  # noqa: E402
from workbench.widgets.panels.history_panel import safe_name  # noqa: E402


def _png(arr, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def _edit(wb, k):
    """Select the k-th error of the browser's page, target its true label, Edit."""
    i = edit_error(wb, k)
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
    wb.controller.edit()
    assert wb.messages.level != "error", wb.messages.text
    if wb.session.history:
        rec = wb.session.history[-1]
        assert rec.index is None and rec.target == target and wb.controller.selection.pred == target
        assert "Fixed ✓" in wb.card.widget.value and rec.uid in wb.controller.uploads
    else:
        assert wb.card.status == "failed"


@pytest.mark.parametrize("name,data,words", [
    ("notes.txt", b"hello", ".txt files are not supported"),
    ("notes.txt", _png(np.zeros((8, 8), dtype="uint8")), ".txt files are not supported"),  # the type, by name
    ("broken.png", b"\x89PNG\r\n\x1a\n not really", "could not be read as an image"),
    ("anim.gif", _png(np.zeros((8, 8), dtype="uint8"), "GIF"), ".gif files are not supported"),
    ("fake.png", _png(np.zeros((8, 8), dtype="uint8"), "GIF"), "is a GIF file"),  # the type, by content
], ids=["text", "png-named-txt", "truncated-png", "gif", "gif-named-png"])
def test_upload_a_bad_file_gets_a_clear_message(wb, name, data, words):
    wb.controller.select(int(wb.browser.page_items[0].index))
    before, header = wb.controller.selection, wb.picker.header.value
    assert not wb.upload.load(data, name)
    m = wb.upload.messages
    assert m.level == "error" and words in m.text and name in m.text and "PNG or JPEG" in m.text, m.text
    assert not re.search(r"\w+(Error|Exception)\b|Traceback", m.text), m.text  # plain words, not a Python error
    assert wb.controller.selection is before and wb.picker.header.value == header  # nothing changed


def test_an_uploaded_copy_of_a_test_image_edits_like_it_and_is_in_the_report(wb):
    e = wb.browser.visible[0]  # the image _edit(wb, 0) fixes with these settings
    raw = wb.images[e.index]
    assert wb.upload.load(_png(raw[0].numpy()), "copy.png"), wb.upload.messages.text
    sel = wb.controller.selection
    assert sel.index is None and torch.equal(sel.raw, raw) and sel.pred == e.pred
    assert torch.allclose(sel.x, wb.session.image(e.index), atol=1e-6)
    wb.controller.set_target(e.true)
    wb.controller.edit()
    assert wb.session.history, wb.card.widget.value
    rec = wb.session.history[-1]
    assert rec.index is None and rec.target == e.true and wb.card.status in ("fixed", "costly")
    assert "Fixed ✓" in wb.card.widget.value and torch.equal(wb.controller.uploads[rec.uid], raw)
    section, = _report(wb.controller.report()).find_all("section", class_="edit")
    assert "an uploaded image" in section.h3.get_text() and wb.session.classes[e.true] in section.h3.get_text()
    assert np.array_equal(_data_png(section.img)[::4, ::4], raw[0].numpy())  # the uploaded image itself
    n_images = len(section.find_all("img"))
    wb.controller.uploads.clear()  # as after loading a saved history: it holds the weights, not the image
    section, = _report(wb.controller.report()).find_all("section", class_="edit")
    assert len(section.find_all("img")) == n_images - 1  # no black square in its place
    assert "not kept" in section.find(class_="missing-image").get_text()


def test_upload_widget_value_triggers_the_load(wb):
    data = _png(__import__("numpy").full((28, 28), 200, dtype="uint8"))
    import datetime

    wb.upload.button.value = ({"name": "plain.png", "type": "image/png", "size": len(data),
                               "content": memoryview(data),
                               "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert wb.controller.selection is not None and wb.controller.selection.name == "plain.png"


class _Balanced(HTMLParser):
    """Every opened tag is closed, in order (the stdlib parser, strict where BeautifulSoup is lenient)."""

    def __init__(self):
        super().__init__()
        self.stack = []

    def handle_starttag(self, tag, attrs):
        if tag not in ("img", "meta", "br", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"


def _report(text: str) -> BeautifulSoup:
    """Parse the report; it must be balanced HTML and self-contained (nothing fetched from elsewhere)."""
    p = _Balanced()
    p.feed(text)
    p.close()
    assert not p.stack, f"unclosed tags {p.stack}"
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup.find_all(True):
        for attr in ("src", "href", "srcset", "data", "poster", "background"):
            v = tag.get(attr)
            assert v is None or v.startswith(("data:", "#")), f"<{tag.name} {attr}={v[:80]!r}> is not embedded"
    assert not soup.find_all("link") and not soup.find_all("script", src=True)
    assert not re.search(r"url\(|@import", text), "a stylesheet refers to another file"
    return soup


def _data_png(img) -> np.ndarray:
    src = img["src"]
    assert src.startswith("data:image/png;base64,"), src[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))


def test_save_export_and_report_stay_in_the_folder(wb, tmp_path):
    from workbench.training import load_model

    assert len(apply_fixes(wb, 2)) == 2
    s = wb.session
    n = len(s.history)
    wb.history.name.value = "lesson-1"
    for key in ("save", "export", "report"):
        wb.history.buttons[key].click()
        assert wb.history.messages.level == "success", wb.history.messages.text
    root = tmp_path / "out" / "lesson-1"
    assert (root / "history" / "history.json").exists()
    # the edited model: safetensors + card with the edit list, and it loads back with the edited weights
    card = json.loads((root / "model" / "card.json").read_text())
    assert (root / "model" / "model.safetensors").exists() and len(card["edits"]) == n
    assert [(e["index"], e["target"]) for e in card["edits"]] == [(r.index, r.target) for r in s.history]
    exported, _ = load_model(root / "model")
    mine = s.model.state_dict()
    assert all(torch.equal(v, mine[k]) for k, v in exported.state_dict().items())
    # the report: one section per applied edit with its image, target, outcome, drawdown, flipped examples
    text = (root / "report.html").read_text()
    soup = _report(text)
    base = soup.find("table").get_text(" ")
    assert wb.name in base and f"{1 - s.base_error:.2%}" in base
    sections = soup.find_all("section", class_="edit")
    assert len(sections) == n
    labels = s.labels.tolist()
    for sec, r in zip(sections, s.history):
        head = sec.h3.get_text()
        assert f"test image #{r.index}" in head and f"true label {s.classes[labels[r.index]]}" in head
        assert head.endswith(f"→ {s.classes[r.target]}")
        assert np.array_equal(_data_png(sec.img)[::4, ::4], wb.images[r.index][0].numpy())  # the edited image
        body = sec.get_text(" ")
        assert f"Outcome: fixed ✓ in {r.result.steps} step(s)" in body
        step = r.step_report
        assert f"drawdown {step.drawdown * 100:+.2f} pp" in sec.find(class_="drawdown").get_text()
        flipped = [j for j in step.flipped.tolist() if j != r.index]
        assert f"{len(flipped)} other test image(s) changed" in body
        shown = sec.select(".flipped figure")
        assert [int(f.figcaption.get_text().split()[0][1:]) for f in shown] == flipped[:12]
        for f, j in zip(shown, flipped):
            ok = int(step.preds_after[j]) == labels[j]
            assert ("✓" if ok else "✗") in f.figcaption.get_text()
            assert np.array_equal(_data_png(f.img)[::2, ::2], wb.images[j][0].numpy())
    plots = {img["alt"]: _data_png(img) for img in soup.find_all("img") if img.get("alt") in
             ("timeline", "per-class change")}
    assert set(plots) == {"timeline", "per-class change"}
    assert all(a.shape[0] > 100 and a.shape[1] > 300 and a.std() > 0 for a in plots.values())
    # the download link holds the same file
    link = BeautifulSoup(wb.history.download.value, "html.parser").a
    assert link["download"].endswith(".html") and base64.b64decode(link["href"].split(",", 1)[1]).decode() == text
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    assert all(str(w).startswith("out/lesson-1/") for w in written)  # nothing outside the folder
    # load it back after a reset
    weights = {k: v.clone() for k, v in s.model.state_dict().items()}
    wb.controller.reset()
    wb.history.buttons["load"].click()
    assert wb.history.messages.level == "success" and len(s.history) == n
    assert all(torch.equal(v, s.model.state_dict()[k]) for k, v in weights.items())


def test_save_goes_to_a_default_folder_beside_the_notebook(tiny_model_dir, fashion_small, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a kernel runs in the notebook's folder
    wb = show(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=0)
    name = wb.history.name.value
    assert name and safe_name(name) == name  # the default name can be used as it is
    assert f"{tmp_path / 'workbench-output' / name}/" in wb.history.where.value  # the folder is shown
    wb.history.buttons["save"].click()
    assert wb.history.messages.level == "success", wb.history.messages.text
    assert (tmp_path / "workbench-output" / name / "history" / "history.json").exists()
    wb.history.name.value = "lesson-2"
    assert f"{tmp_path / 'workbench-output' / 'lesson-2'}/" in wb.history.where.value
    wb.history.buttons["save"].click()
    assert (tmp_path / "workbench-output" / "lesson-2" / "history" / "history.json").exists()


@pytest.mark.parametrize("name", ["../escape", "ABSOLUTE", "", "a/b", "..", "x/../../escape", " "])
def test_bad_names_write_nothing(wb, tmp_path, name):
    outside = tmp_path / "elsewhere"  # an absolute name (as /tmp/x), kept in tmp_path should the check break
    wb.history.name.value = name.replace("ABSOLUTE", str(outside))
    for key in ("save", "export", "report", "load"):
        wb.history.buttons[key].click()
        m = wb.history.messages
        assert m.level == "error" and "cannot be used as a name" in m.text and "for example" in m.text, (key, m.text)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()] and not outside.exists()
    assert wb.history.download.value == ""  # no report offered either


def test_load_of_an_unknown_name_says_so(wb):
    wb.history.name.value = "never-saved"
    wb.history.buttons["load"].click()
    assert wb.history.messages.level == "error" and "no history saved" in wb.history.messages.text.lower()
