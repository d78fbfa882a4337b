"""EditSession: undo/redo/reset bit-exactness, failed and rejected edits, batch edits,
save/load (bit for bit in a fresh session), autosave, corrupted histories, export."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.settings import CFG, FAIL
from tests.support.weights import runner_up, same_weights, weights
from workbench.session import EditSession
from workbench.training import load_model, read_card

def test_undo_redo_reset_are_bit_exact(session):
    s0 = weights(session.model)
    r1 = session.edit_index(0, runner_up(session, 0))
    s1 = weights(session.model)
    r2 = session.edit_index(1, runner_up(session, 1))
    s2 = weights(session.model)
    assert r1.success and r2.success and not same_weights(s0, s1) and not same_weights(s1, s2)
    assert session.undo().result is r2 and same_weights(weights(session.model), s1)
    assert session.undo().result is r1 and same_weights(weights(session.model), s0)
    assert not session.can_undo and session.can_redo
    assert session.redo().result is r1 and same_weights(weights(session.model), s1)
    assert session.redo().result is r2 and same_weights(weights(session.model), s2)
    assert not session.model.training
    session.reset()
    assert same_weights(weights(session.model), s0) and not session.can_undo and not session.can_redo


def test_edit_changes_prediction_and_records_it(session):
    t = runner_up(session, 3)
    res = session.edit_index(3, t)
    assert res.success and int(session.probabilities(3).argmax()) == t
    rec = session.history[-1]
    assert rec.index == 3 and rec.target == t and rec.result is res
    assert set(session.edited_names()) == set(res.after)
    assert all(torch.equal(session.params_at(0)[n], res.before[n]) for n in res.before)
    assert all(torch.equal(session.params_at(1)[n], res.after[n]) for n in res.after)


def test_group_names_the_edit_group_as_layers_does(session):
    t = runner_up(session, 3)
    res = session.edit_index(3, t, group="head")
    assert res.success and session.history[-1].result.config.layers == "head"
    assert set(res.after) == set(session.adapter.params("head"))


def test_failed_edit_leaves_weights_and_stack_unchanged(session):
    session.edit_index(0, runner_up(session, 0))
    session.undo()
    s = weights(session.model)
    res = session.edit_index(2, runner_up(session, 2), FAIL)
    assert not res.success and res.steps == 2
    assert same_weights(weights(session.model), s)
    assert session.history == [] and session.can_redo  # a failed edit does not clear redo
    assert len(session.attempts) == 1
    kept = session.attempts[0].result  # a summary: the outcome without the tensors
    assert (kept.steps, kept.losses, kept.message, kept.before, kept.after) == (res.steps, res.losses, res.message, {}, {})
    assert res.after  # the caller's result still holds them


def test_new_edit_clears_redo(session):
    session.edit_index(0, runner_up(session, 0))
    session.undo()
    assert session.can_redo
    session.edit_index(1, runner_up(session, 1))
    assert not session.can_redo and len(session.history) == 1
    with pytest.raises(ValueError, match="nothing to redo"):
        session.redo()


def test_batch_edit_is_one_record(session):
    idx = [4, 5, 6]
    targets = [runner_up(session, i) for i in idx]
    s0 = weights(session.model)
    res = session.edit_index(idx, targets)
    assert res.success and res.y_ref == tuple(targets)
    assert session.probabilities(session.image(idx)).argmax(1).tolist() == targets
    rec = session.history[-1]
    assert rec.index == tuple(idx) and rec.target == tuple(targets) and len(session.history) == 1
    session.undo()
    assert same_weights(weights(session.model), s0)


@pytest.mark.parametrize("call, err", [
    (lambda s: s.edit(torch.zeros(3, 28, 28), 1), ValueError),             # wrong shape
    (lambda s: s.edit(torch.zeros(1, 28, 28, dtype=torch.uint8), 1), TypeError),  # not normalised
    (lambda s: s.edit(s.image(0), 10), ValueError),                        # label out of range
    (lambda s: s.edit(s.image([0, 1]), [1]), ValueError),                  # labels != images
    (lambda s: s.edit(s.image(0), 1, layers="chain9"), ValueError),        # unknown group
    (lambda s: s.edit(s.image(0), 1, group="chain9"), ValueError),         # unknown group, group= spelling
    (lambda s: s.edit(s.image(0), 1, group="head", layers="head"), TypeError),  # the group given twice
    (lambda s: s.edit(s.image(0), 1, lr=float("nan")), ValueError),        # bad hyperparameter
    (lambda s: s.edit_index(10_000, 1), ValueError),                       # index out of range
])
def test_bad_input_raises_and_changes_nothing(session, call, err):
    session.edit_index(0, runner_up(session, 0))
    s, hist = weights(session.model), list(session.history)
    with pytest.raises(err):
        call(session)
    assert same_weights(weights(session.model), s) and session.history == hist and session.attempts == []


def test_undo_and_redo_on_empty_stacks_raise(session):
    s = weights(session.model)
    with pytest.raises(ValueError, match="nothing to undo"):
        session.undo()
    with pytest.raises(ValueError, match="nothing to redo"):
        session.redo()
    assert same_weights(weights(session.model), s)


def test_undo_refuses_when_weights_were_changed_behind_its_back(session):
    session.edit_index(0, runner_up(session, 0))
    name = next(iter(session.history[-1].result.after))
    with torch.no_grad():
        dict(session.model.named_parameters())[name].add_(1.0)
    s = weights(session.model)
    with pytest.raises(ValueError, match="does not hold the weights"):
        session.undo()
    assert same_weights(weights(session.model), s) and len(session.history) == 1


def _edit_a_few(session: EditSession) -> None:
    assert session.edit_index(0, runner_up(session, 0)).success
    assert session.edit_index([1, 2], [runner_up(session, 1), runner_up(session, 2)]).success
    assert session.edit_index(3, runner_up(session, 3)).success
    session.undo()                                        # keep one on the redo stack
    session.edit_index(4, runner_up(session, 4), FAIL)    # and one failed attempt


def test_save_load_round_trip_in_a_fresh_session(session, tiny_model_dir, fashion_small, tmp_path):
    _edit_a_few(session)
    session.save(tmp_path / "h")
    fresh = EditSession.load(tmp_path / "h", tiny_model_dir, bundle=fashion_small, limit=200)
    assert same_weights(weights(fresh.model), weights(session.model))
    assert [r.target for r in fresh.history] == [r.target for r in session.history]
    assert [r.index for r in fresh.history] == [r.index for r in session.history]
    assert len(fresh.attempts) == 1 and not fresh.attempts[0].result.success
    assert fresh.history[-1].result.config == session.history[-1].result.config
    # redo and undo go through the same states in both sessions
    fresh.redo(), session.redo()
    assert same_weights(weights(fresh.model), weights(session.model))
    for _ in range(3):
        fresh.undo(), session.undo()
        assert same_weights(weights(fresh.model), weights(session.model))
    assert same_weights(weights(fresh.model), fresh.base_state)


def test_autosave_after_every_change(session, tmp_path, tiny_model_dir, fashion_small):
    folder = tmp_path / "auto"
    session.autosave_dir = folder

    def counts() -> tuple[int, int, int]:
        doc = json.loads((folder / "history.json").read_text())
        return len(doc["applied"]), len(doc["redo"]), len(doc["attempts"])

    session.edit_index(0, runner_up(session, 0))
    assert counts() == (1, 0, 0)
    session.edit_index(1, runner_up(session, 1), FAIL)
    assert counts() == (1, 0, 1)
    session.edit_index(2, runner_up(session, 2))
    assert counts() == (2, 0, 1)
    session.undo()
    assert counts() == (1, 1, 1)
    session.redo()
    assert counts() == (2, 0, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto"]  # no temporary folders left
    after_two = weights(session.model)
    session.reset()
    assert counts() == (0, 0, 1)
    assert len(list((folder / "edits").iterdir())) == 0
    # a new session on the same folder must not silently overwrite it
    with pytest.raises(ValueError, match="resume"):
        EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=200, autosave_dir=folder)
    s2 = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=200, autosave_dir=folder,
                                     resume=True)
    assert same_weights(weights(s2.model), s2.base_state) and len(s2.attempts) == 1 and not s2.can_redo
    assert not same_weights(after_two, s2.base_state)  # the edits did change the weights before the reset


def test_resume_restores_weights_bit_for_bit(session, tmp_path, tiny_model_dir, fashion_small):
    folder = tmp_path / "auto"
    session.autosave_dir = folder
    _edit_a_few(session)
    s2 = EditSession.from_checkpoint(tiny_model_dir, bundle=fashion_small, limit=200, autosave_dir=folder,
                                     resume=True)
    assert same_weights(weights(s2.model), weights(session.model)) and s2.can_redo


def _corrupt_delete(folder: Path) -> None:
    next((folder / "edits").iterdir()).unlink()


def _corrupt_json(folder: Path) -> None:
    (folder / "history.json").write_text('{"format": "editable-workbench-history", "applied": [')


def _corrupt_bytes(folder: Path) -> None:
    f = next((folder / "edits").iterdir())
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))


def _rewrite_first(folder: Path, change) -> None:
    """Rewrite the first edit's tensors with ``change`` and fix the recorded hash, so that
    only the content check can catch it."""
    import hashlib

    doc = json.loads((folder / "history.json").read_text())
    e = doc["applied"][0]
    tensors = change(load_file(str(folder / e["file"])))
    save_file(tensors, str(folder / e["file"]))
    e["sha256"] = hashlib.sha256((folder / e["file"]).read_bytes()).hexdigest()
    e["params"] = list(tensors)
    (folder / "history.json").write_text(json.dumps(doc))


def _corrupt_shape(folder: Path) -> None:
    _rewrite_first(folder, lambda t: {k: (torch.zeros(3, 3) if i == 0 else v) for i, (k, v) in enumerate(t.items())})


def _corrupt_name(folder: Path) -> None:
    _rewrite_first(folder, lambda t: {("chain9.weight" if i == 0 else k): v for i, (k, v) in enumerate(t.items())})


def _corrupt_base(folder: Path) -> None:
    doc = json.loads((folder / "history.json").read_text())
    doc["base_sha256"] = "0" * 64
    (folder / "history.json").write_text(json.dumps(doc))


def _corrupt_config(folder: Path) -> None:
    doc = json.loads((folder / "history.json").read_text())
    doc["applied"][0]["config"]["method"] = "newton"
    (folder / "history.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("corrupt, match", [
    (_corrupt_delete, "missing"), (_corrupt_json, "not valid JSON"), (_corrupt_bytes, "corrupted"),
    (_corrupt_shape, "shape"), (_corrupt_name, "does not have"), (_corrupt_base, "different base weights"),
    (_corrupt_config, "field .config. .*unknown editor .newton."), (lambda f: shutil.rmtree(f), "missing"),
])
def test_corrupted_history_raises_and_leaves_session_unchanged(session, tmp_path, corrupt, match):
    session.edit_index(0, runner_up(session, 0))
    session.edit_index(1, runner_up(session, 1))
    session.save(tmp_path / "h")
    corrupt(tmp_path / "h")
    session.undo()  # the session now differs from what was saved
    s, hist, redo = weights(session.model), list(session.history), session.redo_stack
    with pytest.raises(ValueError, match=match):
        session.load_history(tmp_path / "h")
    assert same_weights(weights(session.model), s) and session.history == hist and session.redo_stack == redo


def test_history_of_other_base_weights_is_refused(session, tmp_path, tiny_model_dir):
    from workbench.models import build_model

    session.edit_index(0, runner_up(session, 0))
    session.save(tmp_path / "h")
    card = read_card(tiny_model_dir)
    other = build_model(card["arch"], **card["model_config"])  # same architecture, other weights
    with pytest.raises(ValueError, match="different base weights"):
        EditSession.load(tmp_path / "h", other, device=session.device)


def test_checkpoint_of_another_architecture_is_refused(tiny_model_dir, tmp_path, fashion_small):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    card = json.loads((bad / "card.json").read_text())
    card["model_config"]["widths"] = [16, 16, 32, 32]
    (bad / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="architecture"):
        EditSession.from_checkpoint(bad, bundle=fashion_small, limit=50)


def test_save_refuses_to_overwrite_an_unrelated_folder(session, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an edit-history folder"):
        session.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_round_trip(session, tmp_path, tiny_model_dir):
    session.edit_index(0, runner_up(session, 0))
    session.edit_index(1, runner_up(session, 1))
    out = session.export(tmp_path / "edited")
    model, card = load_model(out)
    assert same_weights(weights(model), weights(session.model))
    assert [e["target"] for e in card["edits"]] == [r.target for r in session.history]
    assert {"index", "target", "method", "lr", "steps", "success"} <= set(card["edits"][0])
    assert card["base_model"] == read_card(tiny_model_dir) and card["base_sha256"] == session.base_hash
    with pytest.raises(ValueError, match="base model's folder"):
        session.export(tiny_model_dir)


def test_autosave_dir_must_not_be_an_unrelated_folder(tiny_model, tmp_path):
    (tmp_path / "data.csv").write_text("a,b")
    with pytest.raises(ValueError, match="not an edit-history folder"):
        EditSession(tiny_model, autosave_dir=tmp_path)
    assert (tmp_path / "data.csv").read_text() == "a,b"


def test_session_without_data_edits_custom_images(tiny_model, fashion_small):
    s = EditSession(tiny_model, config=CFG)
    x = fashion_small.normalize(fashion_small.test_x[9:10])[0]
    t = int(s.probabilities(x).argsort(descending=True)[1])
    assert s.evaluator is None and s.edit(x, t).success
    assert s.history[-1].index is None and s.history[-1].report is None and s.current_report() is None
    assert int(s.probabilities(x).argmax()) == t
    with pytest.raises(ValueError, match="no data set"):
        s.edit_index(0, 1)
