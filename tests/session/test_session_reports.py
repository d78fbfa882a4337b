"""EditSession with an Evaluator: cumulative and per-step reports, from_checkpoint, rescoring
after load, and the export card's metrics."""
from __future__ import annotations

import pytest
import torch

from tests.support.settings import CFG
from workbench.editing import EditorConfig
from tests.support.weights import runner_up
from workbench.evaluation import Evaluator
from workbench.models import predict_logits
from workbench.session import EditSession
from workbench.training import load_model, read_card

@pytest.fixture()
def opened(tiny_model_dir, fashion_small):
    """A session opened from the tiny model folder (``from_checkpoint``) on 300 test images."""
    return EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=300, config=CFG)


def model_preds(opened: EditSession) -> torch.Tensor:
    """Predictions of ``session.model`` itself (a plain forward) on the evaluator's split."""
    ev = opened.evaluator
    assert ev is not None
    return predict_logits(opened.model, ev.images(list(range(len(ev))))).argmax(1)


def test_from_checkpoint_builds_an_evaluator_on_the_split(opened, fashion_small):
    ev = opened.evaluator
    assert isinstance(ev, Evaluator) and len(ev) == 300 and opened.num_examples == 300
    assert torch.equal(ev.labels, fashion_small.test_y[:300])
    assert torch.equal(opened.image(5).cpu(), fashion_small.normalize(fashion_small.test_x[5:6])[0])
    assert opened.card == read_card(opened.checkpoint) and not opened.model.training
    assert opened.current_report() is None


def test_cumulative_and_step_reports_are_consistent(opened):
    ev = opened.evaluator
    assert opened.edit_index(0, runner_up(opened, 0)).success
    r1 = opened.history[0]
    assert torch.equal(r1.report.preds_after, model_preds(opened))
    # the first edit alone is measured against the base: both reports agree
    assert torch.equal(r1.step_report.preds_after, r1.report.preds_after)
    assert r1.step_report.error_before == r1.report.error_before == ev.base_error
    assert opened.edit_index(1, runner_up(opened, 1)).success
    r2 = opened.history[1]
    assert torch.equal(r2.report.preds_after, model_preds(opened))
    assert r2.report.error_before == ev.base_error
    assert r2.report.drawdown == pytest.approx(r2.report.error_after - ev.base_error)
    assert r2.step_report.error_before == pytest.approx(r1.report.error_after)
    assert r2.step_report.drawdown == pytest.approx(r2.report.error_after - r1.report.error_after)
    assert r2.report.drawdown == pytest.approx(r1.report.drawdown + r2.step_report.drawdown)
    changed = (r2.report.preds_after != r1.report.preds_after).nonzero().flatten()
    assert torch.equal(r2.step_report.flipped, changed)
    assert opened.current_report() is r2.report
    opened.undo()
    assert opened.current_report() is r1.report and torch.equal(r1.report.preds_after, model_preds(opened))
    opened.redo()
    assert opened.current_report() is r2.report


def test_batch_edit_report_counts_the_edited_images(opened):
    idx = [int(m.index) for m in opened.evaluator.misclassified()[:3]]
    true = [int(opened.evaluator.labels[i]) for i in idx]
    assert opened.edit_index(idx, true).success
    rep = opened.current_report()
    assert rep.preds_after[idx].tolist() == true
    assert set(idx) <= set(rep.flipped.tolist())  # all three were wrong before and right now


def test_failed_edit_gets_no_report(opened):
    res = opened.edit_index(0, runner_up(opened, 0), EditorConfig(lr=0.0, max_steps=1))
    assert not res.success and opened.attempts[0].report is None and opened.current_report() is None


def test_load_rescores_to_the_same_reports(opened, tmp_path, tiny_model_dir, fashion_small):
    opened.edit_index(0, runner_up(opened, 0))
    opened.edit_index(1, runner_up(opened, 1))
    opened.undo()
    opened.save(tmp_path / "h")
    fresh = EditSession.load(tmp_path / "h", tiny_model_dir, bundle=fashion_small, limit=300)
    assert torch.equal(fresh.current_report().preds_after, opened.current_report().preds_after)
    fresh.redo(), opened.redo()
    a, b = fresh.history[-1], opened.history[-1]
    assert torch.equal(a.report.preds_after, b.report.preds_after)
    assert a.step_report.error_before == pytest.approx(b.step_report.error_before)


def test_export_card_records_the_edited_error(opened, tmp_path):
    opened.edit_index(0, runner_up(opened, 0))
    model, card = load_model(opened.export(tmp_path / "edited"))
    assert card["edited_eval"]["error_after"] == opened.current_report().error_after
    assert card["edits"][0]["drawdown"] == opened.current_report().drawdown
    ev = Evaluator(model, opened.bundle, limit=300)  # the exported model scores like the opened
    assert ev.base_error == opened.current_report().error_after


def test_generalization_and_attribution_compare_with_the_state_before_the_last_edit(opened):
    wrong = opened.evaluator.misclassified()[0]
    assert opened.edit_index(wrong.index, wrong.true).success
    rep = opened.generalization(n_views=8)
    assert rep.targets == (wrong.true,) and 0.0 <= rep.before <= 1.0 and 0.0 <= rep.after <= 1.0
    s = opened.explain(wrong.index, method="Saliency", against="last")
    assert s.labels == (wrong.pred, wrong.true)
    assert int(s.probs_before.argmax()) == wrong.pred and int(s.probs_after.argmax()) == wrong.true
    with pytest.raises(ValueError, match="against"):
        opened.generalization(against="yesterday")
    opened.undo()
    with pytest.raises(ValueError, match="no edit"):
        opened.explain(0, against="last")


def test_load_restores_saved_reports_without_scoring(opened, tmp_path, tiny_model_dir, fashion_small, monkeypatch):
    opened.edit_index(0, runner_up(opened, 0))
    opened.edit_index(1, runner_up(opened, 1))
    opened.save(tmp_path / "h")
    fresh = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=300)

    def no_scoring(*a, **k):
        raise AssertionError("the saved predictions should have been used")

    monkeypatch.setattr(fresh.evaluator, "score", no_scoring)
    fresh.load_history(tmp_path / "h")
    for a, b in zip(fresh.history, opened.history):
        for ra, rb in ((a.report, b.report), (a.step_report, b.step_report)):
            assert torch.equal(ra.preds_after, rb.preds_after) and torch.equal(ra.flipped, rb.flipped)
            assert ra.error_before == rb.error_before and ra.error_after == rb.error_after
            torch.testing.assert_close(ra.per_class_error_after, rb.per_class_error_after, equal_nan=True)


def test_load_on_another_split_size_rescores(opened, tmp_path, tiny_model_dir, fashion_small):
    opened.edit_index(0, runner_up(opened, 0))
    opened.save(tmp_path / "h")
    fresh = EditSession.load(tmp_path / "h", tiny_model_dir, bundle=fashion_small, limit=120)
    rep = fresh.current_report()
    assert len(rep.preds_after) == 120 and torch.equal(rep.preds_after, model_preds(fresh))


def test_corrupted_saved_predictions_are_refused(opened, tmp_path):
    opened.edit_index(0, runner_up(opened, 0))
    opened.save(tmp_path / "h")
    f = next((tmp_path / "h" / "reports").iterdir())
    f.write_bytes(f.read_bytes()[:-5])
    opened.undo()
    with pytest.raises(ValueError, match="corrupted"):
        opened.load_history(tmp_path / "h")
    assert opened.history == [] and opened.can_redo
