"""Widget traffic of a click, counted in the kernel: every comm message the workbench sends
(the comm package's stand-in comm, no kernel) is counted, so a change that sends each value
as its own message, or re-sends unchanged values, shows up here rather than as a slow page.

The bounds were measured on this tiny model (``benchmarks/click_traffic.py`` counts the same on
the shipped one): about 150 messages per Edit click when each value went out alone, about 105
with one message per changed widget and per figure edit.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

import comm  # noqa: E402

from workbench.widgets import show  # noqa: E402

LIMIT = 300
LR = 1e-2
EDIT_CLICK_BOUND = 125  # measured 102-114 (four clicks), 145-160 before the traffic was cut


class Sent(list):
    """``(msg_type, data)`` of every comm message published while counting."""

    def updates(self) -> list[dict]:
        return [d for t, d in self if t == "comm_msg" and isinstance(d, dict) and d.get("method") == "update"]


@pytest.fixture()
def sent(monkeypatch):
    out = Sent()
    real = comm.DummyComm.publish_msg

    def publish(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        out.append((msg_type, json.loads(json.dumps(data, default=str))))
        return real(self, msg_type, data, metadata, buffers, **keys)

    monkeypatch.setattr(comm.DummyComm, "publish_msg", publish)
    return out


@pytest.fixture()
def wb(sent, tiny_model_dir, fashion_small, tmp_path):
    w = show(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=2,
             output_dir=tmp_path / "out")
    w.panel.lr.value = LR
    return w


def _pick(wb, k: int) -> int:
    i = int(wb.browser.page_items[k].index)
    wb.controller.select(i)
    wb.controller.set_target(int(wb.session.labels[i]))
    return i


def test_an_edit_click_stays_within_its_message_budget(wb, sent):
    counts = []
    for k in range(2):
        _pick(wb, k)
        sent.clear()
        wb.panel.buttons["edit"].click()
        assert wb.messages.level != "error", wb.messages.text
        assert wb.session.history, "the edit must be applied for its panels to update"
        counts.append(len(sent))
        wb.panel.buttons["undo"].click()
    assert max(counts) <= EDIT_CLICK_BOUND, counts


def test_a_figure_edit_is_one_message_with_the_new_values(wb, sent):
    _pick(wb, 0)
    wb.panel.buttons["edit"].click()
    rec = wb.session.history[-1]
    fig = wb.metrics.figure
    want = [-v * 100 for v in rec.step_report.per_class_change.nan_to_num(0.0).tolist()]
    assert list(fig.data[0].y) == pytest.approx(want)
    sent.clear()
    with fig.batch_update():
        fig.data[0].y = [v + 1 for v in want]
        fig.layout.yaxis.range = [-50, 50]
    (msg,) = sent.updates()  # the edit ids and the edit itself, together
    state = msg["state"]
    assert set(state) == {"_py2js_update", "_last_trace_edit_id", "_last_layout_edit_id"}
    assert state["_py2js_update"]["style_data"]["y"][0] == pytest.approx([v + 1 for v in want])
    assert state["_py2js_update"]["layout_edit_id"] == state["_last_layout_edit_id"] == fig._last_layout_edit_id
    assert fig._py2js_update is None  # the reset stays in the kernel (a page reload gets no stale edit)


def test_showing_the_same_state_again_sends_nothing(wb, sent):
    _pick(wb, 0)
    wb.panel.buttons["edit"].click()
    s, rec = wb.session, wb.session.history[-1]
    sent.clear()
    wb.metrics.show(rec, len(s.history))
    wb.card.show_reports(rec, len(s.history), s.base_error)
    wb.strength.show(rec.strength)
    assert sent.updates() == []


def test_the_card_sends_its_status_and_words_in_one_message(wb, sent):
    _pick(wb, 0)
    wb.panel.buttons["edit"].click()
    assert wb.card.status in ("fixed", "costly")
    sent.clear()
    wb.card.show_hint("something else")
    (msg,) = sent.updates()
    assert "something else" in msg["state"]["value"]
    classes = msg["state"]["_dom_classes"]
    assert "wb-card-empty" in classes and not {"wb-card-fixed", "wb-card-costly"} & set(classes)
