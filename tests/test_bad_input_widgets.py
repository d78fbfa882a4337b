"""Bad input through the workbench widget: the cost shown next to "success", a refused
wrecked edit, and a double click that must not add a second (no-op) history entry."""
from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

import workbench.widgets.outcome as outcome_mod  # noqa: E402
from bad_input_common import same_weights, weights  # noqa: E402
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
