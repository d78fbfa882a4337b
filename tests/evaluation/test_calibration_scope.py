"""Calibration runs only for the group an edit changes, and never when its lr is given; the
session's ``editor_choice``/``editor_note`` then describe that edit's editor.

Every calibration is counted with a spy on the resolver's search (the real search runs).
The model is a small CNN (no tuned default for any of its groups) on generated images.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import workbench.evaluation.editor_resolver as resolver_module
from workbench.session import EditSession


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


@pytest.fixture
def calibrations(monkeypatch) -> list:
    """The groups calibrated, in order (the real search runs)."""
    calls: list = []
    real = resolver_module.calibrate

    def spy(evaluator, method, group, **kw):
        calls.append(group)
        return real(evaluator, method, group, **kw)

    monkeypatch.setattr(resolver_module, "calibrate", spy)
    return calls


def _session() -> EditSession:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 1, 8, 8, generator=g), torch.randint(0, 3, (50,), generator=g)
    s = EditSession(_model(), (x, y), device="cpu")
    s.calibration_settings.update(edits=2, val_limit=10)
    return s


def _target(s: EditSession, i: int = 0) -> int:
    return (int(s.evaluator.base_preds[i]) + 1) % 3


def test_an_edit_of_the_default_group_calibrates_it_once(calibrations):
    s = _session()
    default = s.config.layers
    assert calibrations == [] and s.editor_note == ""  # opening calibrates nothing
    res = s.edit_index(0, _target(s))
    assert calibrations == [default] and res.config.layers == default
    assert s.editor_choice.source == "calibrated" and s.editor_choice.config.layers == default
    assert f"on {default}:" in s.editor_note and s.editor_note.startswith("calibrated")
    s.edit_index(1, _target(s, 1))
    s.edit_index(2, _target(s, 2), max_steps=3)  # same method and group: the kept calibration
    assert calibrations == [default]


def test_an_edit_of_another_group_calibrates_only_that_group(calibrations):
    s = _session()
    default = s.config.layers
    other = next(g for g in s.group_names()[:-1] if g != default)
    res = s.edit_index(0, _target(s), layers=other)
    assert calibrations == [other] and res.config.layers == other
    assert s.editor_choice.config.layers == other and s.editor_choice.source == "calibrated"
    assert f"on {other}:" in s.editor_note
    assert ("rmsprop", default) not in s.calibrations
    res = s.edit_index(1, _target(s, 1))  # then the default group: calibrated now, once
    assert calibrations == [other, default] and s.editor_choice.config.layers == default


def test_an_edit_with_a_given_lr_never_calibrates(calibrations):
    s = _session()
    default = s.config.layers
    other = next(g for g in s.group_names()[:-1] if g != default)
    res = s.edit_index(0, _target(s), layers=other, lr=1e-3)
    assert calibrations == [] and (res.config.layers, res.config.lr) == (other, 1e-3)
    assert s.editor_choice.sources["lr"] == "given" and s.editor_choice.config.layers == other
    assert f"on {other}" in s.editor_note and "lr given" in s.editor_note
    res = s.edit_index(1, _target(s, 1), lr=2e-3)  # the default group, lr given: no calibration either
    assert calibrations == [] and (res.config.layers, res.config.lr) == (default, 2e-3)
    assert not s.calibrations


def test_a_session_built_with_an_lr_never_calibrates(calibrations):
    from workbench.editing import EditorConfig

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 1, 8, 8, generator=g), torch.randint(0, 3, (50,), generator=g)
    s = EditSession(_model(), (x, y), device="cpu", config=EditorConfig(lr=1e-3, layers="2"))
    res = s.edit_index(0, _target(s), max_steps=4)
    assert calibrations == [] and res.config.lr == 1e-3 and s.editor_choice.source == "given"
