"""The teaching wb without a browser: the steady error list, a click on a thumbnail, empty
states in words, presentation mode's panels, lesson mode's steps and the app's settings.

Clicks are simulated (``Button.click()``, toggles' ``value``); every check compares with what
the session computed for the same state. The wb is opened as ``scripts/app.sh`` opens it
(``workbench.widgets.app.app``) on the tiny test model, which also stands in for both models
of the comparison.
"""
from __future__ import annotations

import html
import re
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from workbench.widgets.app import ENV, AppWorkbench, app, app_from_env  # noqa: E402
from workbench.widgets.listing import SteadyList  # noqa: E402
from workbench.widgets.panels.error_browser import NEW_ONLY  # noqa: E402
from workbench.widgets.panels.history_panel import NO_HISTORY  # noqa: E402
from workbench.widgets.panels.localization_panel import NO_IMAGE  # noqa: E402
from workbench.widgets.panels.metrics_panel import NO_EDIT  # noqa: E402
from workbench.widgets.panels.probe_panel import NO_PROBE  # noqa: E402
from workbench.widgets.panels.target_picker import NO_PICK  # noqa: E402
from workbench.widgets.plots.charts import LARGE_FONT  # noqa: E402

LIMIT = 300
LR = 1e-2  # the tiny test model needs a larger editor step than the shipped default


@pytest.fixture()
def wb(tiny_model_dir, fashion_small, tmp_path):
    p = app(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=0, baseline=tiny_model_dir,
            editable=tiny_model_dir, output_dir=tmp_path / "out")
    p.panel.lr.value = LR
    return p


def _shown(browser):
    return [c.index for c in browser.cells if c.index is not None and c.box.layout.visibility == "visible"]


def _text(widget) -> str:
    return html.unescape(str(widget.value))


def _item(i, margin=1.0, confidence=0.5):
    return SimpleNamespace(index=i, true=0, pred=1, confidence=confidence, margin=margin)


def test_steady_list_keeps_places_marks_fixed_and_appends_new():
    by_index = lambda items: sorted(items, key=lambda e: e.index)  # noqa: E731
    listing = SteadyList([_item(5), _item(2), _item(9)])
    assert [e.index for e in listing.entries(by_index)] == [2, 5, 9]
    listing.update([_item(9), _item(2), _item(7), _item(1)], by_index)  # 5 fixed; 7 and 1 new
    assert [e.index for e in listing.entries(by_index)] == [2, 5, 9, 1, 7]  # places kept, new ones at the end
    assert [listing.status(i) for i in (2, 5, 9, 1, 7)] == ["wrong", "fixed", "wrong", "new", "new"]
    assert (listing.count("fixed"), listing.count("new")) == (1, 2)
    listing.keep = 7  # the selected image stays listed, also once it is right
    listing.update([_item(5), _item(2), _item(9)], by_index)  # back to the first list (an undo)
    assert [e.index for e in listing.entries(by_index)] == [2, 5, 9, 7] and listing.count("new") == 0
    assert listing.status(7) == "right" and listing.status(5) == "wrong"
    listing.keep = None
    listing.reorder()  # a new sort: only the mistakes and the first list's images
    assert [e.index for e in listing.entries(by_index)] == [2, 5, 9]
    # the base model's list growing while it is scored: the images join the first list, none is new
    listing.update([_item(5), _item(2), _item(9), _item(4)], by_index, base=True)
    assert [e.index for e in listing.entries(by_index)] == [2, 4, 5, 9] and listing.status(4) == "wrong"
    assert listing.count("new") == 0


def test_list_keeps_its_place_after_an_edit(wb):
    b, s = wb.browser, wb.session
    b.next_button.click()  # wb 2
    before = _shown(b)
    i = before[1]
    b.cells[1].button.click()  # a click on the thumbnail opens it
    assert wb.controller.selection.index == i
    wb.controller.set_target(int(s.labels[i]))
    wb.panel.buttons["edit"].click()
    assert s.history and s.history[-1].index == i, wb.messages.text
    assert b.page == 1 and _shown(b) == before  # same wb, same images in the same places
    assert b.status(i) == "fixed" and "fixed ✓" in _text(b.cells[1].caption)
    assert "wb-thumb-fixed" in b.cells[1].box._dom_classes and i not in {e.index for e in b.errors}
    base_wrong = set((s.base_preds != s.labels).nonzero().flatten().tolist())
    fixed = base_wrong - {e.index for e in s.current_errors()}
    assert i in fixed and f"{len(fixed)} fixed ✓" in _text(b.page_label)
    new = {e.index for e in s.current_errors()} - base_wrong
    assert {e.index for e in b.visible if b.status(e.index) == "new"} == new  # listed, marked new
    assert [e.index for e in b.visible][:len(base_wrong)] == [e.index for e in b.visible if e.index in base_wrong]
    assert b.new_button.layout.display == ("" if new else "none")


