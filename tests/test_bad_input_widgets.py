"""Bad input through the workbench widget: the cost shown next to "success", a refused
wrecked edit, a double click that must not add a second (no-op) history entry, and uploads:
an image above the pixel budget or a decompression bomb refused before decoding, in plain
words, and 16-bit, transparent, palette and CMYK images converted by their value range."""
from __future__ import annotations

import io
import re
import struct
import zlib

import numpy as np
import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from PIL import Image, ImageFile  # noqa: E402

import workbench.widgets.outcome as outcome_mod  # noqa: E402
from bad_input_common import refused, same_weights, weights  # noqa: E402
from workbench.data.decode import MAX_UPLOAD_PIXELS  # noqa: E402
from workbench.widgets import Workbench  # noqa: E402


@pytest.fixture()
def wb(tiny_model_dir, fashion_small):
    w = Workbench.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=300, device="cpu", probe_views=0)
    w.panel.lr.value = 1e-2
    return w


def _pick_first_error(wb) -> int:
    cell = wb.browser.cells[0]
    cell.button.click()
    i = cell.index
    wb.picker.buttons[int(wb.session.labels[i])].click()
    return i


def test_success_shows_its_cost_and_a_warning_colour_above_the_threshold(wb, monkeypatch):
    _pick_first_error(wb)
    wb.panel.buttons["edit"].click()
    rec = wb.session.history[-1]
    card = wb.card.widget.value
    assert wb.card.status in ("fixed", "costly") and "Fixed ✓" in card and "Test accuracy" in card
    assert (wb.card.status == "costly") == (rec.cost_pp > outcome_mod.COST_WARNING_PP)
    wb.panel.buttons["undo"].click()
    monkeypatch.setattr(outcome_mod, "COST_WARNING_PP", -100.0)  # every cost is above it now
    _pick_first_error(wb)
    wb.panel.buttons["edit"].click()
    assert len(wb.session.history) == 1
    assert wb.card.status == "costly" and "This fix cost more than" in wb.card.widget.value


def test_a_wrecked_edit_is_shown_as_refused_and_changes_nothing(wb, monkeypatch):
    """An edit that meets its constraint but that the guard flags is refused. Built without
    depending on round-off: a guard limit of 0 flags every edit that moves a weight, and
    k = 100 steps of lr 1e-2 (an edit that takes a few steps) meets the constraint."""
    import workbench.editing.guard as guard_mod

    _pick_first_error(wb)
    before, n = weights(wb.session.model), len(wb.session.history)
    monkeypatch.setattr(guard_mod, "MAX_RELATIVE_CHANGE", 0.0)
    wb.panel.max_steps.value = 100
    wb.panel.buttons["edit"].click()
    flagged = wb.session.attempts[-1].result
    assert flagged.success and flagged.wrecked and flagged.relative_change > 0  # the guard refused it
    assert "the guard allows 0x" in flagged.message
    card = wb.card.widget.value
    assert wb.card.status == "failed" and "Refused ✗" in card and "weights are unchanged" in card and "Fixed" not in card
    assert same_weights(weights(wb.session.model), before) and len(wb.session.history) == n


def test_a_double_click_on_edit_adds_one_entry(wb):
    _pick_first_error(wb)
    wb.panel.buttons["edit"].click()
    after_first = weights(wb.session.model)
    wb.panel.buttons["edit"].click()  # the target is now predicted: a no-op
    assert len(wb.session.history) == 1 and same_weights(weights(wb.session.model), after_first)
    assert wb.card.status == "noop" and "already predicts" in wb.card.widget.value


