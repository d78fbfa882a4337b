"""Calibrated step sizes for a (model, group) without a tuned default: the paper's rule on a
few validation edits, kept in the session and in the exported card."""
from __future__ import annotations

import pytest
import torch

from workbench.evaluation import Evaluator, calibrate
from workbench.session import EditSession


def test_calibrate_picks_the_least_drawdown_among_successful_points(tiny_model, fashion_small):
    ev = Evaluator(tiny_model, fashion_small, split="val", layers="head", device="cpu", limit=150)
    cal = calibrate(ev, "gd", "head", edits=6, lrs=(1e-4, 1e-2, 1.0, 10.0))
    lrs = [p[0] for p in cal.points]
    assert lrs == sorted(lrs) and set((1e-4, 1e-2)) <= set(lrs)
    ok = [p for p in cal.points if p[1] >= 0.95]
    if cal.feasible:
        assert cal.success_rate >= 0.95 and cal.drawdown_abs == min(p[2] for p in ok)  # type: ignore[type-var]
    else:
        assert not ok and "no lr reached 95%" in cal.note()
    assert cal.points[0][1] < 0.95  # lr 1e-4 cannot move the head within 10 GD steps
    assert "calibrated gd" in cal.note() and "no tuned default" in cal.note()


def test_session_calibrates_untuned_groups_once_and_records_it(tiny_model, fashion_small, tmp_path):
    s = EditSession(tiny_model, fashion_small.subset(val=120, test=150), device="cpu")
    s.calibration_settings.update(edits=5, val_limit=120)
    assert s.editor_choice.source == "tuned default" and not s.calibrations  # chain3 of a project ResNet
    x = s.image(0)
    target = (int(s.evaluator.base_preds[0]) + 1) % 10
    res = s.edit(x, target, layers="head")  # no tuned default for head: calibrated first
    cal = s.calibrations[("rmsprop", "head")]
    assert res.config.lr == pytest.approx(cal.lr) and "calibrated rmsprop" in s.editor_note
    assert s.calibrate("rmsprop", "head") is cal  # kept, not searched again
    if res.success:
        s.undo()
    assert s.edit(x, target, layers="head", lr=0.5).config.lr == 0.5  # a given lr is used as given
    folder = s.export(tmp_path / "edited")
    reopened = EditSession.from_checkpoint(folder, bundle=fashion_small.subset(val=120, test=150), device="cpu")
    assert reopened.calibrations[("rmsprop", "head")].lr == pytest.approx(cal.lr)
    assert reopened.card["editor_calibrations"][0]["layers"] == "head"


def test_a_model_without_tuned_defaults_reports_calibrated_source(fashion_small):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10))
    pytest.importorskip("workbench.models.adapter")  # any-model groups (issue 11a)
    s = EditSession(net, fashion_small.subset(val=80, test=100), device="cpu")
    s.calibration_settings.update(edits=4, val_limit=80)
    assert s.config.layers == "0"  # the last group before the head ("4")
    s.edit_index(0, (int(s.evaluator.base_preds[0]) + 1) % 10)
    assert s.editor_choice.source == "calibrated" and s.editor_choice.note.startswith("calibrated")