def test_new_mistakes_are_marked_and_one_click_away(wb):
    s, b = wb.session, wb.browser
    wrong = {e.index for e in b.errors}
    j = next(k for k in range(LIMIT) if k not in wrong)  # an image the model gets right: the edit makes it wrong
    wb.controller.select(j)
    runner_up = int(wb.controller.selection.probs.argsort(descending=True)[1])
    wb.controller.set_target(runner_up)
    wb.panel.buttons["edit"].click()
    assert s.history and s.history[-1].index == j, wb.messages.text
    assert b.status(j) == "new" and j in {e.index for e in b.visible}
    first = [e.index for e in b.visible[:len(wrong)]]
    assert set(first) == wrong  # the earlier mistakes keep the head of the list; new ones come after
    new = [e.index for e in s.current_errors() if e.index not in wrong]
    assert j in new and b.new_button.layout.display == ""
    assert b.new_button.description == f"{len(new)} new mistake{'s' if len(new) != 1 else ''} ▶"
    b.new_button.click()  # one click: only the new mistakes
    assert b.only.value == NEW_ONLY and sorted(e.index for e in b.visible) == sorted(new)
    assert all("new ✗" in _text(c.caption) for c in b.cells if c.index is not None and c.box.layout.visibility == "visible")
    assert b.new_button.description == "◀ all mistakes"
    b.new_button.click()
    assert b.only.value == "all" and b.new_button.description.endswith("▶")
    wb.panel.buttons["undo"].click()  # j is right again: listed while selected, no longer a mistake
    assert b.status(j) == "right" and b.new_button.layout.display == "none"
    assert j in [e.index for e in b.visible]  # still listed while it is selected


def test_thumbnail_click_selects_without_a_select_button(wb):
    b = wb.browser
    assert all(c.button.description == "" for c in b.cells)  # the image is the button: no "select" caption
    k = 3
    i = b.cells[k].index
    b.cells[k].button.click()
    assert wb.controller.selection.index == i and b.selected == i
    assert b.cells[k].button.button_style == "info" and all(c.button.button_style == "" for c in b.cells if c is not b.cells[k])
    assert f"#{i}" in _text(wb.picker.header)


def test_empty_states_are_words_not_empty_axes(wb):
    loc, m, pk, h = wb.localization, wb.metrics, wb.picker, wb.history
    assert loc.chart.children == () and NO_IMAGE in _text(loc.summary) and loc.edit_button.layout.display == "none"
    assert m.chart.children == () and NO_EDIT in _text(m.heading) and _text(m.strip_label) == ""
    assert pk.chart.children == (pk.chart_note,) and NO_PICK in _text(pk.chart_note)
    assert h.timeline.children == () and NO_HISTORY in _text(h.table)
    assert wb.probe.rows.layout.display == "none" and NO_PROBE in _text(wb.probe.text)
    i = wb.browser.cells[0].index
    wb.browser.cells[0].button.click()
    assert pk.chart.children == (pk.figure, pk.legend)  # the bars once an image is picked
    assert loc.chart.children == () and f"Where is #{i} stored?" in _text(loc.summary)
    wb.localization.button.click()
    assert loc.result is not None and loc.chart.children == (loc.figure,) and sum(loc.figure.data[0].y) > 0
    other = wb.browser.cells[1].index
    wb.browser.cells[1].button.click()  # another image, not searched yet: words again, no leftover chart
    assert loc.chart.children == () and f"Where is #{other} stored?" in _text(loc.summary)
    wb.browser.cells[0].button.click()  # the first one's result is kept
    assert loc.chart.children == (loc.figure,)
    wb.controller.set_target(int(wb.session.labels[i]))
    wb.panel.buttons["edit"].click()
    assert wb.session.history, wb.messages.text
    assert m.chart.children == (m.figure,) and h.timeline.children == (h.figure,)
    wb.panel.buttons["reset"].click()
    assert m.chart.children == () and h.timeline.children == ()  # back to words


