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

from tests.support.repo import ROOT  # noqa: E402
import workbench.widgets.panels.outcome_card as outcome_mod  # noqa: E402
from tests.support.bad_input import refused  # noqa: E402
from tests.support.weights import same_weights, weights  # noqa: E402
from workbench.data.decode import MAX_UPLOAD_PIXELS  # noqa: E402
from tests.support.clicks import select_error  # noqa: E402
from tests.support.settings import LIMIT, LR  # noqa: E402
from workbench.widgets import show  # noqa: E402


def _pick_first_error(wb) -> int:
    """Select the first error of the browser's page and target its true label; returns its index."""
    i = select_error(wb)
    wb.controller.set_target(int(wb.session.labels[i]))
    return i


def test_success_shows_its_cost_and_a_warning_colour_above_the_threshold(wb, monkeypatch):
    _pick_first_error(wb)
    wb.controller.edit()
    rec = wb.session.history[-1]
    card = wb.card.widget.value
    assert wb.card.status in ("fixed", "costly") and "Fixed ✓" in card and "Test accuracy" in card
    assert (wb.card.status == "costly") == (rec.cost_pp > outcome_mod.COST_WARNING_PP)
    wb.controller.undo()
    monkeypatch.setattr(outcome_mod, "COST_WARNING_PP", -100.0)  # every cost is above it now
    _pick_first_error(wb)
    wb.controller.edit()
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
    wb.controller.edit()
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


# -- HTML from data: class names, file names, model and history names are shown as text ---------
# The payloads run script when parsed as HTML (an <img> whose onerror fires, a <script>); a plain-text
# name would show them literally. Ten distinct names: one per Fashion-MNIST class.
HOSTILE = tuple(f"<img src=x onerror=alert({k})>" if k % 2 == 0 else f"<script>alert({k})</script>" for k in range(10))
HOSTILE_NAME = "<img src=x onerror=alert('model')>"


