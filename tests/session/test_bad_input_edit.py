"""Bad input: edits. A wrecked edit is flagged and refused, k is bounded, a no-op records
nothing, failed attempts hold no tensors, concurrent actions are refused, an index must
be an integer, editor arguments of the wrong type are named, a batch edit and the images
given to ``probabilities`` are bounded. Each refusal leaves the model, the files on disk and
the history as they were."""
from __future__ import annotations

import json
import math
import re
import threading

import numpy as np
import pytest
import torch

import workbench.session.actions as session_mod
from tests.support.bad_input import refused, tree
from tests.support.settings import CFG
from tests.support.weights import runner_up, same_weights, weights
import workbench.editing.guard as guard_mod
from workbench.editing import (MAX_EDIT_BATCH, MAX_RELATIVE_CHANGE, MAX_STEPS_LIMIT, EditorConfig, check_edit,
                               edit)
from workbench.session import EditSession, SessionBusy

@pytest.fixture()
def session_options(tmp_path):
    """The shared ``session`` (tests/conftest.py) on 100 images, autosaving to tmp_path/auto."""
    return {"limit": 100, "autosave_dir": tmp_path / "auto"}


@pytest.fixture()
def edited(session):
    """The session with one applied and one undone edit."""
    for i in (0, 1):
        assert session.edit_index(i, runner_up(session, i)).success
    session.undo()
    return session


def _state(s: EditSession, tmp_path):
    return weights(s.model), list(s.history), list(s.redo_stack), tree(tmp_path)


def _unchanged(s: EditSession, tmp_path, state, *, attempts_added: int = 0) -> None:
    w, hist, redo, disk = state
    disk = dict(disk)
    assert same_weights(weights(s.model), w)
    assert [r.uid for r in s.history] == [r.uid for r in hist] and [r.uid for r in s.redo_stack] == [r.uid for r in redo]
    now = tree(tmp_path)
    if attempts_added:  # the autosaved history.json now lists the attempt; nothing else may change
        now.pop("auto/history.json"), disk.pop("auto/history.json")
    assert now == disk


# -- the edit guard ---------------------------------------------------------------------------
def test_a_huge_lr_edit_meets_the_constraint_but_is_flagged(tiny_model, fashion_small):
    """The issue's case: ``edit(model, x, t, lr=1e6)`` (RMSProp) meets the constraint with
    weights around 1e6; on the tiny model most such edits succeed (measured: 6-7 of 8)."""
    x = fashion_small.normalize(fashion_small.test_x[:8])
    preds = tiny_model(x).argmax(1)
    before = weights(tiny_model)
    results = [edit(tiny_model, x[i], int(preds[i] + 2) % 10, lr=1e6) for i in range(8)]
    assert all(r.wrecked and not r.accepted and r.finite for r in results)
    assert all(r.relative_change > 1e3 * MAX_RELATIVE_CHANGE for r in results)
    assert any(r.success for r in results)  # the constraint holds, yet it is a wreck
    assert all("edit guard" in r.message and "lower the learning rate" in r.message for r in results)
    assert same_weights(weights(tiny_model), before)  # edit() never modifies the model
    normal = edit(tiny_model, x[0], int(preds[0] + 2) % 10, CFG)
    assert normal.accepted and not normal.wrecked and 0 < normal.relative_change < MAX_RELATIVE_CHANGE / 2


def test_the_guard_flags_non_finite_values_and_out_of_proportion_changes():
    w = {"a": torch.ones(4), "b": torch.ones(2)}
    assert check_edit(w, {"a": torch.ones(4) * 1.1, "b": torch.ones(2)}).wrecked is False
    v = check_edit(w, {"a": torch.tensor([1.0, math.nan, 1.0, 1.0]), "b": torch.ones(2)})
    assert v.wrecked and "non-finite values in a" in v.reason
    v = check_edit(w, {"a": torch.ones(4), "b": torch.tensor([1.0, math.inf])})
    assert v.wrecked and "non-finite values in b" in v.reason
    # ||delta|| / ||theta|| = 3 / sqrt(6) ~ 1.22 > 1: flagged; 2 / sqrt(6) ~ 0.82: not
    assert check_edit(w, {"a": torch.ones(4), "b": torch.tensor([1.0 + 3.0, 1.0])}).wrecked
    assert not check_edit(w, {"a": torch.ones(4), "b": torch.tensor([1.0 + 2.0, 1.0])}).wrecked


