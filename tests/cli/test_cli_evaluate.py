"""``python -m workbench evaluate`` / ``tune-editor`` end to end on the tiny model folder."""
from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from tests.support.repo import ROOT
from workbench.cli import main
from workbench.editing import EditorConfig
from workbench.evaluation import Evaluator, random_label_edits
from workbench.training import load_model


def test_evaluate_writes_json_consistent_with_the_evaluator(tiny_model_dir, fashion, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--checkpoint", str(tiny_model_dir), "--editor", "rmsprop", "--layers", "chain3",
               "--edits", "6", "--limit", "400", "--lr", "2e-3", "--max-steps", "5", "--seed", "1",
               "--json", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| rmsprop |" in text and "drawdown (abs)" in text and "failed edits count as k steps" in text
    js = json.loads(out.read_text())
    for key in ("test_error", "drawdown_abs", "drawdown_signed", "success_rate", "mean_steps", "edits", "editor",
                "layers", "protocol", "seconds", "lr", "beta", "checkpoint"):
        assert key in js, key
    assert (js["edits"], js["editor"], js["layers"], js["protocol"]) == (6, "rmsprop", "chain3", "random")
    assert (js["lr"], js["beta"], js["max_steps"], js["examples"]) == (2e-3, 0.5, 5, 400)
    assert 0 <= js["test_error"] <= 1 and 0 <= js["success_rate"] <= 1 and 0 <= js["mean_steps"] <= 5
    assert js["drawdown_abs"] >= abs(js["drawdown_signed"]) and js["seconds"] > 0
    assert js["checkpoint"] == str(tiny_model_dir)
    # the same numbers straight from the Evaluator
    model, _ = load_model(tiny_model_dir)
    ev = Evaluator(model, fashion, limit=400, device="cpu")
    edits = random_label_edits(ev, 6, seed=1)
    s = ev.evaluate_edits(edits.x, edits.y, EditorConfig("rmsprop", lr=2e-3, max_steps=5), progress=False)
    assert js["test_error"] == pytest.approx(ev.base_error)
    assert js["success_rate"] == pytest.approx(s.success_rate)
    assert js["mean_steps"] == pytest.approx(s.mean_steps)
    assert js["drawdown_abs"] == pytest.approx(s.drawdown_abs)
    assert js["drawdown_signed"] == pytest.approx(s.drawdown_signed)
    assert [e["index"] for e in js["per_edit"]] == edits.indices.tolist()


def test_evaluate_natural_protocol(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "nat.json"
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), "--protocol", "natural", "--edits", "3",
                 "--limit", "300", "--lr", "2e-3", "--json", str(out), "--no-progress"]) == 0
    js = json.loads(out.read_text())
    assert js["protocol"] == "natural" and js["edits"] == 3
    model, _ = load_model(tiny_model_dir)
    from workbench.data import load_for_card as bundle_for_card
    from workbench.training import read_card
    ev = Evaluator(model, bundle_for_card(read_card(tiny_model_dir)), limit=300, device="cpu")
    for e in js["per_edit"]:  # misclassified images, edited to their true label
        assert int(ev.base_preds[e["index"]]) != e["target"] == int(ev.labels[e["index"]])


