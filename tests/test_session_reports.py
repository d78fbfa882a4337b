"""EditSession with an Evaluator: cumulative and per-step reports, from_checkpoint, rescoring
after load, and the export card's metrics."""
from __future__ import annotations

import pytest
import torch

from workbench.editing import EditorConfig
from workbench.evaluation import Evaluator
from workbench.models import predict_logits
from workbench.session import EditSession
from workbench.training import load_model, read_card

CFG = EditorConfig(method="rmsprop", lr=2e-2, max_steps=20)


def runner_up(session: EditSession, i: int) -> int:
    return int(session.probabilities(i).argsort(descending=True)[1])


@pytest.fixture()
def session(tiny_model_dir, fashion_small):
    return EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=300, config=CFG)


def model_preds(session: EditSession) -> torch.Tensor:
    """Predictions of ``session.model`` itself (a plain forward) on the evaluator's split."""
    ev = session.evaluator
    assert ev is not None
    return predict_logits(session.model, ev.images(list(range(len(ev))))).argmax(1)


def test_from_checkpoint_builds_an_evaluator_on_the_split(session, fashion_small):
    ev = session.evaluator
    assert isinstance(ev, Evaluator) and len(ev) == 300 and session.num_examples == 300
    assert torch.equal(ev.labels, fashion_small.test_y[:300])
    assert torch.equal(session.image(5).cpu(), fashion_small.normalize(fashion_small.test_x[5:6])[0])
    assert session.card == read_card(session.checkpoint) and not session.model.training
    assert session.current_report() is None


def test_cumulative_and_step_reports_are_consistent(session):
    ev = session.evaluator
    assert session.edit_index(0, runner_up(session, 0)).success
    r1 = session.history[0]
    assert torch.equal(r1.report.preds_after, model_preds(session))
    # the first edit alone is measured against the base: both reports agree
    assert torch.equal(r1.step_report.preds_after, r1.report.preds_after)
    assert r1.step_report.error_before == r1.report.error_before == ev.base_error
    assert session.edit_index(1, runner_up(session, 1)).success
    r2 = session.history[1]
    assert torch.equal(r2.report.preds_after, model_preds(session))
    assert r2.report.error_before == ev.base_error
    assert r2.report.drawdown == pytest.approx(r2.report.error_after - ev.base_error)
    assert r2.step_report.error_before == pytest.approx(r1.report.error_after)
    assert r2.step_report.drawdown == pytest.approx(r2.report.error_after - r1.report.error_after)
    assert r2.report.drawdown == pytest.approx(r1.report.drawdown + r2.step_report.drawdown)
    changed = (r2.report.preds_after != r1.report.preds_after).nonzero().flatten()
    assert torch.equal(r2.step_report.flipped, changed)
    assert session.current_report() is r2.report
    session.undo()
    assert session.current_report() is r1.report and torch.equal(r1.report.preds_after, model_preds(session))
    session.redo()
    assert session.current_report() is r2.report


def test_batch_edit_report_counts_the_edited_images(session):
    idx = [int(m.index) for m in session.evaluator.misclassified()[:3]]
    true = [int(session.evaluator.labels[i]) for i in idx]
    assert session.edit_index(idx, true).success
    rep = session.current_report()
    assert rep.preds_after[idx].tolist() == true
    assert set(idx) <= set(rep.flipped.tolist())  # all three were wrong before and right now


def test_failed_edit_gets_no_report(session):
    res = session.edit_index(0, runner_up(session, 0), EditorConfig(lr=0.0, max_steps=1))
    assert not res.success and session.attempts[0].report is None and session.current_report() is None


def test_load_rescores_to_the_same_reports(session, tmp_path, tiny_model_dir, fashion_small):
    session.edit_index(0, runner_up(session, 0))
    session.edit_index(1, runner_up(session, 1))
    session.undo()
    session.save(tmp_path / "h")
    fresh = EditSession.load(tmp_path / "h", tiny_model_dir, bundle=fashion_small, limit=300)
    assert torch.equal(fresh.current_report().preds_after, session.current_report().preds_after)
    fresh.redo(), session.redo()
    a, b = fresh.history[-1], session.history[-1]
    assert torch.equal(a.report.preds_after, b.report.preds_after)
    assert a.step_report.error_before == pytest.approx(b.step_report.error_before)


def test_export_card_records_the_edited_error(session, tmp_path):
    session.edit_index(0, runner_up(session, 0))
    model, card = load_model(session.export(tmp_path / "edited"))
    assert card["edited_eval"]["error_after"] == session.current_report().error_after
    assert card["edits"][0]["drawdown"] == session.current_report().drawdown
    ev = Evaluator(model, session.bundle, limit=300)  # the exported model scores like the session
    assert ev.base_error == session.current_report().error_after


def test_generalization_and_attribution_compare_with_the_state_before_the_last_edit(session):
    wrong = session.evaluator.misclassified()[0]
    assert session.edit_index(wrong.index, wrong.true).success
    rep = session.generalization(n_views=8)
    assert rep.targets == (wrong.true,) and 0.0 <= rep.before <= 1.0 and 0.0 <= rep.after <= 1.0
    s = session.explain(wrong.index, method="Saliency", against="last")
    assert s.labels == (wrong.pred, wrong.true)
    assert int(s.probs_before.argmax()) == wrong.pred and int(s.probs_after.argmax()) == wrong.true
    with pytest.raises(ValueError, match="against"):
        session.generalization(against="yesterday")
    session.undo()
    with pytest.raises(ValueError, match="no edit"):
        session.explain(0, against="last")


def test_load_restores_saved_reports_without_scoring(session, tmp_path, tiny_model_dir, fashion_small, monkeypatch):
    session.edit_index(0, runner_up(session, 0))
    session.edit_index(1, runner_up(session, 1))
    session.save(tmp_path / "h")
    fresh = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=300)

    def no_scoring(*a, **k):
        raise AssertionError("the saved predictions should have been used")

    monkeypatch.setattr(fresh.evaluator, "score", no_scoring)
    fresh.load_history(tmp_path / "h")
    for a, b in zip(fresh.history, session.history):
        for ra, rb in ((a.report, b.report), (a.step_report, b.step_report)):
            assert torch.equal(ra.preds_after, rb.preds_after) and torch.equal(ra.flipped, rb.flipped)
            assert ra.error_before == rb.error_before and ra.error_after == rb.error_after
            torch.testing.assert_close(ra.per_class_error_after, rb.per_class_error_after, equal_nan=True)


def test_load_on_another_split_size_rescores(session, tmp_path, tiny_model_dir, fashion_small):
    session.edit_index(0, runner_up(session, 0))
    session.save(tmp_path / "h")
    fresh = EditSession.load(tmp_path / "h", tiny_model_dir, bundle=fashion_small, limit=120)
    rep = fresh.current_report()
    assert len(rep.preds_after) == 120 and torch.equal(rep.preds_after, model_preds(fresh))


def test_corrupted_saved_predictions_are_refused(session, tmp_path):
    session.edit_index(0, runner_up(session, 0))
    session.save(tmp_path / "h")
    f = next((tmp_path / "h" / "reports").iterdir())
    f.write_bytes(f.read_bytes()[:-5])
    session.undo()
    with pytest.raises(ValueError, match="corrupted"):
        session.load_history(tmp_path / "h")
    assert session.history == [] and session.can_redo
