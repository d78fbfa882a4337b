"""The learned editor by default (``editing.choose_editor``) in the CLI, the session and the
panel; no-op edits and the metrics without them; the results table on older result files."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil

import pytest
import torch

from tests.support.repo import ROOT
from workbench.cli import main
from workbench.editing import DEFAULTS, GROUP_DEFAULTS, EditorConfig, choose_editor, choose_for_config
from workbench.evaluation import Evaluator
from workbench.evaluation.reports import EditOutcome, EvalSummary

LEARNED = {"method": "rmsprop", "lr": 2.5e-3, "beta": 0.7, "beta2": 0.999, "max_steps": 6, "layers": "chain3",
           "learned": True, "first_order": False}
CARD = {"editor": LEARNED}


@pytest.fixture(scope="module")
def learned_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model folder, its card carrying an editor learned for rmsprop on chain3."""
    out = tmp_path_factory.mktemp("learned") / "model"
    shutil.copytree(tiny_model_dir, out)
    card = json.loads((out / "card.json").read_text())
    (out / "card.json").write_text(json.dumps({**card, "editor": LEARNED}))
    return out


def test_choose_editor_takes_the_learned_values_only_for_their_method_and_group():
    c = choose_editor(CARD)
    assert (c.config.method, c.config.lr, c.config.beta, c.config.max_steps, c.config.layers) == \
        ("rmsprop", 2.5e-3, 0.7, 6, "chain3")
    assert c.source == "learned" and c.sources == {"lr": "learned", "beta": "learned"} and "learned" in c.note
    # explicit values win; the other one stays learned, and the whole is "given"
    c = choose_editor(CARD, lr=1e-2)
    assert (c.config.lr, c.config.beta, c.source, c.sources) == (1e-2, 0.7, "given", {"lr": "given", "beta": "learned"})
    assert choose_editor(CARD, lr=1e-2, beta=0.9).sources == {"lr": "given", "beta": "given"}
    # same method named explicitly: still the learned editor
    assert choose_editor(CARD, method="rmsprop", layers="chain3").source == "learned"
    # another group or method: the tuned default, and the note says why
    other = choose_editor(CARD, layers="all")
    assert other.source == "tuned default" and other.config.lr == GROUP_DEFAULTS["all"]["rmsprop"]["lr"]
    assert other.config.max_steps == 10 and "applies only to that method and group" in other.note
    gd = choose_editor(CARD, method="gd")
    assert (gd.source, gd.config.lr, gd.config.beta, gd.sources) == ("tuned default", DEFAULTS["gd"]["lr"], None,
                                                                     {"lr": "tuned default"})
    off = choose_editor(CARD, method="rmsprop_official")  # learned with the other rule: not reused
    assert off.source == "tuned default" and off.config.lr == DEFAULTS["rmsprop_official"]["lr"]
    # no learned editor: the defaults
    for card in (None, {}, {"editor": {**LEARNED, "learned": False}}):
        d = choose_editor(card)
        assert (d.source, d.config.method, d.config.layers, d.config.lr) == \
            ("tuned default", "rmsprop", "chain3", DEFAULTS["rmsprop"]["lr"])
    # a card that learned the whole model: that group by default
    assert choose_editor({"editor": {**LEARNED, "layers": "all"}}).config.layers == "all"
    with pytest.raises(ValueError, match="card's editor record"):
        choose_editor({"editor": {**LEARNED, "beta": 3.0}})


def test_choose_for_config_takes_the_group_as_group_or_layers():
    by_group, by_layers = choose_for_config(CARD, group="all"), choose_for_config(CARD, layers="all")
    assert by_group.config == by_layers.config and by_group.config.layers == "all"
    assert by_group.source == "tuned default"  # the learned editor is for chain3 only
    with pytest.raises(TypeError, match="name the same thing"):
        choose_for_config(CARD, group="all", layers="all")


