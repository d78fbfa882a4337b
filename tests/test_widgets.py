"""Workbench widgets without a browser: simulated clicks against a real tiny model.

Clicks are ``Button.click()`` (handlers run synchronously); plots are checked through the
FigureWidget data (``fig.data[i].y``), labels through their HTML values. Every check
compares against what the session / evaluator computed for the same state.
"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from plotly.callbacks import InputDeviceState, Points  # noqa: E402

from workbench.widgets import SORTS, Workbench  # noqa: E402
from workbench.widgets.session_view import errors_from_logits  # noqa: E402

LIMIT = 300
LR = 1e-2  # the tiny test model needs a larger editor step than the shipped default


@pytest.fixture()
def wb(tiny_model_dir, fashion_small):
    w = Workbench.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=4)
    w.panel.lr.value = LR
    return w


def _weights(wb):
    return {k: v.clone() for k, v in wb.session.model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _select_first(wb):
    cell = wb.browser.cells[0]
    cell.button.click()
    return cell.index


def _edit_ok(wb):
    """Select the first error, target its true label, click Edit; the edit must succeed."""
    i = _select_first(wb)
    wb.views[0].picker.buttons[int(wb.view.labels[i])].click()
    wb.panel.buttons["edit"].click()
    assert wb.messages.level != "error", wb.messages.text
    assert wb.session.history and wb.session.history[-1].index == i
    return i


def test_browser_lists_base_errors_and_pages(wb):
    ev = wb.session.evaluator
    assert {e.index for e in wb.browser.errors} == set(torch.nonzero(ev.base_preds != ev.labels).flatten().tolist())
    shown = [c.index for c in wb.browser.cells if c.index is not None]
    assert shown == [e.index for e in wb.browser.visible[:wb.browser.page_size]]
    assert f"page 1 / {wb.browser.pages}" in wb.browser.page_label.value and wb.browser.prev_button.disabled
    wb.browser.next_button.click()
    assert wb.browser.page == 1
    assert [c.index for c in wb.browser.cells if c.index is not None] == \
        [e.index for e in wb.browser.visible[wb.browser.page_size:2 * wb.browser.page_size]]
    wb.browser.prev_button.click()
    assert wb.browser.page == 0
    cap = wb.browser.cells[0].caption.value
    e = wb.browser.visible[0]
    assert f"#{e.index}" in cap and wb.view.classes[e.true] in cap and wb.view.classes[e.pred] in cap


@pytest.mark.parametrize("sort", list(SORTS))
def test_sort_orders(wb, sort):
    wb.browser.sort.value = sort
    key, desc = SORTS[sort]
    vals = [getattr(e, key) for e in wb.browser.visible]
    assert vals == sorted(vals, reverse=desc) and len(vals) == len(wb.browser.errors)


def test_filters_and_confusion_click(wb):
    ev = wb.session.evaluator
    conf = ev.confusion()
    off = conf.clone()
    off.fill_diagonal_(0)
    t, p = divmod(int(off.argmax()), off.shape[1])
    heat = wb.browser.confusion.data[0]
    assert [list(r) for r in heat.text] == [[str(int(v)) for v in row] for row in conf]
    heat._dispatch_on_click(Points(point_inds=[[t, p]], xs=[p], ys=[t]), InputDeviceState())
    assert (wb.browser.filter_true.value, wb.browser.filter_pred.value) == (t, p)
    assert len(wb.browser.visible) == int(conf[t, p])
    assert all(e.true == t and e.pred == p for e in wb.browser.visible)
    wb.browser.filter_pred.value = -1
    assert len(wb.browser.visible) == int(off[t].sum())


def test_select_shows_session_probabilities_and_suggestions(wb):
    i = _select_first(wb)
    picker = wb.view.picker
    probs = wb.session.probabilities(i)
    assert torch.allclose(torch.tensor(picker.figure.data[0].y), probs, atol=1e-6)
    true = int(wb.view.labels[i])
    top = probs.argsort(descending=True).tolist()
    assert picker.order[0] == true and picker.order[1:4] == [c for c in top if c != true][:3]
    assert [b.description for b in picker.button_box.children][0] == wb.view.classes[true]
    assert wb.selected == i and wb.target == true and "wb-target-true" in picker.buttons[true]._dom_classes
    assert wb.browser.cells[0].button.button_style == "info"
    assert wb.attribution.image.value and wb.attribution.result is not None


def test_edit_updates_session_and_panels_in_place(wb):
    fig = wb.view.metrics.figure
    traces = tuple(fig.data)
    acc_before = list(fig.data[0].y)
    i = _edit_ok(wb)
    rec = wb.session.history[-1]
    assert rec.result.success and rec.target == int(wb.view.labels[i])
    assert "success" in wb.view.status.value and f">{rec.result.steps}<" in wb.view.status.value
    m = wb.view.metrics
    assert m.figure is fig and tuple(fig.data) == traces  # same FigureWidget and traces, data swapped
    base = wb.session.evaluator.base_error
    exp = [1 - base, 1 - rec.step_report.error_before, 1 - rec.step_report.error_after]
    assert list(fig.data[0].y) == pytest.approx(exp) and acc_before == pytest.approx([1 - base] * 3)
    assert list(fig.data[1].y) == pytest.approx([1 - base, 1 - rec.report.error_after])
    for trace, report in ((fig.data[2], rec.step_report), (fig.data[3], rec.report)):
        change = (-report.per_class_change * 100).tolist()
        assert list(trace.y) == pytest.approx([0.0 if math.isnan(c) else c for c in change])
    assert f"{rec.step_report.drawdown * 100:+.2f} pp" in m.drawdown.value
    assert m.flipped == rec.step_report.flipped.tolist()
    shown = [c for c in m.strip_cells if c[2].layout.visibility == "visible"]
    assert len(shown) == min(len(m.flipped), len(m.strip_cells))
    # the probe ran on the edited image and agrees with the session's own probe
    rep = wb.session.generalization(n_views=4)
    assert wb.view.probe.report.after == pytest.approx(rep.after)
    assert [wb.view.probe.bars[k].value for k in ("before", "after")] == pytest.approx([rep.before, rep.after])
    # the browser now lists the current model's errors
    ev = wb.session.evaluator
    cur = ev.logits_for(wb.session.params_at()).argmax(1)
    assert {e.index for e in wb.browser.errors} == set(torch.nonzero(cur != ev.labels).flatten().tolist())
    assert i not in {e.index for e in wb.browser.errors}
    # the picker shows the current model's probabilities for the selected image
    assert torch.allclose(torch.tensor(wb.view.picker.figure.data[0].y), wb.session.probabilities(i), atol=1e-6)
    assert set(wb.timings) >= {"edit", "drawdown", "probe", "attribution", "redraw", "total"}


def test_flipped_strip_opens_image(wb):
    _edit_ok(wb)
    m = wb.view.metrics
    if not m.flipped:
        pytest.skip("this edit flipped no other prediction")
    m.strip_cells[0][1].click()
    assert wb.selected == m.flipped[0] == wb.view.picker.index


def test_undo_redo_reset(wb):
    base = _weights(wb)
    _edit_ok(wb)
    edited = _weights(wb)
    assert not _same(base, edited) and not wb.panel.buttons["undo"].disabled and wb.panel.buttons["redo"].disabled
    wb.panel.buttons["undo"].click()
    assert not wb.session.history and _same(_weights(wb), base)
    assert "no edit applied" in wb.view.metrics.drawdown.value and not wb.panel.buttons["redo"].disabled
    assert list(wb.view.metrics.figure.data[1].y) == pytest.approx([1 - wb.session.evaluator.base_error])
    assert wb.view.probe.report is None and wb.view.probe.bars["after"].value == 0.0
    wb.panel.buttons["redo"].click()
    assert len(wb.session.history) == 1 and _same(_weights(wb), edited)
    wb.panel.buttons["reset"].click()
    assert not wb.session.history and _same(_weights(wb), base) and wb.panel.buttons["undo"].disabled
    assert {e.index for e in wb.browser.errors} == {e.index for e in wb.session.evaluator.misclassified()}


def test_double_click_applies_one_edit(wb):
    i = _select_first(wb)
    calls = []
    real = wb.session.edit_index

    def reentrant(*a, **k):
        calls.append(a)
        wb.panel.buttons["edit"].click()  # a second click while the first edit runs
        assert all(b.disabled for b in wb.panel.buttons.values())
        return real(*a, **k)

    wb.session.edit_index = reentrant
    wb.panel.buttons["edit"].click()
    assert len(calls) == 1 and len(wb.session.history) == 1 and wb.session.history[0].index == i
    assert not wb.panel.busy and not wb.panel.buttons["edit"].disabled
    assert wb.panel._lock.acquire(blocking=False)  # another action holds the panel: a click is refused
    try:
        assert wb.panel.busy
        wb.panel.buttons["edit"].click()
    finally:
        wb.panel._lock.release()
    assert len(wb.session.history) == 1 and "busy" in wb.panel.phase.value


def test_bad_input_shows_message_and_changes_nothing(wb, tmp_path, caplog):
    base = _weights(wb)
    with caplog.at_level("ERROR", logger="workbench.widgets"):
        wb.panel.buttons["edit"].click()
    assert wb.messages.level == "error" and "no image selected" in wb.messages.widget.value
    assert any("no image selected" in r.getMessage() for r in caplog.records)  # shown and logged
    assert "wb-message" in wb.messages.widget._dom_classes and not wb.session.history and _same(_weights(wb), base)
    with pytest.raises(ValueError, match="no image selected"):
        wb.edit()
    wb.panel.buttons["undo"].click()
    assert "nothing to undo" in wb.messages.text and isinstance(wb.messages.last_error, ValueError)
    _select_first(wb)
    wb.panel.lr.value = -1.0
    wb.panel.buttons["edit"].click()
    assert "learning rate" in wb.messages.text and not wb.session.history and _same(_weights(wb), base)


def test_corrupted_history_shows_message(wb, tmp_path):
    _edit_ok(wb)
    folder = tmp_path / "hist"
    wb.panel.history_path.value = str(folder)
    wb.panel.buttons["save"].click()
    assert wb.messages.level == "success" and (folder / "history.json").exists()
    edited, n = _weights(wb), len(wb.session.history)
    (folder / "history.json").write_text("{ not json")
    wb.panel.buttons["load"].click()
    assert wb.messages.level == "error" and "Load history failed" in wb.messages.text
    assert len(wb.session.history) == n and _same(_weights(wb), edited)
    wb.panel.history_path.value = ""
    wb.panel.buttons["load"].click()
    assert "history" in wb.messages.text and wb.messages.level == "error"


def test_history_round_trip(wb, tmp_path):
    _edit_ok(wb)
    edited = _weights(wb)
    wb.save_history(tmp_path / "h")
    wb.reset()
    wb.load_history(tmp_path / "h")
    assert len(wb.session.history) == 1 and _same(_weights(wb), edited)
    assert "session" in wb.view.metrics.drawdown.value


def test_other_architecture_is_refused(wb, tiny_model_dir, fashion_small, tmp_path):
    from workbench.models import small_resnet
    from workbench.training import save_model

    other = tmp_path / "rgb-model"
    save_model(other, small_resnet(in_channels=3, input_size=32, widths=(4, 4, 4, 4)),
               {"arch": "small-resnet", "dataset": "fashion-mnist"})
    with pytest.raises(ValueError, match="the model takes"):
        Workbench.from_checkpoint(other, bundle=fashion_small, limit=50, device="cpu")
    session, base = wb.session, _weights(wb)
    wb.model_path.value = str(other)
    wb.open_button.click()
    assert wb.messages.level == "error" and "Open model failed" in wb.messages.text
    assert wb.session is session and _same(_weights(wb), base)
    wb.open(tiny_model_dir, bundle=fashion_small)
    assert wb.session is not session and wb.messages.level == "success"


def test_attribution_methods_and_progress(wb):
    _select_first(wb)
    fractions = []
    wb.attribution.progress.observe(lambda c: fractions.append(c["new"]), names="value")
    wb.attribution.n_steps.value = 16
    wb.attribution.method.value = "Integrated Gradients"  # progress moves per chunk of steps
    assert len({f for f in fractions if 0 < f < 1}) >= 3 and fractions[-1] == pytest.approx(1.0)
    assert fractions[0] == 0.0 and fractions == sorted(fractions)  # reset, then monotone
    seen = []
    for method in ("Saliency", "Integrated Gradients", "LayerGradCam", "Occlusion"):
        wb.attribution.n_steps.value = 4
        wb.attribution.method.value = method  # auto: recomputes on change
        assert wb.attribution.result is not None and wb.attribution.result.method == method, wb.messages.text
        assert wb.attribution.progress.value == pytest.approx(1.0)
        assert wb.attribution.image.value[:8] == b"\x89PNG\r\n\x1a\n"
        seen.append(wb.attribution.result.before[0].clone())
    assert not torch.equal(seen[0], seen[1])
    wb.attribution.layer.value = "chain2"
    wb.attribution.method.value = "LayerGradCam"
    assert wb.attribution.result.method == "LayerGradCam"


def test_errors_from_logits_matches_evaluator(wb):
    ev = wb.session.evaluator
    mine = errors_from_logits(ev.base_logits, ev.labels)
    theirs = ev.misclassified()
    assert [(m.index, m.true, m.pred) for m in mine] == [(m.index, m.true, m.pred) for m in theirs]
    assert [m.margin for m in mine] == pytest.approx([m.margin for m in theirs], abs=1e-5)


def test_compare_applies_same_edit_to_both(tiny_model_dir, fashion_small, tmp_path):
    from workbench.session import EditSession
    from workbench.widgets import Comparison

    # a second, different model: the tiny model with one edit exported
    s = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu")
    wrong = s.evaluator.misclassified()[-1]
    assert s.edit_index(wrong.index, wrong.true, lr=LR).success
    s.export(tmp_path / "edited")
    cmp = Comparison.from_checkpoints(tiny_model_dir, tmp_path / "edited", bundle=fashion_small, limit=LIMIT,
                                      device="cpu", probe_views=4)
    cmp.panel.lr.value = LR
    left, right = cmp.views
    assert left.base_error != right.base_error
    cmp.browser.cells[0].button.click()
    i = cmp.selected
    assert left.picker.index == right.picker.index == i and left.picker.target == right.picker.target
    right.picker.buttons[(left.picker.target + 1) % 10].click()
    assert cmp.target == left.picker.target == right.picker.target
    cmp.panel.buttons["edit"].click()
    assert cmp.messages.level != "error", cmp.messages.text
    for v in cmp.views:
        rec = v.session.history[-1] if v.session.history else v.session.attempts[-1]
        assert rec.index == i and rec.target == cmp.target and rec.result.config == cmp.panel.config.resolved()
        assert ("success" if rec.result.success else "failed") in v.status.value
    if all(v.session.history for v in cmp.views):
        cmp.panel.buttons["undo"].click()
        assert not any(v.session.history for v in cmp.views)


def test_edit_panel_config_follows_the_widgets(wb):
    from workbench.editing import DEFAULTS

    panel = wb.panel
    assert list(panel.group.options) == list(wb.session.model.groups())
    panel.method.value = "adam"  # choosing an editor loads its tuned defaults
    assert panel.lr.value == pytest.approx(DEFAULTS["adam"]["lr"])
    panel.lr.value, panel.max_steps.value, panel.group.value = 3e-3, 4, "head"
    cfg = panel.config.resolved()
    assert (cfg.method, cfg.lr, cfg.max_steps, cfg.layers, cfg.beta) == ("adam", 3e-3, 4, "head",
                                                                         DEFAULTS["adam"]["beta"])
    i = _select_first(wb)
    wb.panel.buttons["edit"].click()
    rec = (wb.session.history or wb.session.attempts)[-1]
    assert rec.index == i and rec.result.config == cfg


def test_edit_panel_loads_the_tuned_lr_of_the_chosen_group(wb):
    from workbench.editing import DEFAULTS, GROUP_DEFAULTS

    panel = wb.panel
    assert "all" in panel.group.options
    panel.group.value = "chain3"
    panel.method.value = "gd"
    assert panel.lr.value == pytest.approx(DEFAULTS["gd"]["lr"])
    panel.group.value = "all"  # the whole model has its own tuned lr, far below chain3's
    assert GROUP_DEFAULTS["all"]["gd"]["lr"] < DEFAULTS["gd"]["lr"]
    assert panel.lr.value == pytest.approx(GROUP_DEFAULTS["all"]["gd"]["lr"])
    assert panel.config.resolved().lr == pytest.approx(GROUP_DEFAULTS["all"]["gd"]["lr"])
    panel.group.value = "chain3"
    assert panel.lr.value == pytest.approx(DEFAULTS["gd"]["lr"])
    panel.lr.value = 7e-4  # an lr the user typed survives a change of group
    panel.group.value = "all"
    assert panel.lr.value == pytest.approx(7e-4)