def test_tune_editor_small_grid_and_write_defaults(tiny_model_dir, tmp_path, capsys):
    import workbench.editing.editor_defaults as defaults

    before = defaults.DEFAULTS_FILE.read_text()
    target = tmp_path / "tuned" / defaults.DEFAULTS_FILE.name
    out = tmp_path / "tune.json"
    # k=40: lr 1e-2 meets all 8 random-label constraints with room to spare (at k=10 one of them
    # took 9 steps on a tiny model of another seed), so "a feasible grid point" does not hinge on a step
    rc = main(["tune-editor", "--checkpoint", str(tiny_model_dir), "--editor", "rmsprop", "--edits", "8",
               "--max-steps", "40",
               "--val-limit", "300", "--lrs", "1e-6,3e-3,1e-2", "--betas", "0.5", "--refine", "1", "--json", str(out),
               "--write-defaults", str(target.parent), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    js = json.loads(out.read_text())
    lrs = [p["lr"] for p in js["points"]]
    grid = [p for p in js["points"] if p["lr"] in (1e-6, 3e-3, 1e-2)]
    assert len(lrs) == 4 and len(grid) == 3 and lrs == sorted(lrs)
    # one bisection step between the largest failing and the smallest qualifying grid lr
    low = max(p["lr"] for p in grid if not p["feasible"])
    high = min(p["lr"] for p in grid if p["feasible"])
    (extra,) = [lr for lr in lrs if lr not in (1e-6, 3e-3, 1e-2)]
    assert low < extra < high and extra == pytest.approx((low * high) ** 0.5, rel=1e-2)
    assert js["split"] == "val" and js["examples"] == 300
    tiny_lr = js["points"][0]  # a step of 1e-6 cannot flip 8 random labels: stopped early, not scored
    assert not tiny_lr["feasible"] and tiny_lr["drawdown_abs"] is None and tiny_lr["edits_run"] < 8
    feasible = [p for p in js["points"] if p["feasible"]]
    assert feasible, text
    best = js["best"]
    assert best["drawdown_abs"] == min(p["drawdown_abs"] for p in feasible) and best["success_rate"] >= 0.95
    assert f"best: rmsprop lr={best['lr']:.3g}" in text
    # the defaults file now holds the winner and records where it came from
    doc = defaults.load_defaults(target)
    tuned = {m: {"lr": v["lr"], "beta": v["beta"]} for m, v in doc["methods"].items()}
    assert tuned["rmsprop"] == {"lr": best["lr"], "beta": 0.5}
    assert tuned["gd"] == defaults.DEFAULTS["gd"]
    prov = doc["methods"]["rmsprop"]["provenance"]  # the command, the model and the result that found it
    assert "val success" in prov["result"] and prov["model"]["checkpoint"] == str(tiny_model_dir)
    assert "tune-editor" in prov["command"] and prov["date"]
    assert defaults.DEFAULTS_FILE.read_text() != target.read_text() and defaults.DEFAULTS_FILE.read_text() == before


def test_an_interrupted_evaluation_resumes_where_it_stopped(tiny_model_dir, tmp_path, edit_calls, capsys):
    calls = edit_calls
    argv = ["evaluate", "--checkpoint", str(tiny_model_dir), "--edits", "6", "--limit", "300", "--lr", "2e-3",
            "--max-steps", "4", "--no-progress", "--json"]
    assert main([*argv, str(tmp_path / "whole.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())

    out, partial = tmp_path / "resumed.json", tmp_path / "resumed.json.partial"
    calls.clear()
    calls.crash_after = 3
    assert main([*argv, str(out)]) == 130  # Ctrl-C: no traceback, the resume command is printed
    assert "interrupted: 3 of 6 edits finished and saved in" in capsys.readouterr().err
    assert not out.exists() and len(partial.read_text().splitlines()) == 1 + 3
    # the README's table script summarises the edits done so far
    spec = importlib.util.spec_from_file_location("results_table",
                                                  ROOT / "benchmarks" / "results_table.py")
    table = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(table)  # type: ignore[union-attr]
    so_far = table.read(str(partial))
    first3 = whole["per_edit"][:3]
    assert so_far["edits"] == "3 (of 6, unfinished)" and so_far["test_error"] == whole["test_error"]
    assert so_far["drawdown_abs"] == pytest.approx(sum(abs(e["drawdown"]) for e in first3) / 3)
    assert so_far["mean_steps"] == pytest.approx(sum(e["steps"] for e in first3) / 3)
    assert (so_far["editor"], so_far["lr"], so_far["checkpoint"]) == ("rmsprop", 2e-3, str(tiny_model_dir))
    with open(partial, "a") as f:
        f.write('{"outcome": {"index": 1')  # a line cut short by the stop
    calls.clear()
    calls.crash_after = None
    capsys.readouterr()
    assert main([*argv, str(out)]) == 0
    assert "resuming from" in capsys.readouterr().out and len(calls) == 3  # only the 3 remaining edits ran
    resumed = json.loads(out.read_text())
    assert not partial.exists()
    strip = lambda js: {k: v for k, v in js.items() if k not in ("seconds", "command", "per_edit")}  # noqa: E731
    assert strip(resumed) == strip(whole)
    assert [{k: v for k, v in e.items() if k != "edit_seconds"} for e in resumed["per_edit"]] == \
           [{k: v for k, v in e.items() if k != "edit_seconds"} for e in whole["per_edit"]]

    # other settings with a partial run under the same name: refused with the fix, then --no-resume
    calls.crash_after = 2
    assert main([*argv, str(out)]) == 130
    calls.crash_after = None
    other = [a if a != "2e-3" else "3e-3" for a in argv]
    assert main([*other, str(out)]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "lr" in err and "--no-resume" in err
    calls.clear()
    assert main([*other, str(out), "--no-resume"]) == 0 and len(calls) == 6
    assert json.loads(out.read_text())["lr"] == 3e-3


def test_a_run_split_with_range_merges_into_the_unsplit_result(tiny_model_dir, tmp_path, edit_calls, capsys):
    calls = edit_calls
    argv = ["evaluate", "--checkpoint", str(tiny_model_dir), "--edits", "6", "--limit", "300", "--lr", "2e-3",
            "--max-steps", "4", "--no-progress"]
    assert main([*argv, "--json", str(tmp_path / "whole.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())
    # part 1: edits 0..3, stopped after 3 of them (its .partial is a part); part 2: edits 2..5 (edit 2 in both)
    calls.crash_after = 3
    calls.clear()
    assert main([*argv, "--range", "0:4", "--json", str(tmp_path / "a.json")]) == 130
    calls.crash_after = None
    calls.clear()
    assert main([*argv, "--range", "2:6", "--json", str(tmp_path / "b.json")]) == 0 and len(calls) == 4
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["range"] == [2, 6] and b["edits_total"] == 6 and b["edits"] == 4
    assert b["per_edit"] == [{**e, "edit_seconds": f["edit_seconds"]} for e, f in zip(whole["per_edit"][2:], b["per_edit"])]

    parts = [str(tmp_path / "a.json.partial"), str(tmp_path / "b.json")]
    assert main(["merge-results", *parts, "--json", str(tmp_path / "merged.json")]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    for key in ("test_error", "drawdown_abs", "drawdown_signed", "success_rate", "mean_steps", "edits", "editor",
                "layers", "protocol", "lr", "beta", "max_steps", "split", "examples", "checkpoint", "seed",
                "model_sha256"):
        assert merged[key] == whole[key], key
    strip = lambda es: [{k: v for k, v in e.items() if k != "edit_seconds"} for e in es]  # noqa: E731
    assert strip(merged["per_edit"]) == strip(whole["per_edit"])
    assert [(m["first_edit"], m["edits"]) for m in merged["merged_from"]] == [(0, 3), (2, 4)]
    # parts that disagree on a shared edit are not one run (a change that each part alone could hold)
    shared = b["per_edit"][0]
    assert shared["finite"]
    changed = {"steps": 1} if shared["success"] and shared["steps"] == 0 else {"flipped": shared["flipped"] + 1}
    tampered = b | {"per_edit": [shared | changed, *b["per_edit"][1:]]}
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    capsys.readouterr()
    assert main(["merge-results", parts[0], str(tmp_path / "tampered.json"), "--json", str(tmp_path / "t.json")]) == 2
    assert "edit 2 differs" in capsys.readouterr().err and not (tmp_path / "t.json").exists()

    # a gap, another run's part, a bad range: each a clear error (exit 2), nothing written
    capsys.readouterr()
    assert main(["merge-results", str(tmp_path / "a.json.partial"), "--json", str(tmp_path / "gap.json")]) == 2
    err = capsys.readouterr().err
    assert "missing 3..5" in err and "--range" in err and not (tmp_path / "gap.json").exists()
    other_lr = [a if a != "2e-3" else "3e-3" for a in argv]
    assert main([*other_lr, "--range", "0:2", "--json", str(tmp_path / "c.json")]) == 0
    assert main(["merge-results", str(tmp_path / "c.json"), str(tmp_path / "b.json"), "--json",
                 str(tmp_path / "bad.json")]) == 2
    assert "differ in lr" in capsys.readouterr().err
    for bad in ("4:2", "0:7", "x"):
        assert main([*argv, "--range", bad]) == 2
        assert "--range" in capsys.readouterr().err


def test_results_carry_the_model_hash_and_attach_only_to_their_own_weights(tiny_model_dir, tmp_path, capsys):
    import hashlib

    from safetensors.torch import load_file, save_file

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    other = tmp_path / "other"  # same card, different weights
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(str(other / "model.safetensors"))
    save_file({k: v + 1e-3 if v.is_floating_point() else v for k, v in weights.items()}, str(other / "model.safetensors"))
    other_card = json.loads((other / "card.json").read_text())  # a card that records its own weights' hash
    other_card["model_sha256"] = hashlib.sha256((other / "model.safetensors").read_bytes()).hexdigest()
    (other / "card.json").write_text(json.dumps(other_card))
    results = []
    for folder in (model_dir, other):
        out = tmp_path / f"{folder.name}-rmsprop.json"
        assert main(["evaluate", "--checkpoint", str(folder), "--edits", "2", "--limit", "200", "--max-steps", "2",
                     "--json", str(out), "--no-progress"]) == 0
        results.append(out)
    sha = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads(results[0].read_text())["model_sha256"] == sha
    assert json.loads(results[1].read_text())["model_sha256"] != sha
    # a result of other weights written under this folder's name (the folder was overwritten since)
    moved = json.loads(results[1].read_text()) | {"checkpoint": str(model_dir)}
    (tmp_path / "stale.json").write_text(json.dumps(moved))
    capsys.readouterr()

    spec = importlib.util.spec_from_file_location("attach_eval", ROOT / "benchmarks" / "attach_eval.py")
    attach = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(attach)  # type: ignore[union-attr]
    card_before = json.loads((model_dir / "card.json").read_text())
    assert attach.main([str(model_dir), *map(str, results), str(tmp_path / "stale.json")]) == 0
    card = json.loads((model_dir / "card.json").read_text())
    assert list(card["evaluation"]) == ["model-rmsprop"]
    full = json.loads(results[0].read_text())
    kept = card["evaluation"]["model-rmsprop"]  # the summary; the per-edit records stay in the result file
    assert "per_edit" not in kept and kept["per_edit_file"] == str(results[0])
    assert {k: v for k, v in kept.items() if k != "per_edit_file"} == {k: v for k, v in full.items() if k != "per_edit"}
    assert card["model_sha256"] == sha
    assert {k: v for k, v in card.items() if k not in ("evaluation", "model_sha256")} == \
        {k: v for k, v in card_before.items() if k not in ("evaluation", "model_sha256")}
    assert "skipped" in capsys.readouterr().out
    # nothing of its own: the card is left alone, with a message
    assert attach.main([str(other), str(results[0])]) == 1
    assert "evaluation" not in json.loads((other / "card.json").read_text())
    assert "none of the 1 results belong" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--editor", "newton"], "unknown editor 'newton'"),
    (["--layers", "chain9"], "unknown layer group 'chain9'"),
    (["--protocol", "natural", "--edits", "100000"], "misclassified"),
    (["--edits", "0"], "--edits must be >= 1"),
])
def test_evaluate_bad_input_exits_2(tiny_model_dir, capsys, argv, message):
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), "--limit", "200", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope"
    for cmd in ("evaluate", "tune-editor"):
        assert main([cmd, "--checkpoint", str(missing), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert str(missing) in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["evaluate", "--checkpoint", str(empty)]) == 2
    assert "card.json not found" in capsys.readouterr().err


def test_tune_editor_bad_grid_exits_2(tiny_model_dir, capsys):
    assert main(["tune-editor", "--checkpoint", str(tiny_model_dir), "--lrs", "1e-3,abc"]) == 2
    assert "--lrs must be a comma-separated list" in capsys.readouterr().err


def test_tune_editor_refuses_to_write_chain3_defaults_from_another_group(tiny_model_dir, capsys):
    import workbench.editing.editor_defaults as defaults

    before = defaults.DEFAULTS_FILE.read_text()
    assert main(["tune-editor", "--checkpoint", str(tiny_model_dir), "--layers", "all", "--write-defaults",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "GROUP_DEFAULTS" in err and "'all'" in err
    assert defaults.DEFAULTS_FILE.read_text() == before