def test_presentation_option_hides_the_non_lesson_panels(tiny_model_dir, fashion_small, tmp_path):
    p = app(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=0, presentation=True,
            output_dir=tmp_path / "out")
    assert "wb-present" in p.root._dom_classes and p.present.value
    assert tuple(p.tabs.titles) == ("Mistakes", "What the edit changed", "Where is it stored?")
    assert p.history.widget not in p.tabs.children
    for w in (p.attribution.widget, p.probe.widget, p.picker.chart, p.browser.confusion_box, p.browser.controls):
        assert w.layout.display == "none"
    for w in (p.upload.widget, p.glossary, p.localization.quick, p.panel.advanced):
        assert "wb-advanced" in w._dom_classes  # hidden by the style sheet under .wb-present
    assert p.metrics.widget in p.details.children and p.metrics.widget.layout.display != "none"
    assert p.metrics.figure.layout.font.size == LARGE_FONT == p.localization.figure.layout.font.size
    p.browser.cells[0].button.click()
    assert p.controller.selection is not None and p.attribution.result is None  # hidden, so not computed
    p.open_tab("Where is it stored?")
    p.present.value = False  # back to the full workbench; the open tab stays open
    assert p.attribution.result is not None  # the maps, now that they are shown
    assert tuple(p.tabs.titles) == ("Mistakes", "Details of the last edit", "History & export", "Where is it stored?")
    assert p.tabs.children[p.tabs.selected_index] is p.tabs.children[3]
    assert p.attribution.widget.layout.display == "" and p.metrics.figure.layout.font.size is None
    with pytest.raises(ValueError, match="there is no tab 'History & export' on screen"):
        p.present.value = True
        p.open_tab("History & export")


def test_lesson_steps_to_the_end_and_back(wb):
    s, les, bar = wb.session, wb.lesson, wb.lesson_bar
    assert bar.widget.layout.display == "none"
    wb.lesson_toggle.value = True
    assert bar.widget.layout.display == "" and bar.back_button.disabled and not bar.next_button.disabled
    typical = wb.browser.visible[0].index  # the error list's first (typical) mistake is step 1's
    history, confident = [], None
    for k in range(1, len(les.steps) + 1):
        if k == 2:  # the most confident mistake of the model as step 1 left it
            confident = max((e for e in s.current_errors() if e.index != typical),
                            key=lambda e: (e.confidence, -e.index))
        bar.next_button.click()
        assert bar.messages.text == "", bar.messages.text
        assert les.position == k and f"step {k} of {len(les.steps)}" in _text(bar.step)
        assert les.steps[k - 1].sentence in _text(bar.sentence)
        history.append([r.index for r in s.history])
    assert history[0] == [typical]
    assert history[1] == [typical, confident.index]
    assert history[2] == [typical]  # undo
    assert history[3] == [typical] and wb.lockstep is not None  # the comparison has its own models
    assert [len(c.session.history) for c in wb.lockstep.controllers] == [1, 1]
    assert wb.lockstep.controllers[0].session.history[-1].index == typical
    assert wb.localization.result is not None and wb.localization.index == confident.index  # step 5
    assert wb.tabs.children[wb.tabs.selected_index] is wb.tabs.children[3]
    assert wb.compare_box.layout.display == "none" and wb.main.layout.display == ""
    assert "End of the lesson" in _text(bar.result) and bar.next_button.disabled and not bar.back_button.disabled
    bar.back_button.click()  # back to step 4: the comparison is shown again
    assert les.position == 4 and wb.compare_box.layout.display == "" and wb.main.layout.display == "none"
    bar.back_button.click()  # step 4 taken back on both models
    assert [len(c.session.history) for c in wb.lockstep.controllers] == [0, 0]
    bar.back_button.click()  # the undo taken back: the costly edit is applied again
    assert [r.index for r in s.history] == [typical, confident.index]
    bar.back_button.click()
    bar.back_button.click()
    assert les.position == 0 and not s.history and bar.back_button.disabled
    bar.next_button.click()  # and forward again, from the same state
    assert [r.index for r in s.history] == [typical]


