"""Bad input on the command line: a message naming the mistake and the fix (exit code 2, no
traceback), checked before any work, with nothing on disk changed."""
from __future__ import annotations

import json
import shlex
import shutil
import time

import pytest
import torch

from tests.support.bad_input import tree
from tests.support.hostile_code import IDS, hostile_builders, recording_factory
from workbench.cli import main
from workbench.models.spec import parse_kwargs

FAST = ["--edits", "4", "--limit", "200", "--lr", "2e-3", "--max-steps", "3", "--no-progress"]


def _refused(argv, match, capsys, *roots):
    before = [tree(r) for r in roots]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and match in err, err
    assert "Traceback" not in err
    assert [tree(r) for r in roots] == before, "files on disk changed"
    return err


def test_json_naming_a_folder_is_refused_before_the_run(tiny_model_dir, tmp_path, capsys, edit_calls):
    (tmp_path / "out").mkdir()
    err = _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "out")],
                   "--json", capsys, tmp_path, tiny_model_dir)
    assert "is a folder; give a file path such as" in err
    assert len(edit_calls) == 0  # refused before a single edit ran


def test_json_whose_partial_is_a_folder_is_refused_before_the_run(tiny_model_dir, tmp_path, capsys, edit_calls):
    (tmp_path / "r.json.partial").mkdir()
    _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "r.json")],
             "(its .partial file)", capsys, tmp_path)
    assert len(edit_calls) == 0


@pytest.mark.parametrize("cmd", ["tune-editor", "merge-results"])
def test_json_naming_a_folder_is_refused_by_the_other_commands(tiny_model_dir, tmp_path, capsys, cmd):
    (tmp_path / "out").mkdir()
    part = tmp_path / "p.json"
    part.write_text("{}")
    argv = (["tune-editor", "--checkpoint", str(tiny_model_dir), "--edits", "2", "--val-limit", "50"]
            if cmd == "tune-editor" else ["merge-results", str(part)])
    _refused([*argv, "--json", str(tmp_path / "out")], "is a folder", capsys, tmp_path)


def test_json_below_a_file_is_refused(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "afile" / "r.json")],
             "is a file, not a folder", capsys, tmp_path)


def test_checkpoint_naming_a_file_is_refused(tiny_model_dir, tmp_path, capsys):
    err = _refused(["evaluate", "--checkpoint", str(tiny_model_dir / "model.safetensors"), *FAST],
                   "is a file; pass the model folder", capsys, tiny_model_dir, tmp_path)
    assert str(tiny_model_dir) in err  # the folder it probably meant


def test_train_out_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "m").write_text("not a folder")
    _refused(["train", "--recipe", "fashion-baseline", "--out", str(tmp_path / "m")], "--out", capsys, tmp_path)


def _run_part(tiny_model_dir, tmp_path, edit_calls, name="a.json"):
    edit_calls.crash_after = 2
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / name)]) == 130
    edit_calls.crash_after = None
    return tmp_path / (name + ".partial")


@pytest.mark.parametrize("drop", ["checkpoint", "per_edit", "seconds"])
def test_merge_results_names_a_missing_key(tiny_model_dir, tmp_path, capsys, edit_calls, drop):
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "w.json")]) == 0
    js = json.loads((tmp_path / "w.json").read_text())
    del js[drop]
    (tmp_path / "w.json").write_text(json.dumps(js))
    capsys.readouterr()
    err = _refused(["merge-results", str(tmp_path / "w.json"), "--json", str(tmp_path / "m.json")],
                   str(tmp_path / "w.json"), capsys, tmp_path)
    assert ("lacks the field 'checkpoint'" in err if drop == "checkpoint" else
            "no per_edit records" in err if drop == "per_edit" else "lacks the field 'seconds'" in err)


def test_merge_results_names_a_malformed_outcome_field(tiny_model_dir, tmp_path, capsys, edit_calls):
    partial = _run_part(tiny_model_dir, tmp_path, edit_calls)
    lines = partial.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["outcome"]["steps"] = "three"
    lines[2] = json.dumps(rec)
    partial.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    _refused(["merge-results", str(partial), "--json", str(tmp_path / "m.json")],
             "line 3: field 'steps' must be an integer >= 0, got 'three'", capsys, tmp_path)