def test_the_session_refuses_a_wrecked_edit_and_keeps_the_model(edited, tmp_path):
    state = _state(edited, tmp_path)
    n = len(edited.attempts)
    res = edited.edit_index(3, runner_up(edited, 3), lr=1e6)
    assert res.wrecked and not res.accepted and res.message.startswith("not applied (the model is unchanged)")
    _unchanged(edited, tmp_path, state, attempts_added=1)
    assert len(edited.attempts) == n + 1 and edited.attempts[-1].result.wrecked
    assert edited.can_redo  # a refused edit does not clear the redo stack
    saved = json.loads((tmp_path / "auto" / "history.json").read_text())
    assert saved["attempts"][-1]["wrecked"] is True and saved["attempts"][-1]["relative_change"] > 1


def test_an_applied_entry_marked_wrecked_is_refused_on_load(edited, tmp_path, tiny_model_dir, fashion_small):
    from workbench.training import load_model

    doc = json.loads((tmp_path / "auto" / "history.json").read_text())
    doc["applied"][0]["wrecked"] = True
    (tmp_path / "auto" / "history.json").write_text(json.dumps(doc))
    other = EditSession(load_model(tiny_model_dir)[0], fashion_small, config=CFG, limit=100)
    with refused(r"field 'wrecked' is true, but an edit flagged by the edit guard is never applied",
                 root=tmp_path, session=other):
        other.load_history(tmp_path / "auto")


# -- k is bounded ------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [10 ** 9, MAX_STEPS_LIMIT + 1, 0, -3])
def test_max_steps_outside_its_bound_is_refused_at_once(edited, tmp_path, k):
    with refused(rf"max_steps \(k\) must be an integer in 1\.\.{MAX_STEPS_LIMIT}, got {k}", root=tmp_path,
                 session=edited):
        edited.edit_index(3, runner_up(edited, 3), lr=0.0, max_steps=k)


def test_max_steps_at_the_bound_is_accepted(tiny_model, fashion_small):
    x = fashion_small.normalize(fashion_small.test_x[:1])
    res = edit(tiny_model, x, (int(tiny_model(x).argmax()) + 1) % 10, method="sign", lr=0.0,
               max_steps=MAX_STEPS_LIMIT, layers="head")
    assert not res.success and res.steps == MAX_STEPS_LIMIT


# -- a no-op, attempts, concurrency ---------------------------------------------------------------
def test_an_edit_to_the_predicted_class_records_nothing(edited, tmp_path):
    state = _state(edited, tmp_path)
    n = len(edited.attempts)
    pred = int(edited.probabilities(4).argmax())
    res = edited.edit_index(4, pred)
    assert res.success and res.steps == 0 and "already predicts" in res.message
    _unchanged(edited, tmp_path, state)
    assert len(edited.attempts) == n and edited.can_redo  # nothing recorded, redo kept


def test_failed_attempts_hold_no_tensors_and_are_bounded(edited, monkeypatch):
    monkeypatch.setattr(session_mod, "MAX_ATTEMPTS", 3)
    results = [edited.edit_index(i, runner_up(edited, i), lr=0.0, max_steps=1, layers="all") for i in range(5)]
    assert all(not r.success and r.after for r in results)  # the caller's results keep their tensors
    assert [a.index for a in edited.attempts] == [2, 3, 4]  # the newest 3
    assert all(a.result.before == {} and a.result.after == {} for a in edited.attempts)
    assert all(a.result.message == r.message for a, r in zip(edited.attempts, results[2:]))