def _hostile_parts(markup_text: str) -> list[str]:
    """What in ``markup_text`` (parsed as a browser would) could run script: <script> elements, on*
    attributes, and <img> elements whose source is not an embedded PNG."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup_text, "html.parser")
    found = [str(t) for t in soup.find_all("script")]
    found += [str(t) for t in soup.find_all(True) if any(a.lower().startswith("on") for a in t.attrs)]
    found += [str(t) for t in soup.find_all("img") if not str(t.get("src", "")).startswith("data:image/png;base64,")]
    return found


def _html_widgets(root):
    """Every ipywidgets.HTML under ``root`` (children of boxes, tabs and accordions)."""
    import ipywidgets as W

    todo, out = [root], []
    while todo:
        w = todo.pop()
        if isinstance(w, W.HTML):
            out.append(w)
        todo.extend(getattr(w, "children", ()) or ())
    return out


def _assert_shown_as_text(root, *, must_show: tuple[str, ...] = ()) -> str:
    """No HTML widget under ``root`` renders markup from data, none shows the product's own markup
    escaped (a value built without the template), and each of ``must_show`` is there as text."""
    import re

    from bs4 import BeautifulSoup
    from workbench.widgets.markup import HTML

    widgets = _html_widgets(root)
    assert widgets and all(isinstance(w, HTML) for w in widgets), \
        [type(w).__name__ for w in widgets if not isinstance(w, HTML)]  # the escaping widget, everywhere
    text = ""
    for w in widgets:
        assert not _hostile_parts(w.value), w.value
        assert not re.search(r"&lt;/?(div|span|b|i|br|small|abbr|table|tr|td|details|h4|ul|li|a)\b", w.value) \
            and "&amp;lt;" not in w.value, w.value  # no product markup or data escaped twice
        text += BeautifulSoup(w.value, "html.parser").get_text() + "\n"
    for s in must_show:
        assert s in text, f"{s!r} is not shown as text"
    return text


def _figure_labels(fig) -> list[str]:
    """Class names as plotly gets them: bar categories and tick labels."""
    out = [str(v) for t in fig.data for v in (t.x if t.x is not None else ()) if isinstance(v, str)]
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        out += [str(v) for v in (axis.ticktext or ())]
    return out


@pytest.fixture()
def hostile_bundle(fashion_small):
    from workbench.data import as_bundle

    return as_bundle(fashion_small, classes=HOSTILE)


@pytest.fixture()
def hostile_wb(tiny_model_dir, hostile_bundle, tmp_path):
    w = show(tiny_model_dir, bundle=hostile_bundle, limit=LIMIT, device="cpu", probe_views=2, name=HOSTILE_NAME,
             output_dir=tmp_path / "out")
    w.panel.lr.value = LR
    return w


def _pick_most_confident_error(wb, *, lr: float, max_steps: int) -> int:
    """Through the widgets: sort the mistakes by margin, select the first, target its true label.
    Returns the test index."""
    wb.browser.sort.value = "margin (high first)"
    i = _pick_first_error(wb)
    wb.panel.lr.value, wb.panel.max_steps.value = lr, max_steps
    return i


def test_hostile_class_names_show_as_text_on_fixed_not_fixed_errors_and_history(hostile_wb):
    wb = hostile_wb
    _assert_shown_as_text(wb.widget, must_show=(HOSTILE_NAME,))
    # Not fixed: a large margin and a step of 1e-9 cannot flip it (premise checked); nothing changes
    i = _pick_most_confident_error(wb, lr=1e-9, max_steps=1)
    err = next(e for e in wb.session.current_errors() if e.index == i)
    assert err.margin > 0.5
    before = weights(wb.session.model)
    wb.controller.edit()
    assert wb.card.status == "failed" and "Not fixed ✗" in wb.card.widget.value
    assert same_weights(weights(wb.session.model), before) and not wb.session.history
    pred, true = HOSTILE[err.pred], HOSTILE[err.true]
    _assert_shown_as_text(wb.widget, must_show=(f"still prefers {pred} to {true}", f"true: {true}"))
    # Fixed (the fixture's step size), then the edit list and the plots
    _pick_first_error(wb)
    wb.panel.lr.value, wb.panel.max_steps.value = 1e-2, 100
    wb.controller.edit()
    rec = wb.session.history[-1]
    assert wb.card.status in ("fixed", "costly") and len(wb.session.history) == 1
    _assert_shown_as_text(wb.widget, must_show=(f"Fixed ✓ — now predicts {HOSTILE[rec.target]}.",
                                                f"Edit 1 (#{rec.index} → {HOSTILE[rec.target]})"))
    assert HOSTILE[rec.target] in _assert_shown_as_text(wb.history.table)  # the edit list
    for fig in (wb.picker.figure, wb.metrics.figure, wb.browser.confusion):
        labels = _figure_labels(fig)
        assert labels and not any("<" in s for s in labels)  # plotly renders <b>, <a>, <span style>
        assert "&lt;img src=x onerror=alert(0)&gt;" in labels
    assert wb.probe.report is not None and HOSTILE[rec.target] in _assert_shown_as_text(wb.probe.widget)
    # "Where is it stored?" names the class the prediction flips to
    wb.controller.localize()
    assert wb.localization.result is not None and wb.localization_messages.level != "error"
    loc = _assert_shown_as_text(wb.localization.widget)
    assert HOSTILE[wb.localization.result.label] in loc and not any("<" in s for s in _figure_labels(
        wb.localization.figure))
    # Undo: the card says where the session stands, still as text
    wb.controller.undo()
    assert not wb.session.history
    _assert_shown_as_text(wb.widget)


def test_hostile_names_in_messages_and_the_report_show_as_text(hostile_wb):
    wb = hostile_wb
    _pick_first_error(wb)
    wb.controller.edit()
    before, hist = weights(wb.session.model), list(wb.session.history)
    # an upload whose file name is markup: refused, named as text
    wb.upload.load(b"not an image", "<img src=x onerror=alert('file')>.png")
    assert wb.upload.messages.level == "error" and "could not be read" in wb.upload.messages.text
    # a history name that is markup: refused by Load, named as text (and in the "files go to" line)
    wb.history.name.value = "<script>alert('history')</script>"
    wb.history.buttons["load"].click()
    assert wb.history.messages.level == "error" and "cannot be used as a name" in wb.history.messages.text
    assert same_weights(weights(wb.session.model), before) and wb.session.history == hist
    _assert_shown_as_text(wb.widget, must_show=("Opening <img src=x onerror=alert('file')>.png did not work",
                                                "<script>alert('history')</script>"))
    # the report: every name as text (the file, and the widget's download link)
    wb.history.name.value = "lesson-1"
    wb.history.buttons["report"].click()
    assert wb.history.messages.level == "success", wb.history.messages.text
    report = (wb.history.output_dir / "lesson-1" / "report.html").read_text(encoding="utf-8")
    from bs4 import BeautifulSoup

    assert not _hostile_parts(report)
    text = BeautifulSoup(report, "html.parser").get_text()
    assert HOSTILE_NAME in text and f"→ {HOSTILE[hist[-1].target]}" in text
    _assert_shown_as_text(wb.history.widget)


def test_hostile_names_show_as_text_on_both_cards_of_the_comparison(tiny_model_dir, hostile_bundle):
    from workbench.session.opening import open_session
    from workbench.widgets import Comparison

    sides = [open_session(tiny_model_dir, bundle=hostile_bundle, limit=300, device="cpu")[0] for _ in range(2)]
    names = ("<img src=x onerror=alert('left')>", "<script>alert('right')</script>")
    cmp = Comparison(*sides, names=names)
    cmp.browser.sort.value = "margin (high first)"
    i = int(cmp.browser.page_items[0].index)
    cmp.lockstep.select(i)
    cmp.lockstep.set_target(int(sides[0].labels[i]))
    err = next(e for e in sides[0].current_errors() if e.index == i)
    assert err.margin > 0.5  # the premise of "not fixed" below
    cmp.panel.lr.value, cmp.panel.max_steps.value = 1e-9, 1
    before = [weights(s.model) for s in sides]
    cmp.lockstep.edit()
    assert [s.card.status for s in cmp.sides] == ["failed", "failed"]
    assert all(same_weights(weights(s.model), b) and not s.history for s, b in zip(sides, before))
    _assert_shown_as_text(cmp.widget, must_show=(f"{names[0]}: Not fixed ✗", f"{names[1]}: Not fixed ✗",
                                                 f"still prefers {HOSTILE[err.pred]} to {HOSTILE[err.true]}"))
    cmp.panel.lr.value, cmp.panel.max_steps.value = 1e-2, 100
    cmp.lockstep.edit()
    assert [s.card.status in ("fixed", "costly") for s in cmp.sides] == [True, True]
    _assert_shown_as_text(cmp.widget, must_show=(f"Fixed ✓ — now predicts {HOSTILE[err.true]}.",
                                                 f"All edits so far: {names[0]}"))


def test_a_product_card_title_with_markup_in_a_plain_string_is_escaped():
    """The card escapes a title given as a plain str (only Markup from the templates goes in as HTML)."""
    from workbench.widgets.panels.outcome_card import OutcomeCard
    from workbench.widgets.wording import Outcome

    card = OutcomeCard()
    card.show_edit(Outcome("fixed", HOSTILE[0], HOSTILE[1], 3, 0.01))  # type: ignore[arg-type]
    assert not _hostile_parts(card.widget.value) and "&lt;img src=x onerror=alert(0)&gt;" in card.widget.value


def test_the_html_widget_escapes_a_plain_string_and_keeps_template_markup():
    """A value built by concatenation (a plain str) shows its tags as text; only template output renders."""
    from workbench.widgets.markup import HTML, markup

    w = HTML(f"<b>{HOSTILE[0]}</b>")
    assert not _hostile_parts(w.value) and w.value.startswith("&lt;b&gt;")
    w.value = markup("<b>{}</b>", HOSTILE[1])
    assert w.value == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"


# -- tracebacks: behind "details" in JupyterLab, never in the Voila page ---------------------------
def _boom_click(wb, monkeypatch):
    """An Edit click that hits an unexpected error (not a user's mistake)."""
    def boom(*_a, **_k):
        raise RuntimeError("boom in /srv/venv/lib/python3.11/site-packages/x.py")

    monkeypatch.setattr(wb.session, "edit", boom)
    _pick_first_error(wb)
    before = weights(wb.session.model)
    wb.panel.buttons["edit"].click()
    assert same_weights(weights(wb.session.model), before) and not wb.session.history
    return wb.panel.messages


@pytest.mark.parametrize("env", [{"VOILA_SERVER_URL": "/", "VOILA_BASE_URL": "/", "VOILA_APP_PORT": "8866"},
                                 {"WORKBENCH_TRACEBACKS": "0"}], ids=["voila-kernel", "app.sh"])
def test_an_error_in_the_voila_page_shows_no_traceback(wb, monkeypatch, env):
    for k in ("VOILA_SERVER_URL", "VOILA_BASE_URL", "VOILA_APP_PORT", "WORKBENCH_TRACEBACKS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    m = _boom_click(wb, monkeypatch)
    value = m.widget.value
    assert "Edit did not work: something went wrong (RuntimeError: boom" in m.text  # the message stays
    assert "<details>" not in value and "Traceback" not in value and 'File "' not in value and not m.details
    assert isinstance(m.last_error, RuntimeError)  # kept for programmatic checks


def test_an_error_in_jupyterlab_keeps_its_traceback_behind_details(wb, monkeypatch):
    for k in ("VOILA_SERVER_URL", "VOILA_BASE_URL", "VOILA_APP_PORT", "WORKBENCH_TRACEBACKS"):
        monkeypatch.delenv(k, raising=False)
    m = _boom_click(wb, monkeypatch)
    assert "<details>" in m.widget.value and "Traceback" in m.details and "RuntimeError: boom" in m.details
    monkeypatch.setenv("VOILA_SERVER_URL", "/")
    monkeypatch.setenv("WORKBENCH_TRACEBACKS", "1")  # an explicit setting wins (debugging a served page)
    wb.panel.buttons["edit"].click()
    assert "Traceback" in m.details


def test_the_voila_variables_are_those_voila_sets_and_app_sh_hides_tracebacks():
    """The kernel-side check uses Voila's own names for its kernels' environment; scripts/app.sh says 0."""
    from voila.utils import ENV_VARIABLE
    from workbench.widgets import common

    assert set(common._VOILA_ENV) <= {str(e.value) for e in ENV_VARIABLE}
    app = (ROOT / "scripts" / "app.sh").read_text()
    assert f"export {common.TRACEBACKS_ENV}=0" in app


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
    wb.controller.select(int(wb.browser.page_items[0].index))
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
