"""The command a card or result file records: as typed, but never naming a path of this machine
that lies inside the working folder."""
from __future__ import annotations

import argparse
import json

from workbench.cli import main
from workbench.cli._common import command_line


def _recorded(argv: list[str]) -> str:
    return command_line(argparse.Namespace(argv=argv))


def test_absolute_paths_inside_the_working_folder_are_recorded_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside, outside = tmp_path / "runs" / "a b", tmp_path.parent / "elsewhere"
    got = _recorded(["train", "--out", str(inside), f"--json={tmp_path / 'r.json'}", "--init-from", str(outside),
                     "--lr", "1e-3", "--checkpoint", str(tmp_path)])
    assert got == (f"python -m workbench train --out 'runs/a b' --json=r.json --init-from {outside} "
                   "--lr 1e-3 --checkpoint .")
    assert str(tmp_path) not in got.replace(str(outside), "")
    assert _recorded(["evaluate", "--checkpoint", "runs/x"]) == "python -m workbench evaluate --checkpoint runs/x"


def test_a_result_file_records_the_command_without_the_machine_path(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "nat.json"  # typed as an absolute path
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), "--protocol", "natural", "--edits", "2",
                 "--limit", "200", "--lr", "2e-3", "--json", str(out), "--no-progress"]) == 0
    command = json.loads(out.read_text())["command"]
    assert "--json results/nat.json" in command and str(tmp_path) not in command
