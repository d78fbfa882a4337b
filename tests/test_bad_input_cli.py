"""Bad input on the command line: a message naming the mistake and the fix (exit code 2, no
traceback), checked before any work, with nothing on disk changed."""
from __future__ import annotations

import json
import shlex

import pytest

from bad_input_common import tree
from workbench.cli import main

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
