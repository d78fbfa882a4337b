"""Workbench widgets without a browser: the controller's actions and simulated clicks against a
real tiny model.

A test about a control clicks it (``Button.click()``: handlers run synchronously); the others
act through the controller (``wb.controller.select / set_target / edit / undo ...``), as a
click would. Plots are checked through the FigureWidget data (``fig.data[i].y``), labels
through their HTML values. Every check compares against what the session computed for the
same state.
"""
from __future__ import annotations

import io
import math
import re

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from plotly.callbacks import InputDeviceState, Points  # noqa: E402

from workbench.evaluation.reports import errors_from_logits  # noqa: E402
from tests.support.clicks import select_error  # noqa: E402
from tests.support.weights import same_weights, weights  # noqa: E402
from workbench.widgets import SORTS  # noqa: E402


@pytest.fixture()
def wb_options():
    """The shared ``wb`` (tests/conftest.py) with 4 probe views."""
    return {"probe_views": 4}


def _change(report):
    """The per-class plot's values for ``report``: accuracy change in pp, NaN (absent class) as 0."""
    return [0.0 if math.isnan(c) else c for c in (-report.per_class_change * 100).tolist()]


def _edit_ok(wb, k=0):
    """Select the k-th listed error, target its true label, Edit; the edit must succeed."""
    i = select_error(wb, k)
    wb.controller.set_target(int(wb.session.labels[i]))
    wb.controller.edit()
    assert wb.messages.level != "error", wb.messages.text
    assert wb.session.history and wb.session.history[-1].index == i
    return i


def test_browser_lists_base_errors_and_pages(wb):
    s = wb.session
    assert {e.index for e in wb.browser.errors} == set(torch.nonzero(s.base_preds != s.labels).flatten().tolist())
    shown = [c.index for c in wb.browser.cells if c.index is not None]
    assert shown == [e.index for e in wb.browser.visible[:wb.browser.page_size]]
    assert f"page 1 / {wb.browser.pages}" in wb.browser.page_label.value and wb.browser.prev_button.disabled
    wb.browser.next_button.click()
    assert [c.index for c in wb.browser.cells if c.index is not None] == \
        [e.index for e in wb.browser.visible[wb.browser.page_size:2 * wb.browser.page_size]]
    wb.browser.prev_button.click()
    cap, e = wb.browser.cells[0].caption.value, wb.browser.visible[0]
    assert f"#{e.index}" in cap and s.classes[e.true] in cap and s.classes[e.pred] in cap


