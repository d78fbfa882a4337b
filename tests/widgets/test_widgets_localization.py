"""The "Where is it stored?" panel and the error browser's label-quality filter, by simulated clicks."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from workbench.localization import group_of  # noqa: E402
from tests.support.clicks import select_error  # noqa: E402
from workbench.widgets.panels.error_browser import FILTERS  # noqa: E402

LIMIT = 200


@pytest.fixture()
def wb_options():
    """The shared ``wb`` (tests/conftest.py) on 200 images, 4 per page, the panel's own step."""
    return {"limit": LIMIT, "page_size": 4, "lr": None}


def test_panel_shows_count_chart_and_cost_and_edit_group_sets_the_group(wb):
    panel = wb.localization
    assert panel.button.disabled and panel.edit_button.disabled  # nothing selected yet
    i = select_error(wb)
    assert not panel.button.disabled and f"#{i}" in panel.button.description
    before = {k: v.clone() for k, v in wb.session.model.state_dict().items()}
    panel.button.click()
    assert wb.localization_messages.level != "error", wb.localization_messages.text
    res = wb.session.cached_localization(i)
    assert res is not None and panel.result is res
    assert f"<b class='wb-loc-count'>{res.count:g}</b>" in panel.summary.value
    fig = panel.figure.data[0]
    assert list(fig.x) == list(res.layer_counts) and list(fig.y) == pytest.approx(list(res.layer_counts.values()))
    assert f"{res.accuracy_before:.1%}" in panel.cost.value and f"{res.accuracy_after:.1%}" in panel.cost.value
    # the group holding most removed neurons
    groups = list(wb.panel.group.options)
    per = {g: sum(c for n, c in res.layer_counts.items() if group_of(n, groups) == g) for g in groups}
    best = max(per, key=lambda g: per[g])
    assert panel.group == best and not panel.edit_button.disabled
    wb.panel.group.value = "head" if best != "head" else "stem"
    panel.edit_button.click()
    assert wb.panel.group.value == best and wb.panel.config.layers == best
    assert all(torch.equal(v, before[k]) for k, v in wb.session.model.state_dict().items())
    # selecting another image clears; coming back shows the cached result
    j = select_error(wb, 1)
    assert j != i and panel.result is None and panel.edit_button.disabled and list(panel.figure.data[0].y) == []
    select_error(wb, 0)
    assert panel.result is res


def test_browser_filters_by_label_quality(wb):
    b = wb.browser
    q = wb.session.label_quality()
    b.only.value = next(k for k, v in FILTERS.items() if v and v[0] == "label_quality")
    limit = FILTERS[b.only.value][1]  # type: ignore[index]
    assert {e.index for e in b.visible} == {e.index for e in b.errors if float(q[e.index]) <= limit}


def test_localize_without_selection_shows_message(wb):
    wb.localization.actions["localize"]()
    m = wb.localization_messages  # the message sits in the localization tab, beside its buttons
    assert m.level == "error" and "no image selected" in m.text
    wb.localization.actions["edit_group"](None)
    assert m.level == "error" and "click 'Where is it stored?' first" in m.text