def test_a_second_action_while_an_edit_runs_is_refused(edited, tmp_path, monkeypatch):
    started, release = threading.Event(), threading.Event()
    real = session_mod.edit_fn

    def slow_edit(*a, **k):
        started.set()
        assert release.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(session_mod, "edit_fn", slow_edit)
    worker = threading.Thread(target=lambda: edited.edit_index(3, runner_up(edited, 3)))
    target = runner_up(edited, 5)
    worker.start()
    try:
        assert started.wait(30)
        assert edited.busy
        state = _state(edited, tmp_path)
        for action in (lambda: edited.edit_index(5, target), edited.undo, edited.redo, edited.reset,
                       lambda: edited.save(tmp_path / "other")):
            with refused(r"the session is busy with an edit; wait for it to finish", root=tmp_path,
                         session=edited, exc=SessionBusy):
                action()
        _unchanged(edited, tmp_path, state)
    finally:
        release.set()
        worker.join(60)
    assert not edited.busy and edited.history[-1].index == 3  # the first edit completed


# -- index types ---------------------------------------------------------------------------------
@pytest.mark.parametrize("index, match", [
    ("12", r"got the string '12' \(a string would be read character by character\); pass e.g. 12, not '12'"),
    (3.0, r"index must be an integer or a list of integers, got 3.0 \(float\)"),
    (True, r"index must be an integer or a list of integers, got True \(bool\)"),
    ([1, "2"], r"got the string '2'"),
    ([], r"give at least one index"),
])
def test_an_index_that_is_not_an_integer_is_refused(edited, tmp_path, index, match):
    with refused(match, root=tmp_path, session=edited, exc=(TypeError, ValueError)):
        edited.edit_index(index, 3)


@pytest.mark.parametrize("index", [np.int64(3), np.int32(3), torch.tensor(3), np.array(3)])
def test_numpy_and_torch_integers_are_accepted_and_saved_as_ints(edited, tmp_path, index):
    t = runner_up(edited, 3)
    assert edited.edit_index(index, t).success
    rec = edited.history[-1]
    assert rec.index == 3 and type(rec.index) is int
    saved = json.loads((tmp_path / "auto" / "history.json").read_text())
    assert saved["applied"][-1]["index"] == 3


def test_a_numpy_array_of_indices_is_a_batch_edit(edited):
    idx = np.array([6, 7])
    targets = [runner_up(edited, 6), runner_up(edited, 7)]
    res = edited.edit_index(idx, targets)
    assert res.success and edited.history[-1].index == (6, 7)


# -- editor arguments are checked in one place -------------------------------------------------
ARG_CASES = [
    ({"lr": "0.1"}, TypeError, r"lr \(the learning rate\) must be a number such as 0\.001 or None \(the tuned "
                               r"default\), got '0\.1' \(str\); pass lr=0\.1, not '0\.1'"),
    ({"beta": "0.5"}, TypeError, r"beta \(.*\) must be a number.*got '0\.5' \(str\); pass beta=0\.5, not '0\.5'"),
    ({"beta2": [0.9]}, TypeError, r"beta2 \(adam's second-moment decay\) must be a number such as 0\.999, got \[0\.9\]"),
    ({"max_steps": "10"}, ValueError, r"max_steps \(k\) must be an integer in 1\.\.1000, got '10'; pass max_steps=10"),
    ({"max_steps": 2.5}, ValueError, r"max_steps \(k\) must be an integer in 1\.\.1000, got 2\.5"),
    ({"method": 3}, TypeError, r"method must be an editor's name such as 'rmsprop', got 3 \(int\)"),
    ({"layers": ["chain3", 3]}, TypeError, r"layers must hold group names \(non-empty strings\), got 3"),
    ({"layers": []}, ValueError, r"layers is an empty list; give at least one group: name an editable group"),
    ({"lr": True}, TypeError, r"lr \(the learning rate\) must be a number.*got True \(bool\)"),
    ({"lr": -1.0}, ValueError, r"lr \(the learning rate\) must be a finite number >= 0, got -1\.0"),
    ({"learning_rate": 0.1}, TypeError, r"unknown edit option\(s\) \['learning_rate'\]; use \['beta', 'beta2', "),
]


@pytest.mark.parametrize("kw, exc, match", ARG_CASES, ids=[next(iter(k)) + "=" + repr(next(iter(k.values())))
                                                            for k, _, _ in ARG_CASES])