def test_ctrl_c_prints_the_finished_count_and_the_resume_command(tiny_model_dir, tmp_path, capsys, edit_calls):
    argv = ["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "r.json")]
    edit_calls.crash_after = 2
    capsys.readouterr()
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"interrupted: 2 of 4 edits finished and saved in {tmp_path / 'r.json.partial'}" in err
    resume = err.split("Resume with:\n")[1].strip()
    assert resume.startswith("python -m workbench evaluate")
    edit_calls.crash_after = None
    edit_calls.clear()
    assert main(shlex.split(resume)[3:]) == 0 and len(edit_calls) == 2  # the printed command resumes
    assert "resuming from" in capsys.readouterr().out


def test_ctrl_c_without_json_says_nothing_was_saved(tiny_model_dir, tmp_path, capsys, edit_calls):
    edit_calls.crash_after = 1
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 of 4 edits finished; nothing was saved" in err and "--json" in err


@pytest.mark.parametrize("change, match", [
    (lambda o: o.update(target=99), "but this run's seed draws image"),
    (lambda o: o.update(index=(o["index"] + 1) % 200), "but this run's seed draws image"),
    (lambda o: o.update(drawdown="big"), "field 'drawdown' must be a number in [-1, 1]"),
    (lambda o: o.pop("success"), "lacks the field 'success'"),
])
def test_a_partial_file_is_checked_line_by_line_on_resume(tiny_model_dir, tmp_path, capsys, edit_calls, change, match):
    partial = _run_part(tiny_model_dir, tmp_path, edit_calls)
    lines = partial.read_text().splitlines()
    fake = json.loads(lines[-1])
    change(fake["outcome"])
    partial.write_text("\n".join([*lines[:-1], json.dumps(fake)]) + "\n")  # the last finished edit, altered
    capsys.readouterr()
    edit_calls.clear()
    err = _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "a.json")],
                   match, capsys, tmp_path)
    assert f"{partial} line {len(lines)}" in err and "--no-resume" in err
    assert len(edit_calls) == 0


def test_an_appended_fake_outcome_is_refused_on_resume(tiny_model_dir, tmp_path, capsys, edit_calls):
    """The issue's case: a line appended with target 99 used to be accepted and move drawdown_abs."""
    partial = _run_part(tiny_model_dir, tmp_path, edit_calls)
    lines = partial.read_text().splitlines()
    fake = json.loads(lines[-1])
    fake["outcome"].update(target=99, drawdown=0.5)
    partial.write_text("\n".join([*lines, json.dumps(fake)]) + "\n")
    capsys.readouterr()
    _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "a.json")],
             "target 99, but this run's seed draws", capsys, tmp_path)


# --- train --out: a finished model is never replaced without --overwrite (issue 17, section 4) ---

TINY_FLAGS = ["--recipe", "fashion-baseline", "--train-subset", "64", "--batch-size", "32", "--eval-subset", "50",
              "--arch-kwargs", '{"widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1]}', "--warmup-epochs", "0",
              "--device", "cpu", "--no-progress"]


def _tiny_cli_recipe(epochs: int):
    """The recipe ``train TINY_FLAGS --epochs N`` builds."""
    from workbench.training import get_recipe

    return get_recipe("fashion-baseline").override(
        epochs=epochs, train_subset=64, batch_size=32, eval_subset=50, warmup_epochs=0.0,
        arch_kwargs={"widths": [8, 8, 16, 16], "blocks": [1, 1, 1, 1]})


class _Stop(Exception):
    pass


def _unfinished_run(folder, fashion_small, capsys):
    """A real run of ``TINY_FLAGS --epochs 2`` stopped at the start of its second epoch."""
    from workbench.training import train
    from workbench.training.loop import CrossEntropyObjective

    recipe, obj = _tiny_cli_recipe(2), CrossEntropyObjective()

    def dying(model, x, y, step):
        if step == 2:  # 64 images / 32 per batch: step 2 opens epoch 2
            raise _Stop
        return obj(model, x, y, step)
    dying.extra_parameters = obj.extra_parameters  # type: ignore[attr-defined]
    with pytest.raises(_Stop):
        train(recipe, folder, objective=dying, bundle=fashion_small, device="cpu", progress=False)
    capsys.readouterr()
    assert json.loads((folder / "card.json").read_text())["epochs"] == 1 and (folder / "train_state.pt").exists()