def test_a_lesson_step_shows_its_sentence_while_it_runs(wb):
    from workbench.widgets.lesson import Step

    bar, seen = wb.lesson_bar, []

    def words(widget) -> str:
        return re.sub(r"<[^>]+>", "", _text(widget))

    def run(_lesson) -> str:  # what the class sees while the step computes
        seen.append((words(bar.step), words(bar.sentence), words(bar.result), bar.next_button.disabled,
                     bar.back_button.disabled))
        return "42 images changed."
    wb.lesson.steps = (Step("First", "The first sentence.", run, "workbench"),
                       Step("Second", "The second sentence.", run, "workbench"))
    wb.lesson_toggle.value = True
    bar.next_button.click()
    assert seen == [("Lesson · step 1 of 2 · First", "The first sentence.", "working…", True, True)]
    assert "42 images changed." in _text(bar.result) and not bar.next_button.disabled
    bar.next_button.click()
    assert seen[1][:3] == ("Lesson · step 2 of 2 · Second", "The second sentence.", "working…")
    assert "End of the lesson" in _text(bar.result)


def test_a_lesson_fix_tries_the_next_mistakes_and_says_so_when_none_is_fixed(wb):
    from workbench.widgets.lesson import TRIES
    from workbench.widgets.picks import typical_first

    s, bar = wb.session, wb.lesson_bar
    wb.panel.lr.value, wb.panel.max_steps.value = 1e-9, 1  # one step of a vanishing size fixes no mistake
    order = [int(e.index) for e in typical_first(s.current_errors())][:TRIES]
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    wb.lesson_toggle.value = True
    bar.next_button.click()
    text = _text(bar.result)
    assert f"None of #{', #'.join(map(str, order))} could be fixed" in text, text
    assert not s.history and all(torch.equal(v, s.model.state_dict()[k]) for k, v in before.items())


def test_compare_toggle_opens_the_comparison_in_place(wb):
    wb.compare_toggle.value = True
    assert wb.lockstep is not None and wb.compare_box.layout.display == ""
    assert wb.main.layout.display == "none" and wb.tabs.layout.display == "none"
    wb.present.value = True
    assert "wb-present" in wb.comparison_view.widget._dom_classes
    wb.compare_toggle.value = False
    assert wb.compare_box.layout.display == "none" and wb.main.layout.display == ""


def test_a_missing_comparison_model_is_said_in_words(tiny_model_dir, fashion_small, tmp_path):
    p = app(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu", probe_views=0,
            baseline=tmp_path / "no-such-model", output_dir=tmp_path / "out")
    p.compare_toggle.value = True
    assert not p.compare_toggle.value and p.lockstep is None and p.main.layout.display == ""
    assert p.messages.level == "error" and "no-such-model" in p.messages.text


def test_app_settings_from_the_environment(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="WORKBENCH_APP_LIMIT='ten' is not a positive whole number"):
        app_from_env({ENV["limit"]: "ten"})
    with pytest.raises(ValueError, match="WORKBENCH_APP_LESSON='maybe' is not a yes/no value"):
        app_from_env({ENV["lesson"]: "maybe"})
    with pytest.raises(TypeError):
        app(tiny_model_dir, limit=LIMIT, no_such_option=1)
    p = app_from_env({ENV["model"]: str(tiny_model_dir), ENV["limit"]: "120", ENV["presentation"]: "1",
                      ENV["lesson"]: "yes", ENV["output"]: str(tmp_path / "out")})
    assert isinstance(p, AppWorkbench) and len(p.session.labels) == 120
    assert p.presentation and p.lesson_toggle.value and p.history.output_dir == tmp_path / "out"


def test_the_list_growing_while_the_base_model_is_scored_marks_nothing_new(tmp_path):
    from tests.support.progressive import held_session
    from workbench.widgets.picks import typical_first
    from workbench.widgets.workbench import Workbench

    s, gate = held_session(tmp_path)
    wb = Workbench(s, probe_views=0, page_size=4)
    first = {e.index for e in wb.browser.errors}
    gate.release.set()
    assert s.wait_scored(30)
    wb.controller.sync()  # the updates the scoring thread queued
    b, errors = wb.browser, s.current_errors()
    assert len(errors) > len(first) and b.listing.count("new") == 0  # base mistakes, none of them new
    assert [e.index for e in b.visible] == [e.index for e in typical_first(errors)]  # sorted as a whole