@pytest.mark.parametrize("sort", list(SORTS))
def test_sort_orders(wb, sort):
    wb.browser.sort.value = sort
    key, desc = SORTS[sort]
    if key == "typical":  # closest to the median margin first
        margins = sorted(e.margin for e in wb.browser.errors)
        med = margins[len(margins) // 2]
        vals = [abs(e.margin - med) for e in wb.browser.visible]
        assert vals == sorted(vals)
    else:
        vals = [getattr(e, key) for e in wb.browser.visible]
        assert vals == sorted(vals, reverse=desc)
    assert len(vals) == len(wb.browser.errors)


def test_default_sort_is_typical_not_most_confident(wb):
    assert wb.browser.sort.value == "typical first"
    first = wb.browser.visible[0]
    most_confident = max(wb.browser.errors, key=lambda e: e.confidence)
    assert first.confidence < most_confident.confidence


def test_filters_and_confusion_click(wb):
    conf = wb.session.confusion()
    off = conf.clone()
    off.fill_diagonal_(0)
    t, p = divmod(int(off.argmax()), off.shape[1])
    heat = wb.browser.confusion.data[0]
    assert [list(r) for r in heat.text] == [[str(int(v)) for v in row] for row in conf]
    heat._dispatch_on_click(Points(point_inds=[[t, p]], xs=[p], ys=[t]), InputDeviceState())
    assert (wb.browser.filter_true.value, wb.browser.filter_pred.value) == (t, p)
    assert len(wb.browser.visible) == int(conf[t, p]) and all(e.true == t and e.pred == p for e in wb.browser.visible)


def test_select_shows_probabilities_suggestions_and_two_different_attribution_rows(wb):
    i = select_error(wb)
    picker, s = wb.picker, wb.session
    probs = s.probabilities(i)
    assert torch.allclose(torch.tensor(picker.figure.data[0].y), probs, atol=1e-6)
    true = int(s.labels[i])
    top = probs.argsort(descending=True).tolist()
    assert picker.order[0] == true and picker.order[1:4] == [c for c in top if c != true][:3]
    assert wb.controller.selection.index == i and wb.controller.target == true
    assert "wb-target-true" in picker.buttons[true]._dom_classes and wb.browser.cells[0].button.button_style == "info"
    aset = wb.attribution.result
    assert wb.attribution.image.value[:4] == b"\x89PNG" and len(set(aset.labels)) == len(aset.labels) == 2


def test_edit_shows_outcome_card_then_exact_figures_in_place(wb):
    fig = wb.metrics.figure
    traces = tuple(fig.data)
    i = _edit_ok(wb)
    rec, s = wb.session.history[-1], wb.session
    card = wb.card.widget.value
    assert wb.card.status in ("fixed", "costly") and "Fixed ✓" in card and f"now predicts {s.classes[rec.target]}" in card
    step = rec.step_report
    assert step is not None and rec.report is not None  # completed after the card
    assert f"{1 - step.error_before:.1%} → {1 - step.error_after:.1%}" in card
    others = len([j for j in step.flipped.tolist() if j != i])
    assert f"{others:,} <abbr" in card and "other images changed" in card
    assert "estimate" not in wb.card.parts["estimate"]  # the estimate line is replaced by the exact one
    assert fig is wb.metrics.figure and tuple(fig.data) == traces  # same FigureWidget, data swapped
    for trace, report in ((fig.data[0], step), (fig.data[1], rec.report)):
        assert list(trace.y) == pytest.approx(_change(report))
    assert wb.metrics.flipped == [j for j in step.flipped.tolist() if j != i]
    rep = s.generalization(n_views=4)
    assert wb.probe.report.after == pytest.approx(rep.after)
    cur = s.current_preds()
    assert {e.index for e in wb.browser.errors} == set(torch.nonzero(cur != s.labels).flatten().tolist())
    assert torch.allclose(torch.tensor(wb.picker.figure.data[0].y), s.probabilities(i), atol=1e-6)
    t = wb.controller.timings
    assert t["outcome"] <= t["estimate"] <= t["reports"] <= t["total"]
    assert list(wb.history.figure.data[0].y) == pytest.approx([1 - s.base_error, 1 - rec.report.error_after])


def test_estimate_is_shown_before_the_exact_figure(wb):
    seen = []
    real = wb.card.show_estimate

    def spy(est, err):
        real(est, err)
        seen.append((wb.card.widget.value, est))

    wb.card.show_estimate = spy
    wb.controller.callbacks.estimate = spy
    _edit_ok(wb)
    (html_text, est), = seen
    assert "estimate" in html_text and "95% interval" in html_text and est.low <= est.drawdown <= est.high
    assert est.sample < len(wb.session.labels) or est.sample == est.total


def test_failed_edit_is_shown_as_failed_and_clears_the_previous_figures(wb):
    _edit_ok(wb)
    n, before = len(wb.session.history), weights(wb.session.model)
    i = select_error(wb, 1)
    target = int(wb.controller.selection.probs.argmin())  # never the prediction (label + 1 could be)
    wb.controller.set_target(target)
    wb.panel.max_steps.value = 1
    wb.panel.lr.value = 1e-9  # one step this small cannot make the least likely class the top one
    wb.controller.edit()
    card = wb.card.widget.value
    assert wb.card.status == "failed" and "Not fixed ✗" in card and "weights are unchanged" in card
    assert "Test accuracy" not in card and "pp" not in card  # nothing left over from the previous edit
    assert "after 1 of 1 steps" in card and "l_e" not in card  # plain words, no jargon
    assert len(wb.session.history) == n and same_weights(weights(wb.session.model), before)
    # the panels below show the applied edit (the state the model is in), and say so
    prev = wb.session.history[-1]
    heading = wb.metrics.heading.value
    assert "last attempt changed nothing" in heading and f"#{prev.index}" in heading
    assert list(wb.metrics.figure.data[0].y) == pytest.approx(_change(prev.step_report))
    assert wb.metrics.flipped == [j for j in prev.step_report.flipped.tolist() if j != prev.index]
    assert wb.probe.report is not None and f"#{prev.index}" in wb.probe.text.value
    assert "last attempt changed nothing" in wb.probe.text.value  # not shown as the failed attempt's probe
    assert f"#{i}" in wb.attribution.info.value  # the maps are of the image just tried


def test_no_op_edit_adds_nothing(wb):
    i = select_error(wb)
    pred = wb.controller.selection.pred
    wb.controller.set_target(pred)
    base = weights(wb.session.model)
    wb.controller.edit()
    assert wb.card.status == "noop" and "already predicts" in wb.card.widget.value
    assert not wb.session.history and not wb.session.attempts and same_weights(weights(wb.session.model), base) and i is not None


def test_no_op_after_an_edit_says_the_details_are_of_the_edit_before(wb):
    i = _edit_ok(wb)
    heading = wb.metrics.heading.value
    assert "Edit 1" in heading and "changed nothing" not in heading
    wb.controller.set_target(wb.controller.selection.pred)  # the edited image already predicts it
    wb.controller.edit()
    assert wb.card.status == "noop" and len(wb.session.history) == 1 and wb.session.history[-1].index == i
    assert "Edit 1" in wb.metrics.heading.value and "changed nothing" in wb.metrics.heading.value


def test_undo_redo_reset_leave_no_stale_figure(wb):
    base = weights(wb.session.model)
    _edit_ok(wb)
    edited = weights(wb.session.model)
    assert not wb.panel.buttons["undo"].disabled and wb.panel.buttons["redo"].disabled
    wb.controller.undo()
    assert not wb.session.history and same_weights(weights(wb.session.model), base)
    assert wb.card.status == "history" and "base model" in wb.card.widget.value
    assert "No edit applied" in wb.metrics.heading.value and list(wb.metrics.figure.data[0].y) == [0.0] * 10
    assert wb.probe.report is None and not wb.metrics.flipped
    wb.controller.redo()
    assert len(wb.session.history) == 1 and same_weights(weights(wb.session.model), edited) and "Edit 1" in wb.metrics.heading.value
    wb.controller.reset()
    assert not wb.session.history and same_weights(weights(wb.session.model), base) and wb.panel.buttons["undo"].disabled
    assert {e.index for e in wb.browser.errors} == {e.index for e in wb.session.evaluator.misclassified()}


def test_double_click_applies_one_edit(wb):
    i = select_error(wb)
    calls = []
    real = wb.session.edit

    def reentrant(*a, **k):
        calls.append(a)
        wb.panel.buttons["edit"].click()  # a second click while the first edit runs
        assert all(b.disabled for b in wb.panel.buttons.values())
        return real(*a, **k)

    wb.session.edit = reentrant
    wb.panel.buttons["edit"].click()
    assert len(calls) == 1 and len(wb.session.history) == 1 and wb.session.history[0].index == i
    assert not wb.panel.busy and not wb.panel.buttons["edit"].disabled
    assert wb.panel._lock.acquire(blocking=False)  # another action holds the panel: a click is refused
    try:
        assert wb.panel.busy
        wb.panel.buttons["edit"].click()
    finally:
        wb.panel._lock.release()
    assert len(wb.session.history) == 1 and "busy" in wb.panel.phase.value.lower()


def test_bad_input_is_explained_beside_the_button(wb, caplog):
    base = weights(wb.session.model)
    with caplog.at_level("ERROR", logger="workbench.widgets"):
        wb.panel.buttons["edit"].click()
    m = wb.panel.messages
    assert m.level == "error" and "pick an image first" in m.text and "ValueError" not in m.text
    assert "<details>" in m.widget.value and "Traceback" in m.details  # traceback behind a toggle
    assert any("pick an image first" in r.getMessage() for r in caplog.records)
    assert m.widget in wb.panel.widget.children  # beside the Edit button
    assert not wb.session.history and same_weights(weights(wb.session.model), base) and wb.card.status == "empty"
    with pytest.raises(ValueError, match="pick an image first"):
        wb.controller.edit()
    select_error(wb)
    wb.panel.lr.value = -1.0
    wb.panel.buttons["edit"].click()
    assert "earning rate" in m.text and not wb.session.history and same_weights(weights(wb.session.model), base)


def test_attribution_controls_follow_the_method(wb):
    select_error(wb)
    a = wb.attribution
    fractions = []
    a.progress.observe(lambda c: fractions.append(c["new"]), names="value")
    a.n_steps.value = 8
    a.method.value = "Integrated Gradients"
    assert a.n_steps.layout.display == "" and a.layer.layout.display == "none"
    assert len({f for f in fractions if 0 < f < 1}) >= 2 and fractions[-1] == pytest.approx(1.0)
    for method in ("Saliency", "LayerGradCam", "Occlusion"):
        a.method.value = method
        assert a.result is not None and a.result.method == method, a.messages.text
        assert (a.layer.layout.display == "") == (method == "LayerGradCam")
        assert (a.n_steps.layout.display == "") == (method == "Integrated Gradients")
    assert "head" not in a.layer.options and list(a.layer.options) == wb.session.cam_layers()


def test_errors_from_logits_matches_evaluator(wb):
    ev = wb.session.evaluator
    mine = errors_from_logits(ev.base_logits, ev.labels)
    theirs = ev.misclassified()
    assert [(m.index, m.true, m.pred) for m in mine] == [(m.index, m.true, m.pred) for m in theirs]
    assert [m.margin for m in mine] == pytest.approx([m.margin for m in theirs], abs=1e-5)


def test_edit_panel_config_follows_the_widgets(wb):
    from workbench.editing import DEFAULTS

    panel = wb.panel
    assert list(panel.group.options) == list(wb.session.model.groups())
    panel.method.value = "adam"
    assert panel.lr.value == pytest.approx(DEFAULTS["adam"]["lr"])
    panel.lr.value, panel.max_steps.value, panel.group.value = 3e-3, 4, "head"
    cfg = panel.config.resolved()
    assert (cfg.method, cfg.lr, cfg.max_steps, cfg.layers) == ("adam", 3e-3, 4, "head")
    i = select_error(wb)
    wb.panel.buttons["edit"].click()
    rec = (wb.session.history or wb.session.attempts)[-1]
    assert rec.index == i and rec.result.config == cfg


def _px(widget) -> int:
    return int(widget.layout.width.rstrip("px"))


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(data)).size