def test_summary_counts_noop_edits_and_reports_the_metrics_without_them():
    # three edits: one no-op (already predicted: 0 steps), one success in 4 steps, one failure (k = 10)
    outs = [EditOutcome(1, 3, True, 0, 0.0, 0, True, 0.01), EditOutcome(2, 5, True, 4, 0.02, 9, True, 0.01),
            EditOutcome(3, 7, False, 10, -0.01, 4, True, 0.01)]
    s = EvalSummary.from_outcomes(outs, test_error=0.1, editor="rmsprop", layers="chain3", protocol="random",
                                  seconds=1.0, lr=1e-3, beta=0.5, max_steps=10, split="test", examples=100)
    assert s.noop_edits == 1 and s.edits == 3
    assert s.success_rate == pytest.approx(2 / 3) and s.mean_steps == pytest.approx(14 / 3)
    assert s.drawdown_abs == pytest.approx(0.03 / 3) and s.drawdown_signed == pytest.approx(0.01 / 3)
    assert s.success_rate_excl_noop == pytest.approx(0.5) and s.mean_steps_excl_noop == pytest.approx(7.0)
    assert s.drawdown_abs_excl_noop == pytest.approx(0.015) and s.drawdown_signed_excl_noop == pytest.approx(0.005)
    assert "no-op edits: 1 of 3" in s.noop_line() and "over the 2 edits" in s.noop_line()
    js = s.to_json()
    assert js["noop_edits"] == 1 and js["mean_steps_excl_noop"] == pytest.approx(7.0)
    only_noops = EvalSummary.from_outcomes(outs[:1], test_error=0.1, editor="rmsprop", layers="chain3",
                                           protocol="random", seconds=1.0, lr=1e-3, beta=0.5, max_steps=10,
                                           split="test", examples=100)
    assert only_noops.noop_edits == 1 and math.isnan(only_noops.mean_steps_excl_noop)


def test_evaluator_marks_edits_to_the_predicted_label_as_noops(tiny_model, fashion_small):
    ev = Evaluator(tiny_model, fashion_small, limit=200, device="cpu")
    x = ev.images(torch.arange(4))
    pred = ev.base_preds[:4]
    y = torch.stack([pred[0], pred[1], (pred[2] + 1) % 10, (pred[3] + 1) % 10])
    s = ev.evaluate_edits(x, y, EditorConfig("rmsprop", lr=1e-2, max_steps=5), progress=False)
    assert s.noop_edits == 2
    assert [o.noop for o in s.per_edit] == [True, True, False, False]
    changing = s.per_edit[2:]
    assert s.mean_steps_excl_noop == pytest.approx(sum(o.steps for o in changing) / 2)
    assert s.drawdown_abs_excl_noop == pytest.approx(sum(abs(o.drawdown) for o in changing) / 2)
    assert s.mean_steps == pytest.approx(s.mean_steps_excl_noop / 2)