@pytest.mark.parametrize("state", [True, False], ids=["with-train-state", "model-folder-only"])
@pytest.mark.parametrize("extra", [[], ["--no-resume"], ["--epochs", "2"]], ids=["same", "no-resume", "other-epochs"])
def test_train_refuses_a_folder_holding_a_finished_model(tiny_model_dir, tmp_path, capsys, state, extra):
    """The issue's case: `train --out` over a trained model exited 0 and left a model at 90% error."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    if not state:
        (folder / "train_state.pt").unlink()  # as a shipped or exported model folder
    err = _refused(["train", *TINY_FLAGS, "--epochs", "1", *extra, "--out", str(folder)], str(folder), capsys,
                   tmp_path)
    assert "holds a finished model (recipe 'tiny', 2 epochs, test error" in err
    assert "training would replace it. Pass --overwrite" in err and "another --out" in err
    assert f"--init-from {folder}" in err and err.count("\n") == 1


def test_train_refuses_another_recipe_in_an_unfinished_run(tmp_path, capsys, fashion_small):
    folder = tmp_path / "run"
    _unfinished_run(folder, fashion_small, capsys)
    err = _refused(["train", *TINY_FLAGS, "--epochs", "2", "--lr", "1e-3", "--out", str(folder)], str(folder),
                   capsys, tmp_path)
    assert "holds an unfinished run (recipe 'fashion-baseline', epoch 1 of 2" in err
    assert "of another recipe (differs in: lr)" in err and "--overwrite" in err and "another --out" in err
    err = _refused(["train", *TINY_FLAGS, "--epochs", "2", "--no-resume", "--out", str(folder)], "--no-resume",
                   capsys, tmp_path)
    assert "unfinished run" in err and "Pass --overwrite" in err


def test_train_resumes_an_unfinished_run_of_the_same_recipe_and_overwrites_only_when_asked(tmp_path, capsys,
                                                                                            fashion_small):
    folder = tmp_path / "run"
    _unfinished_run(folder, fashion_small, capsys)
    capsys.readouterr()
    assert main(["train", *TINY_FLAGS, "--epochs", "2", "--out", str(folder)]) == 0
    assert "resuming from" in capsys.readouterr().err
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and json.loads((folder / "card.json").read_text())["epochs"] == 2
    # now finished: refused again, then replaced with --overwrite (the old run's log goes with it)
    _refused(["train", *TINY_FLAGS, "--epochs", "1", "--out", str(folder)], "holds a finished model", capsys,
             tmp_path)
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--lr", "1e-3", "--overwrite", "--out", str(folder)]) == 0
    card = json.loads((folder / "card.json").read_text())
    assert card["epochs"] == 1 and card["recipe"]["lr"] == 1e-3
    assert [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1]


# --- --device: one line naming the valid choices, on every subcommand that takes it (section 6) ---

def _bad_devices() -> list[str]:
    import torch

    return ["nosuchdevice", "cuda:99", "meta", *([] if torch.cuda.is_available() else ["cuda"])]


@pytest.mark.parametrize("device", _bad_devices())
@pytest.mark.parametrize("cmd", ["train", "evaluate", "tune-editor", "localize"])
def test_a_bad_device_is_one_line_naming_the_choices(tiny_model_dir, tmp_path, capsys, cmd, device):
    argv = {"train": ["train", *[a for a in TINY_FLAGS if a not in ("--device", "cpu")], "--out", str(tmp_path / "m")],
            "evaluate": ["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "r.json")],
            "tune-editor": ["tune-editor", "--checkpoint", str(tiny_model_dir), "--edits", "2"],
            "localize": ["localize", "--checkpoint", str(tiny_model_dir), "--index", "0"]}[cmd]
    err = _refused([*argv, "--device", device], f"--device {device!r} is not", capsys, tmp_path, tiny_model_dir)
    assert "choose one of: cpu" in err and err.count("\n") == 1


def test_a_bad_workbench_device_variable_names_it(monkeypatch):
    from workbench.device import default_device

    monkeypatch.setenv("WORKBENCH_DEVICE", "nosuchdevice")
    with pytest.raises(ValueError, match="WORKBENCH_DEVICE 'nosuchdevice' is not a device; choose one of: cpu"):
        default_device()


# --- merge-results: nested JSON, parts checked against the seeded draw, output naming an input ---

def _nested(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("kind", ["json", "partial-header", "partial-line"])
def test_nested_json_in_a_part_is_a_one_line_error(tmp_path, capsys, kind):
    part = tmp_path / ("p.json" if kind == "json" else "p.json.partial")
    part.write_text({"json": '{"per_edit": ' + _nested() + "}",
                     "partial-header": _nested() + "\n",
                     "partial-line": '{"edits": 4}\n{"outcome": ' + _nested() + ', "seconds": 1}\n'}[kind])
    err = _refused(["merge-results", str(part), "--json", str(tmp_path / "m.json")], "nested too deeply", capsys,
                   tmp_path)
    assert str(part) in err and err.count("\n") == 1


def test_a_nested_partial_file_is_refused_on_resume(tiny_model_dir, tmp_path, capsys, edit_calls):
    (tmp_path / "r.json.partial").write_text(_nested() + "\n")
    _refused(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, "--json", str(tmp_path / "r.json")],
             "nested too deeply", capsys, tmp_path)
    assert len(edit_calls) == 0


def _finished(tiny_model_dir, tmp_path, *extra):
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), *FAST, *extra,
                 "--json", str(tmp_path / "w.json")]) == 0
    return json.loads((tmp_path / "w.json").read_text())


@pytest.mark.parametrize("change, match", [
    (lambda o, js: o.update(target=(o["target"] + 1) % 10), "but this run's seed draws image"),
    (lambda o, js: o.update(index=(o["index"] + 1) % 200), "but this run's seed draws image"),
    (lambda o, js: o.update(index=5000), "has image 5000, outside the test split of this run (200 images"),
    (lambda o, js: o.update(success=True, wrecked=False, steps=js["max_steps"] + 2),
     "succeeded in 5 steps, more than k = 3"),
    (lambda o, js: o.update(success=False, steps=1), "failed but counts 1 steps"),
    (lambda o, js: o.update(success=False, wrecked=False, finite=True, steps=js["max_steps"], flipped=1, drawdown=0.5),
     "has drawdown +0.500000 with only 1 of 200 prediction(s) flipped"),
    (lambda o, js: o.update(success=True, wrecked=True), "both a success and wrecked"),
])
def test_merge_results_checks_each_part_against_the_seeded_draw(tiny_model_dir, tmp_path, capsys, change, match):
    js = _finished(tiny_model_dir, tmp_path)
    change(js["per_edit"][1], js)
    (tmp_path / "w.json").write_text(json.dumps(js))
    capsys.readouterr()
    err = _refused(["merge-results", str(tmp_path / "w.json"), "--json", str(tmp_path / "m.json")], match, capsys,
                   tmp_path)
    assert f"{tmp_path / 'w.json'} per_edit[1]: edit 1" in err and "Merge only unchanged parts" in err


def test_merge_results_refuses_an_index_outside_the_split_of_a_natural_run(tiny_model_dir, tmp_path, capsys):
    """No seeded draw without the model here (natural edits are its mistakes): the split's bounds still hold."""
    js = _finished(tiny_model_dir, tmp_path, "--protocol", "natural")
    js["per_edit"][0]["index"] = 200
    (tmp_path / "w.json").write_text(json.dumps(js))
    capsys.readouterr()
    _refused(["merge-results", str(tmp_path / "w.json"), "--json", str(tmp_path / "m.json")],
             "per_edit[0]: edit 0 has image 200, outside the test split", capsys, tmp_path)


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_merge_results_refuses_an_output_naming_one_of_its_parts(tiny_model_dir, tmp_path, capsys, spelling):
    _finished(tiny_model_dir, tmp_path)
    part = tmp_path / "w.json"
    out = {"same": str(part), "dotted": str(tmp_path / "." / "w.json"),
           "symlink": str(tmp_path / "link.json")}[spelling]
    if spelling == "symlink":
        (tmp_path / "link.json").symlink_to(part)
    capsys.readouterr()
    err = _refused(["merge-results", str(part), "--json", out], "would replace that part", capsys, tmp_path)
    assert f"names the part {part}" in err and "--json merged.json" in err


