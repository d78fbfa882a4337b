"""The edit-strength slider and its button, without a browser: simulated slider moves (the
estimate while it moves, the exact figures once it rests) and clicks, against the session."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from workbench.widgets import show  # noqa: E402
from workbench.widgets.panels.strength_panel import SETTLE_S  # noqa: E402

LIMIT = 300
LR = 1e-2  # the tiny test model needs a larger editor step than the shipped default


class Clock:
    """A stand-in for the kernel's event loop: ``schedule`` keeps the callbacks, ``run`` fires them."""

    def __init__(self) -> None:
        self.pending: list[list] = []

    def schedule(self, delay, fn):
        item = [delay, fn, False]
        self.pending.append(item)

        class Handle:
            def cancel(self_inner) -> None:
                item[2] = True
        return Handle()

    def live(self) -> list[list]:
        return [p for p in self.pending if not p[2]]

    def run(self) -> None:
        for _, fn, cancelled in self.pending:
            if not cancelled:
                fn()
        self.pending.clear()


@pytest.fixture()
def wb(tiny_model_dir, fashion_small, tmp_path):
    w = show(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=2,
             output_dir=tmp_path / "out")
    w.panel.lr.value = LR
    return w


def _state(wb) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in wb.session.model.state_dict().items()}


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _edit(wb) -> int:
    i = int(wb.browser.page_items[0].index)
    wb.controller.select(i)
    wb.controller.set_target(int(wb.session.labels[i]))
    wb.panel.buttons["edit"].click()
    assert wb.messages.level != "error", wb.messages.text
    assert wb.session.history and wb.session.history[-1].index == i
    return i


def _card(wb) -> str:
    return str(wb.card.widget.value)


def test_slider_is_hidden_until_an_edit_and_starts_at_full_strength(wb):
    assert wb.strength.widget.layout.display == "none"
    _edit(wb)
    assert wb.strength.widget.layout.display == "" and wb.strength.value == 1.0


def test_slider_shows_the_estimate_while_it_moves_and_the_exact_figure_when_it_rests(wb):
    s = wb.session
    clock = Clock()
    wb.strength.schedule = clock.schedule
    _edit(wb)
    made = s.history[-1].edit_after
    wb.strength.slider.value = 0.6
    assert s.history[-1].strength == 0.6 and s.history[-1].report is None  # moved, not yet scored
    assert "exact figure follows" in _card(wb) and "At strength 0.60" in _card(wb)
    assert [p[0] for p in clock.live()] == [SETTLE_S]
    wb.strength.slider.value = 0.3
    assert len(clock.live()) == 1 and "At strength 0.30" in _card(wb)  # the earlier rest was cancelled
    clock.run()
    rec = s.history[-1]
    assert rec.strength == 0.3 and rec.step_report is not None  # scored once, at rest
    assert "other images changed" in _card(wb) and "exact figure follows" not in _card(wb)
    assert f"{1 - rec.step_report.error_after:.1%}" in _card(wb)
    fixed = s.edit_fixed()
    assert ("fixed ✓" in _card(wb)) == fixed and ("not fixed ✗" in _card(wb)) == (not fixed)
    for n, w in made.items():
        torch.testing.assert_close(s.model.get_parameter(n), torch.lerp(rec.result.before[n], w, 0.3))
    wb.strength.slider.value = 1.0
    clock.run()
    assert all(torch.equal(s.model.get_parameter(n), w) for n, w in made.items())


def test_smallest_strength_button_moves_the_slider_to_the_bisection(wb):
    s = wb.session
    clock = Clock()
    wb.strength.schedule = clock.schedule
    _edit(wb)
    wb.strength.smallest.click()
    assert wb.messages.level != "error", wb.messages.text
    assert not clock.live()  # the slider was moved by the controller: no second pass of its own
    alpha = s.history[-1].strength
    assert alpha == wb.strength.value == s.smallest_fixing_strength()
    assert s.history[-1].step_report is not None  # the exact figures of that strength
    fixed = s.edit_fixed()
    assert (f"At strength {alpha:.2f}: fixed ✓" in _card(wb)) == fixed


def test_undo_after_a_strength_change_is_exact(wb):
    before = _state(wb)
    _edit(wb)
    wb.strength.slider.value = 0.45  # no event loop: it rests at once
    assert wb.session.history[-1].strength == 0.45
    wb.panel.buttons["undo"].click()
    assert _same(_state(wb), before) and not wb.session.history
    assert wb.strength.widget.layout.display == "none"
    wb.panel.buttons["redo"].click()
    assert wb.session.history[-1].strength == 0.45 and wb.strength.value == 0.45


def _panel_matches(wb, rec) -> None:
    """The Details panel shows ``rec``'s exact reports: per-class change, flipped strip, heading."""
    step, total = rec.step_report, rec.report
    fig = wb.metrics.figure
    torch.testing.assert_close(torch.tensor(fig.data[0].y, dtype=torch.float64),
                               -100 * step.per_class_change.double().reshape(-1))
    torch.testing.assert_close(torch.tensor(fig.data[1].y, dtype=torch.float64),
                               -100 * total.per_class_change.double().reshape(-1))
    assert wb.metrics.flipped == [j for j in step.flipped.tolist() if j != rec.index]
    assert f"#{rec.index}" in wb.metrics.heading.value


def test_details_panel_follows_the_strength_once_the_slider_rests(wb):
    s = wb.session
    clock = Clock()
    wb.strength.schedule = clock.schedule
    _edit(wb)
    _panel_matches(wb, s.history[-1])
    for alpha in (0.3, 0.0, 1.0):
        wb.strength.slider.value = alpha
        clock.run()
        rec = s.history[-1]
        assert rec.strength == alpha and rec.step_report is not None
        _panel_matches(wb, rec)