# -- uploads ------------------------------------------------------------------------------------
def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` 8-bit gray pixels, with a few bytes of
    pixel data (a decoder would fail on it; the header alone is read to refuse it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _upload_refused(wb, data: bytes, name: str, words: str) -> None:
    """The upload panel shows ``words`` (a regex) in plain words; selection, model, history unchanged."""
    wb.browser.cells[0].button.click()
    before, header, w, n = wb.controller.selection, wb.picker.header.value, weights(wb.session.model), \
        len(wb.session.history)
    assert not wb.upload.load(data, name)
    m = wb.upload.messages
    assert m.level == "error" and re.search(words, m.text) and name in m.text, m.text
    assert not re.search(r"\w+(Error|Exception)\b|Traceback", m.text), m.text  # plain words, not a Python error
    assert wb.controller.selection is before and wb.picker.header.value == header
    assert same_weights(weights(wb.session.model), w) and len(wb.session.history) == n


@pytest.fixture()
def no_decoding(monkeypatch):
    """Fails the test if any image is decoded (``ImageFile.load``)."""
    def refuse(self, *a, **k):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_an_image_above_the_pixel_budget_is_refused_from_its_header(wb, tmp_path, no_decoding):
    """The issue's case: a 688 KB PNG of 13,300 x 13,300 pixels was decoded (+1 GiB, 2 s)."""
    data = _png_header(13_300, 13_300)
    assert len(data) < 200 and 13_300 ** 2 > MAX_UPLOAD_PIXELS
    words = (r"huge\.png is 13,300 x 13,300 pixels \(176\.9 million\); the workbench takes images of at most 25 "
             r"million pixels \(for example 5000 x 5000\)\. Shrink it first \(the model sees it resized to 28 x 28 "
             r"anyway\), then upload the PNG or JPEG again")
    _upload_refused(wb, data, "huge.png", words)
    with refused(words, root=tmp_path, session=wb.session):
        wb.session.image_from_bytes(data, "huge.png")


def test_a_decompression_bomb_gives_the_documented_value_error(wb, tmp_path, no_decoding):
    """Above Pillow's own limit (2 x 89.5 million pixels) Pillow raises DecompressionBombError
    while reading the header; the workbench gives its ValueError instead."""
    data = _png_header(20_000, 10_000)
    words = r"bomb\.png is more than 179 million pixels; the workbench takes images of at most 25 million pixels"
    _upload_refused(wb, data, "bomb.png", words)
    with refused(words, root=tmp_path, session=wb.session):
        wb.session.image_from_bytes(data, "bomb.png")


def test_an_image_at_the_pixel_budget_is_decoded(wb):
    side = int(MAX_UPLOAD_PIXELS ** 0.5)
    img = Image.new("L", (side, side), 40)
    t = wb.session.image_from_bytes(_encode(img), "large.png")
    assert t.shape == (1, 28, 28) and t.dtype == torch.uint8 and int(t.min()) == int(t.max()) == 40


def test_a_16_bit_png_decodes_like_its_8_bit_twin(wb):
    """A 16-bit gray PNG was clipped (every value above 255 became white, then inverted: mean 9
    instead of 127). It is scaled by its bit depth: value v reads as v * 255 / 65535."""
    ramp = np.tile(np.arange(64, dtype=np.uint32), (64, 1)) * 4  # 0..252, dark background (not inverted)
    eight = wb.session.image_from_bytes(_encode(Image.fromarray(ramp.astype(np.uint8))), "ramp8.png")
    sixteen_png = _encode(Image.fromarray((ramp * 257).astype(np.uint16)))
    assert Image.open(io.BytesIO(sixteen_png)).mode.startswith("I")
    sixteen = wb.session.image_from_bytes(sixteen_png, "ramp16.png")
    assert int((sixteen.int() - eight.int()).abs().max()) <= 1, (sixteen.float().mean(), eight.float().mean())
    flat = wb.session.image_from_bytes(_encode(Image.fromarray(np.full((30, 30), 16384, np.uint16))), "flat16.png")
    assert int(flat.min()) == int(flat.max()) == 64  # 16384 * 255 / 65535 = 63.75


@pytest.mark.parametrize("name, make, value", [
    ("gray+alpha.png", lambda: Image.fromarray(np.stack([np.full((30, 30), 60, np.uint8),
                                                         np.full((30, 30), 255, np.uint8)], -1), "LA"), 60),
    ("opaque-rgba.png", lambda: Image.new("RGBA", (30, 30), (60, 60, 60, 255)), 60),
    ("transparent-rgba.png", lambda: Image.new("RGBA", (30, 30), (0, 0, 0, 0)), 0),  # white ground: inverted
    ("palette.png", lambda: Image.new("RGB", (30, 30), (60, 60, 60)).convert("P"), 60),
    ("cmyk.jpg", lambda: Image.new("CMYK", (32, 32), (0, 0, 0, 195)), 60),
], ids=["LA", "RGBA", "RGBA-transparent", "P", "CMYK"])
def test_other_image_modes_are_converted_by_their_value_range(wb, name, make, value):
    """Gray 60 in every mode reads as about 60 (a dark ground: not inverted); a fully transparent
    image is laid over white, which the Fashion-MNIST model sees inverted, as black."""
    data = _encode(make(), "JPEG" if name.endswith(".jpg") else "PNG")
    t = wb.session.image_from_bytes(data, name)
    assert t.shape == (1, 28, 28) and abs(float(t.float().mean()) - value) <= 2, float(t.float().mean())
