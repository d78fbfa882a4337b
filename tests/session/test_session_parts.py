"""EditSession as a facade over parts: no mixins, one ``explain``, the calibration settings it
takes, the editor defaults read from their data file, and the editor panel's message when the
session cannot resolve a step size."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.editing import DEFAULTS, GROUP_DEFAULTS
from workbench.editing import editor_defaults as defaults_mod
from workbench.session import EditSession


def _net() -> torch.nn.Module:
    """A model without tuned defaults (not one of the project's ResNets)."""
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(16, 10))


def test_the_session_is_plain_composition_of_its_parts(tiny_model, fashion_small):
    assert EditSession.__bases__ == (object,)
    s = EditSession(tiny_model, fashion_small.subset(test=60), device="cpu")
    for part in ("actions", "stack", "data", "scoring", "inspection", "localization", "uploads", "persistence",
                 "editor"):
        assert getattr(s, part) is not s and getattr(s, part).__module__.startswith("workbench.")
    assert s.confusion.__self__ is s.scoring and s.explain.__self__ is s.inspection  # the parts' own methods
    i = next(j for j in range(60) if int(s.base_preds[j]) != 3)
    s.edit_index(i, 3, lr=1e-2)
    assert s.history is s.stack.history and s.params_at().keys() == set(s.stack.edited_names())


def test_the_session_says_whether_an_edit_was_applied(tiny_model, fashion_small):
    """``applied_record``: the record of an edit that is the last applied one; None for a no-op,
    a failed attempt, or an edit that was undone (the one answer the widgets read)."""
    s = EditSession(tiny_model, fashion_small.subset(test=60), device="cpu")
    i, j = [k for k in range(60) if int(s.base_preds[k]) != int(s.labels[k])][:2]
    done = s.edit_index(i, int(s.labels[i]), lr=1e-2)
    assert done.success and done.steps > 0 and s.applied_record(done) is s.history[-1]
    noop = s.edit_index(j, int(s.current_preds()[j]))  # the model already predicts it: nothing pushed
    assert noop.steps == 0 and s.applied_record(noop) is None and len(s.history) == 1
    failed = s.edit_index(j, int(s.labels[j]), lr=1e-12, max_steps=1)  # one tiny step cannot flip it
    assert not failed.success and s.applied_record(failed) is None and s.attempts[-1].result.steps == 1
    assert s.applied_record(done) is s.history[-1]  # still the last applied edit
    s.undo()
    assert s.applied_record(done) is None
    s.redo()
    assert s.applied_record(done) is s.history[-1]


def test_explain_is_one_entry_point_with_one_default(tiny_model, fashion_small):
    s = EditSession(tiny_model, fashion_small.subset(test=60), device="cpu")
    with pytest.raises(ValueError, match="pass labels="):
        s.explain(0)  # no edit yet: nothing to default the labels to
    same = s.explain(0, [1, 1, 2], method="Saliency")  # before any edit: both sides are the current weights
    assert same.labels == (1, 2) and all(torch.equal(a, b) for a, b in zip(same.before, same.after))
    with pytest.raises(ValueError, match="against"):
        s.explain(0, [1], against="yesterday")
    assert s.explain(0, [1], n_steps=4).method == "Integrated Gradients"  # the one default


def test_calibration_settings_take_only_their_two_keys(tiny_model):
    with pytest.raises(TypeError, match="'edits' and 'val_limit'"):
        EditSession(tiny_model, None, device="cpu", calibration={"edit": 5})
    s = EditSession(tiny_model, None, device="cpu", calibration={"edits": 5})
    assert s.calibration_settings["edits"] == 5 and s.calibration_settings is s.editor.settings


def test_the_defaults_are_the_data_file_with_provenance():
    doc = json.loads(defaults_mod.DEFAULTS_FILE.read_text())
    assert (defaults_mod.DEFAULT_METHOD, defaults_mod.DEFAULT_GROUP, defaults_mod.DEFAULT_MAX_STEPS) == \
        (doc["editor"]["method"], doc["editor"]["layers"], doc["editor"]["max_steps"])
    for method, entry in doc["methods"].items():
        assert DEFAULTS[method] == {"lr": entry["lr"], "beta": entry["beta"]}
        prov = defaults_mod.provenance(method)
        assert ("command" in prov and "tune-editor" in prov["command"] and prov["date"]) or "note" in prov
    for group, entry in doc["groups"].items():
        assert GROUP_DEFAULTS[group] == {m: {"lr": v["lr"], "beta": v["beta"]} for m, v in entry["methods"].items()}
        assert "tune-editor" in defaults_mod.provenance("gd", group)["command"]


def test_a_broken_defaults_file_is_named_with_the_fix(tmp_path):
    bad = tmp_path / "editor_defaults.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="tune-editor --write-defaults"):
        defaults_mod.load_defaults(bad)
    bad.write_text(json.dumps({"editor": {}}))
    with pytest.raises(ValueError, match="lacks methods, groups"):
        defaults_mod.load_defaults(bad)


def test_the_panel_says_why_it_has_no_step_size_for_a_new_method():
    pytest.importorskip("ipywidgets")
    from workbench.widgets.panels.edit_panel import EditPanel

    s = EditSession(_net(), None, device="cpu")  # no data: a step size cannot be calibrated
    p = EditPanel(s.group_names(), {}, config=s.config, choose=s.resolve_editor, note=s.editor_choice.note)
    lr = p.lr.value
    p.method.value = "gd"
    assert "needs data" in p.messages.text and p.messages.level == "error" and p.lr.value == lr