def test_a_recipe_field_added_after_a_run_began_does_not_block_its_resume(tmp_path):
    """A card written before a Recipe field existed lacks it: that counts as the field's default
    (resume goes on); the same field recorded with another value is a real difference (refused)."""
    from workbench.training.out_folder import inspect_out
    from workbench.training.recipes import get_recipe

    recipe = get_recipe("fashion-baseline").override(epochs=3)
    old = recipe.to_dict()
    del old["record_dynamics"]  # a run begun before the field existed
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps({"recipe": old, "epochs": 1}))
    assert inspect_out(folder).differences(recipe) == []
    old["record_dynamics"] = not recipe.record_dynamics
    (folder / "card.json").write_text(json.dumps({"recipe": old, "epochs": 1}))
    assert inspect_out(folder).differences(recipe) == ["record_dynamics"]
# -- model specs and model folders: nothing runs that a card or --model names -------------------------------------
def _hostile_folder(tiny_model_dir, tmp_path, builder, config):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    card = json.loads((folder / "card.json").read_text())
    card["builder"], card["model_config"] = {"kind": "factory", "name": builder}, config
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
def test_evaluate_checkpoint_refuses_a_card_naming_code(tiny_model_dir, tmp_path, capsys, edit_calls, case):
    marker = tmp_path / "ran"
    builder, config, match = hostile_builders(marker)[case]
    folder = _hostile_folder(tiny_model_dir, tmp_path, builder, config)
    err = _refused(["evaluate", "--checkpoint", str(folder), *FAST], match, capsys, tmp_path)
    assert f"builder {builder!r}" in err and not marker.exists() and len(edit_calls) == 0