def test_an_editor_argument_of_the_wrong_type_is_named_with_its_fix(edited, tmp_path, kw, exc, match):
    """The same words from ``edit()``, ``EditSession.edit`` and ``EditorConfig``: nothing changes."""
    x, t = edited.image(3), runner_up(edited, 3)
    with refused(match, root=tmp_path, session=edited, exc=exc):
        edited.edit_index(3, t, **kw)
    with refused(match, root=tmp_path, model=edited.model, exc=exc):
        edit(edited.model, x, t, **kw)
    if "learning_rate" not in kw:
        with pytest.raises(exc, match=match):
            EditorConfig(**kw).resolved()


def test_an_argument_of_none_means_the_default_in_edit_as_in_the_session(edited):
    """``edit(model, x, 3, layers=None)`` raised a raw TypeError: None now means the default, as
    in ``EditSession.edit``; a config's ``layers=None`` is the model's default group (chain3 here)."""
    x, t = edited.image(3), runner_up(edited, 3)
    res = edit(edited.model, x, t, layers=None, method=None, max_steps=None, lr=None, beta=None, beta2=None)
    assert res.config == EditorConfig().resolved() and res.config.layers == "chain3"
    assert EditorConfig(layers=None).layers is None


def test_a_config_that_is_not_an_editor_config_is_named(edited, tmp_path):
    with refused(r"config must be an EditorConfig, got \{'lr': 0\.1\} \(dict\)", root=tmp_path, session=edited,
                 exc=TypeError):
        edited.edit_index(3, runner_up(edited, 3), {"lr": 0.1})


# -- batch size and image size -----------------------------------------------------------------
def test_a_batch_edit_above_the_bound_is_refused_before_any_work(edited, tmp_path, fashion_small, monkeypatch):
    calls = []
    monkeypatch.setattr("workbench.editing.editor.run_editor", lambda *a, **k: calls.append(1))
    x = fashion_small.normalize(fashion_small.test_x[:MAX_EDIT_BATCH + 1])
    y = [0] * (MAX_EDIT_BATCH + 1)
    match = (rf"a batch edit takes at most {MAX_EDIT_BATCH} images, got {MAX_EDIT_BATCH + 1}: .*Edit the images "
             rf"in batches of at most {MAX_EDIT_BATCH}")
    with refused(match, root=tmp_path, session=edited):
        edited.edit(x, y)
    with refused(match, root=tmp_path, model=edited.model):
        edit(edited.model, x, y)
    assert calls == []  # refused before the editor ran a step


def test_a_batch_edit_at_the_bound_runs(tiny_model, fashion_small):
    x = fashion_small.normalize(fashion_small.test_x[:MAX_EDIT_BATCH])
    res = edit(tiny_model, x, [0] * MAX_EDIT_BATCH, lr=0.0, max_steps=1)
    assert res.steps == 1 and len(res.y_ref) == MAX_EDIT_BATCH


def test_probabilities_refuses_an_image_of_another_size_as_edit_does(edited, tmp_path):
    """The issue's case: a 4000 x 4000 image ran a 19 s forward pass (4.6 GiB) before."""
    big = torch.zeros(1, 1, 4000, 4000)
    with pytest.raises(ValueError) as from_edit:
        edited.edit(big, 0)
    assert str(from_edit.value).startswith("x has shape (1, 1, 4000, 4000); this session's images are (1, 28, 28)")
    with refused(re.escape(str(from_edit.value)), root=tmp_path, session=edited):
        edited.probabilities(big)
    for bad, exc, match in ((edited.raw_images()[:1], TypeError, r"x has dtype torch\.uint8; .*normalize"),
                            (torch.full((1, 28, 28), math.nan), ValueError, r"x contains NaN or inf values"),
                            ("3", TypeError, r"pass e\.g\. 12, not '12'")):
        with refused(match, root=tmp_path, session=edited, exc=exc):
            edited.probabilities(bad)


def test_probabilities_of_a_batch_run_in_chunks(edited, monkeypatch):
    x = edited.image(list(range(20)))
    whole = edited.probabilities(x)
    import workbench.session.inspection as inspection

    monkeypatch.setattr(inspection, "PROBABILITY_CHUNK", 7)
    chunked = edited.probabilities(x)
    assert chunked.shape == (20, edited.num_classes)
    torch.testing.assert_close(chunked, whole, rtol=1e-4, atol=1e-6)  # batch size may change round-off only
    assert edited.probabilities(np.int64(3)).shape == (edited.num_classes,)