def test_evaluate_uses_the_learned_editor_without_flags_and_says_so(learned_dir, tmp_path, capsys):
    out = tmp_path / "learned.json"
    common = ["--checkpoint", str(learned_dir), "--edits", "12", "--limit", "300", "--no-progress"]
    assert main(["evaluate", *common, "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "learned by Editable Training" in text and "lr=0.0025 beta=0.7" in text and "no-op edits:" in text
    js = json.loads(out.read_text())
    assert (js["editor"], js["lr"], js["beta"], js["max_steps"], js["layers"]) == ("rmsprop", 2.5e-3, 0.7, 6, "chain3")
    assert js["editor_source"] == "learned" and js["editor_sources"] == {"lr": "learned", "beta": "learned"}
    assert js["editor_config"]["lr"] == 2.5e-3
    noops = [e for e in js["per_edit"] if e["success"] and e["steps"] == 0]
    rest = [e for e in js["per_edit"] if not (e["success"] and e["steps"] == 0)]
    assert js["noop_edits"] == len(noops) and all(e["drawdown"] == 0 and e["flipped"] == 0 for e in noops)
    if rest:
        assert js["mean_steps_excl_noop"] == pytest.approx(sum(e["steps"] for e in rest) / len(rest))
        assert js["success_rate_excl_noop"] == pytest.approx(sum(e["success"] for e in rest) / len(rest))
    # explicit flags override the learned values
    assert main(["evaluate", *common, "--lr", "1e-2", "--json", str(tmp_path / "given.json")]) == 0
    given = json.loads((tmp_path / "given.json").read_text())
    assert (given["lr"], given["beta"], given["editor_source"]) == (1e-2, 0.7, "given")
    assert "lr given, beta learned" in capsys.readouterr().out
    assert main(["evaluate", *common, "--layers", "head", "--json", str(tmp_path / "head.json")]) == 0
    head = json.loads((tmp_path / "head.json").read_text())
    # no tuned default exists for head (issue 11): a step size is calibrated on validation edits
    assert (head["editor_source"], head["max_steps"]) == ("calibrated", 10)
    text = capsys.readouterr().out
    assert "applies only to that method and group" in text and "calibrated rmsprop" in text


def test_tune_editor_starts_from_and_reports_the_learned_editor(learned_dir, tmp_path, capsys):
    out = tmp_path / "tune.json"
    assert main(["tune-editor", "--checkpoint", str(learned_dir), "--edits", "6", "--val-limit", "200",
                 "--betas", "0.5", "--refine", "0", "--no-progress", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reference: editor rmsprop lr=0.0025 beta=0.7" in text and "learned editor (row marked L)" in text
    js = json.loads(out.read_text())
    assert js["editor_source"] == "learned" and js["max_steps"] == 6
    ref = js["reference"]
    assert (ref["lr"], ref["beta"]) == (2.5e-3, 0.7) and ref in js["points"]
    grid = sorted(p["lr"] for p in js["points"] if p["beta"] == 0.5)
    assert len(grid) == 7 and grid[3] == pytest.approx(2.5e-3, rel=1e-2)  # centred on the learned lr


def test_session_and_panel_use_the_learned_editor(tiny_model, fashion_small):
    from workbench.session import EditSession

    s = EditSession(tiny_model, fashion_small, card=CARD, device="cpu", limit=100)
    assert (s.config.lr, s.config.beta, s.editor_choice.source) == (2.5e-3, 0.7, "learned")
    assert "learned by Editable Training" in repr(s)
    i = next(j for j in range(100) if int(s.evaluator.base_preds[j]) != 3)
    res = s.edit_index(i, 3, layers="all")  # another group: the learned lr does not carry over
    assert (res.config.layers, res.config.lr) == ("all", GROUP_DEFAULTS["all"]["rmsprop"]["lr"])
    res = s.edit_index(i, 3, max_steps=2)  # same method and group: still learned
    assert (res.config.lr, res.config.beta, res.config.max_steps) == (2.5e-3, 0.7, 2)
    plain = EditSession(tiny_model, None, device="cpu")
    assert plain.editor_choice.source == "tuned default" and plain.config.lr == DEFAULTS["rmsprop"]["lr"]
    given = EditSession(tiny_model, None, card=CARD, device="cpu", config=EditorConfig(lr=1e-2))
    assert (given.config.lr, given.config.beta, given.editor_choice.source) == (1e-2, 0.7, "given")

    pytest.importorskip("ipywidgets")
    from workbench.widgets.panels.edit_panel import EditPanel

    p = EditPanel(["chain3", "head"], {}, config=s.config, choose=s.resolve_editor, note=s.editor_choice.note)
    assert "learned" in p.editor_note.value
    p.method.value = "gd"
    assert p.lr.value == DEFAULTS["gd"]["lr"] and "tuned default" in p.editor_note.value
    p.method.value = "rmsprop"
    assert p.lr.value == 2.5e-3 and p.config.beta == 0.7 and "learned" in p.editor_note.value
    p.lr.value = 1e-2
    assert "lr as typed" in p.editor_note.value


def _results_table():
    spec = importlib.util.spec_from_file_location("results_table", ROOT / "benchmarks" / "results_table.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_results_table_recomputes_noops_for_older_result_files(capsys):
    path = ROOT / "results" / "eval" / "baseline-rmsprop-chain3-random-1000.json"
    js = json.loads(path.read_text())
    assert "noop_edits" not in js  # written before evaluate recorded them
    table = _results_table()
    r = table.read(str(path))
    noops = [e for e in js["per_edit"] if e["success"] and e["steps"] == 0]
    rest = [e for e in js["per_edit"] if not (e["success"] and e["steps"] == 0)]
    assert r["noop_edits"] == len(noops) > 0
    assert r["drawdown_abs"] == pytest.approx(js["drawdown_abs"]) and r["mean_steps"] == pytest.approx(js["mean_steps"])
    assert r["mean_steps_excl_noop"] == pytest.approx(sum(e["steps"] for e in rest) / len(rest))
    assert r["drawdown_abs_excl_noop"] == pytest.approx(sum(abs(e["drawdown"]) for e in rest) / len(rest))
    assert r["editor_source"] == "tuned default"  # lr 1e-3, beta 0.5: the chain3 default
    table.main([str(path), str(ROOT / "results" / "eval" / "baseline-rmsprop-chain3-random-1000-lr0.004.json")])
    lines = capsys.readouterr().out.splitlines()
    assert "no-op" in lines[0] and len(lines) == 4
    assert f"| {len(noops)} |" in lines[3] and "| given |" in lines[3]  # the lr 4e-3 row, sorted last


def _workbench_without_tuned_defaults(bundle):
    """A tiny CNN (no tuned editor defaults for any of its groups) in a Workbench; small calibrations."""
    pytest.importorskip("ipywidgets")
    from workbench.session import EditSession
    from workbench.widgets import Workbench

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(16, 10))
    s = EditSession(net, bundle.subset(val=80, test=100), device="cpu")
    s.calibration_settings.update(edits=4, val_limit=80)
    return s, Workbench(s)


def test_switching_the_method_in_the_panel_takes_the_session_step_size_of_a_model_without_tuned_defaults(
        fashion_small):
    """The panel asks the session for a new method's lr: a model without tuned defaults gets the
    calibrated one (not the ResNet-tuned table's), and the panel says so."""
    s, wb = _workbench_without_tuned_defaults(fashion_small)
    group = wb.panel.group.value
    wb.panel.method.value = "gd"
    cal = s.calibrate("gd", group)  # the one the panel asked for (kept), or searched now
    assert "calibrated gd" in wb.panel.editor_note.value and "(the tuned default" not in wb.panel.editor_note.value
    assert wb.panel.lr.value == pytest.approx(cal.lr) and wb.panel.config.lr == pytest.approx(cal.lr)


def test_an_edit_click_on_a_model_without_tuned_defaults_calibrates_the_panels_group_once(fashion_small):
    """The panel shows the resolver's choice; a click leaves the step size to the session, which
    calibrates the edited group at that first edit (not 'as given' with the ResNet-tuned lr), and
    the panel then shows the calibrated step size."""
    s, wb = _workbench_without_tuned_defaults(fashion_small)
    assert s.calibrations == {}  # opening calibrates nothing
    i = int((s.base_preds != s.labels).nonzero()[0])
    wb.controller.select(i)
    wb.controller.set_target(int(s.labels[i]))
    res = wb.controller.edit()
    assert res is not None and s.editor_choice.source == "calibrated" and len(s.calibrations) == 1
    (cal,) = s.calibrations.values()
    assert res.config.lr == pytest.approx(cal.lr) and wb.panel.lr.value == pytest.approx(cal.lr)
    assert "calibrated" in wb.panel.editor_note.value
    wb.panel.lr.value = 1e-3  # a step size the user typed is used as given
    assert wb.panel.edit_config().lr == pytest.approx(1e-3)
