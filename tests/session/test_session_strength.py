"""Edit strength (``EditSession.set_strength`` / ``smallest_fixing_strength``) on a hand-built linear model.

The model is ``Flatten -> Linear(4, 3)`` with fixed weights: its logits are linear in the edited
weights, so the target's margin is linear in the strength and the strength at which the edit
starts to fix its image (``alpha_star``) is known in closed form. The premise (``alpha_star`` far
from every grid point) is asserted, so no check sits on a round-off-sized threshold.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from workbench.editing.editor import EditorConfig
from workbench.session import EditSession

TOL = 0.01
CONFIG = EditorConfig("gd", lr=0.6, max_steps=50, layers="1")  # one step; alpha* = 0.365


def _model() -> nn.Module:
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)  # small irregular weights: before + 1 * delta != after in float
        lin.weight.copy_(torch.eye(3, 4) + 0.01 * torch.rand(3, 4, generator=g))
        lin.bias.copy_(0.01 * torch.rand(3, generator=g))
    return nn.Sequential(nn.Flatten(), lin)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 2, 2, generator=g)
    y = (x.flatten(1)[:, :3].argmax(1) + (torch.arange(40) % 4 == 0).long()) % 3  # every 4th image mislabelled
    return x, y


def _session(**kw) -> EditSession:
    return EditSession(_model(), _data(), mean=(0.0,), std=(1.0,), device="cpu", **kw)


def _state(s: EditSession) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in s.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _edit(s: EditSession) -> int:
    """Fix the first mistake of the current weights; returns its index."""
    i = int(torch.nonzero(s.current_preds() != s.labels).flatten()[0])
    n = len(s.history)
    res = s.edit_index(i, int(s.labels[i]), CONFIG)
    assert res.success and len(s.history) == n + 1, res.message
    return i


def _alpha_star(s: EditSession, i: int) -> float:
    """The strength at which the last edit starts to fix image ``i`` (exact arithmetic on its
    logits at strength 0 and 1: each margin is linear in the strength)."""
    rec = s.history[-1]
    xi = s.image(i).reshape(1, -1).double()

    def logits(p):
        return (xi @ p["1.weight"].double().T + p["1.bias"].double())[0]

    z0, z1, t = logits(rec.result.before), logits(rec.edit_after), rec.target
    return max(float((z0[t] - z0[c]) / ((z0[t] - z0[c]) - (z1[t] - z1[c])))
               for c in range(len(z0)) if c != t and z0[t] <= z0[c])


def test_strength_zero_and_one_are_bit_exact():
    s = _session()
    w0 = _state(s)
    _edit(s)
    w1, made = _state(s), s.history[-1].result
    assert not _same(w0, w1)
    s.set_strength(0.5)
    mid = _state(s)
    assert not _same(mid, w0) and not _same(mid, w1)
    torch.testing.assert_close(mid["1.weight"], (w0["1.weight"] + w1["1.weight"]) / 2)
    s.set_strength(0)
    assert _same(_state(s), w0) and s.history[-1].strength == 0.0
    assert all(s.history[-1].result.after[n] is made.before[n] for n in made.before)
    s.set_strength(1)
    assert _same(_state(s), w1) and s.history[-1].full_after is None
    assert all(s.history[-1].result.after[n] is made.after[n] for n in made.after)  # the saved tensors, restored
    s.set_strength(0.25)
    s.set_strength(1.0)
    assert _same(_state(s), w1)


def test_smallest_fixing_strength_fixes_and_one_step_less_does_not():
    s = _session()
    i = _edit(s)
    star = _alpha_star(s, i)
    grid_gap = min(abs(star - k * TOL) for k in range(round(1 / TOL) + 1))
    assert 0.05 < star < 0.95 and grid_gap > 0.002, f"premise: alpha* = {star} must sit well inside a grid step"
    calls = []
    hook = s.model.register_forward_hook(lambda *_: calls.append(1))
    alpha = s.smallest_fixing_strength(tol=TOL)
    hook.remove()
    assert 0 < alpha - star <= TOL
    assert len(calls) <= math.ceil(math.log2(1 / TOL)) + 2  # a handful of forwards
    w1 = s.history[-1].edit_after
    s.set_strength(alpha)
    assert s.edit_fixed() and int(s.probabilities(i).argmax()) == s.history[-1].target
    s.set_strength(alpha - TOL)
    assert not s.edit_fixed()
    assert all(torch.equal(w1[n], s.history[-1].edit_after[n]) for n in w1)  # the edit as made is kept


def test_undo_after_strength_is_exact_and_strength_clears_redo():
    s = _session()
    w0 = _state(s)
    _edit(s)
    s.set_strength(0.37)
    scaled = _state(s)
    s.undo()
    assert _same(_state(s), w0) and not s.history
    s.redo()
    assert _same(_state(s), scaled) and s.history[-1].strength == 0.37
    _edit(s)
    s.undo()
    assert s.can_redo
    s.set_strength(0.5)  # the undone edit started from the weights being replaced
    assert not s.can_redo


def test_strength_drops_the_reports_and_complete_reports_scores_the_new_weights():
    s = _session()
    _edit(s)
    s.complete_reports()
    assert s.history[-1].report is not None
    s.set_strength(0.6)
    rec = s.history[-1]
    assert rec.report is None and rec.step_report is None
    est = s.estimate_last()  # of the scaled weights: on this small split the sample is every image
    done = s.complete_reports()
    assert done is not None and torch.equal(done.report.preds_after, s.evaluator.preds_for(s.params_at()))
    assert est.sample == est.total and est.drawdown == pytest.approx(done.step_report.drawdown, abs=1e-9)


def test_history_save_and_reload_keep_the_strength(tmp_path):
    s = _session()
    _edit(s)
    s.save(tmp_path / "h")  # at strength 1: no strength recorded
    assert "strength" not in json.loads((tmp_path / "h" / "history.json").read_text())["applied"][0]
    w1 = _state(s)
    s.set_strength(0.4)
    scaled = _state(s)
    s.save(tmp_path / "h")  # this session's own save: replaced, the edit's file written again
    entry = json.loads((tmp_path / "h" / "history.json").read_text())["applied"][0]
    assert entry["strength"] == 0.4
    t = _session()
    t.load_history(tmp_path / "h")
    assert t.history[-1].strength == 0.4 and _same(_state(t), scaled)
    t.set_strength(1)  # the edit as made came back with the history
    assert _same(_state(t), w1)
    t.undo()
    assert _same(_state(t), _state(_session()))


def test_preview_is_not_autosaved_and_the_final_strength_is(tmp_path):
    s = _session(autosave_dir=tmp_path / "auto")
    _edit(s)
    saved = (tmp_path / "auto" / "history.json").read_text()
    s.set_strength(0.3, preview=True)
    assert (tmp_path / "auto" / "history.json").read_text() == saved
    s.set_strength(0.3)
    assert json.loads((tmp_path / "auto" / "history.json").read_text())["applied"][0]["strength"] == 0.3


def test_a_saved_strength_outside_0_1_is_refused(tmp_path):
    s = _session()
    _edit(s)
    s.set_strength(0.4)
    s.save(tmp_path / "h")
    doc = json.loads((tmp_path / "h" / "history.json").read_text())
    doc["applied"][0]["strength"] = 2.0
    (tmp_path / "h" / "history.json").write_text(json.dumps(doc))
    t = _session()
    with pytest.raises(ValueError, match="strength"):
        t.load_history(tmp_path / "h")
    assert not t.history


@pytest.mark.parametrize("alpha, err", [(1.5, ValueError), (-0.1, ValueError), (float("nan"), ValueError),
                                        (True, TypeError), ("0.5", TypeError)])
def test_bad_strength_is_refused_and_changes_nothing(alpha, err):
    s = _session()
    _edit(s)
    before = _state(s)
    with pytest.raises(err, match="strength"):
        s.set_strength(alpha)
    assert _same(_state(s), before) and s.history[-1].strength == 1.0


def test_strength_without_an_edit_says_to_edit_first():
    s = _session()
    with pytest.raises(ValueError, match="make an edit first"):
        s.set_strength(0.5)
    with pytest.raises(ValueError, match="make an edit first"):
        s.smallest_fixing_strength()
    _edit(s)
    with pytest.raises(ValueError, match="tol"):
        s.smallest_fixing_strength(tol=0)