@pytest.mark.parametrize("case", range(len(IDS)), ids=IDS)
def test_model_naming_code_is_refused(tiny_model_dir, tmp_path, capsys, case):
    marker = tmp_path / "ran"
    builder, config, match = hostile_builders(marker)[case]
    args = ",".join(f"{k}={v!r}" for k, v in config.items())
    for argv in (["evaluate", "--model", f"{builder}:{args}", "--weights", str(tiny_model_dir / "model.safetensors"),
                  *FAST],
                 ["train", "--recipe", "fashion-baseline", "--model", f"{builder}:{args}", "--epochs", "1",
                  "--out", str(tmp_path / "out")]):
        err = _refused(argv, match, capsys, tmp_path)
        assert builder in err and not marker.exists()


def test_trust_code_runs_a_users_factory_only_when_given(tiny_model_dir, tmp_path, capsys, edit_calls, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    builder, imported, called = recording_factory(tmp_path)
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    card = json.loads((folder / "card.json").read_text())
    card["builder"] = {"kind": "factory", "name": builder}
    (folder / "card.json").write_text(json.dumps(card))
    weights = str(folder / "model.safetensors")
    _refused(["evaluate", "--checkpoint", str(folder), *FAST], "pass trust_code=True (Python) or --trust-code",
             capsys, tmp_path)
    _refused(["evaluate", "--model", builder, "--weights", weights, *FAST], "--trust-code", capsys, tmp_path)
    assert not imported.exists() and not called.exists() and len(edit_calls) == 0
    assert main(["evaluate", "--trust-code", "--checkpoint", str(folder), *FAST]) == 0, capsys.readouterr().err
    assert imported.exists() and called.exists() and len(edit_calls) == 4
    called.unlink()
    cfg = ",".join(f"{k}={v!r}" for k, v in card["model_config"].items())
    assert main(["evaluate", "--trust-code", "--model", f"{builder}:{cfg}", "--weights", weights, *FAST]) == 0, \
        capsys.readouterr().err
    assert called.exists()


def test_model_above_the_size_bound_is_refused_before_anything_is_allocated(tiny_model_dir, tmp_path, capsys):
    t0 = time.perf_counter()
    err = _refused(["evaluate", "--model", "small-resnet:widths=[1000000,1000000,1000000,1000000]", "--weights",
                    str(tiny_model_dir / "model.safetensors"), *FAST],
                   "describes a model of 7.5e+13 parameters and buffers, above the 1e+09", capsys, tmp_path)
    assert time.perf_counter() - t0 < 30 and err.count("\n") == 1


@pytest.mark.parametrize("name", ["w.pickle", "w.pt"])
def test_a_pickle_given_as_weights_gets_one_line_and_no_unsafe_advice(tiny_model_dir, tmp_path, capsys, name):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / name)
    for argv in (["--model", "small-resnet:widths=[8,8,16,16]", "--weights", str(tmp_path / name)],
                 ["--checkpoint", str(tiny_model_dir), "--weights", str(tmp_path / name)]):
        err = _refused(["evaluate", *argv, *FAST], "unknown weights format '.pickle'" if name.endswith("pickle")
                       else "refusing to load", capsys, tmp_path, tiny_model_dir)
        assert err.count("\n") == 1 and "weights_only=False" not in err and "pwned" not in capsys.readouterr().out


def test_model_arguments_are_read_as_data_never_evaluated(tmp_path):
    marker = tmp_path / "ran"
    kw = parse_kwargs(f"widths=__import__('os').system('touch {marker}'),deep={'[' * 5000}")
    assert kw["widths"].startswith("__import__") and kw["deep"] == "[" * 5000 and not marker.exists()
    assert parse_kwargs("w=(16, 32),n='a,b',f=True,z=None,e=1e-3,i=-2,d={'k': [1.5, None]},j=[\"x\"],act=relu") == {
        "w": [16, 32], "n": "a,b", "f": True, "z": None, "e": 1e-3, "i": -2, "d": {"k": [1.5, None]}, "j": ["x"],
        "act": "relu"}


@pytest.mark.parametrize("cmd", ["evaluate", "tune-editor", "train", "localize"])
def test_every_command_that_opens_a_model_documents_trust_code(cmd, capsys):
    with pytest.raises(SystemExit):
        main([cmd, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--trust-code" in out and "runs code that the card or the argument chose" in out
