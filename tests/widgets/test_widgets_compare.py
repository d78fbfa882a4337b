"""The Comparison (baseline vs editable, the same edits on both): simulated clicks.

The two models are the tiny trained model and a copy of it with one edit exported, so
their mistakes differ; 300 test images.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from tests.support.settings import LIMIT, LR  # noqa: E402
from workbench.widgets import Comparison  # noqa: E402


@pytest.fixture(scope="module")
def edited_dir(tiny_model_dir, fashion_small, tmp_path_factory):
    """The tiny model with one edit applied, exported as a model folder."""
    from workbench.session import EditSession

    s = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=LIMIT, device="cpu")
    wrong = s.evaluator.misclassified()[-1]
    assert s.edit_index(wrong.index, wrong.true, lr=LR).success
    out = tmp_path_factory.mktemp("edited") / "tiny-edited"
    s.export(out)
    return out


@pytest.fixture()
def cmp(tiny_model_dir, edited_dir, fashion_small):
    c = Comparison.from_checkpoints(tiny_model_dir, edited_dir, bundle=fashion_small, limit=LIMIT, device="cpu")
    c.panel.lr.value = LR
    return c


def _wrong(c: Comparison) -> list[set[int]]:
    return [{e.index for e in s.session.current_errors()} for s in c.sides]


def _open(c: Comparison, index: int):
    """Click image ``index`` in the error browser (sorted by index, paged until it shows); returns its cell."""
    b = c.browser
    b.sort.value = "index"
    for page in range(b.pages):
        b.go_to(page)
        cell = next((x for x in b.cells if x.index == index and x.box.layout.visibility == "visible"), None)
        if cell is not None:
            cell.button.click()
            assert c.messages.level != "error", c.messages.text
            return cell
    raise AssertionError(f"#{index} is not listed in the error browser")


def _edit_true(c: Comparison, index: int) -> None:
    """Select ``index`` on both sides, target its true label, Edit (the lockstep's actions)."""
    c.lockstep.select(index)
    c.lockstep.set_target(int(c.sides[0].session.labels[index]))
    c.lockstep.edit()
    assert c.messages.level != "error", c.messages.text


def _params(c: Comparison) -> list[dict[str, torch.Tensor]]:
    return [{k: v.clone() for k, v in s.session.model.state_dict().items()} for s in c.sides]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _both_fixable(c: Comparison, n: int) -> list[int]:
    """Images both models get wrong whose edit succeeds on both (checked on the sessions, then undone)."""
    left, right = _wrong(c)
    out = []
    cfg = c.panel.config.resolved()
    for i in sorted(left & right):
        ok = []
        for s in c.sides:
            ses = s.session
            res = ses.edit_index(i, int(ses.labels[i]), cfg, score=False)
            ok.append(res.success and res.steps > 0)
            ses.reset()  # history and redo stack empty again
        if all(ok):
            out.append(i)
        if len(out) == n:
            return out
    raise AssertionError(f"fewer than {n} images that both models get wrong and the editor fixes on both")


def test_summary_row_with_both_cards_and_the_verdict_is_at_the_top(cmp):
    kids = list(cmp.widget.children)
    summary = next(w for w in kids if "wb-compare-summary" in w._dom_classes)
    browser = kids.index(cmp.browser.widget)
    panel = next(k for k, w in enumerate(kids) if cmp.panel.widget in getattr(w, "children", ()))
    assert kids.index(summary) < panel < browser  # above the controls and the error browser
    cards, verdict = summary.children
    assert verdict is cmp.verdict
    assert [box.children[1] for box in cards.children] == [s.card.widget for s in cmp.sides]  # side by side


def test_error_browser_lists_the_union_and_an_image_only_the_editable_model_gets_wrong(cmp):
    left, right = _wrong(cmp)
    assert {e.index for e in cmp.browser.errors} == left | right
    only_right = sorted(right - left)
    assert only_right, "the edited copy should get some image wrong that the base model gets right"
    i = only_right[0]
    assert f"only {cmp.names[1]} wrong" in _open(cmp, i).caption.value  # listed, saying which model errs
    both = sorted(left & right)[0]
    assert "both wrong" in _open(cmp, both).caption.value
    _edit_true(cmp, i)
    base, editable = cmp.sides
    assert base.controller.selection.index == editable.controller.selection.index == i
    assert base.card.status == "noop" and "Nothing to fix" in base.card.widget.value
    assert editable.card.status in ("fixed", "costly", "failed")
    assert not base.session.history  # nothing was pushed on the side that needed no edit
    assert "no edit needed" in cmp.verdict.value and "wb-verdict-final" in cmp.verdict.value
    if editable.session.history:
        cost = editable.session.history[-1].step_report.drawdown * 100
        assert f"{cost:+.2f} pp".replace("-", "−") in cmp.verdict.value
        assert f"{cmp.names[0]} paid less" in cmp.verdict.value or "paid the same" in cmp.verdict.value \
            or cost < 0


def test_attribution_shows_for_both_models_and_follows_the_edit(cmp):
    i, = _both_fixable(cmp, 1)
    cmp.lockstep.select(i)
    before = [s.attribution.result for s in cmp.sides]
    assert all(r is not None for r in before)
    assert all(f"#{i}" in s.attribution.info.value for s in cmp.sides)
    cmp.lockstep.set_target(int(cmp.sides[0].session.labels[i]))
    cmp.lockstep.edit()
    assert all(s.session.history for s in cmp.sides)
    for s, old in zip(cmp.sides, before):
        assert s.attribution.result is not old  # recomputed with the edited weights
        assert s.attribution.image.value


def test_both_outcome_cards_show_before_either_side_does_its_slow_work(cmp):
    i, = _both_fixable(cmp, 1)
    cmp.lockstep.select(i)
    cmp.lockstep.set_target(int(cmp.sides[0].session.labels[i]))
    order: list[str] = []  # what each side's panels showed, in the order the front end receives it

    def note(tag: str) -> None:
        if tag not in order:
            order.append(tag)
    for name, side in zip("LR", cmp.sides):
        def on_card(_change, card=side.card, name=name) -> None:
            for part in ("detail", "estimate", "exact"):
                if card.parts.get(part):
                    note(f"{part} {name}")
        side.card.widget.observe(on_card, names="value")
        side.attribution.image.observe(lambda _c, name=name: note(f"attribution {name}"), names="value")
    verdicts: list[str] = []
    cmp.verdict.observe(lambda c: verdicts.append(c["new"]), names="value")
    cmp.lockstep.edit()
    assert order[:2] == ["detail L", "detail R"]  # both outcomes (fixed, steps) first
    assert order[2:4] == ["estimate L", "estimate R"]
    assert order[4:6] == ["exact L", "exact R"]
    assert set(order[6:]) == {"attribution L", "attribution R"}
    left, right = (s.session.history[-1].step_report.drawdown * 100 for s in cmp.sides)
    assert "wb-verdict-final" in cmp.verdict.value
    for v in (left, right):
        assert f"{v:+.2f} pp".replace("-", "−") in cmp.verdict.value
    who = "paid the same" if abs(left - right) < 0.005 else f"{cmp.names[0 if left < right else 1]} paid less"
    assert who in cmp.verdict.value
    # the verdict so far: the outcomes, then the estimates (marked as such), then the exact figures
    assert len(verdicts) == 3 and all("wb-verdict-pending" in v for v in verdicts[:2])
    assert "Fixed" in verdicts[0] and "≈" in verdicts[1] and "estimate" in verdicts[1]
    assert verdicts[2] == cmp.verdict.value and "≈" not in verdicts[2]


def test_a_failed_edit_on_one_side_shows_as_failed_and_the_verdict_has_no_stale_figure(cmp):
    first, *others = _both_fixable(cmp, 4)
    _edit_true(cmp, first)
    # the first edit may have fixed some of the others: take one both models still get wrong
    second = next(i for i in others if all(i in wrong for wrong in _wrong(cmp)))
    old = [s.session.history[-1].step_report.drawdown * 100 for s in cmp.sides]
    assert f"{old[1]:+.2f} pp".replace("-", "−") in cmp.verdict.value
    right = cmp.sides[1].session
    real = right.edit

    def crippled(x, y, config=None, **kw):  # the real editor, with a step size that cannot get there
        return real(x, y, dataclasses.replace(config, lr=1e-12, max_steps=1), **kw)
    right.edit = crippled
    _edit_true(cmp, second)
    right.edit = real
    base, editable = cmp.sides
    assert base.card.status in ("fixed", "costly") and editable.card.status == "failed"
    assert "Not fixed" in editable.card.widget.value and "unchanged" in editable.card.widget.value
    assert len(base.session.history) == 2 and len(right.history) == 1
    v = cmp.verdict.value
    assert "wb-verdict-final" in v and "Not fixed" in v and cmp.names[1] in v and "No cost to compare" in v
    assert "paid less" not in v
    new_left = base.session.history[-1].step_report.drawdown * 100
    assert f"{new_left:+.2f} pp".replace("-", "−") in v
    assert f"{cmp.names[1]} {old[1]:+.2f} pp".replace("-", "−") not in v.split("<br>")[0]  # the old click's figure
    assert "changed nothing" in editable.metrics.heading.value  # its details say they are the edit before
    # Undo takes back this click's edit only where one was applied: both sides back at one edit each
    cmp.lockstep.undo()
    assert [len(s.session.history) for s in cmp.sides] == [1, 1]
    assert "Undone" in cmp.verdict.value and "1 edit still applied" in cmp.verdict.value
    cmp.lockstep.undo()
    assert [len(s.session.history) for s in cmp.sides] == [0, 0]
    assert cmp.panel.buttons["undo"].disabled and not cmp.panel.buttons["redo"].disabled


def test_undo_redo_keep_both_sides_in_step_bit_for_bit(cmp):
    base_state = _params(cmp)
    i, = _both_fixable(cmp, 1)
    _edit_true(cmp, i)
    edited, verdict = _params(cmp), cmp.verdict.value
    assert all(len(s.session.history) == 1 for s in cmp.sides)
    assert not any(_same(a, b) for a, b in zip(edited, base_state))
    cmp.lockstep.undo()
    assert all(_same(a, b) for a, b in zip(_params(cmp), base_state))
    assert all(s.card.status == "history" for s in cmp.sides)
    assert "No edit is applied" in cmp.verdict.value and "paid" not in cmp.verdict.value
    assert {e.index for e in cmp.browser.errors} == set.union(*_wrong(cmp))
    cmp.lockstep.redo()
    assert all(_same(a, b) for a, b in zip(_params(cmp), edited))
    assert "Redone" in cmp.verdict.value and verdict in cmp.verdict.value  # the same figures as before
    assert {e.index for e in cmp.browser.errors} == set.union(*_wrong(cmp))
    cmp.lockstep.reset()
    assert all(_same(a, b) for a, b in zip(_params(cmp), base_state))
    assert cmp.panel.buttons["undo"].disabled and cmp.panel.buttons["redo"].disabled


def test_edit_with_nothing_selected_says_so_and_changes_nothing(cmp):
    cmp.panel.buttons["edit"].click()
    assert cmp.messages.level == "error" and "pick an image" in cmp.messages.text
    assert not any(s.session.history for s in cmp.sides)
    assert all(s.card.status == "empty" for s in cmp.sides)


def test_an_error_on_the_second_side_takes_the_first_sides_edit_back(cmp):
    base_state = _params(cmp)
    first, i = _both_fixable(cmp, 2)
    _edit_true(cmp, first)
    cmp.lockstep.undo()
    assert not cmp.panel.buttons["redo"].disabled
    right = cmp.sides[1].session

    def refuse(*_a, **_kw):  # e.g. that session busy with another action
        raise ValueError("the session is busy with an edit; wait for it to finish, then try again")
    right.edit = refuse
    cmp.lockstep.select(i)
    cmp.lockstep.set_target(int(right.labels[i]))
    cmp.panel.buttons["edit"].click()  # the click: its error goes beside the button
    assert cmp.messages.level == "error" and "busy" in cmp.messages.text
    assert not any(s.session.history for s in cmp.sides)
    assert all(_same(a, b) for a, b in zip(_params(cmp), base_state))
    # the first side's redo stack now has the taken-back edit on top, so the earlier undone
    # click cannot be redone in step: Redo is off
    assert cmp.panel.buttons["undo"].disabled and cmp.panel.buttons["redo"].disabled
