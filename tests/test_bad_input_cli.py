"""Bad input on the command line: a message naming the mistake and the fix (exit code 2, no
traceback), checked before any work, with nothing on disk changed."""
from __future__ import annotations

import json
import shlex
import shutil
import time

import pytest
import torch

from bad_input_common import tree
from hostile_code import IDS, hostile_builders, recording_factory
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