def _font_px(sheet: str, selector: str) -> int:
    """The font-size (px) of the rule whose selector list is exactly ``selector``."""
    m = re.search(r"(?m)^" + re.escape(selector) + r"\s*\{[^}]*font-size:\s*(\d+)px", sheet)
    assert m, f"no font-size rule for {selector!r}"
    return int(m.group(1))


def test_presentation_mode(wb):
    from workbench.widgets.common import STYLE_SHEET

    select_error(wb)
    assert "wb-present" not in wb.root._dom_classes
    normal = (_px(wb.picker.image), _px(wb.browser.cells[0].image), _px(wb.metrics.strip_cells[0][0]),
              _png_size(wb.attribution.image.value))
    wb.present.value = True
    assert "wb-present" in wb.root._dom_classes and wb.presentation
    assert _px(wb.picker.image) >= 160
    assert _px(wb.browser.cells[0].image) >= 120 and _px(wb.metrics.strip_cells[0][0]) > normal[2]
    # only what a lesson needs: the attribution maps and the probe are hidden (tests/widgets/test_app_widgets.py)
    assert wb.attribution.widget.layout.display == "none" and wb.probe.widget.layout.display == "none"
    # larger fonts: the sheet in the workbench scales the text under .wb-present
    assert any(getattr(c, "value", None) == STYLE_SHEET for c in wb.root.children)
    for sel in (".wb-root", ".wb-root .wb-card", ".wb-root .wb-card .wb-card-title"):
        assert _font_px(STYLE_SHEET, sel.replace(".wb-root", ".wb-root.wb-present", 1)) > _font_px(STYLE_SHEET, sel)
    # fewer controls: method pickers, filters and the editor settings are hidden
    assert wb.attribution.controls.layout.display == "none" and wb.browser.controls.layout.display == "none"
    assert re.search(r"\.wb-root\.wb-present \.wb-advanced\s*\{\s*display:\s*none", STYLE_SHEET)
    assert any("wb-advanced" in c._dom_classes for c in wb.panel.widget.children)
    assert wb.legend.layout.display == "" and "drawdown" in wb.legend.value  # the terms explained on screen
    main = next(c for c in wb.root.children if "wb-main" in c._dom_classes)
    right = next(c for c in main.children if "wb-right" in c._dom_classes)
    assert wb.legend in right.children and wb.card.widget in right.children  # beside the outcome card
    wb.present.value = False
    assert "wb-present" not in wb.root._dom_classes and wb.attribution.controls.layout.display == ""
    assert wb.legend.layout.display == "none"
    assert (_px(wb.picker.image), _px(wb.browser.cells[0].image), _px(wb.metrics.strip_cells[0][0]),
            _png_size(wb.attribution.image.value)) == normal


def test_outcome_terms_are_all_explained(wb):
    from workbench.widgets.glossary import GLOSSARY

    _edit_ok(wb)
    card = wb.card.widget.value
    for t in ("drawdown", "pp", "other images changed", "steps"):
        assert f">{t}</abbr>" in card and GLOSSARY[t]
    assert "✓ / ✗" in GLOSSARY and "bars" in GLOSSARY
    assert wb.metrics.strip_cells[0][1].tooltip


def test_a_failed_background_scoring_is_shown_beside_the_list(wb, monkeypatch):
    """The base scoring's failure (told through its progress callback) goes to the list's message
    line in words, and the progress bar stays where the scoring stopped."""
    failure = RuntimeError("the evaluator's fast path disagrees with the full forward")
    monkeypatch.setattr(wb.session, "scoring_failure", lambda: failure)
    wb.controller.callbacks.scoring(16, 96)
    assert wb.browser_messages.level == "error" and wb.browser_messages.last_error is failure
    assert "Scoring the base model (stopped at 16 of 96 images) did not work" in wb.browser_messages.text
    assert "fast path disagrees" in wb.browser_messages.text
