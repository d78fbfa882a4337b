"""The command a card or result file records: as typed, but never naming a path of this machine
that lies inside the working folder (workbench.paths.portable_arg)."""
from __future__ import annotations

import argparse
import json
import os
import shlex

from workbench.cli import main
from workbench.cli._common import command_line
from workbench.paths import portable_arg


def _recorded(argv: list[str]) -> str:
    return command_line(argparse.Namespace(argv=argv))


def test_absolute_paths_inside_the_working_folder_are_recorded_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    inside, outside = tmp_path / "runs" / "a b", tmp_path.parent / "elsewhere"
    got = _recorded(["train", "--out", str(inside), f"--json={tmp_path / 'r.json'}", "--init-from", str(outside),
                     "--lr", "1e-3", "--checkpoint", str(tmp_path), "--dataset", f"imagefolder:{tmp_path / 'data'}",
                     "--model", "torchvision:resnet18", "--weights", f"{tmp_path}/x/../w.safetensors"])
    assert got == ("python -m workbench train --out 'runs/a b' --json=r.json --init-from "
                   f"{shlex.quote(str(outside))} --lr 1e-3 --checkpoint . --dataset imagefolder:data "
                   "--model torchvision:resnet18 --weights w.safetensors")
    assert _recorded(["evaluate", "--checkpoint", "runs/x"]) == "python -m workbench evaluate --checkpoint runs/x"


def test_a_working_folder_reached_through_a_symbolic_link_counts_as_the_shell_names_it(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "runs").mkdir(parents=True)
    link = tmp_path / "link"
    os.symlink(real, link)
    monkeypatch.chdir(link)  # os.getcwd() gives the resolved folder
    monkeypatch.setenv("PWD", str(link))  # as the shell names it
    assert portable_arg(str(link / "runs" / "a")) == "runs/a"
    assert portable_arg(str(real / "runs" / "a")) == "runs/a"
    monkeypatch.setenv("PWD", str(tmp_path))  # a stale $PWD that is not the working folder is ignored
    assert portable_arg(str(tmp_path / "other")) == str(tmp_path / "other")


def test_a_result_file_records_the_command_without_the_machine_path(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results" / "nat.json"  # typed as an absolute path
    assert main(["evaluate", "--checkpoint", str(tiny_model_dir), "--protocol", "natural", "--edits", "2",
                 "--limit", "200", "--lr", "2e-3", "--json", str(out), "--no-progress"]) == 0
    command = json.loads(out.read_text())["command"]
    assert "--json results/nat.json" in command and str(tmp_path) not in command
